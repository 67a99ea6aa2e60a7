"""The batch import engine behind ``carbonhub import <partner> <file>``.

One import reads a partner file (CSV or JSON Lines, see :mod:`connectors.batch`)
row by row and runs each row, reshaped by the partner's batch connector
(:meth:`BatchConnector.to_record`), through the same pipeline as a push
(``source = "batch"``, the inbox's ``batch_id`` is the import's id):

1. The file is hashed (SHA-256) by streaming it once, which also checks that it
   is text in the connector's encoding, before anything is written.
2. The same file (same partner, same hash) already imported is refused
   (``already_imported``) unless ``force``; a forced re-import credits nothing
   twice: every row already credited comes back ``duplicate``.
3. An import that was interrupted (killed, power cut, database error) is
   resumed: :class:`hub.db.ImportFile` ``rows_done`` is advanced inside each
   chunk's database transaction, so it always equals the rows whose inbox
   records are committed, and the next run skips exactly those.
4. A row that cannot be read (bad JSON, wrong number of cells) or that the
   connector refuses still becomes a rejected inbox record with its reason
   (:class:`hub.ingest.Unreadable`); every rejected row is also written to the
   rejects file, with its line number, reason, message and field.

Memory stays flat whatever the file's size: rows are read lazily and the
pipeline keeps no per-record results (``keep_results=False``).
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from hub import db
from hub.accounts import new_id
from hub.ingest import DEFAULT_CHUNK, BatchResult, Unreadable
from hub.records import Problem, RecordError

from .base import BATCH
from .batch import BatchConnector, RowError

if TYPE_CHECKING:
    from hub.core import Hub

#: ``progress(bytes_read, rows_done)``: called after the resumed rows are skipped and after each chunk.
Progress = Callable[[int, int], None]
HASH_BLOCK = 1 << 20
RUNNING, DONE = "running", "done"

# Why an import is refused before any row is written.
REFUSALS = {
    "already_imported": "The partner's file with this SHA-256 was already imported (use --force to import it again).",
    "unknown_partner": "The partner is not configured or is disabled.",
    "unknown_connector": "The named connector is not an enabled batch connector of the partner.",
    "unknown_format": "The file's format cannot be told from its name and the connector sets none.",
    "not_text": "The file is not text in the connector's encoding (a binary or mis-encoded file).",
    "no_schema": "The database has no schema yet (run carbonhub db init).",
}


class ImportRefused(Exception):
    """The import was refused before any row was written: ``code`` (see :data:`REFUSALS`) and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class ImportConflict(Exception):
    """Another process works on the same import: it advanced it meanwhile (this chunk was rolled back)
    or keeps claiming the file."""


@dataclass
class ImportSummary:
    """What an import did. Counts, grams and points cover the whole file (resumed runs included)."""

    import_id: str
    partner: str
    connector: str
    file: str
    sha256: str
    size: int
    format: str
    rows: int = 0                  # data rows of the file (each is one inbox record)
    resumed_from: int = 0          # rows committed by an earlier, interrupted run and skipped by this one
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    grams: int = 0
    points: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0           # this run's reading and ingestion (hashing excluded)
    rejects_path: str | None = None
    forced: bool = False
    run_id: int | None = None

    @property
    def rows_this_run(self) -> int:
        return self.rows - self.resumed_from

    @property
    def rate(self) -> float:
        """Records per second of this run."""
        return self.rows_this_run / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"import_id": self.import_id, "partner": self.partner, "connector": self.connector,
                "file": self.file, "sha256": self.sha256, "size": self.size, "format": self.format,
                "rows": self.rows, "resumed_from": self.resumed_from, "accepted": self.accepted,
                "duplicate": self.duplicate, "rejected": self.rejected, "grams": self.grams,
                "points": self.points, "reasons": self.reasons, "seconds": round(self.seconds, 3),
                "records_per_s": round(self.rate), "rejects_file": self.rejects_path, "forced": self.forced,
                "run_id": self.run_id}


def file_digest(path: Path, encoding: str) -> tuple[str, int]:
    """``(sha256 hex, size)`` of the file, read in blocks; refuses a file that is not text.

    Decoding while hashing costs little and refuses a binary or mis-encoded file
    before any row is written, instead of failing halfway through.
    """
    digest, size = hashlib.sha256(), 0
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise ImportRefused("not_text", f"{path.name} is not {encoding} text (byte {size + exc.start:,}): "
                                                f"{REFUSALS['not_text']}") from None
            size += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportRefused("not_text", f"{path.name} ends in the middle of a character: "
                                        f"{REFUSALS['not_text']}") from None
    return digest.hexdigest(), size


