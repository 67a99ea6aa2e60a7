"""Aggregation (归集与流转): a month of users' reductions pooled for a carbon exchange.

``aggregate(hub, exchange, "2026-11")`` takes, under the ledger lock and in one
database transaction, every gram still held by a credited behaviour whose act
happened in that month (local dates in ``hub.timezone``) and not reversed,
retired or aggregated before, and:

- posts one ``aggregation`` transaction per contributing user, key
  ``aggregation:<exchange>:<period>:<account>``: the user's grams
  ``user:<id>:carbon`` -> ``@pool:<exchange>``, and the user's share in points
  ``@issuer:aggregation:<exchange>`` -> ``user:<id>:points``;
- records which behaviours' grams went into the pool (:mod:`hub.carbon_uses`);
- stores the report (and writes it as JSON and CSV under
  ``aggregation.reports_dir/<exchange>/``), carrying as negative lines the
  grams of earlier pools whose credits were reversed since
  (:func:`hub.carbon_uses.before_reversal`).

Running it again for the same exchange and month changes nothing and returns
the stored report (files missing or altered are written again, identical).

Points share, in integers: the value of a user's grams is
``grams × price_fen_per_tonne / 1,000,000`` fen; the user's exact share in
points is that × ``user_share_percent / 100`` × ``points_per_fen``. The pool's
points are the floor of the sum of the exact shares; each user gets the floor
of their own exact share, and the points left over (fewer than the number of
users) go one each to the users with the largest remainders (ties: smaller
account id). So the users' points add up to exactly the pool's points; the
pool's fraction of a point below one is not awarded.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from . import carbon_uses, db, lots
from .carbon_uses import AGGREGATED, CarbonError, Holding, pool_account
from .config import Exchange, Settings
from .db import Aggregation, database
from .ledger import TxRequest, user_carbon, user_points
from .queries import _keyset
from .records import PostingRecord, TransactionRecord

KIND = "aggregation"
REPORT_FORMAT = "carbonhub-aggregation/1"
PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
GRAMS_PER_TONNE = 1_000_000
CSV_COLUMNS = ("line", "scenario", "methodology", "version", "behaviours", "grams", "tonnes", "behaviour_ids")


class UnknownExchange(CarbonError):
    code = "unknown_exchange"
    status = 422


class PeriodOpen(CarbonError):
    code = "period_open"
    status = 409


def issuer_account(exchange: str) -> str:
    return f"@issuer:aggregation:{exchange}"


def aggregation_id(exchange: str, period: str) -> str:
    return f"agg_{exchange}_{period}"


def parse_period(period: str) -> date:
    """``YYYY-MM`` -> the first day of that month; ValueError otherwise."""
    m = PERIOD.fullmatch(period or "")
    if not m or not 1900 <= int(m.group(1)) <= 9998:  # bounds that exist as datetimes in every time zone
        raise ValueError(f"{period!r} is not a month written YYYY-MM (e.g. 2026-11).")
    return date(int(m.group(1)), int(m.group(2)), 1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_bounds(period: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` of the month in the bank's time zone (aware datetimes)."""
    first = parse_period(period)
    return datetime.combine(first, time.min, tz), datetime.combine(next_month(first), time.min, tz)


def previous_period(now: datetime, tz: ZoneInfo) -> str:
    """The month before the current local month, e.g. on 2026-12-05 -> ``2026-11``."""
    first = now.astimezone(tz).date().replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def tonnes(grams: int) -> str:
    """Exact tonnes as decimal text with six places (grams are whole)."""
    return f"{Decimal(grams).scaleb(-6):.6f}"


