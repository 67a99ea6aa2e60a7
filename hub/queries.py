"""Read-only queries behind the HTTP API: accounts, consents, ledger, behaviours, inbox.

Each function returns plain dicts (timezone-aware datetimes), runs a fixed,
small number of queries per call (never one per row) and pages with keysets:
ledger pages by transaction ``seq``, behaviours and inbox by ``(time, id)``.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from . import carbon_uses, db
from .accounts import consents_of
from .db import Account, Behaviour, InboxRecord, LedgerTransaction, Posting, Receipt
from .ledger import balances_of, user_carbon, user_points

Cursor = tuple[datetime, str]  # (naive UTC time, id) of the last row of the previous page


def account_exists(account_id: str) -> bool:
    return Account.select(Account.id).where(Account.id == account_id).exists()


def account_view(account_id: str) -> dict[str, Any] | None:
    """The account with its balances (four queries), or None.

    ``carbon_g`` is what the user still holds; the grams they retired and those
    pooled for an exchange are shown beside it, and the three add up to the
    lifetime figure (every gram credited and not reversed).
    """
    row = Account.get_or_none(Account.id == account_id)
    if row is None:
        return None
    carbon, points = user_carbon(account_id), user_points(account_id)
    balances = balances_of([carbon, points])
    held, used = balances.get((carbon, "g"), 0), carbon_uses.summary(account_id)
    return {"id": row.id, "bank_ref": row.bank_ref, "opened_at": db.from_db(row.opened_at),
            "status": row.status,
            "balances": {"carbon_g": held, "points": balances.get((points, "pts"), 0)},
            "carbon": {"held_g": held, "retired_g": used["retired_g"], "aggregated_g": used["aggregated_g"],
                       "lifetime_g": held + used["retired_g"] + used["aggregated_g"]}}


def consents_view(account_id: str) -> dict[str, Any]:
    current, log = consents_of(account_id)
    return {
        "account": account_id,
        "consents": [{"scenario": c.scenario, "granted": c.granted, "updated_at": db.from_db(c.updated_at)}
                     for c in current],
        "log": [{"scenario": e.scenario, "action": e.action, "at": db.from_db(e.at), "source": e.source}
                for e in log],
    }


def consent_state(account_id: str, scenario: str) -> dict[str, Any]:
    row = db.Consent.get_or_none((db.Consent.account == account_id) & (db.Consent.scenario == scenario))
    return {"account": account_id, "scenario": scenario, "granted": bool(row and row.granted),
            "updated_at": db.from_db(row.updated_at) if row else None}


def local_day_bounds(first: date | None, last: date | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` in naive UTC covering the local days ``first``..``last`` inclusive."""
    start = db.to_db(datetime.combine(first, time.min, tz)) if first else None
    end = db.to_db(datetime.combine(last + timedelta(days=1), time.min, tz)) if last else None
    return start, end


# --- ledger ---------------------------------------------------------------------------


