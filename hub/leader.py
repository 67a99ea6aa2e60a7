"""Electing the one worker that runs the scheduled jobs, with a PostgreSQL advisory lock.

Several ``carbonhub worker`` processes may run (one per host, for availability);
exactly one runs the jobs. Each tries ``pg_try_advisory_lock`` on a connection
of its own, held for the life of the process: the lock is released by
PostgreSQL when that connection ends, so a crashed leader's place is taken by
a standby at its next try. On SQLite (one machine, the embedded default) there
is nothing to elect: the single worker always leads.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("carbonhub.jobs")
# pg advisory lock keys are bigint; this one is "carbonhb" in ASCII, unlikely to collide with others.
LOCK_KEY = 0x636172626F6E6862


class Leadership:
    """``try_acquire()`` until it answers True; then the process leads until ``release()`` or exit."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.conn: Any = None
        self.leading = False

    @property
    def elected(self) -> bool:
        """Whether leadership needs a lock (PostgreSQL) or is given (SQLite)."""
        return self.url.startswith(("postgresql://", "postgres://"))

    def try_acquire(self) -> bool:
        if self.leading:
            return True
        if not self.elected:
            self.leading = True
            return True
        import psycopg2

        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.url)
            self.conn.autocommit = True  # a session lock: no transaction may be left open
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            self.leading = bool(cur.fetchone()[0])
        if self.leading:
            log.info("this worker leads: it runs the scheduled jobs")
        return self.leading

    def release(self) -> None:
        if self.conn is not None and not self.conn.closed:
            if self.leading:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            self.conn.close()
        self.conn, self.leading = None, False
