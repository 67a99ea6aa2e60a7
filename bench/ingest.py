"""Ingestion throughput: metro rides through the whole pipeline vs raw inserts of the same rows.

Run from the repository root::

    python -m bench.ingest                       # 200,000 rides, fresh SQLite file
    python -m bench.ingest --database-url postgresql://postgres@127.0.0.1:5432/carbonhub_bench

The rides are generated lazily (a stream, never a list) and pushed through
``hub.pipeline.ingest(..., keep_results=False)`` in chunks: normalize, gate,
methodology, rewards, ledger, inbox rows, receipts, usage counters. In the same
run the same rides (payload JSON) are inserted into a plain table with the
driver's fastest bulk call (``sqlite3`` ``executemany``; on PostgreSQL psycopg2
``execute_values``), one transaction per chunk. Throughput is reported as
records per second and as a ratio to that baseline, because the machine is
shared and absolute figures drift between runs.

The mix is decided by each ride's index ``i`` (``i % 100``): 0 resends ride
``i - 50`` unchanged (``duplicate_event``), 1 reports ride ``i - 50`` again under
another ride id (``double_claim``), 2 comes from an account that never
authorised metro (``no_consent``), 3 claims 150 km (``implausible_distance``);
the other 96 % are accepted. Each account rides twice a day, so the metro caps
(5 rides and 3,000 g a day, 60,000 g a month) never bite. At the end the
outcome counts, the database rows and ``hub.ledger.verify()`` are checked; the
exit status is 1 if any check fails.

Peak memory is the process's peak resident set size (``getrusage(RUSAGE_SELF)
.ru_maxrss``) taken right after ingestion, before the baseline runs; it
includes the interpreter and every imported library. ``--tracemalloc`` adds
the peak of Python allocations during ingestion (it slows ingestion down, so
do not read throughput from such a run).

``--floor`` (SQLite) ingests the rides again through a recording connection
and replays the recorded statements alone (``bench/sqlfloor.py``): the rate
no pipeline could beat with this schema, reported beside the pipeline's.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from hub import db
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.db import canonical_json
from hub.ingest import DEFAULT_CHUNK
from hub.ledger import verify

REPO = Path(__file__).resolve().parent.parent
PARTNER = "szmetro"
SCENARIO = "metro"
LOCAL = timezone(timedelta(hours=8))  # Shenzhen; the hub's calendar days are Asia/Shanghai
FIRST_DAY = date(2026, 1, 5)
RIDES_PER_DAY = 2  # morning and evening: far below the 5 rides / 3,000 g daily caps
STATIONS = (
    "Luohu", "Guomao", "Laojie", "Grand Theater", "Science Museum", "Huaqiang Road", "Gangxia",
    "Convention & Exhibition Center", "Shopping Park", "Xiangmihu", "Chegongmiao", "Zhuzilin",
    "Qiaocheng East", "Window of the World", "Baishizhou", "Gaoxinyuan", "Shenzhen University",
    "Taoyuan", "Daxin", "Liyumen", "Qianhaiwan", "Xin'an", "Bao'an Center", "Airport East",
)

# What happens to ride i, by i % 100 (see the module docstring).
RESENT, SAME_ACT, NO_CONSENT, TOO_FAR = 0, 1, 2, 3
DUPLICATE_OF = 50  # a duplicate repeats ride i - 50, which is an ordinary ride
EXPECTED_REASON = {RESENT: "duplicate_event", SAME_ACT: "double_claim", NO_CONSENT: "no_consent",
                   TOO_FAR: "implausible_distance"}
EXPECTED_STATUS = {RESENT: "duplicate", SAME_ACT: "duplicate", NO_CONSENT: "rejected", TOO_FAR: "rejected"}


def kind_of(i: int) -> int | None:
    """The kind of ride ``i``; ``None`` for an ordinary ride that should be accepted."""
    k = i % 100
    if k in (RESENT, SAME_ACT) and i < DUPLICATE_OF:
        return None  # nothing earlier to duplicate yet
    return k if k in EXPECTED_REASON else None


def account_id(n: int) -> str:
    return f"acc_bench{n:011d}"


@dataclass
class RideStream:
    """Deterministic rides, generated one at a time; counts what it produced."""

    records: int
    accounts: int
    no_consent_accounts: int
    expected: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    _days: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.records):
            kind = kind_of(i)
            if kind is None:
                self.expected["accepted"] += 1
                yield self.ride(i)
                continue
            self.expected[EXPECTED_STATUS[kind]] += 1
            self.reasons[EXPECTED_REASON[kind]] += 1
            if kind == RESENT:
                yield self.ride(i - DUPLICATE_OF)
            elif kind == SAME_ACT:
                yield {**self.ride(i - DUPLICATE_OF), "ride_id": f"UPAY-{i:09d}"}
            elif kind == NO_CONSENT:
                yield self.ride(i, account=self.accounts + i % self.no_consent_accounts)
            else:
                yield {**self.ride(i), "distance_km": "150.0"}

    def last_day(self) -> date:
        return FIRST_DAY + timedelta(days=(self.records - 1) // (self.accounts * RIDES_PER_DAY))

    def ride(self, i: int, account: int | None = None) -> dict[str, Any]:
        """Ride ``i``: account ``i % accounts`` on day ``i // (2 * accounts)``, morning or evening."""
        slot, acct = divmod(i, self.accounts)
        day, evening = divmod(slot, RIDES_PER_DAY)
        if account is not None:
            acct = account
        h = (i * 2654435761) & 0xFFFFFFFF  # cheap, well-spread pseudo-random bits
        km10 = 20 + h % 240  # 2.0 .. 25.9 km
        # Timestamps are built as text (fixed +08:00, no DST): datetime arithmetic
        # and isoformat() would cost the stream as much as a raw insert.
        entry = (17 if evening else 7) * 60 + (h >> 8) % 180  # minutes after local midnight
        exit_ = entry + 4 + km10 // 5  # about 30 km/h; never past midnight
        date, compact = self._day(day)
        a = h % len(STATIONS)
        b = (a + 1 + (h >> 16) % (len(STATIONS) - 1)) % len(STATIONS)
        return {
            "ride_id": f"SZM-{compact}-{i:09d}", "account_id": account_id(acct),
            "card_token": f"tok_{acct:012x}", "city": "shenzhen", "line": str(1 + (h >> 4) % 12),
            "entry_station": STATIONS[a], "exit_station": STATIONS[b],
            "entry_at": f"{date}T{entry // 60:02d}:{entry % 60:02d}:00+08:00",
            "exit_at": f"{date}T{exit_ // 60:02d}:{exit_ % 60:02d}:00+08:00", "distance_km": f"{km10 / 10:.1f}",
        }

    def _day(self, day: int) -> tuple[str, str]:
        """``("2026-01-05", "20260105")`` for day ``day`` of the run."""
        if day not in self._days:
            date = FIRST_DAY + timedelta(days=day)
            self._days[day] = (date.isoformat(), f"{date:%Y%m%d}")
        return self._days[day]


