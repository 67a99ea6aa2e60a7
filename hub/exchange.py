"""The benefit exchange: the catalogue the bank configures, and two-phase redemptions.

A redemption moves through one state machine::

    held ──fulfilled──▶ fulfilled      (escrow → @benefits:<partner>)
      └────voided─────▶ voided         (escrow → the user, into the very lots it came from)

1. **Hold** (one database transaction, under the ledger lock): check the
   benefit is open, the user eligible and under the per-user limit, take one
   from stock, pick the first-expiring lots (:func:`hub.lots.spend_plan`) and
   post ``redeem:<id>:hold``: the points move from ``user:<id>:points`` to
   ``@escrow:redemptions``. Either all of it happens or none.
2. **Fulfil** (outside any database transaction): the plugin that registered
   the benefit delivers it (``carbonhub_fulfil_benefit``); a retryable error is
   retried with exponential backoff, ``redemptions.fulfil_attempts`` times.
3. **Resolve** (one database transaction): a guarded
   ``UPDATE … WHERE status = 'held'`` decides, exactly once, between posting
   ``redeem:<id>:post`` (escrow → ``@benefits:<partner>``) and voiding with
   ``redeem:<id>:void`` (escrow → the user, restoring the original lots and
   their expiries; a lot that expired meanwhile goes to ``@expired`` instead)
   plus the stock given back. Whoever loses that race (a late fulfilment after
   the stale-holds job voided the hold) asks the partner to cancel.

The stale-holds job (:meth:`Exchange.void_stale`) voids holds past their
deadline (``redemptions.hold_deadline_s``), e.g. after a crash between 1 and 3.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, time as dtime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping

from . import codes, db, lots
from .accounts import new_id
from .config import BenefitConfig
from .db import Account, Behaviour, BenefitStock, LedgerTransaction, PointLot, Redemption, canonical_json, database
from .ledger import TxRequest, user_points
from .records import (BenefitSpec, Fulfilment, FulfilmentError, PermanentFulfilmentError, PostingRecord,
                      RedemptionRecord, TransactionRecord)

if TYPE_CHECKING:
    from .core import Hub

log = logging.getLogger("carbonhub.exchange")
ESCROW = "@escrow:redemptions"
HELD, FULFILLED, VOIDED = "held", "fulfilled", "voided"


def sink(partner: str) -> str:
    """The ledger account that receives the points of a partner's fulfilled redemptions."""
    return f"@benefits:{partner}"


class ExchangeError(Exception):
    """A redemption the exchange refuses; ``code`` and ``status`` are the API's."""

    code, status = "exchange_error", 409

    def __init__(self, message: str, fields: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message, self.fields = message, dict(fields) if fields else None


class UnknownBenefit(ExchangeError):
    code, status = "unknown_benefit", 404


class UnknownAccount(ExchangeError):
    code, status = "not_found", 404


class BenefitClosed(ExchangeError):
    code = "benefit_closed"


class NotEligible(ExchangeError):
    code = "not_eligible"


class LimitReached(ExchangeError):
    code = "limit_reached"


class OutOfStock(ExchangeError):
    code = "out_of_stock"


class InsufficientPoints(ExchangeError):
    code = "insufficient_points"


class IdempotencyKeyReused(ExchangeError):
    code = "idempotency_conflict"


class InvalidDetails(ExchangeError):
    code, status = "validation_error", 422


# Every refusal, for docs and the API's error list.
REFUSALS = (UnknownBenefit, BenefitClosed, NotEligible, LimitReached, OutOfStock, InsufficientPoints,
            IdempotencyKeyReused)


@dataclass
class _Benefit:
    spec: BenefitSpec
    conf: BenefitConfig
    owner: str  # the plugin that registered it


def request_hash(benefit: str, details: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"benefit": benefit, "details": dict(details)}).encode()).hexdigest()


