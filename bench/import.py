"""Batch import: ``carbonhub import`` of a large CSV vs the in-process pipeline on the same rides.

Run from the repository root::

    python -m bench.import                          # 1,000,000 rides, fresh SQLite files
    python -m bench.import --rows 200000            # a shorter run
    python -m bench.import --database-url postgresql://postgres@127.0.0.1:5432/carbonhub_bench

What one run does:

1. Writes the metro rides of ``bench/ingest.py`` (the same generator and mix:
   96 % accepted, resends, double claims, no consent, implausible distances)
   to a CSV file, one ride per line.
2. Baseline: on a fresh database with the accounts opened in bulk, pushes the
   same rides (as dicts, from the generator) through
   ``hub.pipeline.ingest("szmetro", ..., keep_results=False)`` in this process.
3. On a second fresh database with the same accounts, runs the real command
   ``carbonhub import szmetro <file>.csv --json`` in a subprocess and measures
   its wall time (start-up, hashing and reading the file included) and its
   peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``).
4. Checks that both runs give the counts the mix expects, and that the import
   left one inbox record per row.

It prints records per second of both, their ratio (target 0.80 or more) and
the import's peak memory (target under 300 MB); exit status 1 if a check fails
or a target is missed. Both runs use the real clock (the subprocess cannot be
given a fixed one); the rides are dated January 2026, in the past.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.ingest import FIRST_DAY, LOCAL, PARTNER, REPO, RideStream, open_accounts
from hub import db
from hub.config import load_settings
from hub.core import Hub
from hub.ingest import DEFAULT_CHUNK

COLUMNS = ("ride_id", "account_id", "card_token", "city", "line", "entry_station", "exit_station", "entry_at",
           "exit_at", "distance_km")
RATIO_TARGET = 0.80
RSS_TARGET_MB = 300


def write_csv(path: Path, stream: RideStream) -> int:
    """The rides as CSV (the metro operator's export); returns the rows written."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for ride in stream:
            writer.writerow([ride[c] for c in COLUMNS])
            rows += 1
    return rows


def fresh_hub(settings: Any, url: str, accounts: int, no_consent: int) -> Hub:
    """A hub on an empty database (PostgreSQL: schema dropped first) with the bench's accounts."""
    if not url.startswith("sqlite:///"):
        db.bind(url)
        db.drop_schema()
        db.database.close()
    hub = Hub(settings, database_url=url)
    hub.init_db()
    opened = datetime.combine(FIRST_DAY - timedelta(days=30), datetime.min.time(), LOCAL)
    open_accounts(accounts, no_consent, opened, opened + timedelta(days=1))
    return hub


def run_import(url: str, config: str, path: Path, chunk: int, workdir: Path) -> tuple[dict[str, Any], float, float]:
    """``carbonhub import`` in a subprocess: (its JSON summary, wall seconds, peak RSS in MB)."""
    env = {**os.environ, "CARBONHUB_DATABASE_URL": url, "CARBONHUB_CONFIG": config}
    command = [str(Path(sys.executable).with_name("carbonhub")), "import", PARTNER, str(path), "--json",
               "--chunk-size", str(chunk)]
    with open(workdir / "import.out", "w+b") as out, open(workdir / "import.err", "w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the sum of all children
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"carbonhub import exited {proc.returncode}: {err.read().decode()[-2000:]}")
        summary = json.loads(out.read())
    return summary, wall, usage.ru_maxrss / 1024  # Linux reports KiB


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, environ={})
    n, chunk = args.rows, args.chunk
    accounts = args.accounts or max(1, n // 10)  # five days of two rides each: the caps never bite
    no_consent = max(1, accounts // 100)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="carbonhub-bench-import-", dir=args.dir) as tmp:
        work = Path(tmp)
        path = work / "szmetro-rides.csv"
        t0 = time.perf_counter()
        stream = RideStream(n, accounts, no_consent)
        write_csv(path, stream)
        t_write = time.perf_counter() - t0
        expected = {s: stream.expected[s] for s in ("accepted", "duplicate", "rejected")}
        postgres = bool(args.database_url)

        # 1. The in-process pipeline (baseline).
        url = args.database_url or f"sqlite:///{work}/pipeline.db"
        hub = fresh_hub(settings, url, accounts, no_consent)
        t0 = time.perf_counter()
        result = hub.pipeline.ingest(PARTNER, RideStream(n, accounts, no_consent), source="batch",
                                     keep_results=False, chunk_size=chunk)
        t_pipeline = time.perf_counter() - t0
        got = {s: result.counts[s] for s in expected}
        if got != expected:
            problems.append(f"pipeline counts {got} != expected {expected}")
        db.database.close()
        if not postgres:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{work}/pipeline.db{suffix}").unlink(missing_ok=True)

        # 2. The command, on a fresh database with the same accounts.
        url = args.database_url or f"sqlite:///{work}/import.db"
        hub = fresh_hub(settings, url, accounts, no_consent)
        db.database.close()
        summary, t_import, rss = run_import(url, str(Path(args.config).resolve()), path, chunk, work)
        got = {s: summary[s] for s in expected}
        if got != expected:
            problems.append(f"import counts {got} != expected {expected}")
        if summary["rows"] != n:
            problems.append(f"import read {summary['rows']} rows, expected {n}")
        inbox = db.InboxRecord.select().where(db.InboxRecord.batch_id == summary["import_id"]).count()
        if inbox != n:
            problems.append(f"{inbox} inbox records for the import, expected {n}")
        if summary["grams"] != result.grams:
            problems.append(f"import credited {summary['grams']} g, the pipeline {result.grams} g")
        db.database.close()
        size = path.stat().st_size

    rate_pipeline, rate_import = n / t_pipeline, n / t_import
    figures = {
        "database": "postgresql" if postgres else "sqlite", "rows": n, "accounts": accounts, "chunk": chunk,
        "file_mb": round(size / 2**20, 1), "write_csv_s": round(t_write, 1),
        "pipeline_s": round(t_pipeline, 1), "pipeline_records_per_s": round(rate_pipeline),
        "import_s": round(t_import, 1), "import_records_per_s": round(rate_import),
        "import_engine_records_per_s": summary["records_per_s"], "import_engine_s": summary["seconds"],
        "ratio": round(rate_import / rate_pipeline, 3), "import_peak_rss_mb": round(rss, 1),
        "counts": got, "problems": problems,
    }
    if figures["ratio"] < RATIO_TARGET:
        problems.append(f"ratio {figures['ratio']} under the target {RATIO_TARGET}")
    if rss >= RSS_TARGET_MB:
        problems.append(f"peak RSS {rss:.0f} MB over the target {RSS_TARGET_MB} MB")
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures)
    return 1 if problems else 0


def print_report(f: dict[str, Any]) -> None:
    print(f"carbonhub import benchmark on {f['database']}: {f['rows']:,} metro rides in a {f['file_mb']} MB CSV, "
          f"{f['accounts']:,} accounts, chunk {f['chunk']:,}")
    print(f"  outcomes           {f['counts']}")
    print(f"  pipeline           {f['pipeline_records_per_s']:>9,} records/s  ({f['pipeline_s']} s, in process)")
    print(f"  carbonhub import   {f['import_records_per_s']:>9,} records/s  ({f['import_s']} s wall: start-up, "
          f"hash, read, ingest)")
    print(f"  import engine      {f['import_engine_records_per_s']:>9,} records/s  ({f['import_engine_s']} s "
          f"reading and ingesting)")
    print(f"  ratio              {f['ratio']:>9}   (import / pipeline; target {RATIO_TARGET})")
    print(f"  import peak memory {f['import_peak_rss_mb']:>9} MB  ru_maxrss of the subprocess (target "
          f"< {RSS_TARGET_MB} MB)")
    print(f"  writing the CSV    {f['write_csv_s']:>9} s")
    for p in f["problems"]:
        print(f"  FAILED: {p}")
    if not f["problems"]:
        print("  checks             counts, inbox rows and grams add up; targets met")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rides in the file (default 1000000)")
    parser.add_argument("--accounts", type=int, help="accounts with metro consent (default rows / 10)")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help=f"rows per transaction "
                                                                         f"(default {DEFAULT_CHUNK})")
    parser.add_argument("--database-url", help="postgresql://... (its schema is dropped first, twice); "
                                               "default: fresh SQLite files")
    parser.add_argument("--dir", help="where the CSV and SQLite files go (default: the system temp directory)")
    parser.add_argument("--config", default=str(REPO / "config" / "hub.toml"), help="hub config (hub.toml)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.chunk < 1 or (args.accounts is not None and args.accounts < 1):
        parser.error("--rows, --accounts and --chunk must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
