"""Shared fixtures: a fresh hub on a real database for every test.

With ``CARBONHUB_TEST_DATABASE_URL`` set (CI sets it to the local PostgreSQL),
the same tests run on PostgreSQL; otherwise each test gets its own SQLite file.
"""
from __future__ import annotations

import copy
import os
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import pytest

from hub import db
from hub.app import create_app
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.testing import fresh_database_url


def worker_database_url(url: str | None, worker: str | None) -> str | None:
    """Under pytest-xdist, each worker's own PostgreSQL database beside ``url``: ``<name>_<worker>``.

    Tests empty the database they run on, so two workers must never share one.
    The database is created (from ``template1``, as ``createdb`` does) when missing.
    """
    if not url or not worker:
        return url
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    if name.endswith(f"_{worker}"):  # already this worker's (conftest read twice, or a child process)
        return url
    name = f"{name}_{worker}"
    import time

    import psycopg2
    from psycopg2 import errors, sql

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for _ in range(10):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is not None:
                    break
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except errors.DuplicateDatabase:
                    break
                except errors.ObjectInUse:  # someone is connected to template1 for a moment
                    time.sleep(0.5)
                else:
                    break
    finally:
        conn.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


PG_URL = worker_database_url(os.environ.get("CARBONHUB_TEST_DATABASE_URL"), os.environ.get("PYTEST_XDIST_WORKER"))
if PG_URL:  # what hub.testing, the CLI and the partner suites in subprocesses read
    os.environ["CARBONHUB_TEST_DATABASE_URL"] = PG_URL

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai

SECRETS = {
    "CARBONHUB_SECRET_SZMETRO": "metro-secret-0123456789",
    "CARBONHUB_SECRET_CARDCENTRE": "card-secret-0123456789",
    "CARBONHUB_KEY_APP": "app-key-0123456789",
    "CARBONHUB_KEY_CONSOLE": "console-key-0123456789",
    "CARBONHUB_KEY_READER": "reader-key-0123456789",
    "CARBONHUB_WEB_SECRET": "web-secret-0123456789abcdef",
}

BASE_CONFIG = {
    "hub": {"timezone": "Asia/Shanghai", "max_batch_records": 50, "secrets_file": "/nonexistent/secrets.env"},
    "partners": {
        "szmetro": {"name": "Shenzhen Metro", "secret_env": "CARBONHUB_SECRET_SZMETRO", "scenarios": ["metro"],
                    "kind": "metro_operator"},
        "cardcentre": {"name": "Card Centre", "secret_env": "CARBONHUB_SECRET_CARDCENTRE",
                       "scenarios": ["estatement"], "kind": "bank"},
    },
    "scenarios": {
        "metro": {"methodology": "metro-avoided-car",
                  "caps": {"per_day_g": 3000, "per_day_count": 5, "per_month_g": 60000},
                  "points": {"per_kg": 100, "bonus": 1}},
        "estatement": {"caps": {"per_month_count": 3}, "points": {"per_kg": 0, "bonus": 5}},
    },
    "api_keys": {
        "app": {"key_env": "CARBONHUB_KEY_APP", "scopes": ["accounts:read", "accounts:write"]},
        "console": {"key_env": "CARBONHUB_KEY_CONSOLE", "scopes": ["accounts:read", "admin"]},
        "reader": {"key_env": "CARBONHUB_KEY_READER", "scopes": ["accounts:read"]},
    },
}


def shipped_config() -> dict:
    """``config/hub.toml`` as the repository ships it, for tests of the shipped rules."""
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parents[1] / "config" / "hub.toml", "rb") as fh:
        return tomllib.load(fh)


@pytest.fixture
def config_data():
    """The test config as a dict; tests may edit it before ``hub`` is built."""
    return copy.deepcopy(BASE_CONFIG)


@pytest.fixture
def settings(config_data):
    environ = dict(SECRETS)
    for pid, partner in config_data.get("partners", {}).items():  # every other partner: a test secret
        environ.setdefault(partner.get("secret_env", ""), f"{pid}-secret-0123456789")
    return load_settings(data=config_data, environ=environ)


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def database_url(request, tmp_path):
    """An empty database; ``@pytest.mark.empty_database``: with no table at all (a test of ``db init``)."""
    return fresh_database_url(tmp_path, empty=request.node.get_closest_marker("empty_database") is not None)


@pytest.fixture
def extra_plugins():
    """Plugins a test adds beside the installed ones (override in a test module)."""
    return []


@pytest.fixture
def hub(settings, database_url, clock, extra_plugins):
    h = Hub(settings, clock=clock, database_url=database_url, extra_plugins=extra_plugins)
    h.init_db()
    yield h
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def app(hub):
    return create_app(hub=hub)


@pytest.fixture
def client(app):
    return app.test_client()
