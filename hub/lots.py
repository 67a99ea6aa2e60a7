"""Point lots: points are earned in lots that expire; spending takes the first-expiring lots.

A lot is the points one ledger transaction credits to one user, named by the
user's account and that transaction's seq. The ``point_lot`` table is a derived index of the
ledger, written by :func:`index_transactions` (a ledger indexer, see
:class:`hub.ledger.Ledger`) in the database transaction that posts the
points, and rebuilt from the ledger alone by :func:`rebuild`. The ledger stays
the source of truth; what the index reads from a transaction:

- ``memo.lots`` = ``{"account", "spend": [[seq, pts]…], "restore": [[seq, pts]…]}``
  names the lots of that account (by their crediting seq) a transaction takes
  from or gives back (redemption holds and voids, expiries); they must match
  its net posting to the user;
- otherwise points credited to a user open a new lot, expiring at
  ``memo.points_expire_at`` (ISO time; absent: never), and points debited
  (a reversed credit) come first from the reversed credit's lot, then from the
  first-expiring ones.

After every transaction the user's lots hold exactly ``max(balance, 0)``: a
debit no lot can cover leaves a debt that the next lots pay first.

Expiry is a posting, never a filter: :func:`expire_due` moves each expired
remainder to ``@expired`` with the idempotency key ``expire:<account>:<seq>``, under the
ledger lock, so it never races a redemption and running it twice changes
nothing.
"""
from __future__ import annotations

import calendar
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import peewee as pw

from . import db
from .db import Balance, LedgerTransaction, PointLot, Posting, database
from .ledger import InvalidTransaction, LedgerError, TxRequest, balances_of, user_points
from .records import PostingRecord, TransactionRecord

if TYPE_CHECKING:
    from .config import Settings
    from .core import Hub

log = logging.getLogger("carbonhub.points")
EXPIRED = "@expired"
EXPIRY_KIND = "points_expiry"
# Transactions the exchange and the expiry own: they resolve through their state machines, never by reversal.
MANAGED_KINDS = frozenset({"redemption_hold", "redemption_post", "redemption_void", EXPIRY_KIND})
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


class InsufficientPoints(LedgerError):
    code = "insufficient_points"
    status = 409


class NotReversible(LedgerError):
    """A hold, post, void or expiry: resolved by its own state machine, never reversed by hand."""

    code = "not_reversible"
    status = 409


# --- expiry dates -----------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expires_at(settings: "Settings", earned: datetime) -> datetime | None:
    """When points earned at ``earned`` expire: the end of the local day ``points_expire_after_months``
    later (earned on 21 Nov 2026 with 12 months: usable through 21 Nov 2027). None: never."""
    months = settings.rewards.points_expire_after_months
    if not months:
        return None
    tz = settings.timezone
    last = add_months(earned.astimezone(tz).date(), months)
    return datetime.combine(last + timedelta(days=1), time.min, tz).astimezone(timezone.utc)


def expiry_memo(settings: "Settings", earned: datetime) -> dict[str, str]:
    """The memo entry that makes a points credit's lot expire (empty when points never expire).

    Put it in the memo of any transaction that credits points to a user.
    """
    when = expires_at(settings, earned)
    return {"points_expire_at": when.isoformat()} if when else {}


# --- the lot book: one logic for the live index and the rebuild --------------------------------


@dataclass
class Lot:
    seq: int
    account: str
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None
    new: bool = False
    dirty: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return self.account, self.seq

    def fifo_key(self) -> tuple:
        return (self.expires_at is None, self.expires_at or _NEVER, self.seq)


def user_of(account: str) -> str | None:
    """``acc_1`` for ``user:acc_1:points``; None for any other ledger account."""
    if account.startswith("user:") and account.endswith(":points"):
        return account[5:-7]
    return None


def user_deltas(tx: TransactionRecord) -> dict[str, int]:
    """Net points each user gains (or loses) in ``tx``; users with a net of 0 are left out."""
    out: dict[str, int] = defaultdict(int)
    for p in tx.postings:
        if p.unit == "pts":
            user = user_of(p.account)
            if user is not None:
                out[user] += p.amount
    return {a: d for a, d in out.items() if d}


