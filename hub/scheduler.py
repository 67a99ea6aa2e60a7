"""The hub's scheduled jobs on APScheduler 3 (pull connectors, points expiry, stale holds, aggregation,
ledger verification).

:func:`build_scheduler` adds the jobs to a scheduler (a ``BackgroundScheduler``
by default) without starting it; the process that runs jobs starts it. Each
job is also a command (``carbonhub points expire``, ``carbonhub redemptions
void-stale``) and a plain function, so an operator can run it by hand. Both
jobs take the ledger lock for each batch, so two processes running them at
once only wait for each other: no point is expired or refunded twice.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from . import db

if TYPE_CHECKING:
    from .core import Hub

log = logging.getLogger("carbonhub.jobs")


def _in_own_connection(job: Callable[[], Any]) -> Any:
    """Run ``job`` with a database connection for this thread, closed afterwards if opened here."""
    opened = db.database.is_closed()
    if opened:
        db.database.connect()
    try:
        return job()
    finally:
        if opened and not db.database.is_closed():
            db.database.close()


def expire_points(hub: "Hub") -> dict[str, int]:
    """The points-expiry job: post every expired lot remainder to ``@expired``."""
    from .lots import expire_due

    result = _in_own_connection(lambda: expire_due(hub))
    if result.lots:
        log.info("expired %s pts from %s lot(s)", result.points, result.lots)
    return result.as_dict()


def void_stale_holds(hub: "Hub") -> dict[str, int]:
    """The stale-holds job: void redemption holds older than their deadline and refund them."""
    voided = _in_own_connection(lambda: hub.exchange.void_stale())
    if voided:
        log.warning("voided %s redemption hold(s) past their deadline", len(voided))
    return {"voided": len(voided)}


def aggregate_settled(hub: "Hub") -> dict[str, Any]:
    """The daily aggregation job: pool last month for each exchange once it has settled
    (``aggregation.settle_days``); later runs of the same month change nothing."""
    from .aggregation import aggregate_due

    done = _in_own_connection(lambda: aggregate_due(hub))
    created = [a["id"] for a in done if a.get("created")]
    if created:
        log.info("aggregated %s", ", ".join(created))
    return {"aggregations": len(done), "created": len(created)}


VERIFY_AT = {"hour": 4, "minute": 0}  # local time, daily: after the 03:00 aggregation, before the office opens


def verify_ledger(hub: "Hub") -> dict[str, Any]:
    """The daily ledger verification, recorded (``GET /v1/admin/ledger/verify/last`` shows the last one)."""
    from .ledger_checks import run_check

    check = _in_own_connection(lambda: run_check(hub, "schedule"))
    if not check["ok"]:
        log.error("ledger verify: %s problem(s), first break at seq %s: %s", check["problem_count"],
                  check["first_break"], "; ".join(check["problems"][:3]))
    return {"id": check["id"], "ok": check["ok"], "transactions": check["transactions"],
            "problems": check["problem_count"]}


def pull_stream(hub: "Hub", connector: str, stream: str) -> dict[str, Any]:
    """One scheduled run of a pull connector's stream (``carbonhub pull`` runs all its streams)."""
    from connectors.http_pull import run_stream

    bound = hub.connectors[connector]
    spec = next(s for s in bound.streams() if s.name == stream)
    return _in_own_connection(lambda: run_stream(hub, bound, spec)).as_dict()


JOBS: dict[str, Callable[["Hub"], Any]] = {"points-expiry": expire_points,
                                           "redemptions-void-stale": void_stale_holds,
                                           "aggregation": aggregate_settled, "ledger-verify": verify_ledger}


def build_scheduler(hub: "Hub", scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """Add the hub's jobs to ``scheduler`` (a new ``BackgroundScheduler`` by default); not started.

    Intervals come from config: ``rewards.expire_every_s``,
    ``redemptions.void_stale_every_s`` and each pull connector's ``every_s``
    (one job per stream, id ``pull:<connector>:<stream>``); the ledger is
    verified daily at :data:`VERIFY_AT` (local time). A job never runs
    twice at once in one scheduler (``max_instances=1``) and missed runs are
    coalesced into one; across processes, :mod:`hub.leader` lets one worker run them.
    """
    scheduler = scheduler or BackgroundScheduler(timezone=hub.settings.timezone)
    common = {"max_instances": 1, "coalesce": True, "replace_existing": True, "args": [hub]}
    scheduler.add_job(expire_points, "interval", seconds=hub.settings.rewards.expire_every_s,
                      id="points-expiry", name="expire point lots", **common)
    scheduler.add_job(void_stale_holds, "interval", seconds=hub.settings.redemptions.void_stale_every_s,
                      id="redemptions-void-stale", name="void stale redemption holds", **common)
    if hub.settings.aggregation.exchanges:  # at 03:00 local time: after the day's pushes, before the office opens
        scheduler.add_job(aggregate_settled, "cron", hour=3, minute=0, id="aggregation",
                          name="aggregate settled months", **common)
    scheduler.add_job(verify_ledger, "cron", **VERIFY_AT, id="ledger-verify", name="verify the ledger", **common)
    for connector in hub.connectors.pulls():
        for stream in connector.streams():
            scheduler.add_job(pull_stream, "interval", seconds=connector.binding.every_s,
                              id=f"pull:{connector.name}:{stream.name}",
                              name=f"pull {stream.name} from {connector.partner}",
                              **{**common, "args": [hub, connector.name, stream.name]})
    return scheduler
