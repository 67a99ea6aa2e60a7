"""The Flask application factory."""
from __future__ import annotations

import os
from typing import Any, Iterable

from flask import Flask

from . import db
from .config import Settings, load_settings
from .context import Clock, utc_now
from .core import Hub


def create_app(config: str | os.PathLike | None = None, *, settings: Settings | None = None,
               hub: Hub | None = None, clock: Clock = utc_now, extra_plugins: Iterable[Any] = (),
               database_url: str | None = None, init_db: bool = True) -> Flask:
    """Build the hub and its HTTP app; the plugin manager is created here, fresh.

    ``init_db`` creates missing tables (idempotent); turn it off when several
    workers start at once and ``carbonhub db init`` ran before.
    """
    if hub is None:
        hub = Hub(settings or load_settings(config), clock=clock, extra_plugins=extra_plugins,
                  database_url=database_url)
        if init_db:
            hub.init_db()
    app = Flask("hub", static_folder=None)
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.extensions["carbonhub"] = hub

    @app.before_request
    def _connect() -> None:
        db.database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not db.database.is_closed():
            db.database.close()

    from .api import register_api

    register_api(app)
    from .web.share_page import bp as share_bp

    app.register_blueprint(share_bp)
    from .web.pages import register_pages

    register_pages(app, hub)
    return app


def hub_of(app: Flask) -> Hub:
    return app.extensions["carbonhub"]
