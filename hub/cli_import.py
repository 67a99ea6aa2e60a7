"""``carbonhub import <partner> <file>``: a partner file through the pipeline (see docs/import.md)."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from .cli import _echo_json, _fail, _hub
from .ingest import DEFAULT_CHUNK


class _Progress:
    """A progress bar over the file's bytes with the records per second, on stderr when it is a terminal."""

    def __init__(self, size: int, enabled: bool):
        self.bar: Any = None
        self.done = 0
        self.start_rows: int | None = None
        self.t0 = time.perf_counter()
        if enabled and size:
            self.bar = click.progressbar(length=size, label="importing", file=sys.stderr, show_pos=False,
                                         show_percent=True, item_show_func=lambda text: text)
            self.bar.__enter__()

    def __call__(self, position: int, rows: int) -> None:
        if self.bar is None:
            return
        if self.start_rows is None:  # the first call comes after the rows of an earlier run were skipped
            self.start_rows, self.t0 = rows, time.perf_counter()
        elapsed = time.perf_counter() - self.t0
        rate = (rows - self.start_rows) / elapsed if elapsed > 0 else 0.0
        self.bar.update(max(0, position - self.done), f"{rows:,} rows, {rate:,.0f} records/s")
        self.done = max(self.done, position)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("import")
@click.argument("partner")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--connector", "connector", metavar="NAME",
              help="The partner's batch connector ([connectors.NAME]); default: its only one, else the "
                   "built-in file reader.")
@click.option("--force", is_flag=True, help="Import a file already imported (rows already credited come back "
                                            "duplicate).")
@click.option("--rejects", "rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Where rejected rows go (.jsonl, or .csv); default FILE.rejects.jsonl next to FILE.")
@click.option("--chunk-size", default=DEFAULT_CHUNK, show_default=True, type=click.IntRange(1, 50_000),
              help="Rows per database transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def import_command(ctx: click.Context, partner: str, file: Path, connector: str | None, force: bool,
                   rejects: Path | None, chunk_size: int, as_json: bool) -> None:
    """Import a partner FILE (CSV or JSON Lines) through the pipeline; resumes an interrupted import.

    Exit code 1 when the import is refused (already imported, unknown format,
    not text) or fails; run it again to resume from the last committed row.
    """
    from connectors.importer import ImportConflict, ImportRefused, import_file

    hub = _hub(ctx)
    progress = _Progress(file.stat().st_size, enabled=sys.stderr.isatty() and not as_json)
    try:
        summary = import_file(hub, partner, file, connector=connector, force=force, rejects_path=rejects,
                              progress=progress, chunk_size=chunk_size)
    except ImportRefused as exc:
        progress.close()
        _fail(f"error: {exc.code}: {exc.message}", 1)
    except ImportConflict as exc:
        progress.close()
        _fail(f"error: {exc}", 1)
    except KeyboardInterrupt:
        progress.close()
        _fail("interrupted: the rows committed so far are kept; run the same command again to resume", 130)
    except Exception as exc:  # a database error, a plugin's connector bug: the import stays resumable
        progress.close()
        _fail(f"error: the import failed ({exc.__class__.__name__}: {exc}); the rows committed so far are kept, "
              f"run the same command again to resume", 1)
    progress.close()
    if as_json:
        _echo_json(summary.as_dict())
        return
    s = summary
    click.echo(f"imported {s.file} for {s.partner} ({s.connector}, {s.format}): import {s.import_id}")
    resumed = f" ({s.resumed_from:,} committed by an earlier run, skipped)" if s.resumed_from else ""
    click.echo(f"  rows       {s.rows:,}{resumed}")
    click.echo(f"  accepted   {s.accepted:,}   duplicate {s.duplicate:,}   rejected {s.rejected:,}")
    click.echo(f"  credited   {s.grams:,} g, {s.points:,} pts")
    click.echo(f"  rate       {s.rate:,.0f} records/s ({s.rows_this_run:,} rows in {s.seconds:.1f} s)")
    if s.reasons:
        click.echo("  reasons    " + ", ".join(f"{r} {n:,}" for r, n in s.reasons.items()))
    if s.rejects_path:
        click.echo(f"  rejects    {s.rejects_path}")
    if s.rows == 0:
        click.echo("warning: the file has no data rows", err=True)