def split_points(grams_by_account: Mapping[str, int], exchange: Exchange) -> tuple[dict[str, int], int]:
    """Each user's share of the pool in points, and the pool's total; see the module docstring.

    Integers only: shares are kept as numerators over ``GRAMS_PER_TONNE × 100``.
    """
    per_gram = exchange.price_fen_per_tonne * exchange.user_share_percent * exchange.points_per_fen
    denominator = GRAMS_PER_TONNE * 100
    numerators = {a: g * per_gram for a, g in grams_by_account.items()}
    total = sum(numerators.values()) // denominator
    shares = {a: n // denominator for a, n in numerators.items()}
    left = total - sum(shares.values())
    for account in sorted(numerators, key=lambda a: (-(numerators[a] % denominator), a))[:left]:
        shares[account] += 1
    return {a: p for a, p in shares.items() if p}, total


# --- running ------------------------------------------------------------------------------------------


def aggregate(hub: Any, exchange_id: str, period: str) -> tuple[dict[str, Any], bool]:
    """Aggregate ``period`` for ``exchange_id``; returns ``(aggregation, created)``.

    Raises :class:`UnknownExchange` (422), ValueError for a malformed period,
    :class:`PeriodOpen` (409) before the month ended plus ``settle_days``.
    """
    settings: Settings = hub.settings
    exchange = settings.aggregation.exchanges.get(exchange_id)
    if exchange is None:
        known = ", ".join(sorted(settings.aggregation.exchanges)) or "none"
        raise UnknownExchange(f"No exchange {exchange_id!r} under [aggregation.exchanges] (configured: {known}).",
                              exchange=exchange_id)
    start, end = period_bounds(period, settings.timezone)
    agg_id = aggregation_id(exchange_id, period)
    posted: list[TransactionRecord] = []
    with database.atomic():
        db.lock_ledger()  # first: nothing may be retired, aggregated or reversed meanwhile
        row = Aggregation.get_or_none(Aggregation.id == agg_id)
        created = row is None
        if created:
            now = hub.now()
            settled = end + timedelta(days=settings.aggregation.settle_days)
            if now < settled:
                raise PeriodOpen(f"{period} can be aggregated from {settled.isoformat()} (the month's end plus "
                                 f"aggregation.settle_days = {settings.aggregation.settle_days}), so that late "
                                 f"partner records are in.", period=period)
            row, posted = _create(hub, exchange, period, agg_id, start, end, now)
    write_report(settings, row.report)
    for tx in posted:
        hub.notify("carbonhub_transaction_posted", transaction=tx)
    return view(row, settings), created


def aggregate_due(hub: Any) -> list[dict[str, Any]]:
    """Aggregate last month for every configured exchange once it has settled (for a daily job).

    Before the month's end plus ``settle_days`` nothing happens; afterwards the
    first run aggregates and the later ones change nothing. Returns the
    aggregations as :func:`aggregate` does, without their reports.
    """
    period = previous_period(hub.now(), hub.settings.timezone)
    out = []
    for exchange_id in sorted(hub.settings.aggregation.exchanges):
        try:
            result, created = aggregate(hub, exchange_id, period)
        except PeriodOpen:
            continue
        out.append({**{k: v for k, v in result.items() if k != "report"}, "created": created})
    return out


def _create(hub: Any, exchange: Exchange, period: str, agg_id: str, start: datetime, end: datetime,
            now: datetime) -> tuple[Aggregation, list[TransactionRecord]]:
    holdings = carbon_uses.holdings_between(db.to_db(start), db.to_db(end))
    by_account = carbon_uses.held_by_account(holdings)
    grams_by_account = {a: sum(h.grams for h in hs) for a, hs in by_account.items()}
    shares, pool_points = split_points(grams_by_account, exchange)
    pool, issuer = pool_account(exchange.id), issuer_account(exchange.id)
    expiry = lots.expiry_memo(hub.settings, now)
    reqs = []
    for account in sorted(by_account):
        g, pts = grams_by_account[account], shares.get(account, 0)
        postings = [PostingRecord(user_carbon(account), "g", -g), PostingRecord(pool, "g", g)]
        if pts:
            postings += [PostingRecord(issuer, "pts", -pts), PostingRecord(user_points(account), "pts", pts)]
        memo = {"aggregation": agg_id, "exchange": exchange.id, "period": period, "account": account,
                "points": pts, "behaviours": [{"behaviour": h.behaviour, "grams": h.grams}
                                              for h in sorted(by_account[account], key=lambda h: h.behaviour)]}
        if pts:
            memo.update(expiry)  # the share is a lot of points like any other (hub.lots)
        reqs.append(TxRequest(key=f"{KIND}:{exchange.id}:{period}:{account}", kind=KIND, postings=tuple(postings),
                              memo=memo))
    results = hub.ledger.post_many(reqs) if reqs else []
    seq_of = {tx.memo["account"]: tx.seq for tx, _ in results}
    carbon_uses.record(AGGREGATED, agg_id, holdings, seq_of, now)
    adjustments = carbon_uses.unreported_adjustments(exchange.id)
    carbon_uses.mark_reported([a["id"] for a in adjustments], agg_id)
    report = build_report(agg_id, exchange, period, hub.settings.timezone, now, holdings, adjustments,
                          pool_points, len(shares), [tx.seq for tx, _ in results])
    gross = sum(grams_by_account.values())
    row = Aggregation.create(id=agg_id, exchange=exchange.id, period=period, grams=gross,
                             adjustment_g=-sum(a["grams"] for a in adjustments), behaviours=len(holdings),
                             accounts=len(by_account), points=pool_points, report=report, created_at=db.to_db(now))
    return Aggregation.get_by_id(row.id), [tx for tx, created in results if created]


# --- the report -----------------------------------------------------------------------------------


def build_report(agg_id: str, exchange: Exchange, period: str, tz: ZoneInfo, now: datetime,
                 holdings: list[Holding], adjustments: list[dict[str, Any]], pool_points: int, rewarded: int,
                 seqs: list[int]) -> dict[str, Any]:
    """The report for the exchange: totals per scenario and methodology version, receipts, adjustments.

    It names behaviours (the receipts), never users.
    """
    start, end = period_bounds(period, tz)
    lines: dict[tuple[str, str, str], list[Holding]] = {}
    for h in holdings:
        lines.setdefault((h.scenario, h.methodology, h.version), []).append(h)
    gross = sum(h.grams for h in holdings)
    adjusted = -sum(a["grams"] for a in adjustments)
    return {
        "format": REPORT_FORMAT,
        "id": agg_id,
        "exchange": {"id": exchange.id, "name": exchange.name},
        "period": period,
        "timezone": str(tz),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "created_at": now.isoformat(),
        "pool_account": pool_account(exchange.id),
        "totals": {
            "behaviours": len(holdings),
            "grams": gross,
            "tonnes": tonnes(gross),
            "adjustment_grams": adjusted,
            "net_grams": gross + adjusted,
            "net_tonnes": tonnes(gross + adjusted),
        },
        "lines": [{"scenario": s, "methodology": m, "version": v, "behaviours": len(hs),
                   "grams": sum(h.grams for h in hs), "tonnes": tonnes(sum(h.grams for h in hs)),
                   "behaviour_ids": sorted(h.behaviour for h in hs)}
                  for (s, m, v), hs in sorted(lines.items())],
        "adjustments": [{"behaviour": a["behaviour"], "scenario": a["scenario"], "methodology": a["methodology"],
                         "version": a["version"], "grams": -a["grams"], "tonnes": tonnes(-a["grams"]),
                         "aggregation": a["aggregation"], "reversal_of": a["reversal_of"], "reason": a["reason"]}
                        for a in adjustments],
        "value": {
            "price_fen_per_tonne": exchange.price_fen_per_tonne,
            "gross_value_fen": f"{Decimal(gross * exchange.price_fen_per_tonne).scaleb(-6):.6f}",
            "user_share_percent": exchange.user_share_percent,
            "points_per_fen": exchange.points_per_fen,
            "user_points": pool_points,
            "users_rewarded": rewarded,
        },
        "ledger": {"transactions": len(seqs), "first_seq": min(seqs, default=None),
                   "last_seq": max(seqs, default=None)},
    }


def report_csv(report: Mapping[str, Any]) -> str:
    """One row per line (``reduction``), per ``adjustment`` and a ``total`` row; behaviour ids space-separated."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in report["lines"]:
        writer.writerow(("reduction", line["scenario"], line["methodology"], line["version"], line["behaviours"],
                         line["grams"], line["tonnes"], " ".join(line["behaviour_ids"])))
    for adj in report["adjustments"]:
        writer.writerow(("adjustment", adj["scenario"], adj["methodology"], adj["version"], 1, adj["grams"],
                         adj["tonnes"], adj["behaviour"]))
    totals = report["totals"]
    writer.writerow(("total", "", "", "", totals["behaviours"], totals["net_grams"], totals["net_tonnes"], ""))
    return out.getvalue()


def report_paths(settings: Settings, report: Mapping[str, Any]) -> dict[str, Path]:
    folder = Path(settings.aggregation.reports_dir) / report["exchange"]["id"]
    stem = f"{report['exchange']['id']}-{report['period']}"
    return {"json": folder / f"{stem}.json", "csv": folder / f"{stem}.csv"}


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def write_report(settings: Settings, report: Mapping[str, Any]) -> dict[str, Path]:
    """Write the report's files unless they already hold exactly this text (atomic replace)."""
    paths = report_paths(settings, report)
    for kind, text in (("json", report_json(report)), ("csv", report_csv(report))):
        path = paths[kind]
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return paths


# --- reading --------------------------------------------------------------------------------------


def view(row: Aggregation, settings: Settings, *, with_report: bool = True) -> dict[str, Any]:
    paths = report_paths(settings, row.report)
    out = {"id": row.id, "exchange": row.exchange, "period": row.period, "created_at": db.from_db(row.created_at),
           "behaviours": row.behaviours, "accounts": row.accounts, "grams": row.grams,
           "adjustment_grams": row.adjustment_g, "net_grams": row.grams + row.adjustment_g,
           "net_tonnes": tonnes(row.grams + row.adjustment_g), "points": row.points,
           "files": {k: str(p) for k, p in paths.items()}}
    if with_report:
        out["report"] = row.report
    return out


def get(settings: Settings, agg_id: str) -> dict[str, Any] | None:
    row = Aggregation.get_or_none(Aggregation.id == agg_id)
    return view(row, settings) if row else None


def page(settings: Settings, *, limit: int, before: tuple | None = None, exchange: str | None = None
         ) -> tuple[list[dict[str, Any]], tuple | None]:
    """Aggregations newest first (without their reports), keyset-paged. One query."""
    query = Aggregation.select()
    if exchange:
        query = query.where(Aggregation.exchange == exchange)
    rows, cursor = _keyset(query, Aggregation.created_at, Aggregation.id, before, limit)
    return [view(r, settings, with_report=False) for r in rows], cursor