def _when(text: Any) -> datetime | None:
    if not text:
        return None
    return _parse_when(text if isinstance(text, str) else str(text))


@lru_cache(maxsize=256)  # a chunk's credits share one expiry: parse it once
def _parse_when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise InvalidTransaction(f"points_expire_at {text!r} carries no time zone")
    return value.astimezone(timezone.utc)


class LotBook:
    """Lots of some accounts in memory, changed transaction by transaction, then flushed.

    ``load_account(account)`` and ``load_ids(account, seqs)`` fetch lots the book does not
    hold yet (the live index reads them from the database; the rebuild starts
    from nothing and holds every lot).
    """

    def __init__(self, balances: Mapping[str, int], *, load_account: Callable[[str], Iterable[Lot]] | None = None,
                 load_ids: Callable[[str, Sequence[int]], Iterable[Lot]] | None = None):
        self.balances = dict(balances)
        self.lots: dict[tuple[str, int], Lot] = {}
        self._accounts_loaded: set[str] = set()
        self._load_account = load_account
        self._load_ids = load_ids

    # loading
    def _add(self, lots: Iterable[Lot]) -> None:
        for lot in lots:
            self.lots.setdefault(lot.key, lot)

    def lot(self, seq: int, account: str) -> Lot:
        if (account, seq) not in self.lots and self._load_ids is not None:
            self._add(self._load_ids(account, [seq]))
        lot = self.lots.get((account, seq))
        if lot is None:
            raise InvalidTransaction(f"point lot {seq} of {account} does not exist")
        return lot

    def of_account(self, account: str) -> list[Lot]:
        if account not in self._accounts_loaded:
            if self._load_account is not None:
                self._add(self._load_account(account))
            self._accounts_loaded.add(account)
        return [lot for lot in self.lots.values() if lot.account == account and lot.remaining > 0]

    # applying
    def apply(self, tx: TransactionRecord, deltas: Mapping[str, int] | None = None) -> None:
        deltas = user_deltas(tx) if deltas is None else deltas
        if not deltas:
            return
        plan = tx.memo.get("lots") if isinstance(tx.memo, Mapping) else None
        for account, delta in deltas.items():
            before = self.balances.get(account, 0)
            after = self.balances[account] = before + delta
            if plan and plan.get("account") == account:
                self._apply_plan(tx, account, delta, plan)
            elif delta > 0:
                self.lots[(account, tx.seq)] = Lot(seq=tx.seq, account=account, amount=delta, remaining=delta,
                                        earned_at=tx.created_at, expires_at=_when(tx.memo.get("points_expire_at")),
                                        new=True)
                if before < 0:
                    self.reconcile(account, after)
            else:
                self.reconcile(account, after, prefer=tx.reverses)

    def _apply_plan(self, tx: TransactionRecord, account: str, delta: int, plan: Mapping[str, Any]) -> None:
        net = 0
        for lot_id, points in plan.get("restore", ()):
            lot = self.lot(int(lot_id), account)
            if points <= 0 or lot.remaining + points > lot.amount:
                raise InvalidTransaction(f"cannot give {points} pts back to lot {lot_id} "
                                         f"({lot.remaining} of {lot.amount} left)", seq=tx.seq)
            lot.remaining += points
            lot.dirty = True
            net += points
        for lot_id, points in plan.get("spend", ()):
            lot = self.lot(int(lot_id), account)
            if points <= 0 or lot.remaining < points:
                raise InsufficientPoints(f"lot {lot_id} holds {lot.remaining} pts, {points} asked", seq=tx.seq)
            lot.remaining -= points
            lot.dirty = True
            net -= points
        if net != delta:
            raise InvalidTransaction(f"memo.lots moves {net} pts, the postings {delta}", seq=tx.seq)

    def reconcile(self, account: str, balance: int, prefer: int | None = None) -> None:
        """Take points from the account's lots until they hold ``max(balance, 0)`` (``prefer``'s lot first)."""
        lots = self.of_account(account)
        excess = sum(lot.remaining for lot in lots) - max(balance, 0)
        for lot in sorted(lots, key=lambda lot: (lot.seq != prefer, *lot.fifo_key())):
            if excess <= 0:
                break
            take = min(excess, lot.remaining)
            lot.remaining -= take
            lot.dirty = True
            excess -= take

    # writing
    def flush(self) -> None:
        new = [lot for lot in self.lots.values() if lot.new]
        times: dict[datetime | None, str | None] = {None: None}  # a chunk's lots share their times

        def text(when: datetime | None) -> str | None:
            if when not in times:
                times[when] = db.sql_time(when)
            return times[when]

        db.bulk_insert(PointLot, ("account", "seq", "amount", "remaining", "earned_at", "expires_at"),
                       [(lot.account, lot.seq, lot.amount, lot.remaining, text(lot.earned_at), text(lot.expires_at))
                        for lot in new])
        changed = [(lot.remaining, lot.account, lot.seq) for lot in self.lots.values() if lot.dirty and not lot.new]
        if changed:
            p = database.param
            database.cursor().executemany(
                f'UPDATE "point_lot" SET "remaining" = {p} WHERE "account" = {p} AND "seq" = {p}', changed)
        for lot in self.lots.values():
            lot.new = lot.dirty = False


