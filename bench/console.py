"""The console's ingestion chart on a large inbox: does it read the window or the whole table?

Run from the repository root::

    python -m bench.console                          # 1,000,000 inbox rows over a year, SQLite file
    python -m bench.console --database-url postgresql://postgres@127.0.0.1:5432/carbonhub_bench

Fills ``inbox_record`` with ``--rows`` records (default 1,000,000) received
evenly over the last ``--span-days`` days (default 365): five partners, 90 %
accepted, 5 % duplicate, 5 % rejected for one of four reasons. The rows go in
with the hub's bulk insert, not through the pipeline: only their received
time, partner, status and reason matter here.

Then, in the same run, it times (median of ``--repeat`` calls, default 5):

- ``hub.ingest_stats.ingestion_stats`` over 7, 30 and 90 days, what
  ``GET /v1/admin/ingestion`` and the console's chart call;
- the baseline: one ``GROUP BY partner, status, reason`` over the whole table,
  what a query blind to the window costs;

once with the inbox's ``received_at`` index and once after dropping it. The
ratio of each window to the baseline should follow the window's share of the
table with the index (7 days of 365: 0.02), and stay near or above 1 without it.
Exit status 1 if the counts of a window differ from a plain count.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hub import db
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.ingest_stats import ingestion_stats, local_day_starts

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parent.parent
PARTNERS = ("szmetro", "cardcentre", "gzbus", "skyair", "greenbin")
REASONS = ("no_consent", "implausible_distance", "cap_reached", "invalid_record")
WINDOWS = (7, 30, 90)
INDEX = "inbox_record_received_at_partner_status_reason"


def build(url: str) -> Hub:
    settings = load_settings(REPO / "config" / "hub.toml", environ={"CARBONHUB_DATABASE_URL": url})
    hub = Hub(settings, clock=FixedClock(NOW), database_url=url)
    if url.startswith("postgresql"):
        db.drop_schema()
    hub.init_db()
    return hub


def fill(rows: int, span_days: int, page: int = 20_000) -> None:
    """``rows`` inbox records, received evenly over the last ``span_days`` days."""
    step = timedelta(days=span_days) / rows
    start = NOW - timedelta(days=span_days)
    for first in range(0, rows, page):
        batch = []
        for i in range(first, min(rows, first + page)):
            kind = i % 20
            status = "accepted" if kind < 18 else "duplicate" if kind == 18 else "rejected"
            reason = REASONS[(i // 20) % len(REASONS)] if status == "rejected" else (
                "duplicate_event" if status == "duplicate" else None)
            at = db.sql_time(start + step * i)
            batch.append((f"in{i:012d}", PARTNERS[i % len(PARTNERS)], f"bat{i // 1000:09d}", "push", at, "{}",
                          f"e{i}", status, reason, None, 1, at))
        with db.database.atomic():
            db.bulk_insert(db.InboxRecord, ("id", "partner", "batch_id", "source", "received_at", "payload",
                                            "event_id", "status", "reason", "detail", "attempts", "updated_at"),
                           batch)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(hub: Hub, repeat: int) -> dict:
    baseline = timed(lambda: db.database.execute_sql(
        'SELECT "partner", "status", "reason", COUNT(*) FROM "inbox_record" GROUP BY 1, 2, 3').fetchall(), repeat)
    out = {"baseline_s": round(baseline, 4), "windows": {}}
    for days in WINDOWS:
        seconds = timed(lambda: ingestion_stats(hub, days=days), repeat)
        out["windows"][days] = {"seconds": round(seconds, 4), "ratio": round(seconds / baseline, 3)}
    return out


def check(hub: Hub) -> list[str]:
    problems = []
    for days in WINDOWS:
        _, starts = local_day_starts(hub, days)
        (plain,) = db.database.execute_sql(
            f'SELECT COUNT(*) FROM "inbox_record" WHERE "received_at" >= {db.database.param} '
            f'AND "received_at" < {db.database.param}', [db.to_db(starts[0]), db.to_db(starts[-1])]).fetchone()
        total = ingestion_stats(hub, days=days)["totals"]["total"]
        if total != plain:
            problems.append(f"{days} days: the stats count {total}, a plain count {plain}")
    return problems


def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="carbonhub-bench-"))
    url = args.database_url or f"sqlite:///{tmp}/console.db"
    hub = build(url)
    t0 = time.perf_counter()
    fill(args.rows, args.span_days)
    fill_s = time.perf_counter() - t0
    if db.is_postgres():
        db.database.execute_sql('ANALYZE "inbox_record"')
    else:
        db.database.execute_sql("ANALYZE")
    problems = check(hub)
    with_index = measure(hub, args.repeat)
    db.database.execute_sql(f'DROP INDEX "{INDEX}"')
    without_index = measure(hub, args.repeat)
    figures = {"database": "postgresql" if db.is_postgres() else "sqlite", "rows": args.rows,
               "span_days": args.span_days, "fill_s": round(fill_s, 1), "with_index": with_index,
               "without_index": without_index, "problems": problems}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"carbonhub console bench on {figures['database']}: {args.rows:,} inbox rows over "
              f"{args.span_days} days (filled in {figures['fill_s']} s)")
        for label, f in (("with the received_at index", with_index), ("without it", without_index)):
            print(f"  {label}: whole-table GROUP BY (baseline) {f['baseline_s'] * 1000:8.1f} ms")
            for days, w in f["windows"].items():
                print(f"    ingestion_stats({days:>2} days)  {w['seconds'] * 1000:8.1f} ms   ratio {w['ratio']}")
        for p in problems:
            print(f"  PROBLEM: {p}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--span-days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="PostgreSQL instead of SQLite; its schema is dropped first")
    parser.add_argument("--json", action="store_true")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
