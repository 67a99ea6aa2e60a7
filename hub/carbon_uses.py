"""Which grams of each credited behaviour are still the user's, retired, or aggregated.

Every credited behaviour (an ``accepted`` behaviour with grams and a credit
transaction) holds its grams in ``user:<id>:carbon``. Two things may take them
from there, each recording which behaviours' grams it took in ``carbon_use``:

- a **neutralisation** retires grams to ``@retired`` against a footprint
  (:mod:`hub.neutralisation`), drawing the user's oldest grams first;
- an **aggregation** moves every gram of a month still with the users to
  ``@pool:<exchange>`` (:mod:`hub.aggregation`).

A behaviour still holds ``grams − Σ carbon_use.grams``; a behaviour whose credit
was reversed holds nothing. Both writers take the ledger lock before reading
what is available and write their ``carbon_use`` rows in the database
transaction of their ledger postings, so a gram is never retired or aggregated
twice, and a user's carbon balance always equals what their behaviours hold.

Reversing a credit afterwards (:func:`before_reversal`, called by
:meth:`hub.core.Hub.reverse` in the same database transaction):

- grams a certificate retired: the reversal is refused (409 ``carbon_retired``);
  retirement is final and the certificate stays true;
- grams in a pool: an ``aggregation_adjustment`` transaction moves them from
  ``@pool:<exchange>`` back to the user just before the reversal takes them, and
  the exchange's next report carries them as a negative adjustment line;
- neutralisation, aggregation and adjustment transactions are never reversed
  (409 ``not_reversible``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Sequence

import peewee as pw

from . import db
from .db import Aggregation, Behaviour, CarbonAdjustment, CarbonUse, LedgerTransaction, Receipt
from .ledger import Ledger, LedgerError, TxRequest, user_carbon
from .records import ACCEPTED, PostingRecord, TransactionRecord

RETIRED, AGGREGATED = "retired", "aggregated"
RETIRED_ACCOUNT = "@retired"
# Transactions whose state other rows depend on: a reversal would leave carbon_use wrong.
FINAL_KINDS = ("neutralisation", "aggregation", "aggregation_adjustment")


def pool_account(exchange: str) -> str:
    return f"@pool:{exchange}"


class CarbonError(LedgerError):
    """A carbon-asset rule refused the operation (answered with its own code and status)."""


class InsufficientCarbon(CarbonError):
    code = "insufficient_carbon"
    status = 409


class CarbonRetired(CarbonError):
    code = "carbon_retired"
    status = 409


class NotReversible(CarbonError):
    code = "not_reversible"
    status = 409


@dataclass(frozen=True)
class Holding:
    """Grams one credited behaviour still holds, with what the reports need about it."""

    behaviour: str
    account: str
    grams: int  # still available
    occurred_at: datetime | None
    scenario: str = ""
    methodology: str = ""
    version: str = ""


def _holdings_query(extra: Any) -> pw.ModelSelect:
    """Credited, unreversed behaviours matching ``extra`` that hold grams, oldest act first (then by id)."""
    used = (CarbonUse.select(pw.fn.COALESCE(pw.fn.SUM(CarbonUse.grams), 0))
            .where(CarbonUse.behaviour == Behaviour.id))
    reversal = LedgerTransaction.select(pw.SQL("1")).where(LedgerTransaction.reverses == Behaviour.tx_seq)
    return (Behaviour.select(Behaviour.id, Behaviour.account, Behaviour.grams - used, Behaviour.occurred_at,
                             Behaviour.scenario, Receipt.methodology, Receipt.version)
            .join(Receipt, on=(Receipt.behaviour == Behaviour.id))
            .where((Behaviour.status == ACCEPTED) & (Behaviour.grams > 0) & Behaviour.tx_seq.is_null(False)
                   & ~pw.fn.EXISTS(reversal) & (Behaviour.grams > used) & extra)
            .order_by(Behaviour.occurred_at, Behaviour.id))


def _holdings(query: pw.ModelSelect) -> Iterator[Holding]:
    # The driver's rows: peewee's conversion of every column of every row costs more than the query.
    to_python = Behaviour.occurred_at.python_value
    for bid, account, left, occurred_at, scenario, methodology, version in db.database.execute_sql(*query.sql()):
        yield Holding(bid, account, int(left), db.from_db(to_python(occurred_at)), scenario, methodology, version)


def holdings_of(account_id: str) -> list[Holding]:
    """The account's behaviours that still hold grams, oldest act first (then by id). One query."""
    return list(_holdings(_holdings_query(Behaviour.account == account_id)))


def holdings_between(start: datetime, end: datetime) -> list[Holding]:
    """Every behaviour that acted in ``[start, end)`` (naive UTC) and still holds grams. One query."""
    return list(_holdings(_holdings_query((Behaviour.occurred_at >= start) & (Behaviour.occurred_at < end))))


def draw(account_id: str, grams: int) -> list[Holding]:
    """Take ``grams`` from the account's oldest holdings; the last one may be taken in part.

    Call under the ledger lock. Reads only as many holdings as it takes. Raises
    :class:`InsufficientCarbon` when the account holds less (or its ledger
    balance says less).
    """
    taken, need, held = [], grams, 0
    for h in _holdings(_holdings_query(Behaviour.account == account_id)):
        part = min(h.grams, need)
        taken.append(Holding(h.behaviour, h.account, part, h.occurred_at, h.scenario, h.methodology, h.version))
        need -= part
        held += h.grams
        if need <= 0:
            break
    balance = Ledger.balance(user_carbon(account_id), "g")
    if need > 0 or balance < grams:
        # The two agree unless the ledger was changed behind the hub's back; trust the lower.
        raise InsufficientCarbon(f"The account holds {min(held, balance)} g of carbon not yet retired or "
                                 f"aggregated; {grams} g were asked for.", available=min(held, balance),
                                 requested=grams)
    return taken


