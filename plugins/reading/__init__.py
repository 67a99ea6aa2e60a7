"""The bank's publishing partner's digital library: books read on a screen instead of bought in print.

Native record (one reading-progress report of one reader and one book; progress
is cumulative, as the reading app shows it)::

    {"report_id": "CPR-20261118-000042", "account_id": "acc_…", "isbn": "978-7-5086-8491-8",
     "title": "…", "device": "phone", "chapters_read": 12, "total_chapters": 24, "pages": 320,
     "reading_seconds": 14400, "reported_at": "2026-11-18T22:10:00+08:00"}

Instead of ``chapters_read``/``total_chapters`` the library may send
``progress_pct``. Each report yields one behaviour per milestone reached
(25, 50, 75, 100 % of the book, a quarter of a book each); a milestone's
fingerprint is account + book + milestone, so a reader is credited each
quarter of a book once, and at most one book's worth per book, however many
reports, days or partners. See ``docs/scenarios/reading.md``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "reading"
MILESTONES = (25, 50, 75, 100)  # percent of the book; each worth a quarter of a book
SHARE = Decimal(1) / len(MILESTONES)
MAX_PAGES_PER_HOUR = Decimal(120)  # two pages a minute for hours on end: faster than reading


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Digital reading", methodology="reading-digital", unit="book",
                         description="Books read in the digital library instead of bought in print, "
                                     "credited by quarters of a book.",
                         partner_kinds=("library",))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="reading-digital", documents=documents("reading"))]


def isbn13(raw: str) -> str:
    """The ISBN-13 of an ISBN-10 or ISBN-13 (hyphens and spaces ignored), checksum verified."""
    s = raw.replace("-", "").replace(" ", "").upper()
    if len(s) == 10 and s[:9].isdigit() and (s[9].isdigit() or s[9] == "X"):
        if sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(s)) % 11:
            raise RecordError("invalid_record", "isbn has a wrong check digit.", "isbn")
        s = "978" + s[:9]
        return s + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(s)) % 10)
    if len(s) == 13 and s.isdigit():
        if sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(s)) % 10:
            raise RecordError("invalid_record", "isbn has a wrong check digit.", "isbn")
        return s
    raise RecordError("invalid_record", "isbn must be an ISBN-10 or ISBN-13.", "isbn")


def _count(p: Mapping[str, Any], name: str) -> int:
    value = p.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError("invalid_record", f"{name} must be a whole number, 0 or more.", name)
    return value


def _progress(p: Mapping[str, Any]) -> Decimal:
    """Cumulative share read, in percent: progress_pct, else chapters_read / total_chapters."""
    if p.get("progress_pct") is not None:
        pct = parsing.decimal(p, "progress_pct")
        if not 0 <= pct <= 100:
            raise RecordError("invalid_progress", f"progress_pct {pct} is outside 0-100.", "progress_pct")
        return pct
    read, total = _count(p, "chapters_read"), _count(p, "total_chapters")
    if total == 0:
        raise RecordError("invalid_record", "total_chapters must be at least 1.", "total_chapters")
    if read > total:
        raise RecordError("invalid_progress", f"{read} of {total} chapters is more than the whole book.",
                          "chapters_read")
    return Decimal(read) * 100 / total


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    report_id = parsing.text(p, "report_id", max_length=120)
    account_id = parsing.text(p, "account_id", max_length=40)
    isbn = isbn13(parsing.text(p, "isbn", max_length=32))
    reported_at = parsing.timestamp(p, "reported_at")
    device = parsing.text(p, "device", max_length=16).lower().replace("-", "_").replace(" ", "_")
    pages = _count(p, "pages")
    if pages == 0:
        raise RecordError("invalid_record", "pages must be at least 1.", "pages")
    seconds = _count(p, "reading_seconds")
    progress = _progress(p)
    attributes = {"isbn": isbn, "title": parsing.text(p, "title", max_length=256, required=False),
                  "device": device, "progress_pct": str(progress.quantize(Decimal("0.01"))), "pages": pages,
                  "reading_seconds": seconds}
    # Every milestone reached so far, already credited or not: the fingerprint
    # (account, book, milestone) turns the old ones into double claims, so only
    # the new share is credited, whatever the reports' order or sender.
    return [Behaviour(scenario=SCENARIO, account_id=account_id, event_id=f"{report_id}#{m}",
                      fingerprint=fingerprint(SCENARIO, account_id, isbn, m), occurred_at=reported_at,
                      quantity=SHARE, unit="book", attributes={**attributes, "milestone": m})
            for m in MILESTONES if progress >= m]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    pages_read = Decimal(a["pages"]) * Decimal(a["progress_pct"]) / 100
    # reading_seconds is the app's cumulative reading time for the book.
    if pages_read * 3600 > MAX_PAGES_PER_HOUR * a["reading_seconds"]:
        return [Problem("implausible_reading_speed",
                        f"{pages_read:.0f} pages in {a['reading_seconds']} s of reading is faster than "
                        f"{MAX_PAGES_PER_HOUR} pages an hour.", "reading_seconds")]
    return []

from .benefits import *  # noqa: E402,F401,F403  (the benefit exchange hooks, see benefits.py)
