"""Recorded ledger verifications: each run of :func:`hub.ledger.verify` and what it found.

``carbonhub ledger verify``, ``POST /v1/admin/ledger/verify``, the console's
"Verify now" and the worker's daily ``ledger-verify`` job record their run (a
:class:`hub.db.LedgerCheck` row); the console shows the last one (``GET
/v1/admin/ledger/verify/last``) without reading the whole ledger again.

The verification reads the ledger in one snapshot (a deferred read
transaction on SQLite, REPEATABLE READ on PostgreSQL): transactions posted
while it runs are not seen halfway (a head, orphan postings or balances newer
than the chain it read), which would otherwise be reported as tampering.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import peewee as pw

from . import db
from .db import LedgerCheck
from .ledger import VerifyReport, verify

log = logging.getLogger("carbonhub")

if TYPE_CHECKING:
    from .core import Hub

TRIGGERS = ("cli", "api", "schedule", "console")  # console: the "Verify now" button of hub.web
KEPT_PROBLEMS = 10  # problems stored with a check; problem_count says how many there were


@contextmanager
def _snapshot() -> Iterator[None]:
    """A read-only view of the store as of its first read, for the duration of the block."""
    if db.is_postgres():
        with db.database.atomic(isolation_level="REPEATABLE READ"):
            yield
    else:  # DEFERRED: a WAL read snapshot that does not take the write lock from ingestion
        with db.database.atomic(lock_type="DEFERRED"):
            yield


def check_ledger(hub: "Hub", trigger: str,
                 anchors: Mapping[int, str] | None = None) -> tuple[VerifyReport, dict[str, Any]]:
    """Verify the ledger now and record the run; the full report and the recorded check (:func:`as_dict`)."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, not {trigger!r}")
    started_at, clock = hub.now(), time.perf_counter()
    with _snapshot():
        report = verify(anchors=anchors)
    duration_ms = int((time.perf_counter() - clock) * 1000)
    row = LedgerCheck(trigger=trigger, started_at=db.to_db(started_at), finished_at=db.to_db(hub.now()),
                      duration_ms=duration_ms, ok=report.ok, transactions=report.transactions,
                      accounts=report.accounts, head_seq=report.head_seq, head_hash=report.head_hash,
                      first_break=report.first_break, problem_count=len(report.problems),
                      problems=report.problems[:KEPT_PROBLEMS])
    try:
        with db.database.atomic():
            row.save(force_insert=True)
    except pw.DatabaseError:
        # A database from before this table (`carbonhub db init` not run since the upgrade): the
        # verification itself still stands and is returned; only its record is missing.
        log.warning("ledger check not recorded: run `carbonhub db init` to create the ledger_check table")
    return report, as_dict(row)


def run_check(hub: "Hub", trigger: str) -> dict[str, Any]:
    """Verify the ledger now, record the run (``trigger``: one of :data:`TRIGGERS`) and return it."""
    return check_ledger(hub, trigger)[1]


def last_check() -> dict[str, Any] | None:
    """The most recent recorded check, or None before the first."""
    row = LedgerCheck.select().order_by(LedgerCheck.id.desc()).first()
    return None if row is None else as_dict(row)


def as_dict(row: LedgerCheck) -> dict[str, Any]:
    return {"id": row.id, "trigger": row.trigger, "started_at": db.from_db(row.started_at),
            "finished_at": db.from_db(row.finished_at), "duration_ms": row.duration_ms, "ok": bool(row.ok),
            "transactions": row.transactions, "accounts": row.accounts, "head_seq": row.head_seq,
            "head_hash": row.head_hash, "first_break": row.first_break, "problem_count": row.problem_count,
            "problems": list(row.problems or [])}
