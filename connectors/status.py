"""What each connector did last: the admin view (``GET /v1/admin/connectors``, ``carbonhub connectors``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import peewee as pw

from hub import db

from .base import PULL, parse_cursor

if TYPE_CHECKING:
    from hub.core import Hub


def _newest_runs(*, failed: bool = False) -> dict[tuple[str, str], db.ConnectorRun]:
    """The newest run (or newest failed run) of each (connector, stream), in two queries."""
    newest = (db.ConnectorRun.select(pw.fn.MAX(db.ConnectorRun.id).alias("last"))
              .group_by(db.ConnectorRun.connector, db.ConnectorRun.stream))
    if failed:
        newest = newest.where(db.ConnectorRun.status == "failed")
    ids = [row.last for row in newest]
    if not ids:
        return {}
    return {(r.connector, r.stream): r for r in db.ConnectorRun.select().where(db.ConnectorRun.id.in_(ids))}


def _run_view(run: db.ConnectorRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.id, "started_at": db.from_db(run.started_at), "finished_at": db.from_db(run.finished_at),
            "status": run.status, "pages": run.pages, "fetched": run.fetched, "skipped": run.skipped,
            "counts": run.counts or {}, "error": run.error}


def _error_view(failed: db.ConnectorRun | None) -> dict[str, Any] | None:
    return {"at": db.from_db(failed.started_at), **(failed.error or {})} if failed is not None else None


def connector_status(hub: "Hub") -> list[dict[str, Any]]:
    """Every configured connector with, per stream: cursor, lag, last run, counts and last error."""
    runs, errors = _newest_runs(), _newest_runs(failed=True)
    cursors = {(s.connector, s.stream): s.cursor for s in db.ConnectorState.select()}
    now = hub.now()
    out = []
    for name in sorted(hub.connectors.bound):
        connector = hub.connectors[name]
        view = connector.describe()
        view["every_s"] = connector.binding.every_s if connector.mode == PULL else None
        streams = view["streams"] or [{"name": "events" if connector.mode == "push" else "file"}]
        for stream in streams:
            key = (name, stream["name"])
            cursor = cursors.get(key)
            parsed = parse_cursor(cursor)
            stream["cursor"] = cursor
            stream["lag_s"] = int((now - parsed).total_seconds()) if parsed else None
            stream["last_run"] = _run_view(runs.get(key))
            stream["last_error"] = _error_view(errors.get(key))
        view["streams"] = streams
        out.append(view)
    # The built-in connectors every partner has without a binding (its pushes, `carbonhub import`
    # with the generic file reader) appear once they have run, under "<partner>.webhook" / "<partner>.file".
    for name in sorted({c for c, _ in runs} - set(hub.connectors.bound)):
        partner, _, kind = name.rpartition(".")
        if kind not in ("webhook", "file"):
            continue
        streams = [{"name": stream, "cursor": None, "lag_s": None, "last_run": _run_view(run),
                    "last_error": _error_view(errors.get((c, stream)))}
                   for (c, stream), run in sorted(runs.items()) if c == name]
        out.append({"name": name, "connector": kind, "mode": "push" if kind == "webhook" else "batch",
                    "partner": partner, "enabled": True, "every_s": None, "streams": streams})
    return out