def open_accounts(accounts: int, no_consent: int, opened_at: datetime, granted_at: datetime,
                  page: int = 5000, scenarios: tuple[str, ...] = (SCENARIO,)) -> None:
    """Open accounts in bulk: ``accounts`` with consent to ``scenarios`` granted at
    ``granted_at``, then ``no_consent`` more that never granted it."""
    when, grant = db.to_db(opened_at), db.to_db(granted_at)
    for start in range(0, accounts + no_consent, page):
        ids = range(start, min(start + page, accounts + no_consent))
        with db.database.atomic():
            db.bulk_insert(db.Account, ("id", "bank_ref", "opened_at", "status"),
                           [(account_id(n), f"bench-customer-{n}", when, "open") for n in ids])
            consenting = [(n, s) for n in ids if n < accounts for s in scenarios]
            db.bulk_insert(db.Consent, ("account", "scenario", "granted", "updated_at"),
                           [(account_id(n), s, True, grant) for n, s in consenting])
            db.bulk_insert(db.ConsentEvent, ("account", "scenario", "action", "at", "source"),
                           [(account_id(n), s, "grant", grant, "bench") for n, s in consenting])


MIX_NOW = datetime(2027, 1, 1, 4, 0, tzinfo=timezone.utc)  # after every good sample's date


