"""Neutralisation and aggregation cost, each against a plain-SQL baseline of the same reads.

Run from the repository root::

    python -m bench.carbon                        # 2,000 users x 30 October rides, fresh SQLite file
    python -m bench.carbon --database-url postgresql://postgres@127.0.0.1:5432/carbonhub_bench

1. Credits ``--users`` users with ``--rides`` metro rides each in October 2026
   and as many in September, through the real pipeline (not timed).
2. Neutralisation: ``--certificates`` certificates of 100 g for one heavy user
   (``--heavy`` rides over the year, so every call reads all of them), timed per
   call; baseline: the same number of plain ``SELECT`` of that user's credited
   behaviours with their used grams (what the hub must read, without the ledger
   lock, the postings and the rows it writes).
3. Aggregation of October for every user, timed; baseline: one plain
   ``SELECT`` of the month's credited behaviours and an ``executemany`` of one
   row per behaviour into a plain table (psycopg2 ``execute_values`` on PostgreSQL),
   in one transaction (the least a
   pooling must read and write).
4. ``verify()`` must stay clean, and what users hold must equal their balances.

Figures are ratios to the baseline of the same run (the machine is shared).
**The schema of ``--database-url`` is dropped first.**
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hub import aggregation, carbon_uses, db, neutralisation
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.ledger import Ledger, user_carbon, verify

SHANGHAI = timezone(timedelta(hours=8))
REPO = Path(__file__).resolve().parent.parent


def ride(account: str, n: int, at: datetime) -> dict:
    return {"ride_id": f"{account}-{n}", "account_id": account, "card_token": f"card-{account}", "city": "shenzhen",
            "line": "1", "entry_station": "Luohu", "exit_station": "Shijie Zhichuang",
            "entry_at": at.isoformat(), "exit_at": (at + timedelta(minutes=20)).isoformat(), "distance_km": "7.5"}


def build(url: str, reports: Path) -> Hub:
    settings = load_settings(REPO / "config" / "hub.toml", environ={"CARBONHUB_DATABASE_URL": url})
    settings.aggregation = type(settings.aggregation)(reports_dir=reports, settle_days=3,
                                                      exchanges=settings.aggregation.exchanges)
    hub = Hub(settings, clock=FixedClock(datetime(2026, 11, 21, 4, tzinfo=timezone.utc)), database_url=url)
    if url.startswith("postgresql"):
        db.drop_schema()
    hub.init_db()
    return hub


def credit(hub: Hub, users: int, rides: int, heavy: int) -> tuple[list[str], str]:
    consent = datetime(2025, 1, 1, tzinfo=SHANGHAI)
    accounts = []
    for i in range(users):
        account, _ = hub.open_account(f"bench-{i}")
        hub.set_consent(account.id, "metro", True, at=consent)
        accounts.append(account.id)
    records = []
    for account in accounts:
        for month in (9, 10):
            for n in range(rides):
                at = datetime(2026, month, 1 + n % 28, 7 + n // 28, 5, tzinfo=SHANGHAI)
                records.append(ride(account, month * 1000 + n, at))
        if len(records) >= 5000:
            hub.pipeline.ingest("szmetro", records, keep_results=False)
            records = []
    big, _ = hub.open_account("bench-heavy")
    hub.set_consent(big.id, "metro", True, at=consent)
    start = datetime(2025, 11, 1, 7, 5, tzinfo=SHANGHAI)
    records += [ride(big.id, n, start + timedelta(days=n // 5, minutes=10 * (n % 5))) for n in range(heavy)]
    hub.pipeline.ingest("szmetro", records, keep_results=False)
    return accounts, big.id


def baseline_holdings(account: str) -> int:
    rows = db.database.execute_sql(
        'SELECT b."id", b."grams", (SELECT COALESCE(SUM(u."grams"), 0) FROM "carbon_use" u '
        'WHERE u."behaviour" = b."id") FROM "behaviour" b WHERE b."account" = ' + db.database.param
        + ' AND b."status" = \'accepted\' ORDER BY b."occurred_at", b."id"', [account]).fetchall()
    return len(rows)


def baseline_month(start: datetime, end: datetime) -> int:
    """Read the month's credited behaviours and write one row per behaviour into a plain table."""
    rows = db.database.execute_sql(
        'SELECT "id", "account", "grams" FROM "behaviour" WHERE "status" = \'accepted\' AND "occurred_at" >= '
        + db.database.param + ' AND "occurred_at" < ' + db.database.param,
        [db.to_db(start), db.to_db(end)]).fetchall()
    db.database.execute_sql('CREATE TABLE IF NOT EXISTS "bench_pool" ("behaviour" VARCHAR(40), '
                            '"account" VARCHAR(40), "grams" BIGINT)')
    if db.is_postgres():  # the driver's fastest bulk call, as in bench/ingest.py
        from psycopg2.extras import execute_values

        execute_values(db.database.cursor(), 'INSERT INTO "bench_pool" VALUES %s', rows, page_size=1000)
    else:
        db.database.cursor().executemany('INSERT INTO "bench_pool" VALUES (?, ?, ?)', rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rides", type=int, default=30, help="rides per user per month (September, October)")
    parser.add_argument("--heavy", type=int, default=1800, help="rides of the heavy user over the year")
    parser.add_argument("--certificates", type=int, default=200)
    parser.add_argument("--database-url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="carbonhub-bench-"))
    url = args.database_url or f"sqlite:///{tmp}/carbon.db"
    hub = build(url, tmp / "reports")
    t0 = time.perf_counter()
    accounts, heavy = credit(hub, args.users, args.rides, args.heavy)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(args.certificates):
        neutralisation.neutralise(hub, heavy, 100, {"kind": "bench", "n": i}, f"bench-{i}")
    neutralise_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.certificates):
        with db.database.atomic():
            baseline_holdings(heavy)
    neutralise_base_s = time.perf_counter() - t0

    start, end = aggregation.period_bounds("2026-10", hub.settings.timezone)
    t0 = time.perf_counter()
    result, _ = aggregation.aggregate(hub, "cneeex", "2026-10")
    aggregate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.database.atomic():
        baseline_month(start, end)
    aggregate_base_s = time.perf_counter() - t0

    report = verify()
    sample = accounts[:: max(1, len(accounts) // 50)] + [heavy]
    consistent = all(sum(h.grams for h in carbon_uses.holdings_of(a)) == Ledger.balance(user_carbon(a), "g")
                     for a in sample)
    out = {
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        "users": args.users, "behaviours_in_month": result["behaviours"], "heavy_user_rides": args.heavy,
        "setup_s": round(setup_s, 1),
        "neutralise_ms_per_call": round(1000 * neutralise_s / args.certificates, 2),
        "neutralise_baseline_ms_per_read": round(1000 * neutralise_base_s / args.certificates, 2),
        "neutralise_ratio": round(neutralise_s / neutralise_base_s, 2),
        "aggregate_s": round(aggregate_s, 2), "aggregate_baseline_s": round(aggregate_base_s, 3),
        "aggregate_ratio": round(aggregate_s / aggregate_base_s, 1),
        "aggregate_us_per_behaviour": round(1e6 * aggregate_s / max(1, result["behaviours"]), 1),
        "verify_ok": report.ok, "holdings_match_balances": consistent,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:34} {value}")
    return 0 if report.ok and consistent else 1


if __name__ == "__main__":
    sys.exit(main())
