"""Redemption throughput under contention: many redeemers, little stock, users with barely enough points.

Run from the repository root::

    python -m bench.redeem                       # SQLite file, 8 threads
    python -m bench.redeem --database-url postgresql://postgres@127.0.0.1:5432/carbonhub_bench   # 8 processes
    python -m bench.redeem --stock 2000 --lots 60   # every attempt can succeed: the full two-phase path

``--attempts`` redemptions (default 2,000, every idempotency key sent twice,
as a client retrying while its first call is in flight) of one benefit with
``--stock`` in stock (default 100), spread at random over ``--users`` users
(default 150) who each hold ``--lots`` lots of 40 points (default 3: enough for
one redemption of 100, never two), by ``--workers`` redeemers at once (default
8: processes on PostgreSQL, threads on SQLite, where one process's threads
share the store). The benefit is fulfilled from a code pool, as the metro
voucher is, so the partner costs no network time. Each redemption is the real
thing: the unlocked pre-check, the hold (ledger lock, stock, lots, escrow
posting), the code, the post or void.

Baseline, in the same run with the same workers and attempts: a plain
read-modify-write on two tables (``balance``, ``stock``) with the driver
alone — one transaction per attempt that locks and reads the user's balance
and the stock, and decrements both when there is enough. It is what the same
decision costs with no ledger, no lots, no idempotency and no fulfilment;
the ratio says what the exchange's guarantees cost.

At the end the exchange's state is checked: no more fulfilled than the
stock, no negative balance, lots equal to their rebuild from the ledger, a
clean ``verify()``. Exit status 1 if any check fails.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import threading
import time
import types
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from hub import codes, db
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.exchange import ESCROW, ExchangeError
from hub.hookspecs import hookimpl
from hub.ledger import Ledger, TxRequest, user_points, verify
from hub.lots import rebuild
from hub.records import BenefitSpec, Fulfilment, PermanentFulfilmentError, PostingRecord

BENEFIT, COST, LOT = "bench-voucher", 100, 40
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)


def _plugin() -> types.ModuleType:
    """The bench's benefit: a code from the pool per redemption."""
    module = types.ModuleType("bench_benefit")
    module.CARBONHUB_API = "1.0"

    def carbonhub_register_benefits(ctx):
        return [BenefitSpec(id=BENEFIT, title="Bench voucher")]

    def carbonhub_fulfil_benefit(ctx, redemption):
        code = ctx.benefits.take_code(BENEFIT, redemption.id)
        if code is None:
            raise PermanentFulfilmentError("codes_exhausted", "no code left")
        return Fulfilment(code=code)

    module.carbonhub_register_benefits = hookimpl(carbonhub_register_benefits)
    module.carbonhub_fulfil_benefit = hookimpl(carbonhub_fulfil_benefit)
    return module


def _config(stock: int) -> dict[str, Any]:
    return {"hub": {"timezone": "Asia/Shanghai", "secrets_file": "/nonexistent"},
            "benefits": {BENEFIT: {"partner": "bench", "cost": COST, "stock": stock}},
            "redemptions": {"fulfil_attempts": 1, "fulfil_backoff_ms": 0}}


def _hub(url: str, stock: int, clock: Any = None) -> Hub:
    hub = Hub(load_settings(data=_config(stock), environ={}), clock=clock or FixedClock(NOW), database_url=url,
              extra_plugins=[_plugin()])
    hub.exchange.sleep = lambda seconds: None
    return hub


