"""HTTP API under /v1: one blueprint per resource, one error shape.

See ``docs/api.md`` for the guide and ``/openapi.json`` for the reference.
"""
from __future__ import annotations

from flask import Flask, Response, current_app

from . import accounts, admin, aggregations, consents, ledger, methodologies, neutralisations, partners, scenarios
from . import benefits, points, redemptions
from . import quiz, science
from . import calculator, summary
from . import shares
from . import sign_in
from .errors import register_error_handlers
from .openapi import build_spec

BLUEPRINTS = (accounts.bp, consents.bp, partners.bp, ledger.bp, scenarios.bp, methodologies.bp, admin.bp,
              neutralisations.bp, aggregations.bp, points.bp,
              benefits.bp, redemptions.bp,
              science.bp, quiz.bp,
              calculator.bp, summary.bp,
              shares.bp, sign_in.bp)
# Room for a full batch of typical partner records; larger bodies are refused with 413.
BYTES_PER_RECORD = 8 * 1024


def _openapi() -> Response:
    spec = current_app.extensions.get("carbonhub_openapi")
    if spec is None:
        spec = current_app.extensions["carbonhub_openapi"] = build_spec(current_app)
    return current_app.json.response(spec)


def register_api(app: Flask) -> None:
    """Attach every blueprint, ``/openapi.json`` and the error handlers to ``app``."""
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.add_url_rule("/openapi.json", endpoint="openapi", view_func=_openapi, methods=["GET"])
    register_error_handlers(app)
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        hub = app.extensions["carbonhub"]
        app.config["MAX_CONTENT_LENGTH"] = max(1 << 20, hub.settings.max_batch_records * BYTES_PER_RECORD)