def _lot(row: PointLot) -> Lot:
    return Lot(seq=row.seq, account=row.account, amount=row.amount, remaining=row.remaining,
               earned_at=db.from_db(row.earned_at), expires_at=db.from_db(row.expires_at))


def _load_account(account: str) -> list[Lot]:
    return [_lot(r) for r in PointLot.select().where((PointLot.account == account) & (PointLot.remaining > 0))]


def _load_ids(account: str, seqs: Sequence[int]) -> list[Lot]:
    return [_lot(r) for r in PointLot.select().where((PointLot.account == account) & PointLot.seq.in_(list(seqs)))]


def _refuse_managed_reversals(txs: Sequence[TransactionRecord]) -> None:
    reversed_seqs = [tx.reverses for tx in txs if tx.reverses is not None]
    if not reversed_seqs:
        return
    for seq, kind in db.fetch_in('SELECT "seq", "kind" FROM "ledger_transaction" WHERE "seq" IN ({marks})',
                                 reversed_seqs):
        if kind in MANAGED_KINDS:
            raise NotReversible(f"Transaction {seq} is a {kind}: the exchange or the expiry job resolves it; "
                                f"it is never reversed by hand.", seq=seq)


def index_transactions(txs: Sequence[TransactionRecord]) -> None:
    """The ledger indexer: keep ``point_lot`` in step with newly posted transactions.

    Runs inside the posting's database transaction (balances already updated);
    a plain credit costs one bulk insert per call, a spend or expiry a few
    updates. Raises (rolling the post back) when a transaction would take more
    from a lot than it holds, or reverses a hold, post, void or expiry.
    """
    _refuse_managed_reversals(txs)
    moves = [(tx, d) for tx in txs if (d := user_deltas(tx))]
    if not moves:
        return
    totals: dict[str, int] = defaultdict(int)
    for _, deltas in moves:
        for account, delta in deltas.items():
            totals[account] += delta
    after = balances_of([user_points(a) for a in totals])
    before = {a: after.get((user_points(a), "pts"), 0) - t for a, t in totals.items()}
    book = LotBook(before, load_account=_load_account, load_ids=_load_ids)
    for tx, deltas in moves:
        book.apply(tx, deltas)
    book.flush()


# --- rebuild ------------------------------------------------------------------------------------


@dataclass
class RebuildReport:
    transactions: int = 0
    lots: int = 0
    differences: list[str] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "transactions": self.transactions, "lots": self.lots,
                "differences": self.differences, "written": self.written}