def prepare(url: str, users: int, lots: int, stock: int, attempts: int, workers: int,
            seed: int) -> tuple[list[str], list[list[tuple[str, str]]]]:
    if url.startswith("postgresql"):
        db.bind(url)
        db.drop_schema()
    hub = _hub(url, stock)
    hub.init_db()
    accounts = [hub.open_account(f"bench-{u}")[0].id for u in range(users)]
    with db.database.atomic():
        hub.ledger.post_many([TxRequest(key=f"c-{a}-{i}", kind="credit", postings=(
            PostingRecord("@issuer:bench", "pts", -LOT), PostingRecord(user_points(a), "pts", LOT)))
            for a in accounts for i in range(lots)])
    codes.load_codes(BENEFIT, [f"B-{i:06d}" for i in range(attempts)], NOW)
    rng = random.Random(seed)
    keys = [(rng.choice(accounts), f"key-{n}") for n in range(attempts // 2)]
    sent = keys + keys
    rng.shuffle(sent)
    db.database.close()
    return accounts, [sent[w::workers] for w in range(workers)]


# --- the exchange ------------------------------------------------------------------------------


def _redeem_all(hub: Hub, attempts: list[tuple[str, str]]) -> Counter:
    outcome: Counter = Counter()
    try:
        for account, key in attempts:
            try:
                view, created = hub.exchange.redeem(account, BENEFIT, key)
                outcome[view["status"] if created else "repeat"] += 1
            except ExchangeError as exc:
                outcome[exc.code] += 1
    finally:
        db.database.close()
    return outcome


def _process(url: str, stock: int, attempts: list[tuple[str, str]], barrier: Any, queue: Any) -> None:
    hub = _hub(url, stock, clock=FixedClock(NOW))
    barrier.wait()  # every process ready: the timed part starts together
    queue.put(dict(_redeem_all(hub, attempts)))


def run_exchange(url: str, stock: int, shares: list[list[tuple[str, str]]], processes: bool) -> tuple[float, Counter]:
    if processes:
        return _fan_out(shares, process=(_process, (url, stock)))
    hub = _hub(url, stock)
    return _fan_out(shares, thread=lambda share: _redeem_all(hub, share))


def _fan_out(shares: list[list[tuple[str, str]]], *, process: tuple[Callable[..., None], tuple] | None = None,
             thread: Callable[[list[tuple[str, str]]], Counter] | None = None) -> tuple[float, Counter]:
    """Run one worker per share, all at once: processes (``process``: target and its leading
    arguments; it waits on the barrier, then puts its counts on the queue) or threads
    (``thread``: returns its counts). Returns the wall time from the common start and the totals."""
    total: Counter = Counter()
    if process is not None:
        target, args = process
        ctx = multiprocessing.get_context("spawn")
        barrier, queue = ctx.Barrier(len(shares) + 1), ctx.Queue()
        procs = [ctx.Process(target=target, args=(*args, share, barrier, queue)) for share in shares]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter()
        for _ in procs:
            total.update(queue.get())
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join()
        return elapsed, total
    results: list[Counter] = []
    threads = [threading.Thread(target=lambda s=share: results.append(thread(s))) for share in shares]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for r in results:
        total.update(r)
    return elapsed, total


def check(url: str, stock: int, users: int, lots: int, outcome: Counter, attempts: int) -> list[str]:
    from hub.db import Balance, Redemption

    db.bind(url)
    problems = []
    statuses = Counter(r.status for r in Redemption.select())
    expected = min(stock, users * (lots * LOT // COST), attempts // 2)
    if statuses["fulfilled"] != expected or statuses["held"]:
        problems.append(f"redemptions {dict(statuses)}, expected {expected} fulfilled and none held")
    if sum(outcome.values()) != attempts:
        problems.append(f"{sum(outcome.values())} outcomes for {attempts} attempts")
    low = Balance.select(db.pw.fn.MIN(Balance.amount)).where(Balance.account.startswith("user:")).scalar()
    if low is not None and low < 0:
        problems.append(f"a negative balance: {low}")
    if Ledger.balance(ESCROW, "pts") != 0:
        problems.append("points left in escrow")
    report = rebuild()
    if not report.ok:
        problems.append(f"lots differ from the ledger: {report.differences[:3]}")
    if not verify().ok:
        problems.append("ledger verify failed")
    db.database.close()
    return problems


# --- the baseline: a plain read-modify-write -----------------------------------------------------


def _baseline_setup(url: str, tmp: str, accounts: list[str], lots: int, stock: int) -> str:
    if url.startswith("postgresql"):
        import psycopg2

        con = psycopg2.connect(url)
        with con, con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_balance, bench_stock")
            cur.execute("CREATE TABLE bench_balance (account TEXT PRIMARY KEY, points BIGINT NOT NULL)")
            cur.execute("CREATE TABLE bench_stock (benefit TEXT PRIMARY KEY, left_ BIGINT NOT NULL)")
            cur.executemany("INSERT INTO bench_balance VALUES (%s, %s)", [(a, lots * LOT) for a in accounts])
            cur.execute("INSERT INTO bench_stock VALUES (%s, %s)", (BENEFIT, stock))
        con.close()
        return url
    path = f"{tmp}/baseline.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("CREATE TABLE bench_balance (account TEXT PRIMARY KEY, points INTEGER NOT NULL)")
    con.execute("CREATE TABLE bench_stock (benefit TEXT PRIMARY KEY, left_ INTEGER NOT NULL)")
    con.executemany("INSERT INTO bench_balance VALUES (?, ?)", [(a, lots * LOT) for a in accounts])
    con.execute("INSERT INTO bench_stock VALUES (?, ?)", (BENEFIT, stock))
    con.close()
    return path


def _baseline_attempts(target: str, attempts: list[tuple[str, str]]) -> Counter:
    """One transaction per attempt: lock and read balance and stock; take both when there is enough."""
    outcome: Counter = Counter()
    if target.startswith("postgresql"):
        import psycopg2

        con = psycopg2.connect(target)
        cur, mark = con.cursor(), "%s"
        lock = " FOR UPDATE"
    else:
        con = sqlite3.connect(target, isolation_level=None, timeout=30)
        con.execute("PRAGMA synchronous=normal")
        cur, mark, lock = con.cursor(), "?", ""
    for account, _ in attempts:
        if lock:
            cur.execute("BEGIN")
        else:
            cur.execute("BEGIN IMMEDIATE")
        cur.execute(f"SELECT left_ FROM bench_stock WHERE benefit = {mark}{lock}", (BENEFIT,))
        (left,) = cur.fetchone()
        cur.execute(f"SELECT points FROM bench_balance WHERE account = {mark}{lock}", (account,))
        (points,) = cur.fetchone()
        if left <= 0:
            outcome["out_of_stock"] += 1
        elif points < COST:
            outcome["insufficient_points"] += 1
        else:
            cur.execute(f"UPDATE bench_stock SET left_ = left_ - 1 WHERE benefit = {mark}", (BENEFIT,))
            cur.execute(f"UPDATE bench_balance SET points = points - {COST} WHERE account = {mark}", (account,))
            outcome["taken"] += 1
        cur.execute("COMMIT")
    con.close()
    return outcome


def _baseline_process(target: str, attempts: list[tuple[str, str]], barrier: Any, queue: Any) -> None:
    barrier.wait()
    queue.put(dict(_baseline_attempts(target, attempts)))


def run_baseline(target: str, shares: list[list[tuple[str, str]]], processes: bool) -> tuple[float, Counter]:
    if processes:
        return _fan_out(shares, process=(_baseline_process, (target,)))
    return _fan_out(shares, thread=lambda share: _baseline_attempts(target, share))


# --- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="carbonhub-bench-", dir=args.dir) as tmp:
        url = args.database_url or f"sqlite:///{tmp}/hub.db"
        postgres = url.startswith("postgresql")
        processes = postgres or args.processes
        accounts, shares = prepare(url, args.users, args.lots, args.stock, args.attempts, args.workers, args.seed)
        t_exchange, outcome = run_exchange(url, args.stock, shares, processes)
        problems = check(url, args.stock, args.users, args.lots, outcome, args.attempts)
        target = _baseline_setup(url, tmp, accounts, args.lots, args.stock)
        t_base, base_outcome = run_baseline(target, shares, processes)
    fulfilled = outcome["fulfilled"]
    figures = {
        "database": "postgresql" if postgres else "sqlite", "workers": args.workers,
        "mode": "processes" if processes else "threads", "attempts": args.attempts, "users": args.users,
        "points_per_user": args.lots * LOT, "cost": COST, "stock": args.stock,
        "outcomes": dict(outcome), "exchange_s": round(t_exchange, 2),
        "attempts_per_s": round(args.attempts / t_exchange), "fulfilled_per_s": round(fulfilled / t_exchange, 1),
        "baseline_outcomes": dict(base_outcome), "baseline_s": round(t_base, 2),
        "baseline_attempts_per_s": round(args.attempts / t_base),
        "ratio": round(t_base / t_exchange, 3), "problems": problems,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        f = figures
        print(f"carbonhub redemption benchmark on {f['database']}: {f['attempts']:,} attempts by {f['workers']} "
              f"{f['mode']}, {f['users']} users with {f['points_per_user']} pts, cost {f['cost']}, "
              f"stock {f['stock']}")
        print(f"  outcomes           {f['outcomes']}")
        print(f"  exchange           {f['attempts_per_s']:>7,} attempts/s, {f['fulfilled_per_s']} fulfilled/s "
              f"({f['exchange_s']} s)")
        print(f"  read-modify-write  {f['baseline_attempts_per_s']:>7,} attempts/s ({f['baseline_s']} s) "
              f"{f['baseline_outcomes']}")
        print(f"  ratio              {f['ratio']:>7}   (exchange / read-modify-write, attempts per second)")
        for p in problems:
            print(f"  FAILED: {p}")
        if not problems:
            print("  checks             no oversell, no negative balance, lots = ledger, verify ok")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redeem", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=2000, help="redemption attempts (default 2000)")
    parser.add_argument("--stock", type=int, default=100, help="the benefit's stock (default 100)")
    parser.add_argument("--users", type=int, default=150, help="users redeeming (default 150)")
    parser.add_argument("--lots", type=int, default=3, help=f"lots of {LOT} pts per user (default 3)")
    parser.add_argument("--workers", type=int, default=8, help="redeemers at once (default 8)")
    parser.add_argument("--processes", action="store_true", help="processes on SQLite too (default: threads)")
    parser.add_argument("--database-url", help="postgresql://... (its schema is dropped first); default: SQLite")
    parser.add_argument("--dir", help="where the SQLite files go (default: the system temp directory)")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.attempts, args.stock, args.users, args.lots, args.workers) < 1:
        parser.error("every count must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