def ledger_page(account_id: str, *, limit: int, before: int | None = None, scenario: str | None = None,
                start: datetime | None = None, end: datetime | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """The user's postings, newest transaction first, and the cursor of the next page.

    One entry per posting to ``user:<id>:carbon`` or ``user:<id>:points`` with its
    transaction. A page holds at most ``limit`` entries but never splits a
    transaction (a single transaction larger than ``limit`` is returned whole);
    ``next`` is the seq to pass as ``before``. ``start``/``end`` are naive UTC
    bounds on the transaction time (``[start, end)``). Two queries.
    """
    accounts = {user_carbon(account_id): "carbon", user_points(account_id): "points"}
    # Query 1: the seqs of up to limit + 1 transactions (each has >= 1 entry, so enough for a page).
    seqs_q = (Posting.select(Posting.tx_seq).distinct()
              .where(Posting.account.in_(list(accounts))))
    if before is not None:
        seqs_q = seqs_q.where(Posting.tx_seq < before)
    if start is not None or end is not None:
        seqs_q = seqs_q.join(LedgerTransaction, on=(Posting.tx_seq == LedgerTransaction.seq))
        if start is not None:
            seqs_q = seqs_q.where(LedgerTransaction.created_at >= start)
        if end is not None:
            seqs_q = seqs_q.where(LedgerTransaction.created_at < end)
    if scenario is not None:
        # A scenario's credits (and their reversals) move its issuer account.
        issuer = Posting.alias("issuer")
        seqs_q = seqs_q.where(pw.fn.EXISTS(
            issuer.select(pw.SQL("1")).where((issuer.tx_seq == Posting.tx_seq)
                                             & (issuer.account == f"@issuer:{scenario}"))))
    seqs = [s for (s,) in seqs_q.order_by(Posting.tx_seq.desc()).limit(limit + 1).tuples()]
    if not seqs:
        return [], None

    # Query 2: those transactions' postings to the user's accounts.
    rows = (Posting.select(Posting.tx_seq, Posting.account, Posting.unit, Posting.amount,
                           LedgerTransaction.created_at, LedgerTransaction.kind, LedgerTransaction.methodology,
                           LedgerTransaction.memo, LedgerTransaction.reverses)
            .join(LedgerTransaction, on=(Posting.tx_seq == LedgerTransaction.seq))
            .where(Posting.tx_seq.in_(seqs) & Posting.account.in_(list(accounts)))
            .order_by(Posting.tx_seq.desc(), Posting.id).tuples())
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for seq, account, unit, amount, created_at, kind, methodology, memo, reverses in rows:
        memo = memo or {}
        by_seq.setdefault(seq, []).append({
            "seq": seq, "created_at": db.from_db(created_at), "kind": kind, "account": accounts[account],
            "unit": unit, "amount": amount, "scenario": memo.get("scenario"), "behaviour": memo.get("behaviour"),
            "partner": memo.get("partner"), "event_id": memo.get("event_id"), "methodology": methodology,
            "reverses": reverses, "reason": memo.get("reason"),
        })
    entries: list[dict[str, Any]] = []
    last_seq = None
    for seq in seqs:
        tx_entries = by_seq.get(seq, [])
        if entries and len(entries) + len(tx_entries) > limit:
            break
        entries.extend(tx_entries)
        last_seq = seq
    more = seqs.index(last_seq) + 1 < len(seqs)
    return entries, (last_seq if more else None)


# --- behaviours and receipts ----------------------------------------------------------------


def _keyset(query: pw.ModelSelect, time_field: pw.Field, id_field: pw.Field, cursor: Cursor | None,
            limit: int) -> tuple[list[Any], Cursor | None]:
    if cursor is not None:
        at, ident = cursor
        query = query.where((time_field < at) | ((time_field == at) & (id_field < ident)))
    rows = list(query.order_by(time_field.desc(), id_field.desc()).limit(limit + 1))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, (getattr(last, time_field.name), getattr(last, id_field.name))


def _behaviour(row: Behaviour) -> dict[str, Any]:
    detail = row.detail or {}
    return {
        "id": row.id, "scenario": row.scenario, "partner": row.partner, "event_id": row.event_id,
        "status": row.status, "reason": row.reason, "message": detail.get("message"), "field": detail.get("field"),
        "occurred_at": db.from_db(row.occurred_at), "quantity": row.quantity, "unit": row.unit,
        "attributes": row.attributes, "grams": row.grams, "points": row.points, "transaction": row.tx_seq,
        "duplicate_of": row.duplicate_of, "created_at": db.from_db(row.created_at),
    }


def behaviours_page(account_id: str, *, limit: int, before: Cursor | None = None, status: str | None = None,
                    scenario: str | None = None) -> tuple[list[dict[str, Any]], Cursor | None]:
    """The account's behaviours (one per processing attempt), newest processed first. One query."""
    query = Behaviour.select().where(Behaviour.account == account_id)
    if status:
        query = query.where(Behaviour.status == status)
    if scenario:
        query = query.where(Behaviour.scenario == scenario)
    rows, cursor = _keyset(query, Behaviour.created_at, Behaviour.id, before, limit)
    return [_behaviour(r) for r in rows], cursor


def explain(receipt: dict[str, Any]) -> str:
    """The computation in words and numbers, e.g. for the app's "why this many grams"."""
    diff = Decimal(receipt["baseline_g"]) - Decimal(receipt["project_g"])
    text = (f"{receipt['formula']} = {diff:f} g, rounded down to {receipt['computed_g']} g")
    for cap in receipt["caps"]:
        text += (f"; {cap['cap']} cap of {cap['limit']} g with {cap['used_before']} g already credited "
                 f"leaves {cap['credited_g']} g")
    return text + f"; credited {receipt['credited_g']} g"


def _receipt(row: Receipt) -> dict[str, Any]:
    out = {
        "behaviour": row.behaviour, "methodology": row.methodology, "version": row.version,
        "quantity": row.quantity, "unit": row.unit, "factors": row.factors or [],
        "baseline_g": row.baseline_g, "project_g": row.project_g, "computed_g": row.computed_g,
        "credited_g": row.credited_g, "formula": row.formula, "caps": row.caps or [], "points": row.points or [],
        "created_at": db.from_db(row.created_at),
    }
    out["explanation"] = explain(out)
    return out


def behaviour_detail(account_id: str, behaviour_id: str) -> dict[str, Any] | None:
    """One behaviour of this account with its receipt; None if it is not this account's.

    A duplicate shows the receipt of the credit it duplicates (when that credit is
    the same account's). Three queries.
    """
    row = Behaviour.get_or_none((Behaviour.id == behaviour_id) & (Behaviour.account == account_id))
    if row is None:
        return None
    out = _behaviour(row)
    credited = row.id if row.status == "accepted" else row.duplicate_of
    receipt = None
    if credited:
        receipt = (Receipt.select(Receipt).join(Behaviour, on=(Receipt.behaviour == Behaviour.id))
                   .where((Receipt.behaviour == credited) & (Behaviour.account == account_id)).first())
    out["receipt"] = _receipt(receipt) if receipt else None
    reversal = (LedgerTransaction.select(LedgerTransaction.seq)
                .where(LedgerTransaction.reverses == row.tx_seq).first() if row.tx_seq else None)
    out["reversed_by"] = reversal.seq if reversal else None
    return out


# --- inbox (admin) ----------------------------------------------------------------------------


def inbox_page(*, limit: int, before: Cursor | None = None, status: str | None = None, reason: str | None = None,
               partner: str | None = None) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Inbox records, newest received first, filtered. One query."""
    query = InboxRecord.select()
    if status:
        query = query.where(InboxRecord.status == status)
    if reason:
        query = query.where(InboxRecord.reason == reason)
    if partner:
        query = query.where(InboxRecord.partner == partner)
    rows, cursor = _keyset(query, InboxRecord.received_at, InboxRecord.id, before, limit)
    return [{"id": r.id, "partner": r.partner, "batch_id": r.batch_id, "source": r.source,
             "received_at": db.from_db(r.received_at), "updated_at": db.from_db(r.updated_at),
             "event_id": r.event_id, "status": r.status, "reason": r.reason, "detail": r.detail,
             "attempts": r.attempts, "payload": r.payload} for r in rows], cursor
