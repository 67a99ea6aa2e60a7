"""``/openapi.json``: built from the route registry and the marshmallow schemas.

Every route registered through :meth:`ApiBlueprint.operation` appears with its
method, summary, parameters, request body, responses (errors included) and
security, so the document cannot forget a route.
"""
from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing import Rule

from .. import __version__, signing
from .routing import API_KEY, PARTNER, PUBLIC, ApiBlueprint, Operation
from .schemas import ErrorSchema

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_TYPES = {"int": "integer", "float": "number"}
PATH_PARAMS = {
    "account_id": "Carbon account id, as returned when the account was opened (`acc_…`).",
    "scenario": "Scenario id, e.g. `metro` (see `GET /v1/scenarios`).",
    "partner": "Partner id the bank configured, e.g. `szmetro`.",
    "behaviour_id": "Behaviour id (`bhv_…`), from the behaviours list or a push result.",
    "methodology_id": "Methodology id, e.g. `metro-avoided-car`.",
    "certificate_id": "Neutralisation certificate id (`cert_…`).",
    "aggregation_id": "Aggregation id, `agg_<exchange>_<YYYY-MM>`.",
    "redemption_id": "Redemption id (`rdm_…`), as returned when it was made.",
    "share_id": "Share card id, as returned when it was made (never the public token).",
}
DESCRIPTION = """\
The carbonhub HTTP API for the bank's app backend, the bank's console and partners.

Clients authenticate with an API key: `Authorization: Bearer <key>`; each key has scopes
(`accounts:read`, `accounts:write`, `admin`; `admin` implies the others). Partners sign pushes
with HMAC-SHA256 (see the `partnerSignature` scheme). Errors always have the shape
`{"error": {"code": "...", "message": "...", "fields": {...}}}`; `fields` comes with 422 only.
Times are ISO 8601 in UTC; carbon is integer grams CO2e, points are integers.
"""

_AUTO_ERRORS = {
    400: "Malformed JSON body (`malformed_json`).",
    401: "Missing or unknown API key (`unauthorized`).",
    403: "The key lacks the required scope (`forbidden`).",
    422: "Invalid body or query (`validation_error`; see `fields`).",
}


def openapi_path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """Flask's ``/a/<int:b>`` as OpenAPI's ``/a/{b}`` with its path parameters."""
    params = []
    for m in _CONVERTER.finditer(rule.rule):
        name = m.group("name")
        params.append({"in": "path", "name": name, "required": True,
                       "description": PATH_PARAMS.get(name, ""),
                       "schema": {"type": _TYPES.get(m.group("conv") or "", "string")}})
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule.rule), params


def _operation(endpoint: str, op: Operation, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = list(path_params)
    if op.auth == PARTNER:
        params += [
            {"in": "header", "name": signing.PARTNER_HEADER, "required": True, "schema": {"type": "string"},
             "description": "The partner id (key id); must equal the partner in the path."},
            {"in": "header", "name": signing.TIMESTAMP_HEADER, "required": True,
             "schema": {"type": "integer"}, "description": "Unix seconds when signed."},
        ]
    params += [{"in": "header", "name": name, "required": True, "schema": {"type": "string"}, "description": text}
               for name, text in op.headers.items()]
    if op.query is not None:
        params.append({"in": "query", "schema": op.query})
    out: dict[str, Any] = {"operationId": endpoint.replace(".", "_"), "summary": op.summary, "tags": [op.tag],
                           "parameters": params, "responses": {}}
    if op.description:
        out["description"] = op.description
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    for status, text in op.success.items():
        response: dict[str, Any] = {"description": text}
        if op.response is not None:
            schema: Any = op.response(many=True) if op.many else op.response
            response["content"] = {"application/json": {"schema": schema}}
        out["responses"][str(status)] = response
    errors: dict[int, str] = {}
    if op.body is not None:
        errors[400] = _AUTO_ERRORS[400]
    if op.auth == API_KEY:
        errors[401], errors[403] = _AUTO_ERRORS[401], _AUTO_ERRORS[403]
    if op.body is not None or op.query is not None:
        errors[422] = _AUTO_ERRORS[422]
    errors.update(op.errors)
    for status in sorted(errors):
        out["responses"][str(status)] = {"description": errors[status],
                                         "content": {"application/json": {"schema": "Error"}}}
    if op.auth == API_KEY:
        out["security"] = [{"apiKey": []}]
        out["x-required-scope"] = op.scope
        out["description"] = (out.get("description", "") + f"\n\nRequires scope `{op.scope}`.").strip()
    elif op.auth == PARTNER:
        out["security"] = [{"partnerSignature": []}]
    elif op.auth == PUBLIC:
        out["security"] = []
    return out


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every API operation registered on ``app``."""
    spec = APISpec(title="carbonhub API", version=__version__, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()], info={"description": DESCRIPTION})
    spec.components.security_scheme("apiKey", {
        "type": "http", "scheme": "bearer",
        "description": "An API key from the bank's config; scopes accounts:read, accounts:write, admin."})
    spec.components.security_scheme("partnerSignature", {
        "type": "apiKey", "in": "header", "name": signing.SIGNATURE_HEADER,
        "description": "sha256=<hex HMAC-SHA256 of '<X-Carbonhub-Timestamp>.<raw body>' under the partner's "
                       "secret>; the timestamp must be within signature_max_age_s of the hub's clock."})
    spec.components.schema("Error", schema=ErrorSchema)
    for bp in app.blueprints.values():
        if isinstance(bp, ApiBlueprint):
            spec.tag({"name": bp.tag, "description": bp.description})
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = getattr(app.view_functions.get(rule.endpoint), "api_operation", None)
        if op is None:
            continue
        path, path_params = openapi_path(rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(rule.endpoint, op, path_params)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