def run_mix(settings: Any, url: str, records: int, accounts: int) -> dict[str, Any]:
    """Every scenario's samples (``bench/mix.py``) through the pipeline on a fresh database."""
    from bench.mix import partner_streams

    if not url.startswith("sqlite:///"):
        db.bind(url)
        db.drop_schema()
        db.database.close()
    hub = Hub(settings, clock=FixedClock(MIX_NOW), database_url=url)
    hub.init_db()
    open_accounts(accounts, 0, datetime(2019, 12, 1, tzinfo=LOCAL), datetime(2020, 1, 1, tzinfo=LOCAL),
                  scenarios=tuple(hub.enabled_scenarios()))
    streams = partner_streams(records, [account_id(n) for n in range(accounts)])
    counts, reasons, grams = Counter(), Counter(), 0
    t0 = time.perf_counter()
    for partner, _, stream in streams:
        result = hub.pipeline.ingest(partner, stream, source="batch", keep_results=False)
        counts.update(result.counts)
        reasons.update(result.reasons)
        grams += result.grams
    elapsed = time.perf_counter() - t0
    report = verify()
    credited = db.Behaviour.select().where(db.Behaviour.status == "accepted")
    issued = -sum(hub.ledger.balance(f"@issuer:{s}", "g") for s in hub.enabled_scenarios())
    problems = []
    for name, got, want in (("records", sum(counts.values()), records),
                            ("inbox records", db.InboxRecord.select().count(), records),
                            ("ledger transactions", db.LedgerTransaction.select().count(), credited.count()),
                            ("grams issued", issued, grams)):
        if got != want:
            problems.append(f"mix {name}: {got}, expected {want}")
    if not report.ok:
        problems += [f"mix ledger verify: {p}" for p in report.problems[:5]]
    db.database.close()
    return {"records": records, "partners": len(streams), "seconds": round(elapsed, 2),
            "records_per_s": round(records / elapsed), "counts": dict(counts),
            "top_reasons": dict(reasons.most_common(8)), "grams": grams, "problems": problems}


def run_floor(settings: Any, clock: Any, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same rides through a recording run, then its statements replayed alone (bench/sqlfloor.py)."""
    from bench.sqlfloor import Recording, replay

    n, accounts = args.records, args.accounts
    no_consent = max(1, accounts // 100)
    stream = RideStream(n, accounts, no_consent)
    hub = Hub(settings, clock=clock, database_url=f"sqlite:///{tmp}/floor-recorded.db")
    hub.init_db()
    opened = datetime.combine(FIRST_DAY - timedelta(days=30), datetime.min.time(), LOCAL)
    open_accounts(accounts, no_consent, opened, opened + timedelta(days=1))
    snapshot, log = tmp / "floor-replayed.db", tmp / "floor.log"
    with Recording(log, snapshot):
        result = hub.pipeline.ingest(PARTNER, stream, source="batch", keep_results=False, chunk_size=args.chunk)
    replayed = replay(snapshot, log)
    con = sqlite3.connect(snapshot)
    (behaviours,) = con.execute('SELECT COUNT(*) FROM "behaviour"').fetchone()
    (credits,) = con.execute('SELECT COUNT(*) FROM "ledger_transaction"').fetchone()
    con.close()
    problems = []
    if (behaviours, credits) != (n, result.counts["accepted"]):
        problems.append(f"floor replay left {behaviours} behaviours and {credits} transactions, "
                        f"expected {n} and {result.counts['accepted']}")
    return {"records_per_s": round(n / replayed["seconds"]), "seconds": round(replayed["seconds"], 2),
            "statements": replayed["statements"], "transactions": replayed["transactions"],
            "us_per_record": {kind: round(1e6 * t / n, 1) for kind, t in replayed["by_kind"].items()},
            "send_us": round(1e6 * replayed["pickle_dumps_s"] / n, 1),
            "receive_us": round(1e6 * replayed["pickle_loads_s"] / n, 1),
            "problems": problems}


def chunked(stream: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in stream:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def baseline_sqlite(path: Path, stream: RideStream, chunk: int) -> int:
    """Raw ``sqlite3``: the same payload JSON into a plain table, a transaction per chunk."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA synchronous=normal")  # what the hub uses
    con.execute("CREATE TABLE raw_ride (id INTEGER PRIMARY KEY, ride_id TEXT NOT NULL, payload TEXT NOT NULL)")
    rows = 0
    for part in chunked(iter(stream), chunk):
        con.execute("BEGIN")
        con.executemany("INSERT INTO raw_ride (ride_id, payload) VALUES (?, ?)",
                        [(p["ride_id"], canonical_json(p)) for p in part])
        con.execute("COMMIT")
        rows += len(part)
    (count,) = con.execute("SELECT COUNT(*) FROM raw_ride").fetchone()
    con.close()
    return count if count == rows else -1