def default_rejects_path(path: Path) -> Path:
    """``<file>.rejects.jsonl`` next to the input."""
    return path.with_name(path.name + ".rejects.jsonl")


class RejectsFile:
    """The rejected rows of one import: JSON Lines, or CSV when the path ends in ``.csv``.

    Entries are written inside the chunk's transaction, before it commits, so a
    committed rejected row is always in the file; entries of a chunk that did
    not commit are dropped when the import resumes (:meth:`keep_up_to`).
    """

    COLUMNS = ("line", "reason", "field", "message", "inbox_id", "record")

    def __init__(self, path: Path):
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self._fh: TextIO | None = None
        self._writer: Any = None
        self.written = 0

    def keep_up_to(self, last_line: int) -> None:
        """Drop entries after ``last_line`` (a chunk written, then rolled back by an interruption)."""
        if not self.path.exists():
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, encoding="utf-8", newline="") as src, open(tmp, "w", encoding="utf-8", newline="") as dst:
            if self.csv:
                reader, writer = csv.reader(src), csv.writer(dst)
                for cells in reader:
                    if cells and (cells[0] == "line" or (cells[0].isdigit() and int(cells[0]) <= last_line)):
                        writer.writerow(cells)
            else:
                for line in src:
                    try:
                        keep = json.loads(line)["line"] <= last_line
                    except (ValueError, KeyError, TypeError):
                        keep = False  # a line cut short by the interruption
                    if keep:
                        dst.write(line)
        os.replace(tmp, self.path)

    def write(self, line: int, reason: str | None, message: str | None, field_name: str | None, inbox_id: str,
              record: Any) -> None:
        if self._fh is None:
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._fh = open(self.path, "a", encoding="utf-8", newline="")
            if self.csv:
                self._writer = csv.writer(self._fh)
                if fresh:
                    self._writer.writerow(self.COLUMNS)
        if self.csv:
            self._writer.writerow([line, reason or "", field_name or "", message or "", inbox_id,
                                   db.canonical_json(record)])
        else:
            self._fh.write(db.canonical_json({"line": line, "reason": reason, "field": field_name,
                                              "message": message, "inbox_id": inbox_id, "record": record}) + "\n")
        self.written += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def import_file(hub: "Hub", partner: str, path: str | os.PathLike, *, connector: str | None = None,
                force: bool = False, rejects_path: str | os.PathLike | None = None,
                progress: Progress | None = None, chunk_size: int = DEFAULT_CHUNK) -> ImportSummary:
    """Import a partner file through the pipeline; see the module docstring.

    Raises :class:`ImportRefused` (nothing written) for an unknown partner or
    connector, an unknown format, a file that is not text, or a file already
    imported without ``force``. Any other failure leaves the import ``running``
    with the rows committed so far: run it again to resume.
    """
    path = Path(path)
    settings = hub.settings.partners.get(partner)
    if settings is None or not settings.enabled:
        raise ImportRefused("unknown_partner", f"Partner {partner!r} is not configured or is disabled.")
    try:
        conn = hub.connectors.batch_for(partner, connector)
    except KeyError as exc:
        raise ImportRefused("unknown_connector", str(exc.args[0]) if exc.args else str(exc)) from None
    try:
        fmt = conn.file_format(path)
    except RowError as exc:
        raise ImportRefused("unknown_format", exc.message) from None
    if db.schema_version() is None:
        raise ImportRefused("no_schema", REFUSALS["no_schema"])
    sha256, size = file_digest(path, conn.options.get("encoding", "utf-8-sig"))

    row, resumed = _claim(hub, partner, path, sha256, size, force)
    rejects = RejectsFile(Path(rejects_path) if rejects_path else default_rejects_path(path))
    summary = ImportSummary(import_id=row.id, partner=partner, connector=conn.name, file=str(path), sha256=sha256,
                            size=size, format=fmt, resumed_from=row.rows_done, forced=force and not resumed)
    run = db.ConnectorRun.create(connector=conn.name, stream="file", mode=BATCH, started_at=db.to_db(hub.now()),
                                 status="running", cursor_from=f"{row.id}:{row.rows_done}")
    summary.run_id = run.id
    result = BatchResult(batch_id=row.id)
    chunks = 0
    t0 = time.perf_counter()
    try:
        with open(path, "rb") as fh:
            rows = conn.rows(fh, fmt)
            last_line = _skip(rows, row.rows_done)
            if resumed:
                rejects.keep_up_to(last_line)
            elif rejects.path.exists():
                rejects.path.unlink()  # an earlier import's rejects (a file of the same name): not this one's
            # The reader's text wrapper closes the file once the rows run out: the end is the size.
            position = lambda: size if fh.closed else fh.tell()  # noqa: E731
            if progress:
                progress(position(), row.rows_done)
            lines: deque[int] = deque()  # line numbers of the rows handed to the pipeline, not yet committed
            done = [row.rows_done]
            hook = _in_transaction(row.id, lines, done, rejects)
            for _outcomes in hub.pipeline.ingest_chunks(
                    partner, _payloads(rows, conn, path.name, lines), source="batch", result=result,
                    keep_results=False, chunk_size=chunk_size, in_transaction=hook):
                chunks += 1
                if progress:
                    progress(position(), done[0])
        summary.seconds = time.perf_counter() - t0
        summary.rows = done[0]
        _totals(summary, result, resumed)
        summary.rejects_path = str(rejects.path) if rejects.path.exists() else None
        counts = {"accepted": summary.accepted, "duplicate": summary.duplicate, "rejected": summary.rejected,
                  "grams": summary.grams, "points": summary.points, "reasons": summary.reasons}
        with db.database.atomic():
            (db.ImportFile.update(status=DONE, counts=counts, finished_at=db.to_db(hub.now()))
             .where(db.ImportFile.id == row.id).execute())
            _finish_run(hub, run.id, "ok", chunks, summary.rows_this_run, result, f"{row.id}:{done[0]}")
    except BaseException as exc:  # recorded for the admin view, then raised; the import stays resumable
        rejects.close()
        error = {"kind": "retry", "code": "interrupted" if isinstance(exc, KeyboardInterrupt) else "import_failed",
                 "message": repr(exc)[:500]}
        try:
            _finish_run(hub, run.id, "failed", chunks, result_rows(result), result, f"{row.id}:{done_rows(row)}",
                        error)
        except Exception:  # the database itself may be what failed
            pass
        raise
    finally:
        rejects.close()
    return summary


