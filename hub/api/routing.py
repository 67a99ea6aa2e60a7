"""A small route registry: every API operation is declared once, with its docs.

``ApiBlueprint.operation`` registers the Flask route and wraps the view so that
authentication, body and query validation and the response shape are the same
everywhere; the same declaration (an :class:`Operation`) feeds ``/openapi.json``.

A view receives its path arguments plus ``body`` (loaded request body) and/or
``query`` (loaded query string) when the operation declares those schemas, and
returns the data (or ``(data, status)``), which is dumped with the response schema.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from flask import Blueprint, current_app, request
from marshmallow import Schema, ValidationError

from .auth import current_hub, requires, verify_partner_request
from .errors import ApiError

PUBLIC, API_KEY, PARTNER = "public", "api_key", "partner"


@dataclass(frozen=True)
class Operation:
    """What ``/openapi.json`` says about one method on one route."""

    method: str
    summary: str
    description: str = ""
    tag: str = ""
    auth: str = API_KEY
    scope: str | None = None
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    many: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)  # required request headers -> description
    success: Mapping[int, str] = field(default_factory=lambda: {200: "OK"})
    errors: Mapping[int, str] = field(default_factory=dict)


MAX_DEPTH = 32  # JSON nesting; real records are a few levels deep


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _not_json(name: str) -> Any:
    # Python's parser accepts NaN and Infinity; JSON (and the stored canonical text) has no such numbers.
    raise ValueError(f"{name} is not a JSON number")


def load_json_body() -> Any:
    """The request body as JSON; an empty body is ``{}``.

    Invalid JSON, or JSON nested deeper than :data:`MAX_DEPTH`, is 400 ``malformed_json``.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    too_deep = ApiError(400, "malformed_json", f"The body nests deeper than {MAX_DEPTH} levels.")
    try:
        data = json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise too_deep
    return data


NUL_MESSAGE = "Must not contain NUL characters."


def find_nul(value: Any) -> list[str] | None:
    """The path (keys, list positions) of the first string holding a NUL character, if any.

    No real partner or client data holds NUL, and PostgreSQL cannot store it in
    text, so it is refused at the door instead of failing deep in the store.
    """
    if isinstance(value, str):
        return [] if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if "\x00" in str(key):
            return [str(key)]
        found = find_nul(item)
        if found is not None:
            return [str(key), *found]
    return None


def _load(schema: type[Schema], data: Any) -> Any:
    path = find_nul(data)
    if path is not None:
        messages: Any = [NUL_MESSAGE]
        for key in reversed(path or ["_schema"]):
            messages = {key: messages}
        raise ValidationError(messages)
    return schema().load(data)


class ApiBlueprint(Blueprint):
    """A blueprint for one resource, mounted under ``/v1``."""

    def __init__(self, name: str, import_name: str, *, tag: str, description: str = ""):
        super().__init__(name, import_name, url_prefix="/v1")
        self.tag = tag
        self.description = description

    def operation(self, rule: str, method: str, *, summary: str, description: str = "", auth: str = API_KEY,
                  scope: str | None = None, body: type[Schema] | None = None, query: type[Schema] | None = None,
                  response: type[Schema] | None = None, many: bool = False,
                  headers: Mapping[str, str] | None = None, success: Mapping[int, str] | None = None,
                  errors: Mapping[int, str] | None = None,
                  validate_body: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``view`` for ``method rule`` and document it.

        ``auth``: ``public``, ``api_key`` (with ``scope``) or ``partner`` (a signed
        push; the route must have a ``<partner>`` argument). Authentication runs
        before the body is read, so an unauthenticated caller learns nothing
        about validation. ``headers`` documents required request headers
        (name -> description); the view reads and checks them. With
        ``validate_body=False`` the view gets the parsed JSON as it came and
        checks it itself (``body`` still documents the usual shape).
        """
        if auth == API_KEY and not scope:
            raise ValueError(f"{method} {rule}: an api_key operation needs a scope")
        op = Operation(method=method.upper(), summary=summary, description=description, tag=self.tag, auth=auth,
                       scope=scope, body=body, query=query, response=response, many=many,
                       headers=dict(headers or {}), success=dict(success or {200: "OK"}), errors=dict(errors or {}))
        default_status = next(iter(op.success))

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def handler(**path_args: Any) -> Any:
                kwargs = dict(path_args)
                if find_nul(path_args) is not None:
                    raise ApiError(404, "not_found", f"No route {request.method} {request.path}.")
                if auth == PARTNER:
                    verify_partner_request(current_hub(), path_args["partner"], request.get_data(cache=True))
                if body is not None:
                    kwargs["body"] = _load(body, load_json_body()) if validate_body else load_json_body()
                if query is not None:
                    kwargs["query"] = _load(query, request.args.to_dict(flat=True))
                result = view(**kwargs)
                status, headers = default_status, {}
                if isinstance(result, tuple):
                    result, status, *rest = result
                    headers = rest[0] if rest else {}
                data = response(many=many).dump(result) if response is not None else result
                out = current_app.json.response(data)
                out.status_code = status
                out.headers.update(headers)
                return out

            wrapped = requires(scope)(handler) if auth == API_KEY else handler
            wrapped.api_operation = op  # read by the OpenAPI builder
            self.add_url_rule(rule, endpoint=view.__name__, view_func=wrapped, methods=[op.method])
            return view

        return decorate
