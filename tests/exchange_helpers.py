"""Helpers for the points and exchange tests: credited lots, a scripted lab benefit, the partners' modules."""
from __future__ import annotations

import importlib
import types
from collections import deque
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

from plugin_helpers import plugin_module

from hub.ledger import Ledger, TxRequest, user_points
from hub.plugins import ENTRY_POINT_GROUP
from hub.records import (BenefitSpec, Fulfilment, PermanentFulfilmentError, PostingRecord,
                         RetryableFulfilmentError)

LAB_GIFT = "lab-gift"


def credit_points(hub, account: str, points: int, key: str, expires: datetime | None = None) -> int:
    """Credit ``points`` to ``account`` as one lot (the issuer is a test scenario); returns the lot id."""
    memo = {"points_expire_at": expires.isoformat()} if expires else {}
    tx, _ = hub.ledger.post(TxRequest(key=key, kind="credit", postings=(
        PostingRecord("@issuer:test", "pts", -points), PostingRecord(user_points(account), "pts", points)),
        memo=memo))
    return tx.seq


def points_of(account: str) -> int:
    return Ledger.balance(user_points(account), "pts")


def lab_benefits(name: str = "lab_benefits", benefits: tuple[str, ...] = (LAB_GIFT,),
                 details: tuple[str, ...] = ()) -> types.ModuleType:
    """A plugin registering ``benefits`` whose fulfilment follows a script.

    ``module.script`` is a deque of outcomes used one per call, then ``"ok"``:
    ``"ok"`` (a code ``LAB-<redemption id>``), a callable (called with the
    redemption, then ``"ok"``), ``"retry"`` (a retryable
    error), ``"refuse"`` (a permanent one), ``"crash"`` (an unexpected
    exception), ``"none"`` (returns None), ``"junk"`` (returns a string).
    ``module.calls`` and ``module.cancels`` record the redemptions seen.
    """

    def register(ctx):
        return [BenefitSpec(id=b, title=f"Lab {b}", partner_kind="lab", details=details) for b in benefits]

    def fulfil(ctx, redemption):
        module.calls.append(redemption)
        step = module.script.popleft() if module.script else "ok"
        if callable(step):  # something happening while the partner is being called
            step(redemption)
            step = "ok"
        if step == "retry":
            raise RetryableFulfilmentError("partner_timeout", "the lab partner timed out")
        if step == "refuse":
            raise PermanentFulfilmentError("unknown_member", "the lab partner does not know this member")
        if step == "crash":
            raise RuntimeError("lab plugin bug")
        if step == "none":
            return None
        if step == "junk":
            return "a code"
        return Fulfilment(code=f"LAB-{redemption.id}", reference=f"ref-{redemption.attempt}")

    def cancel(ctx, redemption):
        module.cancels.append(redemption)

    module = plugin_module(name, carbonhub_register_benefits=register, carbonhub_fulfil_benefit=fulfil,
                           carbonhub_cancel_fulfilment=cancel)
    module.script, module.calls, module.cancels = deque(), [], []
    return module


def partner_benefits(*names: str) -> list[Any]:
    """The partners' ``plugins/<name>/benefits.py`` modules, to register as extra plugins in tests.

    A module whose package already exposes its hooks and is installed in the
    ``carbonhub.plugins`` entry-point group is left out: the hub loads it
    already, and registering it twice would register its benefits twice.
    """
    installed = {ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    out = []
    for name in names:
        module = importlib.import_module(f"plugins.{name}.benefits")
        package = importlib.import_module(f"plugins.{name}")
        if f"plugins.{name}" in installed and \
                getattr(package, "carbonhub_fulfil_benefit", None) is module.carbonhub_fulfil_benefit:
            continue
        out.append(module)
    return out


def benefit_config(**overrides: Any) -> dict[str, Any]:
    conf = {"partner": "lab", "cost": 100}
    conf.update(overrides)
    return conf


def scripted(module: types.ModuleType, *steps: str) -> None:
    module.script.extend(steps)


# --- contention: many redeemers at once (tests/test_exchange_concurrency.py, bench/redeem.py) ----------

HOT_GIFT = "hot-gift"


def contention_plugin() -> types.ModuleType:
    """A benefit fulfilled from the code pool, as the metro voucher is (no network)."""
    from hub.records import PermanentFulfilmentError

    def register(ctx):
        return [BenefitSpec(id=HOT_GIFT, title="Hot gift")]

    def fulfil(ctx, redemption):
        code = ctx.benefits.take_code(HOT_GIFT, redemption.id)
        if code is None:
            raise PermanentFulfilmentError("codes_exhausted", "no code left")
        return Fulfilment(code=code)

    return plugin_module("contention", carbonhub_register_benefits=register, carbonhub_fulfil_benefit=fulfil)


def redeem_with(hub, attempts: list[tuple[str, str]]) -> dict[str, int]:
    """Redeem the hot gift for each ``(account, key)`` in turn; outcome counts. Closes this thread's connection."""
    from collections import Counter

    from hub import db
    from hub.exchange import ExchangeError

    outcome: Counter = Counter()
    try:
        for account, key in attempts:
            try:
                view, created = hub.exchange.redeem(account, HOT_GIFT, key)
                outcome[view["status"] if created else "repeat"] += 1
            except ExchangeError as exc:
                outcome[exc.code] += 1
    finally:
        db.database.close()
    return dict(outcome)


def contention_hub(config: dict, environ: dict, database_url: str):
    from hub.config import load_settings
    from hub.core import Hub

    hub = Hub(load_settings(data=config, environ=environ), database_url=database_url,
              extra_plugins=[contention_plugin()])
    hub.exchange.sleep = lambda seconds: None
    return hub


def redeem_many(config: dict, environ: dict, database_url: str, attempts: list[tuple[str, str]]) -> dict[str, int]:
    """:func:`redeem_with` in a hub of its own: the body of one redeeming process (top level, so spawn finds it)."""
    return redeem_with(contention_hub(config, environ, database_url), attempts)
