"""A hub on the shipped config with the demo's data, and a real HTTP server for it."""
from __future__ import annotations

import copy
import threading
from typing import Any, Iterator

from werkzeug.serving import make_server

from conftest import SECRETS, shipped_config
from hub.config import load_settings
from hub.core import Hub


def demo_settings(tmp_path: Any, **web: Any) -> Any:
    """``config/hub.toml`` with every secret set in the environment (nothing read from ``var/``)."""
    data = copy.deepcopy(shipped_config())
    data["hub"]["secrets_file"] = str(tmp_path / "secrets.env")
    data["web"] = {**data.get("web", {}), **web}
    data["api_keys"]["reader"] = {"key_env": "CARBONHUB_KEY_READER", "scopes": ["accounts:read"]}
    environ = dict(SECRETS)
    for pid, partner in data["partners"].items():
        environ.setdefault(partner["secret_env"], f"{pid}-secret-0123456789")
    for conf in data.get("plugin_config", {}).values():
        for key, value in conf.items():
            if key.endswith("_env") and isinstance(value, str):
                environ.setdefault(value, f"{value.lower()}-0123456789")
    for binding in data.get("connectors", {}).values():
        for key, value in binding.get("options", {}).items():
            if key.endswith("_env") and isinstance(value, str):
                environ.setdefault(value, f"{value.lower()}-0123456789")
    return load_settings(data=data, environ=environ)


def demo_hub(tmp_path: Any, database_url: str, clock: Any, **web: Any) -> Hub:
    from hub.demo import run_demo

    hub = Hub(demo_settings(tmp_path, **web), clock=clock, database_url=database_url)
    run_demo(hub)
    return hub


class LiveServer:
    """The app on a real socket in a thread: what a browser talks to."""

    def __init__(self, app: Any):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def live(app: Any) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


def accepted_in_window(hub: Hub, days: int) -> int:
    """Inbox records accepted from the local midnight ``days - 1`` days ago: what the console counts."""
    from datetime import datetime, time, timedelta

    from hub import db

    tz = hub.settings.timezone
    start = datetime.combine(hub.now().astimezone(tz).date() - timedelta(days=days - 1), time(), tz)
    return db.InboxRecord.select().where((db.InboxRecord.status == "accepted")
                                         & (db.InboxRecord.received_at >= db.to_db(start))).count()
