"""Voucher code pools: codes the bank loads for a benefit, each handed to one redemption, once.

``carbonhub benefits load-codes <benefit> <file>`` loads them; a fulfilment
takes one through ``ctx.benefits.take_code(benefit, redemption_id)``. Taking is
one conditional ``UPDATE`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
write lock on SQLite), so concurrent redemptions never get the same code, and
asking again for the same redemption returns its code. A code handed to a
redemption that is later voided is not reused: it may have been shown.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from . import db
from .db import VoucherCode, database

MAX_CODE = 200


class CodeError(ValueError):
    pass


def read_codes(lines: Iterable[str]) -> list[str]:
    """One code per line; blank lines and ``#`` comments skipped, surrounding spaces removed."""
    codes = []
    for number, line in enumerate(lines, 1):
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        if len(code) > MAX_CODE or any(ord(c) < 32 for c in code):
            raise CodeError(f"line {number}: a code is 1-{MAX_CODE} printable characters")
        codes.append(code)
    return codes


def load_codes(benefit: str, codes: Iterable[str], now: datetime) -> tuple[int, int]:
    """Add codes to ``benefit``'s pool; returns ``(added, already there)``. Safe to repeat."""
    codes = list(dict.fromkeys(codes))
    when = db.to_db(now)
    added = 0
    with database.atomic():
        for i in range(0, len(codes), 500):
            chunk = codes[i:i + 500]
            existing = {c for (c,) in VoucherCode.select(VoucherCode.code)
                        .where((VoucherCode.benefit == benefit) & VoucherCode.code.in_(chunk)).tuples()}
            new = [(benefit, c, when) for c in chunk if c not in existing]
            if new:
                VoucherCode.insert_many(new, fields=[VoucherCode.benefit, VoucherCode.code, VoucherCode.loaded_at]) \
                    .on_conflict_ignore().execute()
            added += len(new)
    return added, len(codes) - added


def take_code(benefit: str, redemption_id: str, now: datetime) -> str | None:
    """The code of ``redemption_id`` (taken now from the pool if it has none yet); None when the pool is empty."""
    with database.atomic():
        found = VoucherCode.get_or_none(VoucherCode.redemption == redemption_id)
        if found is not None:
            return found.code
        lock = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
        p = database.param
        row = database.execute_sql(
            f'UPDATE "voucher_code" SET "redemption" = {p}, "assigned_at" = {p} WHERE "id" = '
            f'(SELECT "id" FROM "voucher_code" WHERE "benefit" = {p} AND "redemption" IS NULL '
            f'ORDER BY "id" LIMIT 1{lock}) RETURNING "code"',
            (redemption_id, db.to_db(now), benefit)).fetchone()
    return row[0] if row else None


def codes_left(benefit: str) -> int:
    return VoucherCode.select().where((VoucherCode.benefit == benefit) & VoucherCode.redemption.is_null()).count()


def codes_loaded(benefit: str) -> int:
    return VoucherCode.select().where(VoucherCode.benefit == benefit).count()
