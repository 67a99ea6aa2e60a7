"""No oversell, no double spend, with many redeemers at once.

2,000 attempts at a benefit with 100 in stock, by users who each hold barely
enough points for one (120 points in three lots, cost 100), every key tried by
two redeemers: on PostgreSQL from 8 processes, on SQLite from 8 threads. The
end state must be exactly 100 fulfilled, no negative balance, no lot spent
beyond its amount, lots equal to their rebuild from the ledger, a clean
ledger verify, 100 distinct voucher codes handed out.
"""
from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from conftest import BASE_CONFIG, NOW, PG_URL, SECRETS
from exchange_helpers import HOT_GIFT, contention_hub, contention_plugin, credit_points, redeem_many, redeem_with

from hub import codes, db
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.db import Balance, BenefitStock, LedgerTransaction, PointLot, Redemption, VoucherCode
from hub.exchange import ESCROW, sink
from hub.ledger import Ledger, verify
from hub.lots import rebuild

WORKERS, ATTEMPTS, STOCK, USERS, COST = 8, 2000, 100, 150, 100
LOTS = (40, 40, 40)  # 120 points: one redemption each, never two
FAR = datetime(2030, 1, 1, tzinfo=timezone.utc)


def contention_config() -> dict:
    config = {k: v for k, v in BASE_CONFIG.items()}
    config["benefits"] = {HOT_GIFT: {"partner": "hotshop", "cost": COST, "stock": STOCK}}
    config["redemptions"] = {"fulfil_attempts": 1, "fulfil_backoff_ms": 0}
    return config


def prepare(database_url: str) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """Users with their lots, the code pool, and the attempts dealt to the workers."""
    if database_url.startswith("postgresql"):
        db.bind(database_url)
        db.drop_schema()
    hub = Hub(load_settings(data=contention_config(), environ=SECRETS), clock=FixedClock(NOW),
              database_url=database_url, extra_plugins=[contention_plugin()])
    hub.init_db()
    accounts = []
    for u in range(USERS):
        account = hub.open_account(f"contender-{u}")[0].id
        for i, points in enumerate(LOTS):  # different expiries, so FIFO order matters
            credit_points(hub, account, points, f"c-{u}-{i}", expires=FAR + timedelta(days=(u + 7 * i) % 5)
                          if i < 2 else None)
        accounts.append(account)
    codes.load_codes(HOT_GIFT, [f"HOT-{i:04d}" for i in range(STOCK + 50)], NOW)
    rng = random.Random(20261121)
    keys = [(rng.choice(accounts), f"key-{n}") for n in range(ATTEMPTS // 2)]
    attempts = keys + keys  # every key twice: a client retrying while the first call is in flight
    rng.shuffle(attempts)
    db.database.close()
    return accounts, [attempts[w::WORKERS] for w in range(WORKERS)]


def check_end_state(accounts: list[str], outcomes: list[dict[str, int]]) -> Counter:
    total = Counter()
    for outcome in outcomes:
        total.update(outcome)
    assert sum(total.values()) == ATTEMPTS, total
    rows = list(Redemption.select())
    by_status = Counter(r.status for r in rows)
    assert by_status == {"fulfilled": STOCK}, by_status  # no oversell, nothing left held or voided
    assert total["fulfilled"] == STOCK and total["out_of_stock"] > 0, total
    assert set(total) <= {"fulfilled", "repeat", "out_of_stock", "insufficient_points"}, total
    per_user = Counter(r.account for r in rows)
    assert max(per_user.values()) == 1  # 120 points never paid for two
    balances = {b.account: b.amount for b in Balance.select().where(Balance.account.startswith("user:"))}
    assert min(balances.values()) >= 0
    assert sum(1 for a in accounts if balances[f"user:{a}:points"] == 20) == STOCK
    # no lot spent twice: what the holds took from each lot never exceeds it
    spent: dict[tuple[str, int], int] = defaultdict(int)
    for tx in LedgerTransaction.select().where(LedgerTransaction.kind == "redemption_hold"):
        for seq, points in tx.memo["lots"]["spend"]:
            spent[(tx.memo["lots"]["account"], seq)] += points
    amounts = {(lot.account, lot.seq): (lot.amount, lot.remaining) for lot in PointLot.select()}
    for lot, points in spent.items():
        amount, remaining = amounts[lot]
        assert points <= amount and remaining == amount - points, lot
    assert rebuild().ok and verify().ok
    assert Ledger.balance(ESCROW, "pts") == 0 and Ledger.balance(sink("hotshop"), "pts") == STOCK * COST
    assert BenefitStock.get_by_id(HOT_GIFT).taken == STOCK
    handed = [c.code for c in VoucherCode.select().where(VoucherCode.redemption.is_null(False))]
    assert len(handed) == len(set(handed)) == STOCK
    return total


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="needs CARBONHUB_TEST_DATABASE_URL (PostgreSQL)")
def test_eight_processes_on_postgresql_never_oversell_nor_double_spend():
    accounts, shares = prepare(PG_URL)
    config = contention_config()
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(redeem_many, [config] * WORKERS, [SECRETS] * WORKERS, [PG_URL] * WORKERS, shares))
    db.bind(PG_URL)
    check_end_state(accounts, outcomes)
    db.database.close()


def test_eight_threads_on_sqlite_never_oversell_nor_double_spend(tmp_path):
    url = f"sqlite:///{tmp_path}/contention.db"
    accounts, shares = prepare(url)
    outcomes: list[dict[str, int]] = [{} for _ in range(WORKERS)]
    errors = []
    hub = contention_hub(contention_config(), SECRETS, url)  # one hub: its store serves every thread

    def work(w: int) -> None:
        try:
            outcomes[w] = redeem_with(hub, shares[w])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    check_end_state(accounts, outcomes)
    db.database.close()