def _points_transactions() -> list[TransactionRecord]:
    """Every transaction that moves a user's points, in seq order, with all its postings."""
    seqs = [s for (s,) in (Posting.select(Posting.tx_seq).distinct()
                           .where((Posting.unit == "pts") & Posting.account.startswith("user:"))
                           .order_by(Posting.tx_seq).tuples())]
    out: list[TransactionRecord] = []
    for i in range(0, len(seqs), 900):
        chunk = seqs[i:i + 900]
        postings: dict[int, list[PostingRecord]] = defaultdict(list)
        for seq, account, unit, amount in (Posting.select(Posting.tx_seq, Posting.account, Posting.unit,
                                                          Posting.amount)
                                           .where(Posting.tx_seq.in_(chunk)).order_by(Posting.id).tuples()):
            postings[seq].append(PostingRecord(account, unit, amount))
        for tx in LedgerTransaction.select().where(LedgerTransaction.seq.in_(chunk)).order_by(LedgerTransaction.seq):
            out.append(TransactionRecord(seq=tx.seq, key=tx.key, kind=tx.kind, created_at=db.from_db(tx.created_at),
                                         postings=tuple(postings[tx.seq]), memo=tx.memo or {}, reverses=tx.reverses))
    return out


def rebuild(write: bool = False) -> RebuildReport:
    """Recompute every lot from the ledger alone and compare with ``point_lot``; ``write`` replaces it.

    Runs under the ledger lock, so nothing moves points meanwhile.
    """
    report = RebuildReport()
    with database.atomic():
        db.lock_ledger()
        txs = _points_transactions()
        book = LotBook({})
        for tx in txs:
            book.apply(tx)
        report.transactions, report.lots = len(txs), len(book.lots)
        stored = {(r.account, r.seq): r for r in PointLot.select()}
        for key in sorted(set(stored) | set(book.lots)):
            want, have = book.lots.get(key), stored.get(key)
            name = f"lot {key[1]} of {key[0]}"
            if have is None:
                report.differences.append(f"{name}: missing (should hold {want.remaining} of {want.amount})")
            elif want is None:
                report.differences.append(f"{name}: no transaction credits it")
            elif (have.amount, have.remaining, db.from_db(have.expires_at)) != \
                    (want.amount, want.remaining, want.expires_at):
                report.differences.append(
                    f"{name}: stored {have.remaining} of {have.amount} pts expiring "
                    f"{db.from_db(have.expires_at)}, the ledger says {want.remaining} of {want.amount} "
                    f"expiring {want.expires_at}")
        if write and report.differences:
            PointLot.delete().execute()
            for lot in book.lots.values():
                lot.new = True
            book.flush()
            report.written = True
    return report


def needs_rebuild() -> bool:
    """True when users hold points but no lot exists (a ledger from before lots)."""
    if PointLot.select().exists():
        return False
    return (Balance.select().where(Balance.account.startswith("user:") & (Balance.unit == "pts")
                                   & (Balance.amount != 0)).exists())


# --- spending -----------------------------------------------------------------------------------


def spend_plan(account_id: str, points: int, now: datetime) -> list[list[int]]:
    """Which lots pay ``points``: the first-expiring ones that have not expired, never-expiring last.

    Call it under the ledger lock (:func:`hub.db.lock_ledger`), in the database
    transaction that posts the spend with ``memo.lots = {"account", "spend": plan}``.
    Raises :class:`InsufficientPoints` when the usable lots (or the balance) fall short.
    """
    p = database.param
    # Raw SQL: it runs for every redemption attempt (peewee's query building would cost more than the query).
    cursor = database.execute_sql(
        f'SELECT "seq", "remaining" FROM "point_lot" WHERE "account" = {p} AND "remaining" > 0 '
        f'AND ("expires_at" IS NULL OR "expires_at" > {p}) ORDER BY "expires_at" IS NULL, "expires_at", "seq"',
        (account_id, db.to_db(now)))
    plan, left = [], points
    for seq, remaining in cursor:
        if left <= 0:
            break
        take = min(left, remaining)
        plan.append([seq, take])
        left -= take
    row = database.execute_sql(f'SELECT "amount" FROM "balance" WHERE "account" = {p} AND "unit" = {p}',
                               (user_points(account_id), "pts")).fetchone()
    available = min(points - left, row[0] if row else 0)
    if available < points:
        raise InsufficientPoints(f"{points} pts are needed; the account can spend {max(available, 0)}.",
                                 needed=points, available=max(available, 0))
    return plan


# --- expiry -------------------------------------------------------------------------------------


@dataclass
class ExpiryResult:
    lots: int = 0
    points: int = 0
    transactions: list[TransactionRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"lots": self.lots, "points": self.points}