def baseline_postgres(url: str, stream: RideStream, chunk: int) -> int:
    """psycopg2 ``execute_values``: the same payload JSON into a plain table, a transaction per chunk."""
    import psycopg2
    from psycopg2.extras import execute_values

    con = psycopg2.connect(url)
    try:
        with con, con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_raw_ride")
            cur.execute("CREATE TABLE bench_raw_ride (id BIGSERIAL PRIMARY KEY, ride_id TEXT NOT NULL, "
                        "payload TEXT NOT NULL)")
        rows = 0
        for part in chunked(iter(stream), chunk):
            with con, con.cursor() as cur:
                execute_values(cur, "INSERT INTO bench_raw_ride (ride_id, payload) VALUES %s",
                               [(p["ride_id"], canonical_json(p)) for p in part], page_size=chunk)
            rows += len(part)
        with con, con.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM bench_raw_ride")
            (count,) = cur.fetchone()
            cur.execute("DROP TABLE bench_raw_ride")
    finally:
        con.close()
    return count if count == rows else -1


class Breakdown:
    """Exclusive wall time per stage of ingestion, from wrappers around per-chunk calls.

    Only calls made a few times per chunk are wrapped (never per record), so the
    measurement costs nothing visible. A wrapped call's time is charged to its
    label minus the time of wrapped calls inside it; the rest of ``ingest``
    (the stream, chunking, outcome counting) is what remains of the total.
    """

    STAGES = (  # (label, owner, attribute)
        ("normalize: plugin hooks, validators, methodology", "pipeline", "_normalize"),
        ("gate: consent, duplicates, caps, rewards, requests", "pipeline", "_gate_and_write"),
        ("ledger: validation, hash chain, posting rows", "ledger", "post_many"),
        ("rows: inbox, behaviour, receipt (JSON)", "pipeline", "_write_rows"),
        ("SQL: SELECT (accounts, consents, duplicates, usage)", "db", "fetch_in"),
        ("SQL: INSERT (bulk)", "db", "bulk_insert"),
        ("SQL: INSERT .. ON CONFLICT (balances, usage)", "db", "upsert_add"),
        ("SQL: COMMIT", "database", "commit"),
    )

    def __init__(self, hub: Hub):
        self.times: Counter = Counter()
        self._stack: list[list[float]] = []
        owners = {"pipeline": hub.pipeline, "ledger": hub.ledger, "db": db, "database": db.database.obj}
        for label, owner, name in self.STAGES:
            self._wrap(owners[owner], name, label)

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)
        stack, times = self._stack, self.times

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack.append([0.0])
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                (children,) = stack.pop()
                times[label] += elapsed - children
                if stack:
                    stack[-1][0] += elapsed

        setattr(owner, name, timed)  # for the rest of this process

    def report(self, total: float) -> list[tuple[str, float]]:
        rows = [(label, self.times[label]) for label, _, _ in self.STAGES]
        rows.append(("stream, chunking, outcome counting", total - sum(self.times.values())))
        return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def check(hub: Hub, stream: RideStream, result: Any) -> list[str]:
    """Everything that must add up after the run; returns the failures."""
    problems = []
    counts = {s: result.counts[s] for s in ("accepted", "duplicate", "rejected")}
    expected = {s: stream.expected[s] for s in counts}
    if counts != expected:
        problems.append(f"outcome counts {counts} != expected {expected}")
    if dict(result.reasons) != dict(stream.reasons):
        problems.append(f"reasons {dict(result.reasons)} != expected {dict(stream.reasons)}")
    accepted = expected["accepted"]
    rows = {
        "inbox records": (db.InboxRecord.select().count(), stream.records),
        "behaviours": (db.Behaviour.select().count(), stream.records),
        "credited behaviours": (db.Behaviour.select().where(db.Behaviour.status == "accepted").count(), accepted),
        "receipts": (db.Receipt.select().count(), accepted),
        "ledger transactions": (db.LedgerTransaction.select().count(), accepted),
        "grams credited": (db.Behaviour.select(db.pw.fn.SUM(db.Behaviour.grams)).scalar() or 0, result.grams),
        "issuer balance": (-hub.ledger.balance(f"@issuer:{SCENARIO}", "g"), result.grams),
    }
    for name, (got, want) in rows.items():
        if got != want:
            problems.append(f"{name}: {got} in the database, expected {want}")
    return problems


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, environ={})
    n, accounts, chunk = args.records, args.accounts, args.chunk
    no_consent = max(1, accounts // 100)
    stream = RideStream(n, accounts, no_consent)
    clock = FixedClock(datetime.combine(stream.last_day() + timedelta(days=1), datetime.min.time(), LOCAL)
                       .astimezone(timezone.utc))
    opened = datetime.combine(FIRST_DAY - timedelta(days=30), datetime.min.time(), LOCAL)

    with tempfile.TemporaryDirectory(prefix="carbonhub-bench-", dir=args.dir) as tmp:
        url = args.database_url or f"sqlite:///{tmp}/hub.db"
        postgres = not url.startswith("sqlite:///")
        if postgres:  # a fresh schema, as on a fresh SQLite file
            db.bind(url)
            db.drop_schema()
            db.database.close()
        hub = Hub(settings, clock=clock, database_url=url)
        hub.init_db()
        t0 = time.perf_counter()
        open_accounts(accounts, no_consent, opened, opened + timedelta(days=1))
        t_accounts = time.perf_counter() - t0

        t0 = time.perf_counter()
        generated = sum(1 for _ in RideStream(n, accounts, no_consent))
        t_generate = time.perf_counter() - t0

        rss_before = peak_rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        profiler = cProfile.Profile() if args.profile else None
        breakdown = Breakdown(hub) if args.breakdown else None
        t0, c0 = time.perf_counter(), time.process_time()
        with profiler or nullcontext():
            result = hub.pipeline.ingest(PARTNER, stream, source="batch", keep_results=False, chunk_size=chunk)
        t_ingest, c_ingest = time.perf_counter() - t0, time.process_time() - c0
        stages = breakdown.report(t_ingest) if breakdown else None
        heap_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        if args.tracemalloc:
            tracemalloc.stop()
        rss_peak = peak_rss_mb()
        if profiler:
            profiler.dump_stats(args.profile)

        t0 = time.perf_counter()
        report = verify()
        t_verify = time.perf_counter() - t0
        problems = check(hub, stream, result)
        if not report.ok:
            problems += [f"ledger verify: {p}" for p in report.problems[:5]]
        if report.transactions != stream.expected["accepted"]:
            problems.append(f"verify saw {report.transactions} transactions")
        db.database.close()

        t0, c0 = time.perf_counter(), time.process_time()
        if postgres:
            base_rows = baseline_postgres(url, RideStream(n, accounts, no_consent), chunk)
        else:
            base_rows = baseline_sqlite(Path(tmp) / "baseline.db", RideStream(n, accounts, no_consent), chunk)
        t_base, c_base = time.perf_counter() - t0, time.process_time() - c0
        if base_rows != n:
            problems.append(f"baseline inserted {base_rows} rows, expected {n}")
        floor = run_floor(settings, clock, Path(tmp), args) if args.floor else None
        if floor:
            problems += floor["problems"]
        mix = run_mix(settings, url if postgres else f"sqlite:///{tmp}/mix.db", n, accounts) if args.mix else None
        if mix:
            problems += mix["problems"]

    rate, base_rate = n / t_ingest, n / t_base
    figures = {
        "database": "postgresql" if postgres else "sqlite",
        "records": n, "accounts": accounts, "chunk": chunk,
        "accepted": result.counts["accepted"], "duplicate": result.counts["duplicate"],
        "rejected": result.counts["rejected"], "reasons": dict(result.reasons),
        "ingest_s": round(t_ingest, 2), "ingest_cpu_s": round(c_ingest, 2), "records_per_s": round(rate),
        "baseline_s": round(t_base, 2), "baseline_cpu_s": round(c_base, 2), "baseline_rows_per_s": round(base_rate),
        "ratio": round(rate / base_rate, 3),
        "generate_only_per_s": round(generated / t_generate),
        "open_accounts_s": round(t_accounts, 2),
        "verify_s": round(t_verify, 2), "verify_transactions": report.transactions, "verify_ok": report.ok,
        "peak_rss_mb": round(rss_peak, 1), "rss_before_ingest_mb": round(rss_before, 1),
        "tracemalloc_peak_mb": round(heap_peak, 1) if heap_peak is not None else None,
        "breakdown_s": {label: round(t, 2) for label, t in stages} if stages else None,
        "floor": floor and {k: v for k, v in floor.items() if k != "problems"},
        "to_floor": round(rate / floor["records_per_s"], 3) if floor else None,
        "mix": mix, "mix_to_metro": round(mix["records_per_s"] / rate, 3) if mix else None,
        "problems": problems,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures)
    return 1 if problems else 0


def print_report(f: dict[str, Any]) -> None:
    print(f"carbonhub ingest benchmark on {f['database']}: {f['records']:,} metro rides, "
          f"{f['accounts']:,} accounts, chunk {f['chunk']:,}")
    print(f"  outcomes           {f['accepted']:,} accepted, {f['duplicate']:,} duplicate, "
          f"{f['rejected']:,} rejected  {f['reasons']}")
    print(f"  pipeline           {f['records_per_s']:>9,} records/s  ({f['ingest_s']} s end to end, "
          f"{f['ingest_cpu_s']} s CPU in this process)")
    print(f"  raw insert         {f['baseline_rows_per_s']:>9,} rows/s     ({f['baseline_s']} s, "
          f"{f['baseline_cpu_s']} s CPU; same payloads)")
    print(f"  ratio              {f['ratio']:>9}   (pipeline / raw insert)")
    print(f"  stream alone       {f['generate_only_per_s']:>9,} records/s  (generating the rides, no database)")
    print(f"  peak memory        {f['peak_rss_mb']:>9} MB  ru_maxrss after ingestion "
          f"({f['rss_before_ingest_mb']} MB before it)")
    if f["tracemalloc_peak_mb"] is not None:
        print(f"  python heap peak   {f['tracemalloc_peak_mb']:>9} MB  tracemalloc during ingestion")
    print(f"  ledger verify      {f['verify_s']:>9} s   ({f['verify_transactions']:,} transactions, "
          f"ok={f['verify_ok']})")
    print(f"  open accounts      {f['open_accounts_s']:>9} s   (bulk, with consent)")
    if f["breakdown_s"]:
        print("  where the ingestion time goes (exclusive wall time):")
        total = sum(f["breakdown_s"].values())
        for label, t in f["breakdown_s"].items():
            print(f"    {label:53s} {t:7.2f} s {100 * t / total:5.1f} %  {1e6 * t / f['records']:6.1f} us/record")
    if f["floor"]:
        fl = f["floor"]
        print(f"  SQL floor          {fl['records_per_s']:>9,} records/s  (the run's {fl['statements']:,} statements "
              f"in {fl['transactions']:,} transactions replayed by bare sqlite3, {fl['seconds']} s)")
        print(f"  pipeline / floor   {f['to_floor']:>9}   (1 - this = the share of time outside SQLite)")
        print(f"  floor per record   {1e6 / fl['records_per_s']:9.1f} us: " + ", ".join(
            f"{kind} {us}" for kind, us in fl["us_per_record"].items() if us >= 0.5))
        print(f"  hand-off           {fl['send_us']:9.1f} us to pickle, {fl['receive_us']} us to unpickle a record's "
              f"statements (what a separate writer process would add)")
    if f["mix"]:
        m = f["mix"]
        print(f"  mixed batch        {m['records_per_s']:>9,} records/s  ({m['records']:,} samples of every scenario "
              f"from {m['partners']} partners, {m['seconds']} s)")
        print(f"  mix / metro        {f['mix_to_metro']:>9}   (same run; {m['counts']})")
        print(f"  mix reasons        {m['top_reasons']}")
    for p in f["problems"]:
        print(f"  FAILED: {p}")
    if not f["problems"]:
        print("  checks             counts, rows, balances and hash chain add up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="rides to ingest (default 200000)")
    parser.add_argument("--accounts", type=int, default=20_000,
                        help="accounts with metro consent (default 20000); 1%% more without consent")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                        help=f"records per pipeline chunk and per baseline transaction (default {DEFAULT_CHUNK})")
    parser.add_argument("--database-url", help="postgresql://... to run against PostgreSQL "
                                               "(its schema is dropped first); default: a fresh SQLite file")
    parser.add_argument("--dir", help="where the fresh SQLite files go (default: the system temp directory)")
    parser.add_argument("--config", default=str(REPO / "config" / "hub.toml"), help="hub config (hub.toml)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the Python heap peak (slows ingestion)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of ingestion to FILE")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report where ingestion time goes, stage by stage")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--floor", action="store_true",
                        help="SQLite: also record the SQL of a second run and replay it alone (bench/sqlfloor.py), "
                             "the rate no pipeline could beat with this schema")
    parser.add_argument("--mix", action="store_true",
                        help="also run as many records from every scenario's samples (bench/mix.py) "
                             "on a fresh database and compare with the metro-only rate")
    args = parser.parse_args(argv)
    if args.floor and args.database_url:
        parser.error("--floor measures SQLite only")
    if args.records < 1 or args.accounts < 1 or args.chunk < 1:
        parser.error("--records, --accounts and --chunk must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
