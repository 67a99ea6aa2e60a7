"""The account summary behind ``GET /v1/accounts/<id>/summary``.

Credited grams (credited behaviours whose ledger transaction was not reversed)
by scenario and by local month, the account's rank among all accounts as a
percentile (only that number is derived from other accounts: no other
account's data is returned), and equivalents from the sourced document
``footprint-equivalents`` (``methodologies/footprint/``). See docs/calculator.md.
"""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterator

import peewee as pw

from . import db
from .calculator import document, floor_g
from .db import Account, Behaviour, LedgerTransaction
from .records import ACCEPTED

if TYPE_CHECKING:
    from .core import Hub


def credited() -> pw.Expression:
    """Behaviours whose grams the user holds: accepted, credited, and not reversed."""
    reversed_seqs = LedgerTransaction.select(LedgerTransaction.reverses).where(
        LedgerTransaction.reverses.is_null(False))
    return ((Behaviour.status == ACCEPTED) & (Behaviour.grams > 0) & Behaviour.tx_seq.is_null(False)
            & Behaviour.tx_seq.not_in(reversed_seqs))


def percentile(account_id: str, total: int) -> int | None:
    """Share (0-100, rounded down) of the OTHER accounts that have credited fewer grams; None if alone."""
    others = Account.select().where(Account.id != account_id).count()
    if not others:
        return None
    totals = (Behaviour.select(Behaviour.account, pw.fn.SUM(Behaviour.grams).alias("g"))
              .where(credited() & (Behaviour.account != account_id)).group_by(Behaviour.account))
    at_least = (pw.Select([totals], [pw.fn.COUNT(pw.SQL("*"))])
                .where(totals.c.g >= total).bind(db.database).scalar()) if total > 0 else others
    return (others - int(at_least or 0)) * 100 // others


def credited_by_month(hub: Hub, account_id: str) -> Iterator[tuple[str, str, int]]:
    """``(scenario, local month YYYY-MM, grams)`` of each of the account's credited behaviours,
    the month of ``occurred_at`` (or ``created_at``) in the hub's time zone. One query."""
    tz = hub.settings.timezone
    rows = (Behaviour.select(Behaviour.scenario, Behaviour.occurred_at, Behaviour.created_at, Behaviour.grams)
            .where(credited() & (Behaviour.account == account_id)).tuples())
    for scenario, occurred_at, created_at, grams in rows:
        yield scenario, db.from_db(occurred_at or created_at).astimezone(tz).strftime("%Y-%m"), grams


def summary(hub: Hub, account_id: str) -> dict[str, Any]:
    tz = hub.settings.timezone
    by_scenario: dict[str, int] = defaultdict(int)
    by_month: dict[str, int] = defaultdict(int)
    for scenario, month, grams in credited_by_month(hub, account_id):
        by_scenario[scenario] += grams
        by_month[month] += grams
    total = sum(by_scenario.values())
    doc = document("footprint-equivalents", hub.now().astimezone(tz).date())
    equivalents = [{"name": f.name, "amount": floor_g(total / f.value), "factor": str(f.value),
                    "factor_unit": f.unit, "source": f.source} for f in doc.factors.values()]
    return {
        "account": account_id, "total_g": total,
        "by_scenario": [{"scenario": s, "grams": g} for s, g in sorted(by_scenario.items())],
        "by_month": [{"month": m, "grams": g} for m, g in sorted(by_month.items())],
        "percentile": percentile(account_id, total),
        "equivalents": {"methodology": doc.header(), "items": equivalents},
    }
