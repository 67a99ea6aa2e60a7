"""Batch: partner files (CSV or JSON Lines) imported with ``carbonhub import <partner> <file>``.

Any partner can send a file through the built-in ``file`` connector: a CSV with
a header row (a dotted column such as ``unlock_location.lat`` becomes a nested
object; an empty cell is left out) or JSON Lines (one native record per line).
Each row becomes the partner's native record and goes through the pipeline as
if pushed. A plugin whose partner's files need reshaping subclasses
:class:`BatchConnector` and overrides :meth:`BatchConnector.to_record`.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from marshmallow import RAISE, Schema, fields, validate

from .base import BATCH, Connector, Stream

FORMATS = ("auto", "csv", "jsonl")


class BatchOptions(Schema):
    class Meta:
        unknown = RAISE

    format = fields.String(load_default="auto", validate=validate.OneOf(FORMATS),
                           metadata={"description": "auto: by the file's extension (.csv, .jsonl/.ndjson)."})
    delimiter = fields.String(load_default=",", validate=validate.Length(equal=1))
    encoding = fields.String(load_default="utf-8-sig")  # utf-8, with or without a byte-order mark


class RowError(ValueError):
    """A line that cannot be read as a record (bad JSON, wrong number of CSV cells).

    ``raw`` is what could be read of the line (its text, or its cells), kept in the
    inbox so nothing the partner sent is lost; ``field`` names the column at fault, if any.
    """

    def __init__(self, code: str, message: str, *, raw: Any = None, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.raw, self.field = code, message, raw, field


class BatchConnector(Connector):
    """Reads a partner file row by row; override :meth:`to_record` to reshape rows."""

    mode = BATCH
    config_schema = BatchOptions
    #: The scenario the file feeds, for the admin view (empty: the partner's scenarios).
    scenario = ""

    def streams(self) -> list[Stream]:
        return [Stream(name="file", scenario=self.scenario, primary_key=())]

    def file_format(self, path: Path) -> str:
        fmt = self.options.get("format", "auto")
        if fmt != "auto":
            return fmt
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        raise RowError("unknown_format", f"Cannot tell the format of {path.name}: name it .csv or .jsonl, "
                                         f"or set options.format.")

    def to_record(self, row: Mapping[str, Any]) -> Any:
        """The native record for one row (a CSV row already has dotted columns nested).

        Return the row itself (the default) or a reshaped dict. Raise
        :class:`RowError` for a row that cannot become a record: it is written
        to the rejects file and stored in the inbox as rejected.
        """
        return row

    def rows(self, fh: io.BufferedReader, fmt: str) -> Iterator[tuple[int, Any]]:
        """``(line number, row or RowError)`` for each data line of an open binary file."""
        text = io.TextIOWrapper(fh, encoding=self.options.get("encoding", "utf-8-sig"), newline="")
        if fmt == "jsonl":
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    yield number, RowError("malformed_json", f"Line {number} is not JSON: {exc}",
                                           raw=line.rstrip("\r\n"))
                    continue
                if not isinstance(record, dict):  # a native record is an object
                    yield number, RowError("malformed_json", f"Line {number} is JSON but not an object.",
                                           raw=line.rstrip("\r\n"))
                    continue
                yield number, record
            return
        reader = csv.reader(text, delimiter=self.options.get("delimiter", ","))
        header = next(reader, None)
        if header is None:
            return
        paths = [column.strip().split(".") for column in header]
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # a NUL byte, an oversized cell: this line only, the reader goes on
                yield reader.line_num, RowError("malformed_row", f"Line {reader.line_num} is not CSV: {exc}")
                continue
            number = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(paths):
                yield number, RowError("malformed_row", f"Line {number} has {len(cells)} cells; the header "
                                                        f"has {len(paths)}.", raw=cells)
                continue
            yield number, nest(paths, cells)


def nest(paths: list[list[str]], cells: list[str]) -> dict[str, Any]:
    """A CSV row as a native record: ``a.b`` columns nested, empty cells left out."""
    record: dict[str, Any] = {}
    for path, cell in zip(paths, cells):
        if cell == "":
            continue
        target = record
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):  # "a" and "a.b" both given: keep the plain cell
                break
        else:
            target[path[-1]] = cell
    return record