def result_rows(result: BatchResult) -> int:
    return sum(result.counts.values())


def done_rows(row: db.ImportFile) -> int:
    """The rows committed so far, read back from the database."""
    fresh = db.ImportFile.get_or_none(db.ImportFile.id == row.id)
    return fresh.rows_done if fresh else row.rows_done


def _claim(hub: "Hub", partner: str, path: Path, sha256: str, size: int, force: bool) -> tuple[db.ImportFile, bool]:
    """The ImportFile row to work on and whether it resumes an interrupted import; refuses a done file.

    At most one row per partner file is ``running`` (a partial unique index): of
    two imports of the same new file started together, the second finds the
    first's row and resumes it, and the ``rows_done`` guard of each chunk lets
    only one of them go on (:class:`ImportConflict` for the other).
    """
    for _attempt in range(2):
        previous = list(db.ImportFile.select().where(db.ImportFile.partner == partner,
                                                     db.ImportFile.sha256 == sha256)
                        .order_by(db.ImportFile.started_at.desc(), db.ImportFile.id.desc()))
        running = [r for r in previous if r.status == RUNNING]
        if running:
            return running[0], True
        done = [r for r in previous if r.status == DONE]
        if done and not force:
            last = done[0]
            counts = last.counts or {}
            raise ImportRefused("already_imported", (
                f"{path.name} (sha256 {sha256[:12]}…) was already imported for partner {partner!r} on "
                f"{db.from_db(last.finished_at or last.started_at):%Y-%m-%d %H:%M} UTC as {last.id} "
                f"({last.rows_done} rows: {counts.get('accepted', 0)} accepted, {counts.get('duplicate', 0)} "
                f"duplicate, {counts.get('rejected', 0)} rejected). Use --force to import it again: rows already "
                f"credited come back duplicate, nothing is credited twice."))
        try:
            with db.database.atomic():
                row = db.ImportFile.create(id=new_id("imp"), partner=partner, sha256=sha256, name=path.name[:255],
                                           size=size, rows_done=0, status=RUNNING, started_at=db.to_db(hub.now()))
            return row, False
        except db.pw.IntegrityError:
            continue  # another process claimed the file between the read and the insert: resume its row
    raise ImportConflict(f"{path.name} is being claimed by another import; run it again to resume")


