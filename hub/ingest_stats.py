"""Ingestion over time, for the bank's console: inbox records per local day, by status and reason.

:func:`ingestion_stats` counts what reached the inbox over the last ``days``
local days (the hub's time zone), today included, with every day present (zero
days too, so a chart has no gaps). A record counts on the day it was received,
with its current status: a rejected record replayed and accepted later counts
as accepted on the day it first arrived.

The counting is done by the database: one ``GROUP BY`` query over (day,
partner, status, reason) and one for each reason's latest example; Python only
reshapes the few grouped rows. The inbox's index on (received_at, partner,
status, reason) covers the first, so a window is read alone, not the whole
inbox (``python -m bench.console``).

Local days in SQL. SQLite has no time zone database and PostgreSQL's may name
zones differently, and a zone's offset changes with daylight saving time (or
is not a whole hour), so truncating ``received_at`` (naive UTC) by a fixed
offset or by UTC hour is wrong in general. Instead the UTC instant at which
each local day starts is computed here with :mod:`zoneinfo` (the same zone data
as the rest of the hub, e.g. the quiz's local day), and the day of a row is
found in SQL by a binary search over those boundaries: nested ``CASE WHEN
received_at < <boundary> THEN ... ELSE ... END``, about log2(days) comparisons
a row (9 for a year), the same plain SQL on both databases and exact for any
zone, DST included.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Sequence

import peewee as pw

from . import db
from .db import InboxRecord
from .records import ACCEPTED, DUPLICATE, REJECTED

if TYPE_CHECKING:
    from .core import Hub

STATUSES = (ACCEPTED, DUPLICATE, REJECTED)
MAX_DAYS = 366


def local_day_starts(hub: "Hub", days: int) -> tuple[list[date], list[datetime]]:
    """The last ``days`` local days (oldest first, today last) and the ``days + 1`` aware instants
    that bound them: ``starts[i] <= t < starts[i + 1]`` is day ``i``."""
    tz = hub.settings.timezone
    today = hub.now().astimezone(tz).date()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    # A local midnight that does not exist (clocks jump at 00:00) resolves to the jump itself and an
    # ambiguous one (clocks go back to 00:00) to its first occurrence: fold=0, the day's real start.
    starts = [datetime.combine(d, time(0), tzinfo=tz) for d in (*dates, dates[-1] + timedelta(days=1))]
    return dates, starts


def _day_index(column: pw.Field, bounds: Sequence[datetime], lo: int, hi: int) -> pw.Node:
    """SQL giving the day ``i`` in ``[lo, hi)`` with ``bounds[i] <= column < bounds[i + 1]``
    (``column`` is known to lie in ``[bounds[lo], bounds[hi])``)."""
    if hi - lo == 1:
        return pw.SQL(str(int(lo)))
    mid = (lo + hi) // 2
    return pw.Case(None, [(column < bounds[mid], _day_index(column, bounds, lo, mid))],
                   _day_index(column, bounds, mid, hi))


def _counts() -> dict[str, int]:
    return {"total": 0, **{status: 0 for status in STATUSES}}


def ingestion_stats(hub: "Hub", days: int = 30, partner: str | None = None) -> dict[str, Any]:
    """Inbox records of the last ``days`` local days (1..366, today included), optionally of one partner.

    Returns ``timezone``, ``days``, ``from`` and ``to`` (local dates, inclusive),
    ``partner``; ``totals`` (total/accepted/duplicate/rejected); ``daily``: one
    entry per day, oldest first, with those counts and ``reasons`` (rejection
    reason -> count, non-zero only); ``top_reasons``: every rejection reason of
    the window, most frequent first (ties by code), with ``count``, ``share``
    of the rejected records (0..1, 4 decimals) and the ``latest`` example
    (inbox id, partner, received_at); ``partners``: totals per partner, every
    configured partner included (zeros too, so a silent partner shows), most
    records first.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, not {days}")
    dates, starts = local_day_starts(hub, days)
    bounds = [db.to_db(s) for s in starts]  # naive UTC, as stored
    received = InboxRecord.received_at
    window = (received >= bounds[0]) & (received < bounds[-1])
    if partner is not None:
        window &= InboxRecord.partner == partner

    day = _day_index(received, bounds, 0, days).alias("day_index")
    grouped = (InboxRecord.select(day, InboxRecord.partner, InboxRecord.status, InboxRecord.reason,
                                  pw.fn.COUNT(pw.SQL("*")))
               .where(window)
               .group_by(pw.SQL("day_index"), InboxRecord.partner, InboxRecord.status, InboxRecord.reason)
               .tuples())

    totals = _counts()
    daily = [{"date": d, **_counts(), "reasons": defaultdict(int)} for d in dates]
    by_partner: dict[str, dict[str, int]] = {}
    if partner is None:
        by_partner.update({pid: _counts() for pid in hub.settings.partners})
    elif partner in hub.settings.partners:
        by_partner[partner] = _counts()
    reasons: dict[str, int] = defaultdict(int)
    for index, pid, status, reason, n in grouped:
        entry, per_partner = daily[int(index)], by_partner.setdefault(pid, _counts())
        for counts in (totals, entry, per_partner):
            counts["total"] += n
            if status in counts:
                counts[status] += n
        if status == REJECTED:
            entry["reasons"][reason or "unknown"] += n
            reasons[reason or "unknown"] += n

    latest = _latest_rejections(window) if reasons else {}
    rejected = totals[REJECTED]
    top = [{"reason": reason, "count": n, "share": round(n / rejected, 4) if rejected else 0.0,
            "latest": latest.get(reason)}
           for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))]
    names = {pid: p.name for pid, p in hub.settings.partners.items()}
    partners = [{"partner": pid, "name": names.get(pid), **counts}
                for pid, counts in sorted(by_partner.items(), key=lambda item: (-item[1]["total"], item[0]))]
    for entry in daily:
        entry["reasons"] = dict(sorted(entry["reasons"].items(), key=lambda item: (-item[1], item[0])))
    return {"timezone": str(hub.settings.timezone), "days": days, "from": dates[0], "to": dates[-1],
            "partner": partner, "totals": totals, "daily": daily, "top_reasons": top, "partners": partners}


def _latest_rejections(window: pw.Expression) -> dict[str, dict[str, Any]]:
    """Each rejection reason's most recently received record in the window: one query
    (``ROW_NUMBER()`` per reason, SQLite 3.25+ and PostgreSQL)."""
    rank = pw.fn.ROW_NUMBER().over(partition_by=[InboxRecord.reason],
                                   order_by=[InboxRecord.received_at.desc(), InboxRecord.id.desc()])
    ranked = (InboxRecord.select(InboxRecord.id, InboxRecord.partner, InboxRecord.reason, InboxRecord.received_at,
                                 rank.alias("rn"))
              .where(window & (InboxRecord.status == REJECTED))
              .alias("ranked"))
    rows = (pw.Select(from_list=[ranked], columns=[ranked.c.id, ranked.c.partner, ranked.c.reason,
                                                   ranked.c.received_at])
            .where(ranked.c.rn == 1)
            .bind(db.database)
            .tuples())
    return {reason or "unknown": {"inbox_id": inbox_id, "partner": pid, "received_at": db.from_db(at)}
            for inbox_id, pid, reason, at in rows}
