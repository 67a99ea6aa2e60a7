"""What a reversed credit gives back to the caps.

The pipeline counts every credit in ``usage_counter`` (grams and count per
user, scenario and local day / month, and per cap subject) and, when the
scenario caps points, in ``points_usage`` (per local day / ISO week / month).
A credit reversed later (a refunded ride, a partner's correction) no longer
counts: its grams, its count and its points leave those counters in the
reversal's database transaction, so the user's next act that day is credited
as if the reversed one had never been.
"""
from __future__ import annotations

from typing import Any

from . import db
from .db import Behaviour, LedgerTransaction, PointsUsage, Receipt, UsageCounter
from .ingest import subject_key, usage_periods
from .methodology import MethodologyRegistry
from .records import ACCEPTED
from .rewards import periods_of


def release_credit(seq: int, methodologies: MethodologyRegistry, tz: Any) -> bool:
    """Take the credit of ledger transaction ``seq`` out of the cap counters; False if it is no behaviour's credit.

    Call it once, inside the transaction that posts the reversal. Counters
    never go below zero (a points cap configured after the credit never
    counted it).
    """
    tx = LedgerTransaction.get_or_none(LedgerTransaction.seq == seq)
    behaviour_id = tx.memo.get("behaviour") if tx is not None and tx.kind == "credit" else None
    row = Behaviour.get_or_none(Behaviour.id == behaviour_id) if behaviour_id else None  # by key: no scan
    if row is None or row.tx_seq != seq or row.status != ACCEPTED or row.occurred_at is None:
        return False
    day = db.from_db(row.occurred_at).astimezone(tz).date()
    usage_keys = [row.account]
    receipt = Receipt.get_or_none(Receipt.behaviour == row.id)
    version = methodologies.get(receipt.methodology, receipt.version) if receipt else None
    if version is not None and version.cap_subject is not None:
        value = (row.attributes or {}).get(version.cap_subject)
        if value not in (None, ""):
            usage_keys.append(subject_key(row.scenario, value))
    for account in usage_keys:
        _subtract(UsageCounter, account, row.scenario, usage_periods(day), {"grams": row.grams, "count": 1})
    if row.points:
        _subtract(PointsUsage, row.account, row.scenario, tuple(periods_of(day).values()), {"points": row.points})
    return True


def _subtract(model: type[db.BaseModel], account: str, scenario: str, periods: tuple[str, ...],
              amounts: dict[str, int]) -> None:
    fields = model._meta.fields
    update = {fields[name]: db.pw.Case(None, [(fields[name] > amount, fields[name] - amount)], 0)
              for name, amount in amounts.items()}
    (model.update(update)
     .where((model.account == account) & (model.scenario == scenario) & model.period.in_(list(periods)))
     .execute())
