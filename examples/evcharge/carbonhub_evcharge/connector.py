"""Pulling VoltGrid's finished sessions: the hub's default HTTP pull shape, one stream.

VoltGrid's API answers ``GET /sessions?since=…&until=…&limit=…&page_token=…``
with ``{"data": [<session>, …], "next_page_token": "…" | null}``, sessions
sorted by ``ended_at``, authenticated with ``Authorization: Bearer <key>``:
exactly :class:`connectors.http_pull.HttpPullConnector`'s default, so only the
stream is declared here.
"""
from __future__ import annotations

from connectors.base import Stream
from connectors.http_pull import HttpPullConnector


class VoltGridSessions(HttpPullConnector):
    """Finished charging sessions, read incrementally by ``ended_at``."""

    def streams(self) -> list[Stream]:
        return [Stream(name="sessions", scenario="evcharge", primary_key=("session_id",),
                       cursor_field="ended_at", is_sorted=True, options={"path": "/sessions"})]
