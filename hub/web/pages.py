"""Mount the web pages on the hub's Flask app: the user page, the console, their helpers."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from .. import db
from ..core import Hub
from . import console, user
from .sessions import WebNotConfigured, csrf_token, session_key

TITLES = {400: "Bad request", 401: "Signed out", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
          410: "Gone", 422: "Check the form", 503: "Not configured"}


def register_pages(app: Flask, hub: Hub) -> None:
    """Attach ``/`` and ``/console`` (and their assets) to ``app``.

    The session cookie is signed with a key derived from ``[web] secret_key_env``;
    without that secret the pages answer 503 and the API works as before.
    """
    try:
        app.secret_key = session_key(hub)
    except WebNotConfigured:
        app.secret_key = None
    app.config.update(SESSION_COOKIE_NAME="carbonhub_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=hub.settings.web.cookie_secure,
                      PERMANENT_SESSION_LIFETIME=timedelta(seconds=hub.settings.web.session_ttl_s))
    for bp in (user.bp, console.bp):
        app.register_blueprint(bp)

    @app.template_filter("localtime")
    def _localtime(value: datetime | str | None) -> str:
        if not value:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        value = db.from_db(value) if value.tzinfo is None else value
        return value.astimezone(hub.settings.timezone).strftime("%Y-%m-%d %H:%M")

    @app.template_filter("fulfilment_text")
    def _fulfilment(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
        return str(value)

    @app.context_processor
    def _context() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "now_local": hub.now().astimezone(hub.settings.timezone)}


def _configured() -> Any:
    """Pages need the web secret to sign their cookie; without it they say which variable to set."""
    if request.endpoint and request.endpoint.endswith(".static"):
        return None
    if not current_app.secret_key:
        env = current_app.extensions["carbonhub"].settings.web.secret_key_env
        return render_template("error.html", status=503, title=TITLES[503],
                               message=f"The web pages are not configured: set the environment variable {env} "
                                       "(named by [web] secret_key_env)."), 503
    return None


def _error(exc: HTTPException) -> Any:
    """A page's errors are pages, not the API's JSON."""
    status = exc.code or 500
    return render_template("error.html", status=status, title=TITLES.get(status, exc.name),
                           message=exc.description), status


# The blueprints live at module level, so their handlers are attached once here, not per app.
for _bp in (user.bp, console.bp):
    _bp.before_request(_configured)
    _bp.register_error_handler(HTTPException, _error)
