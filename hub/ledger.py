"""Double-entry, append-only, hash-chained ledger in two units: ``g`` and ``pts``.

- A transaction's postings sum to zero per unit.
- An idempotency key names one transaction forever: the same key with the same
  content returns the original; with other content it is a conflict (409).
- Nothing is updated or deleted; a correction is a reversal transaction that
  points at the original (at most one per original, enforced by a unique index).
- Balances are updated in the same database transaction as the postings.
- Each transaction stores ``prev_hash`` and ``hash`` (sha256 over the previous
  hash and its canonical content), so :func:`verify` finds any alteration.
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

import peewee as pw

from . import db
from .db import Balance, LedgerHead, LedgerTransaction, Posting, canonical_json, database
from .records import PostingRecord, TransactionRecord

UNITS = ("g", "pts")
# System accounts take up to two qualifiers: @issuer:metro, @pool:cneeex, @issuer:aggregation:cneeex.
_ACCOUNT = re.compile(r"^(user:[A-Za-z0-9_-]+:(carbon|points)|@[a-z]+(:[A-Za-z0-9_.-]+){0,2})$")


class LedgerError(Exception):
    code = "ledger_error"
    status = 422

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.details = details


class InvalidTransaction(LedgerError):
    code = "invalid_transaction"


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"
    status = 409


class AlreadyReversed(LedgerError):
    code = "already_reversed"
    status = 409


class TransactionNotFound(LedgerError):
    code = "transaction_not_found"
    status = 404


@dataclass(frozen=True)
class TxRequest:
    """What a caller asks the ledger to post."""

    key: str
    kind: str
    postings: tuple[PostingRecord, ...]
    memo: Mapping[str, Any] = field(default_factory=dict)
    methodology: str | None = None
    reverses: int | None = None

    def content_hash(self) -> str:
        return _sha(canonical_json({
            "kind": self.kind, "memo": self.memo, "methodology": self.methodology,
            "reverses": self.reverses,
            "postings": sorted([p.account, p.unit, p.amount] for p in self.postings),
        }))


def user_carbon(account_id: str) -> str:
    return f"user:{account_id}:carbon"


def user_points(account_id: str) -> str:
    return f"user:{account_id}:points"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, seq: int, key: str, kind: str, content_hash: str, created_at: datetime) -> str:
    """Hash of one transaction, given its predecessor's hash.

    ``created_at`` is naive UTC as stored. The content hash already covers
    postings, memo, methodology and the reversed transaction.
    """
    return _sha(f"{prev_hash}|{seq}|{key}|{kind}|{content_hash}|{created_at.isoformat()}")


@lru_cache(maxsize=65536)
def _valid_account(name: str) -> bool:
    return _ACCOUNT.match(name) is not None


def validate(req: TxRequest) -> None:
    if not req.key or len(req.key) > 200:
        raise InvalidTransaction("idempotency key must be 1-200 characters", key=req.key)
    if len(req.postings) < 2:
        raise InvalidTransaction("a transaction needs at least two postings", key=req.key)
    sums: dict[str, int] = defaultdict(int)
    for p in req.postings:
        if p.unit not in UNITS:
            raise InvalidTransaction(f"unknown unit {p.unit!r}", key=req.key)
        if type(p.amount) is not int or p.amount == 0:
            raise InvalidTransaction("amounts are non-zero integers", key=req.key, amount=repr(p.amount))
        if not _valid_account(p.account):
            raise InvalidTransaction(f"bad account name {p.account!r}", key=req.key)
        sums[p.unit] += p.amount
    unbalanced = {u: s for u, s in sums.items() if s}
    if unbalanced:
        raise InvalidTransaction(f"postings do not sum to zero: {unbalanced}", key=req.key)


def _record(tx: LedgerTransaction, postings: Sequence[PostingRecord]) -> TransactionRecord:
    return TransactionRecord(seq=tx.seq, key=tx.key, kind=tx.kind, created_at=db.from_db(tx.created_at),
                             postings=tuple(postings), memo=tx.memo or {}, reverses=tx.reverses)


Indexer = Callable[[Sequence[TransactionRecord]], None]


class Ledger:
    def __init__(self, clock: Callable[[], datetime], indexers: Sequence[Indexer] = ()):
        """``indexers`` keep derived indexes (e.g. the point lots of :mod:`hub.lots`) in step with the
        postings: each is called with the new transactions inside the database transaction that posts
        them, after the balances are updated; an exception rolls the whole post back."""
        self._clock = clock
        self._indexers = tuple(indexers)

    # --- writing ---------------------------------------------------------

    def post(self, req: TxRequest) -> tuple[TransactionRecord, bool]:
        """Post one transaction atomically; returns ``(transaction, created)``."""
        with database.atomic():
            (result,) = self.post_many([req])
        return result

    def post_many(self, reqs: Sequence[TxRequest], *, new_keys: bool = False
                  ) -> list[tuple[TransactionRecord, bool]]:
        """Post several transactions in the caller's database transaction.

        Must run inside ``database.atomic()``. Locks the chain head, so writers
        are serialised; existing keys are answered idempotently. ``new_keys``:
        the caller minted every key for this call (ingestion keys credits by a
        fresh behaviour id), so looking them up is skipped; the unique index on
        the key still refuses a collision, rolling the caller's transaction back.
        """
        for req in reqs:
            validate(req)
        head = db.lock_ledger()
        keys = [r.key for r in reqs]
        if len(set(keys)) != len(keys):
            raise InvalidTransaction("the same idempotency key twice in one call")
        # Keys first (cheap raw query); full rows only for the few that exist.
        found = [] if new_keys else [
            k for (k,) in db.fetch_in('SELECT "key" FROM "ledger_transaction" WHERE "key" IN ({marks})', keys)]
        existing = {t.key: t for t in db.select_in(
            lambda chunk: LedgerTransaction.select().where(LedgerTransaction.key.in_(chunk)), found)}
        reversed_seqs = [r.reverses for r in reqs if r.reverses is not None and r.key not in existing]
        if len(set(reversed_seqs)) != len(reversed_seqs):
            twice = next(s for s in reversed_seqs if reversed_seqs.count(s) > 1)
            raise AlreadyReversed(f"transaction {twice} is reversed twice in one call", seq=twice)
        if reversed_seqs:
            already = LedgerTransaction.select(LedgerTransaction.reverses).where(
                LedgerTransaction.reverses.in_(reversed_seqs)).first()
            if already is not None:
                raise AlreadyReversed(f"transaction {already.reverses} is already reversed",
                                      seq=already.reverses)

        created_at = db.to_db(self._clock())
        created = db.from_db(created_at)
        created_text = created_at.isoformat(" ")  # as stored (db.sql_time), formatted once per call
        seq, prev = head.seq, head.hash
        tx_rows, posting_rows, deltas = [], [], defaultdict(int)
        out: list[tuple[TransactionRecord, bool]] = []
        for req in reqs:
            content = req.content_hash()
            old = existing.get(req.key)
            if old is not None:
                if old.content_hash != content:
                    raise IdempotencyConflict(f"idempotency key {req.key!r} was used for another transaction",
                                              key=req.key, seq=old.seq)
                out.append((_record(old, self.postings_of(old.seq)), False))
                continue
            seq += 1
            digest = chain_hash(prev, seq, req.key, req.kind, content, created_at)
            tx_rows.append((seq, req.key, req.kind, content, req.methodology, canonical_json(req.memo),
                            req.reverses, created_text, prev, digest))
            for p in req.postings:
                posting_rows.append((seq, p.account, p.unit, p.amount))
                deltas[(p.account, p.unit)] += p.amount
            prev = digest
            out.append((TransactionRecord(seq=seq, key=req.key, kind=req.kind, created_at=created,
                                          postings=req.postings, memo=req.memo, reverses=req.reverses), True))
        if tx_rows:
            db.bulk_insert(LedgerTransaction, ("seq", "key", "kind", "content_hash", "methodology", "memo",
                                               "reverses", "created_at", "prev_hash", "hash"), tx_rows)
            db.bulk_insert(Posting, ("tx_seq", "account", "unit", "amount"), posting_rows)
            apply_balance_deltas(deltas)
            LedgerHead.update(seq=seq, hash=prev).where(LedgerHead.id == 1).execute()
            if self._indexers:
                new = [tx for tx, created in out if created]
                for indexer in self._indexers:
                    indexer(new)
        return out

    def reverse(self, seq: int, reason: str, key: str | None = None,
                memo: Mapping[str, Any] | None = None) -> tuple[TransactionRecord, bool]:
        """Post the reversal of transaction ``seq`` (idempotent on its key)."""
        with database.atomic():
            original = LedgerTransaction.get_or_none(LedgerTransaction.seq == seq)
            if original is None:
                raise TransactionNotFound(f"no transaction {seq}", seq=seq)
            if original.reverses is not None:
                raise InvalidTransaction("a reversal cannot itself be reversed", seq=seq)
            postings = tuple(PostingRecord(p.account, p.unit, -p.amount) for p in self.postings_of(seq))
            req = TxRequest(key=key or f"reversal:{seq}", kind="reversal", postings=postings,
                            memo={"reason": reason, **(memo or {})}, methodology=original.methodology,
                            reverses=seq)
            done = LedgerTransaction.get_or_none(LedgerTransaction.reverses == seq)
            if done is not None and (done.key != req.key or done.content_hash != req.content_hash()):
                # A retry of the same reversal is answered below; anything else is a second one.
                raise AlreadyReversed(f"transaction {seq} is already reversed by {done.seq}", seq=seq,
                                      reversal=done.seq)
            (result,) = self.post_many([req])
            return result

    # --- reading ---------------------------------------------------------

    def get(self, seq: int) -> TransactionRecord:
        tx = LedgerTransaction.get_or_none(LedgerTransaction.seq == seq)
        if tx is None:
            raise TransactionNotFound(f"no transaction {seq}", seq=seq)
        return _record(tx, self.postings_of(seq))

    @staticmethod
    def postings_of(seq: int) -> list[PostingRecord]:
        return [PostingRecord(p.account, p.unit, p.amount)
                for p in Posting.select().where(Posting.tx_seq == seq).order_by(Posting.id)]

    @staticmethod
    def balance(account: str, unit: str) -> int:
        row = Balance.get_or_none((Balance.account == account) & (Balance.unit == unit))
        return row.amount if row else 0


def apply_balance_deltas(deltas: Mapping[tuple[str, str], int]) -> None:
    """Add deltas to balances (insert, or add to the existing amount)."""
    db.upsert_add(Balance, ("account", "unit"), ("amount",),
                  [(a, u, d) for (a, u), d in deltas.items() if d])


# --- verification -----------------------------------------------------------


@dataclass
class VerifyReport:
    transactions: int = 0
    accounts: int = 0
    problems: list[str] = field(default_factory=list)
    first_break: int | None = None
    head_seq: int = 0
    head_hash: str = db.GENESIS_HASH  # record it outside the database to detect a rewritten tail later

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, seq: int | None = None) -> None:
        self.problems.append(message)
        if seq is not None and (self.first_break is None or seq < self.first_break):
            self.first_break = seq

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "transactions": self.transactions, "accounts": self.accounts,
                "first_break": self.first_break, "problems": self.problems, "head_seq": self.head_seq,
                "head_hash": self.head_hash}


def verify(page: int = 5000, max_problems: int = 100, anchors: Mapping[int, str] | None = None) -> VerifyReport:
    """Recompute the chain and every balance from postings; report where it breaks.

    ``anchors`` maps seq -> hash as recorded earlier outside the database (e.g.
    the ``head_hash`` of a previous report): someone able to rewrite the whole
    tail of the chain, head included, cannot also match those.
    """
    anchors = dict(anchors or {})
    report = VerifyReport()
    prev_hash, expected_seq, last_seq = db.GENESIS_HASH, 1, 0
    sums: dict[tuple[str, str], int] = defaultdict(int)
    while len(report.problems) < max_problems:
        txs = list(LedgerTransaction.select().where(LedgerTransaction.seq > last_seq)
                   .order_by(LedgerTransaction.seq).limit(page))
        if not txs:
            break
        by_tx: dict[int, list[PostingRecord]] = defaultdict(list)
        for p in (Posting.select().where(Posting.tx_seq.between(txs[0].seq, txs[-1].seq))
                  .order_by(Posting.tx_seq, Posting.id).tuples().iterator()):
            _, tx_seq, account, unit, amount = p
            by_tx[tx_seq].append(PostingRecord(account, unit, amount))
        for tx in txs:
            report.transactions += 1
            if tx.seq != expected_seq:
                report.fail(f"seq {expected_seq}..{tx.seq - 1}: transactions missing from the chain", expected_seq)
            postings = by_tx.get(tx.seq, [])
            req = TxRequest(key=tx.key, kind=tx.kind, postings=tuple(postings), memo=tx.memo or {},
                            methodology=tx.methodology, reverses=tx.reverses)
            content = req.content_hash()
            if content != tx.content_hash:
                report.fail(f"seq {tx.seq}: content altered (postings, memo or methodology no longer "
                            f"match the stored content hash)", tx.seq)
            if tx.prev_hash != prev_hash:
                report.fail(f"seq {tx.seq}: prev_hash {tx.prev_hash[:12]}… does not match the hash of "
                            f"the previous transaction {prev_hash[:12]}…", tx.seq)
            recomputed = chain_hash(tx.prev_hash, tx.seq, tx.key, tx.kind, tx.content_hash, tx.created_at)
            if recomputed != tx.hash:
                report.fail(f"seq {tx.seq}: stored hash {tx.hash[:12]}… differs from recomputed "
                            f"{recomputed[:12]}…", tx.seq)
            unit_sums: dict[str, int] = defaultdict(int)
            for p in postings:
                unit_sums[p.unit] += p.amount
                sums[(p.account, p.unit)] += p.amount
            bad = {u: s for u, s in unit_sums.items() if s}
            if bad or len(postings) < 2:
                report.fail(f"seq {tx.seq}: postings do not balance ({dict(unit_sums)}, "
                            f"{len(postings)} postings)", tx.seq)
            if tx.seq in anchors and anchors.pop(tx.seq) != tx.hash:
                report.fail(f"seq {tx.seq}: hash differs from the anchor recorded for it", tx.seq)
            prev_hash, expected_seq, last_seq = tx.hash, tx.seq + 1, tx.seq

    report.head_seq, report.head_hash = last_seq, prev_hash
    for seq in sorted(anchors):
        report.fail(f"seq {seq}: anchored transaction is missing (the ledger was cut short)", seq)
    head = LedgerHead.get_or_none(LedgerHead.id == 1)
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        report.fail(f"chain head says seq {head.seq} but the last transaction is seq {last_seq}"
                    " (transactions removed or head altered)", min(head.seq, last_seq) + 1)
    orphans = Posting.select(pw.fn.COUNT(Posting.id)).where(Posting.tx_seq > last_seq).scalar()
    if orphans:
        report.fail(f"{orphans} postings belong to no transaction")

    stored = {(b.account, b.unit): b.amount for b in Balance.select().iterator()}
    report.accounts = len(set(stored) | set(sums))
    for key in sorted(set(stored) | set(sums)):
        if stored.get(key, 0) != sums.get(key, 0):
            report.fail(f"balance {key[0]} {key[1]}: stored {stored.get(key, 0)}, postings sum "
                        f"{sums.get(key, 0)}")
    return report


def balances_of(accounts: Iterable[str]) -> dict[tuple[str, str], int]:
    """Balances of ``accounts`` (every unit); raw SQL because the lot index asks once per chunk."""
    return {(a, u): amount for a, u, amount in db.fetch_in(
        'SELECT "account", "unit", "amount" FROM "balance" WHERE "account" IN ({marks})', list(accounts))}
