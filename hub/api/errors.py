"""One error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``.

Every failure, including unknown routes and unexpected exceptions, is answered
in this shape with a stable ``code`` (see ``docs/api.md``); a client branches on
``code``, never on ``message``.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask, Response, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from ..ledger import LedgerError

log = logging.getLogger("carbonhub.api")

# Code for each HTTP status werkzeug raises by itself (routing, size limits...).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
}

# Every code the API answers with, by status (documented in docs/api.md and OpenAPI).
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("malformed_json", "bad_request"),
    401: ("unauthorized", "bad_signature", "stale_timestamp", "unknown_partner"),
    403: ("forbidden",),
    404: ("not_found", "unknown_scenario", "transaction_not_found", "unknown_benefit", "unknown_question"),
    405: ("method_not_allowed",),
    409: ("idempotency_conflict", "already_reversed", "conflict",
          "insufficient_carbon", "carbon_retired", "not_reversible", "period_open",
          "insufficient_points", "out_of_stock", "limit_reached", "benefit_closed", "not_eligible",
          "not_in_todays_quiz", "too_many_shares", "replayed_request"),
    410: ("share_revoked", "share_expired"),
    413: ("batch_too_large", "payload_too_large"),
    422: ("validation_error",),
    429: ("rate_limited",),
    500: ("internal_error",),
    503: ("web_not_configured",),
}


class ApiError(Exception):
    """Raise anywhere in a view to answer with the error shape."""

    def __init__(self, status: int, code: str, message: str, fields: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = dict(fields) if fields else None
        self.headers = dict(headers or {})


def not_found(what: str, ident: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, f"No {what} {ident!r}.")


def error_response(status: int, code: str, message: str, fields: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    response = current_app.json.response({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _is_api_request() -> bool:
    """API paths always get JSON errors; other paths (the web pages) only when asked for JSON."""
    path = request.path
    if path == "/v1" or path.startswith("/v1/") or path == "/openapi.json":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return error_response(422, "validation_error", "The request is invalid; see fields.",
                              exc.normalized_messages())

    @app.errorhandler(LedgerError)
    def _ledger(exc: LedgerError) -> Response:
        # The ledger's own status and code (409 idempotency_conflict, already_reversed...);
        # ``fields`` is a 422 thing, so other details stay in the message.
        fields = None
        if exc.status == 422:
            fields = {k: [str(v)] for k, v in exc.details.items()} or None
        return error_response(exc.status, exc.code, str(exc), fields)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if not _is_api_request():
            return exc
        status = exc.code or 500
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 404:
            message = f"No route {request.method} {request.path}."
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}."
        else:
            message = exc.description or exc.name
        return error_response(status, HTTP_CODES.get(status, "http_error"), message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # Bad input never gets here (it is answered 4xx above); this is a bug or an outage.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Internal error; it was logged.")