def _skip(rows: Iterator[tuple[int, Any]], n: int) -> int:
    """Consume the ``n`` rows an earlier run committed; the line number of the last one (0 if none)."""
    last = 0
    for _ in range(n):
        item = next(rows, None)
        if item is None:
            break
        last = item[0]
    return last


def _payloads(rows: Iterator[tuple[int, Any]], conn: BatchConnector, name: str,
              lines: deque[int]) -> Iterator[Any]:
    """The pipeline's payloads: native records, or :class:`Unreadable` for rows that cannot be one."""
    to_record = conn.to_record
    for number, row in rows:
        lines.append(number)
        if isinstance(row, RowError):
            yield Unreadable({"file": name, "line": number, "raw": row.raw},
                             Problem(row.code, row.message, row.field))
            continue
        try:
            yield to_record(row)
        except RowError as exc:
            yield Unreadable({"file": name, "line": number, "raw": row}, Problem(exc.code, exc.message, exc.field))
        except RecordError as exc:
            yield Unreadable({"file": name, "line": number, "raw": row}, exc.problem)


def _in_transaction(import_id: str, lines: deque[int], done: list[int],
                    rejects: RejectsFile) -> Callable[[list[tuple[str, Any, str]]], None]:
    """The chunk hook: advance ``rows_done`` and write the chunk's rejects, inside its transaction."""

    def hook(chunk: list[tuple[str, Any, str]]) -> None:
        numbers = [lines.popleft() for _ in chunk]
        # The expected value guards against two processes resuming the same import:
        # the second one's chunk finds rows_done moved and rolls back.
        changed = (db.ImportFile.update(rows_done=db.ImportFile.rows_done + len(chunk))
                   .where(db.ImportFile.id == import_id, db.ImportFile.rows_done == done[0]).execute())
        if changed != 1:
            raise ImportConflict(f"import {import_id} was advanced by another process; run it again to resume")
        rejected = [(n, inbox_id, payload) for n, (inbox_id, payload, status) in zip(numbers, chunk)
                    if status == "rejected"]
        if rejected:
            # The reasons are in the inbox rows this transaction just wrote.
            found = {rid: (reason, detail) for rid, reason, detail in db.fetch_in(
                'SELECT "id", "reason", "detail" FROM "inbox_record" WHERE "id" IN ({marks})',
                [r[1] for r in rejected])}
            for number, inbox_id, payload in rejected:
                reason, detail = found.get(inbox_id, (None, None))
                detail = json.loads(detail) if isinstance(detail, str) else (detail or {})
                record = payload.get("raw") if detail.get("unreadable") and isinstance(payload, dict) else payload
                rejects.write(number, reason, detail.get("message"), detail.get("field"), inbox_id, record)
            rejects.flush()  # in the file before the chunk commits
        done[0] += len(chunk)

    return hook


def _totals(summary: ImportSummary, result: BatchResult, resumed: bool) -> None:
    """Whole-file counts: this run's, or read back from the database when earlier runs committed rows."""
    if not resumed:
        counts, reasons, grams, points = result.counts, result.reasons, result.grams, result.points
    else:
        counts, reasons = Counter(), Counter()
        for status, reason, n in db.database.execute_sql(
                'SELECT "status", "reason", COUNT(*) FROM "inbox_record" WHERE "batch_id" = %s '
                'GROUP BY "status", "reason"'.replace("%s", db.database.param), [summary.import_id]).fetchall():
            counts[status] += n
            if reason:
                reasons[reason] += n
        grams, points = db.database.execute_sql(
            'SELECT COALESCE(SUM(b."grams"), 0), COALESCE(SUM(b."points"), 0) FROM "behaviour" b '
            'JOIN "inbox_record" i ON b."inbox_id" = i."id" WHERE i."batch_id" = %s AND b."status" = %s'
            .replace("%s", db.database.param), [summary.import_id, "accepted"]).fetchone()
    summary.accepted, summary.duplicate, summary.rejected = counts["accepted"], counts["duplicate"], counts["rejected"]
    summary.grams, summary.points = int(grams), int(points)
    summary.reasons = dict(sorted(reasons.items()))


def _finish_run(hub: "Hub", run_id: int, status: str, chunks: int, rows: int, result: BatchResult, cursor: str,
                error: dict[str, Any] | None = None) -> None:
    (db.ConnectorRun.update(finished_at=db.to_db(hub.now()), status=status, pages=chunks, fetched=rows,
                            counts={s: result.counts[s] for s in ("accepted", "duplicate", "rejected")},
                            cursor_to=cursor, error=error)
     .where(db.ConnectorRun.id == run_id).execute())
