"""Neutralisation: a user retires carbon grams against a footprint and gets a certificate.

``neutralise`` moves grams from ``user:<id>:carbon`` to ``@retired`` in one
ledger transaction (kind ``neutralisation``, key ``neutralisation:<certificate>``)
and records which credited behaviours' grams it consumed, oldest act first
(:mod:`hub.carbon_uses`). Retired grams are never spent again.

The client's ``Idempotency-Key`` names one certificate per account: the same
key with the same request returns the original certificate; with another
request it is 409 ``idempotency_conflict``. Both checks run under the ledger
lock, so two requests racing with one key create one certificate, and two
requests racing for the same grams never retire more than the user holds.
"""
from __future__ import annotations

import hashlib
from typing import Any

from . import carbon_uses, db
from .accounts import new_id
from .db import Behaviour, CarbonUse, Certificate, canonical_json, database
from .ledger import IdempotencyConflict, TxRequest, user_carbon
from .queries import _keyset
from .records import PostingRecord

KIND = "neutralisation"
MAX_FOOTPRINT_TEXT = 500
MAX_FOOTPRINT_KEYS = 20
MAX_FOOTPRINT_VALUE = 200


def footprint_problem(footprint: Any) -> str | None:
    """Why ``footprint`` is not acceptable, or None.

    A footprint is free text (1-500 characters), or an object of at most 20
    entries whose keys are short text and whose values are text (up to 200
    characters), integers, decimal numbers or booleans, e.g.
    ``{"kind": "flight", "from": "PEK", "to": "SZX"}``.
    """
    if isinstance(footprint, str):
        if not footprint.strip() or len(footprint) > MAX_FOOTPRINT_TEXT:
            return f"Must be 1-{MAX_FOOTPRINT_TEXT} characters of text, or an object."
        return None
    if not isinstance(footprint, dict):
        return "Must be text or an object."
    if not 1 <= len(footprint) <= MAX_FOOTPRINT_KEYS:
        return f"Must have 1-{MAX_FOOTPRINT_KEYS} entries."
    for key, value in footprint.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64:
            return "Keys must be 1-64 characters."
        if isinstance(value, str):
            if len(value) > MAX_FOOTPRINT_VALUE:
                return f"{key}: text values are at most {MAX_FOOTPRINT_VALUE} characters."
        elif not isinstance(value, (bool, int, float)):
            return f"{key}: values must be text, numbers or booleans."
    return None


def request_hash(grams: int, footprint: Any) -> str:
    return hashlib.sha256(canonical_json({"grams": grams, "footprint": footprint}).encode("utf-8")).hexdigest()


def neutralise(hub: Any, account_id: str, grams: int, footprint: Any, idempotency_key: str) -> tuple[dict, bool]:
    """Retire ``grams`` of the account's carbon; returns ``(certificate, created)``.

    Raises :class:`hub.carbon_uses.InsufficientCarbon` (409) when the account
    holds fewer grams not yet retired or aggregated, and
    :class:`hub.ledger.IdempotencyConflict` (409) for a reused key with another request.
    """
    if type(grams) is not int or grams <= 0:
        raise ValueError("grams must be a positive integer")
    digest = request_hash(grams, footprint)
    with database.atomic():
        db.lock_ledger()  # first: what is available must not change until the grams are taken
        old = Certificate.get_or_none((Certificate.account == account_id)
                                      & (Certificate.idempotency_key == idempotency_key))
        if old is not None:
            if old.request_hash != digest:
                raise IdempotencyConflict(f"Idempotency-Key {idempotency_key!r} was used for another "
                                          f"neutralisation ({old.id}).", key=idempotency_key,
                                          certificate=old.id)
            return certificate(account_id, old.id), False
        taken = carbon_uses.draw(account_id, grams)
        cert_id = new_id("cert")
        memo = {"certificate": cert_id, "account": account_id, "footprint": footprint,
                "draws": [{"behaviour": h.behaviour, "grams": h.grams} for h in taken]}
        ((tx, _),) = hub.ledger.post_many([TxRequest(
            key=f"{KIND}:{cert_id}", kind=KIND, memo=memo,
            postings=(PostingRecord(user_carbon(account_id), "g", -grams),
                      PostingRecord(carbon_uses.RETIRED_ACCOUNT, "g", grams)))])
        now = hub.now()
        Certificate.insert(id=cert_id, account=account_id, idempotency_key=idempotency_key, request_hash=digest,
                           grams=grams, footprint=footprint, tx_seq=tx.seq, created_at=db.to_db(now)).execute()
        carbon_uses.record(carbon_uses.RETIRED, cert_id, taken, tx.seq, now)
    hub.notify("carbonhub_transaction_posted", transaction=tx)
    return certificate(account_id, cert_id), True


# --- reading --------------------------------------------------------------------------------------


def _views(rows: list[Certificate]) -> list[dict[str, Any]]:
    """Certificates with their receipts: one query for all receipts."""
    receipts: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
    if rows:
        uses = (CarbonUse.select(CarbonUse.ref, CarbonUse.behaviour, CarbonUse.grams, Behaviour.scenario,
                                 Behaviour.occurred_at, db.Receipt.methodology, db.Receipt.version)
                .join(Behaviour, on=(Behaviour.id == CarbonUse.behaviour))
                .join(db.Receipt, on=(db.Receipt.behaviour == CarbonUse.behaviour))
                .where(CarbonUse.ref.in_(list(receipts)) & (CarbonUse.kind == carbon_uses.RETIRED))
                .order_by(CarbonUse.id).tuples())
        to_python = Behaviour.occurred_at.python_value
        for ref, behaviour, grams, scenario, occurred_at, methodology, version in uses:
            receipts[ref].append({"behaviour": behaviour, "grams": grams, "scenario": scenario,
                                  "occurred_at": db.from_db(to_python(occurred_at)), "methodology": methodology,
                                  "version": version})
    return [{"id": r.id, "account": r.account, "grams": r.grams, "footprint": r.footprint,
             "created_at": db.from_db(r.created_at), "transaction": r.tx_seq, "receipts": receipts[r.id]}
            for r in rows]


def certificate(account_id: str, cert_id: str) -> dict[str, Any] | None:
    """One certificate of this account with its receipts, or None. Two queries."""
    row = Certificate.get_or_none((Certificate.id == cert_id) & (Certificate.account == account_id))
    return _views([row])[0] if row else None


def certificates_page(account_id: str, *, limit: int, before: tuple | None = None
                      ) -> tuple[list[dict[str, Any]], tuple | None]:
    """The account's certificates, newest first, and the keyset cursor of the next page. Two queries."""
    query = Certificate.select().where(Certificate.account == account_id)
    rows, cursor = _keyset(query, Certificate.created_at, Certificate.id, before, limit)
    return _views(rows), cursor