def expire_due(hub: "Hub", now: datetime | None = None, batch: int = 500) -> ExpiryResult:
    """Post every lot remainder whose expiry has passed to ``@expired`` (key ``expire:<account>:<seq>``).

    Batches of ``batch`` lots, each one database transaction under the ledger
    lock (read, then post), so a redemption never spends what is being expired,
    and a second run finds nothing left. Tells the plugins after each commit.
    """
    now = now or hub.now()
    when = db.to_db(now)
    result = ExpiryResult()
    last: tuple[datetime, str, int] | None = None
    while True:
        with database.atomic():
            db.lock_ledger()
            query = (PointLot.select().where((PointLot.remaining > 0) & (PointLot.expires_at <= when))
                     .order_by(PointLot.expires_at, PointLot.account, PointLot.seq).limit(batch))
            if last is not None:  # keyset: a lot skipped below is not read again
                when_, account_, seq_ = last
                query = query.where((PointLot.expires_at > when_) | (
                    (PointLot.expires_at == when_) & ((PointLot.account > account_)
                                                      | ((PointLot.account == account_) & (PointLot.seq > seq_)))))
            rows = list(query)
            if not rows:
                break
            last = (rows[-1].expires_at, rows[-1].account, rows[-1].seq)
            keys = {f"expire:{r.account}:{r.seq}": r for r in rows}
            taken = {k for (k,) in db.fetch_in('SELECT "key" FROM "ledger_transaction" WHERE "key" IN ({marks})',
                                               list(keys))}
            reqs = []
            for key, row in keys.items():
                if key in taken:  # cannot happen while the index follows the ledger
                    log.error("lot %s of %s expired before but holds %s pts again; run `carbonhub points rebuild`",
                              row.seq, row.account, row.remaining)
                    continue
                reqs.append(TxRequest(key=key, kind=EXPIRY_KIND, postings=(
                    PostingRecord(user_points(row.account), "pts", -row.remaining),
                    PostingRecord(EXPIRED, "pts", row.remaining)),
                    memo={"account": row.account, "expires_at": db.from_db(row.expires_at).isoformat(),
                          "lots": {"account": row.account, "spend": [[row.seq, row.remaining]]}}))
            posted = hub.ledger.post_many(reqs) if reqs else []
        for tx, created in posted:
            if created:
                result.lots += 1
                result.points += -sum(p.amount for p in tx.postings if p.account != EXPIRED)
                result.transactions.append(tx)
                hub.notify("carbonhub_transaction_posted", transaction=tx)
    return result


# --- the user's view ----------------------------------------------------------------------------


def points_view(account_id: str, now: datetime) -> dict[str, Any]:
    """Balance, lots still holding points (first-expiring first), what expires next, what is held."""
    from .db import Redemption  # the exchange's table; its holds are points in escrow

    balance = Balance.get_or_none((Balance.account == user_points(account_id)) & (Balance.unit == "pts"))
    rows = list(PointLot.select().where((PointLot.account == account_id) & (PointLot.remaining > 0))
                .order_by(PointLot.expires_at.is_null(), PointLot.expires_at, PointLot.seq))
    lots = [_lot(r) for r in rows]
    overdue = sum(lot.remaining for lot in lots if lot.expires_at is not None and lot.expires_at <= now)
    upcoming = [lot for lot in lots if lot.expires_at is not None and lot.expires_at > now]
    next_expiry = None
    if upcoming:
        first = upcoming[0].expires_at
        next_expiry = {"expires_at": first, "points": sum(lot.remaining for lot in upcoming if lot.expires_at == first)}
    held = (Redemption.select(pw.fn.COALESCE(pw.fn.SUM(Redemption.cost), 0))
            .where((Redemption.account == account_id) & (Redemption.status == "held")).scalar())
    total = balance.amount if balance else 0
    return {
        "account": account_id, "balance": total,
        "spendable": max(0, min(total, sum(lot.remaining for lot in lots) - overdue)),
        "held": int(held or 0), "expired_pending": overdue, "next_expiry": next_expiry,
        "lots": [{"id": lot.seq, "points": lot.amount, "remaining": lot.remaining, "earned_at": lot.earned_at,
                  "expires_at": lot.expires_at} for lot in lots],
    }