class Exchange:
    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it to check the backoff
        self._callers: dict[str, tuple[Any, Any]] = {}

    # --- catalogue ------------------------------------------------------------------------------

    def benefit(self, benefit_id: str) -> _Benefit:
        spec = self.hub.registry.benefits.get(benefit_id)
        conf = self.hub.settings.benefits.get(benefit_id)
        if spec is None or conf is None:
            raise UnknownBenefit(f"No benefit {benefit_id!r}.")
        return _Benefit(spec, conf, self.hub.registry.owner[("benefit", benefit_id)])

    def _today(self, now: datetime) -> Any:
        return now.astimezone(self.hub.settings.timezone).date()

    def _closed_reason(self, b: _Benefit, now: datetime) -> str | None:
        if not b.conf.enabled:
            return f"{b.spec.title!r} is switched off."
        today = self._today(now)
        if b.conf.start and today < b.conf.start:
            return f"{b.spec.title!r} opens on {b.conf.start}."
        if b.conf.end and today > b.conf.end:
            return f"{b.spec.title!r} closed on {b.conf.end}."
        return None

    def _period_start(self, period: str, now: datetime) -> datetime | None:
        """Start of the current local day / ISO week / month (None for ``ever``)."""
        today = self._today(now)
        first = {"day": today, "week": today - timedelta(days=today.weekday()),
                 "month": today.replace(day=1)}.get(period)
        return None if first is None else datetime.combine(first, dtime.min, self.hub.settings.timezone)

    def _redeemed(self, account_id: str, b: _Benefit, now: datetime) -> int:
        query = Redemption.select().where((Redemption.account == account_id) & (Redemption.benefit == b.spec.id)
                                          & (Redemption.status != VOIDED))
        start = self._period_start(b.conf.limit_period, now)
        if start is not None:
            query = query.where(Redemption.created_at >= db.to_db(start))
        return query.count()

    @staticmethod
    def _green(account_id: str) -> bool:
        return Behaviour.select().where((Behaviour.account == account_id) & (Behaviour.status == "accepted")).exists()

    @staticmethod
    def _taken(benefit_id: str) -> int:
        # Raw SQL: under contention this runs for every attempt, and peewee's query building costs more.
        row = database.execute_sql(f'SELECT "taken" FROM "benefit_stock" WHERE "benefit" = {database.param}',
                                   (benefit_id,)).fetchone()
        return row[0] if row else 0

    def _refusal(self, account_id: str, b: _Benefit, now: datetime, cost: int, *,
                 points: bool = True) -> ExchangeError | None:
        """The first reason ``account_id`` cannot redeem ``b`` now (unlocked read), or None."""
        closed = self._closed_reason(b, now)
        if closed:
            return BenefitClosed(closed)
        if b.conf.requires_green_record and not self._green(account_id):
            return NotEligible(f"{b.spec.title!r} is for users with at least one credited low-carbon act.")
        if b.conf.limit_per_user is not None and self._redeemed(account_id, b, now) >= b.conf.limit_per_user:
            per = "" if b.conf.limit_period == "ever" else f" a {b.conf.limit_period}"
            return LimitReached(f"{b.spec.title!r} can be redeemed {b.conf.limit_per_user} time(s){per} per user.")
        if b.conf.stock is not None and self._taken(b.spec.id) >= b.conf.stock:
            return OutOfStock(f"{b.spec.title!r} is out of stock.")
        if points and cost:
            try:
                lots.spend_plan(account_id, cost, now)
            except lots.InsufficientPoints as exc:
                return InsufficientPoints(str(exc), {"needed": cost, "available": exc.details["available"]})
        return None

    def catalogue(self, account_id: str | None = None) -> list[dict[str, Any]]:
        """Benefits open now (configured, registered, in their window; welcome gifts excluded).

        With ``account_id``: whether that user can redeem each now, and why not.
        """
        now = self.hub.now()
        out = []
        for benefit_id in sorted(self.hub.settings.benefits):
            if benefit_id not in self.hub.registry.benefits:
                continue
            b = self.benefit(benefit_id)
            if b.conf.welcome or self._closed_reason(b, now):
                continue
            taken = self._taken(benefit_id)
            view = {"id": benefit_id, "title": b.spec.title, "description": b.spec.description,
                    "partner": b.conf.partner, "cost": b.conf.cost, "details": list(b.spec.details),
                    "stock": None if b.conf.stock is None else {"total": b.conf.stock,
                                                                "left": max(0, b.conf.stock - taken)},
                    "limit_per_user": b.conf.limit_per_user, "limit_period": b.conf.limit_period,
                    "from": b.conf.start, "to": b.conf.end, "requires_green_record": b.conf.requires_green_record}
            if account_id is not None:
                refusal = self._refusal(account_id, b, now, b.conf.cost)
                view["eligibility"] = {"can_redeem": refusal is None,
                                       "code": refusal.code if refusal else None,
                                       "message": refusal.message if refusal else None}
            out.append(view)
        return out

    # --- redeeming ------------------------------------------------------------------------------

    def redeem(self, account_id: str, benefit_id: str, key: str,
               details: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Redeem ``benefit_id`` for ``account_id`` once per idempotency ``key``; ``(view, created)``.

        A repeat of the same key and body returns the first redemption
        (``created`` False); the same key with another body raises
        :class:`IdempotencyKeyReused`. A refused request stores nothing.
        """
        details = dict(details or {})
        digest = request_hash(benefit_id, details)
        row = self._existing(account_id, key, digest)  # a reused key is answered before anything else
        if row is not None:
            return self.view(row), False
        b = self.benefit(benefit_id)
        if b.conf.welcome:
            raise BenefitClosed(f"{b.spec.title!r} is given on account opening, not redeemed.")
        return self._redeem(account_id, b, key, self._check_details(b, details), b.conf.cost, digest)

    def grant(self, account_id: str, benefit_id: str, key: str) -> tuple[dict[str, Any], bool]:
        """Give ``benefit_id`` free (a welcome gift): a redemption of 0 points, once per ``key``.

        Stock, window, eligibility and the per-user limit still apply.
        """
        digest = request_hash(benefit_id, {})
        row = self._existing(account_id, key, digest)
        if row is not None:
            return self.view(row), False
        return self._redeem(account_id, self.benefit(benefit_id), key, {}, 0, digest)

    @staticmethod
    def _check_details(b: _Benefit, details: Mapping[str, Any]) -> dict[str, Any]:
        problems: dict[str, list[str]] = {}
        for name in b.spec.details:
            value = details.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                problems[name] = ["Missing data for required field." if value in (None, "")
                                  else "Must be text of 1-200 characters."]
        for name in details:
            if name not in b.spec.details:
                problems[name] = [f"Unknown field; {b.spec.id} takes {', '.join(b.spec.details) or 'none'}."]
        if problems:
            raise InvalidDetails("The redemption details are invalid; see fields.", {"details": problems})
        return {k: details[k].strip() for k in b.spec.details}

    @staticmethod
    def _existing(account_id: str, key: str, digest: str) -> Redemption | None:
        p = database.param
        found = database.execute_sql(f'SELECT "id", "request_hash" FROM "redemption" WHERE "account" = {p} '
                                     f'AND "idempotency_key" = {p}', (account_id, key)).fetchone()
        if found is None:
            return None
        if found[1] != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used for another redemption ({found[0]}).")
        return Redemption.get_by_id(found[0])

    def _redeem(self, account_id: str, b: _Benefit, key: str, details: dict[str, Any], cost: int,
                digest: str) -> tuple[dict[str, Any], bool]:
        if not Account.select(Account.id).where(Account.id == account_id).exists():
            raise UnknownAccount(f"No account {account_id!r}.")
        refusal = self._refusal(account_id, b, self.hub.now(), cost)  # cheap, unlocked: most refusals end here
        if refusal is not None:
            raise refusal
        row, created, hold = self._hold(account_id, b, key, digest, details, cost)
        if not created:
            return self.view(row), False
        if hold is not None:
            self.hub.notify("carbonhub_transaction_posted", transaction=hold)
        return self.complete(row.id), True

    def _hold(self, account_id: str, b: _Benefit, key: str, digest: str, details: dict[str, Any],
              cost: int) -> tuple[Redemption, bool, TransactionRecord | None]:
        """Phase 1, atomic: stock taken, points in escrow, the redemption ``held``."""
        now = self.hub.now()
        with database.atomic():
            db.lock_ledger()  # every check below sees every earlier hold and spend
            row = self._existing(account_id, key, digest)
            if row is not None:
                return row, False, None
            refusal = self._refusal(account_id, b, now, cost, points=False)
            if refusal is not None:
                raise refusal
            BenefitStock.insert(benefit=b.spec.id, taken=0).on_conflict_ignore().execute()
            taken = BenefitStock.update(taken=BenefitStock.taken + 1).where(BenefitStock.benefit == b.spec.id)
            if b.conf.stock is not None:
                taken = taken.where(BenefitStock.taken < b.conf.stock)
            if not taken.execute():
                raise OutOfStock(f"{b.spec.title!r} is out of stock.")
            try:
                plan = lots.spend_plan(account_id, cost, now) if cost else []
            except lots.InsufficientPoints as exc:
                raise InsufficientPoints(str(exc), {"needed": cost, "available": exc.details["available"]}) from None
            rid = new_id("rdm")
            hold = None
            if cost:
                ((hold, _),) = self.hub.ledger.post_many([TxRequest(
                    key=f"redeem:{rid}:hold", kind="redemption_hold",
                    postings=(PostingRecord(user_points(account_id), "pts", -cost), PostingRecord(ESCROW, "pts", cost)),
                    memo={"redemption": rid, "benefit": b.spec.id, "account": account_id,
                          "lots": {"account": account_id, "spend": plan}})])
            deadline = now + timedelta(seconds=self.hub.settings.redemptions.hold_deadline_s)
            Redemption.insert(id=rid, account=account_id, benefit=b.spec.id, partner=b.conf.partner, cost=cost,
                              status=HELD, idempotency_key=key, request_hash=digest, details=details,
                              created_at=db.to_db(now), deadline_at=db.to_db(deadline),
                              hold_seq=hold.seq if hold else None).execute()
            return Redemption.get_by_id(rid), True, hold

    # --- fulfilling -----------------------------------------------------------------------------

    def _hooks(self, benefit_id: str) -> tuple[Any, Any] | None:
        """The fulfil and cancel hooks of the plugin owning ``benefit_id`` only (None: no plugin owns it now)."""
        callers = self._callers.get(benefit_id)
        if callers is None:
            pm, owner = self.hub.pm, self.hub.registry.owner.get(("benefit", benefit_id))
            if owner is None:  # its plugin was removed while a hold was open
                return None
            others = [p for name, p in pm.list_name_plugin() if p is not None and name != owner]
            callers = self._callers[benefit_id] = (
                pm.subset_hook_caller("carbonhub_fulfil_benefit", remove_plugins=others),
                pm.subset_hook_caller("carbonhub_cancel_fulfilment", remove_plugins=others))
        return callers

    def record(self, row: Redemption, fulfilment: Fulfilment | None = None) -> RedemptionRecord:
        conf = self.hub.settings.benefits.get(row.benefit)
        return RedemptionRecord(id=row.id, account_id=row.account, benefit=row.benefit, partner=row.partner,
                                cost=row.cost, created_at=db.from_db(row.created_at), details=row.details or {},
                                options=dict(conf.options) if conf else {}, attempt=max(1, row.attempts),
                                fulfilment=fulfilment)

    def _fulfil(self, record: RedemptionRecord) -> tuple[Fulfilment | None, FulfilmentError | None, int, bool]:
        """Call the partner, retrying retryable errors with backoff; ``(fulfilment, failure, attempts, uncertain)``.

        ``uncertain``: an attempt may have reached the partner without an
        answer we could use (so a void must ask it to cancel).
        """
        hooks = self._hooks(record.benefit)
        if hooks is None:
            return None, PermanentFulfilmentError("not_fulfilled", "No plugin delivers this benefit now."), 0, False
        fulfil, conf = hooks[0], self.hub.settings.redemptions
        delay, uncertain = conf.fulfil_backoff_ms / 1000, False
        attempt = 0
        while True:
            attempt += 1
            try:
                result = fulfil(ctx=self.hub.ctx, redemption=replace(record, attempt=attempt))
            except FulfilmentError as exc:
                if not exc.retryable:
                    return None, exc, attempt, uncertain
                uncertain = True
                log.warning("redemption %s: %s (attempt %s of %s)", record.id, exc.code, attempt,
                            conf.fulfil_attempts)
                if attempt >= conf.fulfil_attempts:
                    return None, exc, attempt, uncertain
                self.sleep(delay)
                delay *= 2
                continue
            except Exception as exc:  # a plugin bug: treated as permanent, but it may have reached the partner
                log.exception("fulfilment of redemption %s failed", record.id)
                return None, FulfilmentError("fulfilment_failed", f"The partner's plugin failed: {exc!r}"), \
                    attempt, True
            if result is None:
                return None, PermanentFulfilmentError("not_fulfilled", "No plugin delivered this benefit."), \
                    attempt, uncertain
            if not isinstance(result, Fulfilment):
                return None, FulfilmentError("fulfilment_failed", f"The plugin returned {type(result).__name__}, "
                                                                  f"not a Fulfilment."), attempt, True
            return result, None, attempt, uncertain

    def complete(self, rid: str) -> dict[str, Any]:
        """Phases 2 and 3 for a held redemption: fulfil, then post or void; returns its view."""
        row = Redemption.get_by_id(rid)
        if row.status != HELD:
            return self.view(row)
        fulfilment, failure, attempts, uncertain = self._fulfil(self.record(row))
        outcome = self.resolve(rid, fulfilment, failure.as_dict() if failure else None, attempts)
        if outcome == VOIDED and uncertain or outcome is None and fulfilment is not None:
            # voided here after an uncertain call, or a success that came after the stale-holds job voided it
            self._cancel(Redemption.get_by_id(rid), fulfilment)
        return self.view(Redemption.get_by_id(rid))

    def _cancel(self, row: Redemption, fulfilment: Fulfilment | None) -> None:
        hooks = self._hooks(row.benefit)
        if hooks is None:
            log.warning("redemption %s voided; no plugin owns %s to cancel it at the partner", row.id, row.benefit)
            return
        try:
            hooks[1](ctx=self.hub.ctx, redemption=self.record(row, fulfilment))
        except Exception:  # the refund stands; the partner is told by the operator
            log.exception("cancelling the fulfilment of redemption %s failed", row.id)

    # --- resolving ------------------------------------------------------------------------------

    def resolve(self, rid: str, fulfilment: Fulfilment | None, failure: Mapping[str, Any] | None,
                attempts: int = 0) -> str | None:
        """Post (with ``fulfilment``) or void a held redemption, exactly once.

        Returns the new status, or None when it was no longer held (someone else
        resolved it first; nothing is posted).
        """
        now = self.hub.now()
        status = FULFILLED if fulfilment is not None else VOIDED
        with database.atomic():
            db.lock_ledger()
            changed = (Redemption.update(status=status, resolved_at=db.to_db(now),
                                         attempts=attempts,
                                         fulfilment=fulfilment.as_dict() if fulfilment else None,
                                         failure=dict(failure) if failure else None)
                       .where((Redemption.id == rid) & (Redemption.status == HELD)).execute())
            if not changed:
                return None
            row = Redemption.get_by_id(rid)
            tx = self._post(row, now) if status == FULFILLED else self._void(row, now)
            if tx is not None:
                Redemption.update(resolve_seq=tx.seq).where(Redemption.id == rid).execute()
        if tx is not None:
            self.hub.notify("carbonhub_transaction_posted", transaction=tx)
        return status

    def _post(self, row: Redemption, now: datetime) -> TransactionRecord | None:
        if not row.cost:
            return None
        ((tx, _),) = self.hub.ledger.post_many([TxRequest(
            key=f"redeem:{row.id}:post", kind="redemption_post",
            postings=(PostingRecord(ESCROW, "pts", -row.cost), PostingRecord(sink(row.partner), "pts", row.cost)),
            memo={"redemption": row.id, "benefit": row.benefit, "account": row.account, "partner": row.partner})])
        return tx

    def _void(self, row: Redemption, now: datetime) -> TransactionRecord | None:
        BenefitStock.update(taken=BenefitStock.taken - 1).where(BenefitStock.benefit == row.benefit).execute()
        if not row.cost:
            return None
        plan = LedgerTransaction.get_by_id(row.hold_seq).memo["lots"]["spend"]
        when = db.to_db(now)
        expired_seqs = {seq for (seq,) in PointLot.select(PointLot.seq).where(
            (PointLot.account == row.account) & PointLot.seq.in_([seq for seq, _ in plan])
            & PointLot.expires_at.is_null(False) & (PointLot.expires_at <= when)).tuples()}
        expired = [[seq, n] for seq, n in plan if seq in expired_seqs]
        gone = sum(n for _, n in expired)
        postings = [PostingRecord(ESCROW, "pts", -row.cost)]
        if row.cost - gone:
            postings.append(PostingRecord(user_points(row.account), "pts", row.cost - gone))
        if gone:  # those lots expired while held: the user would have lost them anyway
            postings.append(PostingRecord(lots.EXPIRED, "pts", gone))
        ((tx, _),) = self.hub.ledger.post_many([TxRequest(
            key=f"redeem:{row.id}:void", kind="redemption_void", postings=tuple(postings),
            memo={"redemption": row.id, "benefit": row.benefit, "account": row.account,
                  "reason": (row.failure or {}).get("code"),
                  "lots": {"account": row.account, "restore": plan, "spend": expired}})])
        return tx

    def void_stale(self, now: datetime | None = None, batch: int = 200) -> list[str]:
        """Void every hold past its deadline (the stale-holds job); returns the ids voided.

        The partner is asked to cancel, since the fulfilment's outcome is unknown.
        """
        now = now or self.hub.now()
        voided = []
        while True:
            rows = list(Redemption.select().where((Redemption.status == HELD)
                                                  & (Redemption.deadline_at <= db.to_db(now)))
                        .order_by(Redemption.deadline_at, Redemption.id).limit(batch))
            progressed = False
            for row in rows:
                failure = {"code": "hold_timeout", "message": "The fulfilment did not finish before the hold's "
                                                              "deadline; the points were refunded.",
                           "retryable": False}
                if self.resolve(row.id, None, failure, row.attempts) == VOIDED:
                    voided.append(row.id)
                    self._cancel(Redemption.get_by_id(row.id), None)
                progressed = True
            if len(rows) < batch or not progressed:
                return voided

    # --- reading --------------------------------------------------------------------------------

    @staticmethod
    def view(row: Redemption) -> dict[str, Any]:
        return {
            "id": row.id, "account": row.account, "benefit": row.benefit, "partner": row.partner, "cost": row.cost,
            "status": row.status, "created_at": db.from_db(row.created_at), "deadline_at": db.from_db(row.deadline_at),
            "resolved_at": db.from_db(row.resolved_at), "attempts": row.attempts, "details": row.details or {},
            "fulfilment": row.fulfilment if row.status == FULFILLED else None,
            "failure": row.failure if row.status == VOIDED else None,
            "transactions": {"hold": row.hold_seq, "resolve": row.resolve_seq},
        }

    def get(self, account_id: str, rid: str) -> dict[str, Any] | None:
        row = Redemption.get_or_none((Redemption.id == rid) & (Redemption.account == account_id))
        return self.view(row) if row else None

    def page(self, account_id: str, *, limit: int, before: tuple[datetime, str] | None = None,
             status: str | None = None) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
        """The account's redemptions, newest first, keyset-paged on ``(created_at, id)``."""
        query = Redemption.select().where(Redemption.account == account_id)
        if status:
            query = query.where(Redemption.status == status)
        if before is not None:
            at, ident = before
            query = query.where((Redemption.created_at < at)
                                | ((Redemption.created_at == at) & (Redemption.id < ident)))
        rows = list(query.order_by(Redemption.created_at.desc(), Redemption.id.desc()).limit(limit + 1))
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = (rows[-1].created_at, rows[-1].id)
        return [self.view(r) for r in rows], cursor


class BenefitServices:
    """``ctx.benefits``: what the exchange offers plugins (they never touch its tables)."""

    def __init__(self, exchange: Exchange):
        self._exchange = exchange

    def take_code(self, benefit: str, redemption_id: str) -> str | None:
        """A code of ``benefit``'s pool for this redemption (the same one if asked again); None when empty."""
        return codes.take_code(benefit, redemption_id, self._exchange.hub.now())

    def offers(self, benefit: str) -> bool:
        """Whether the bank offers ``benefit`` now (configured, switched on, in its window)."""
        ex = self._exchange
        if benefit not in ex.hub.settings.benefits or benefit not in ex.hub.registry.benefits:
            return False
        return ex._closed_reason(ex.benefit(benefit), ex.hub.now()) is None

    def grant(self, account_id: str, benefit: str, key: str) -> dict[str, Any]:
        """Give ``benefit`` free to a user once per ``key`` (e.g. a welcome gift); returns the redemption.

        Raises :class:`ExchangeError` (``out_of_stock``, ``limit_reached``…) when it cannot be given.
        """
        view, _ = self._exchange.grant(account_id, benefit, key)
        return view