def record(kind: str, ref: str, holdings: Iterable[Holding], tx_seq_of: Any, now: datetime) -> None:
    """Write the ``carbon_use`` rows of ``holdings`` taken by ``ref`` (in the caller's transaction).

    ``tx_seq_of`` is the ledger seq, or a mapping account -> seq.
    """
    when = db.sql_time(now)
    db.bulk_insert(CarbonUse, ("behaviour", "account", "kind", "ref", "grams", "tx_seq", "created_at"),
                   [(h.behaviour, h.account, kind, ref, h.grams,
                     tx_seq_of[h.account] if isinstance(tx_seq_of, dict) else tx_seq_of, when)
                    for h in holdings])


def summary(account_id: str) -> dict[str, int]:
    """Grams the account retired and grams of it in pools (net of adjustments). Two queries."""
    sums = dict(CarbonUse.select(CarbonUse.kind, pw.fn.SUM(CarbonUse.grams))
                .where(CarbonUse.account == account_id).group_by(CarbonUse.kind).tuples())
    adjusted = (CarbonAdjustment.select(pw.fn.COALESCE(pw.fn.SUM(CarbonAdjustment.grams), 0))
                .where(CarbonAdjustment.account == account_id).scalar())
    return {"retired_g": int(sums.get(RETIRED) or 0),
            "aggregated_g": int(sums.get(AGGREGATED) or 0) - int(adjusted or 0)}


# --- reversals --------------------------------------------------------------------------------------


def before_reversal(ledger: Ledger, seq: int, reason: str, now: datetime) -> list[TransactionRecord]:
    """Decide what reversing transaction ``seq`` means for retired and aggregated grams.

    Runs inside the reversal's database transaction, under the ledger lock.
    Returns the adjustment transactions it posted (to notify once committed).
    """
    tx = LedgerTransaction.get_or_none(LedgerTransaction.seq == seq)
    if tx is None or tx.reverses is not None:
        return []  # the ledger answers: not found, or a reversal cannot be reversed
    if tx.kind in FINAL_KINDS:
        raise NotReversible(f"Transaction {seq} is a {tx.kind}: it is final and cannot be reversed "
                            f"(see docs/carbon-assets.md).", seq=seq)
    if tx.kind != "credit":
        return []
    if LedgerTransaction.select().where(LedgerTransaction.reverses == seq).exists():
        return []  # already reversed: the ledger answers the retry (or refuses a second reversal)
    behaviour = (tx.memo or {}).get("behaviour")
    uses = list(CarbonUse.select().where(CarbonUse.behaviour == behaviour).order_by(CarbonUse.id))
    retired = [u for u in uses if u.kind == RETIRED]
    if retired:
        raise CarbonRetired(f"{sum(u.grams for u in retired)} g of credit {seq} (behaviour {behaviour}) were "
                            f"retired by certificate {', '.join(sorted({u.ref for u in retired}))}; retirement "
                            f"is final, so the credit cannot be reversed.", seq=seq)
    posted = []
    for use in (u for u in uses if u.kind == AGGREGATED):
        agg = Aggregation.get_by_id(use.ref)
        pool = pool_account(agg.exchange)
        req = TxRequest(key=f"aggregation-adjustment:{seq}", kind="aggregation_adjustment",
                        postings=(PostingRecord(pool, "g", -use.grams),
                                  PostingRecord(user_carbon(use.account), "g", use.grams)),
                        memo={"behaviour": behaviour, "account": use.account, "exchange": agg.exchange,
                              "aggregation": agg.id, "reverses_credit": seq, "reason": reason})
        ((adj, created),) = ledger.post_many([req])
        (CarbonAdjustment.insert(behaviour=behaviour, account=use.account, exchange=agg.exchange,
                                 aggregation=agg.id, grams=use.grams, reversal_of=seq, tx_seq=adj.seq,
                                 reason=reason, created_at=db.to_db(now))
         .on_conflict_ignore().execute())
        if created:
            posted.append(adj)
    return posted


def unreported_adjustments(exchange: str) -> list[dict[str, Any]]:
    """Adjustments of ``exchange`` no report carries yet, with their behaviour's scenario and methodology."""
    rows = (CarbonAdjustment.select(CarbonAdjustment, Behaviour.scenario, Receipt.methodology, Receipt.version)
            .join(Behaviour, on=(Behaviour.id == CarbonAdjustment.behaviour))
            .join(Receipt, on=(Receipt.behaviour == CarbonAdjustment.behaviour))
            .where((CarbonAdjustment.exchange == exchange) & CarbonAdjustment.reported_in.is_null())
            .order_by(CarbonAdjustment.id).dicts())
    return list(rows)


def mark_reported(adjustment_ids: Sequence[int], aggregation_id: str) -> None:
    if adjustment_ids:
        (CarbonAdjustment.update(reported_in=aggregation_id)
         .where(CarbonAdjustment.id.in_(list(adjustment_ids)) & CarbonAdjustment.reported_in.is_null())
         .execute())


def held_by_account(holdings: Iterable[Holding]) -> dict[str, list[Holding]]:
    out: dict[str, list[Holding]] = defaultdict(list)
    for h in holdings:
        out[h.account].append(h)
    return out
