"""Point lots: earned per transaction with an expiry, spent first-expiring first, expired by a posting.

The lots are an index of the ledger kept in the same database transaction as
the postings; the tests check them against a rebuild from the ledger alone
(``assert_consistent``, and the property test at the end).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from api_helpers import auth
from click.testing import CliRunner
from conftest import NOW
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from plugin_helpers import SHANGHAI, metro_ride

from hub import db, lots
from hub.db import LedgerTransaction, PointLot
from hub.ledger import InvalidTransaction, Ledger, TxRequest, user_points, verify
from hub.lots import EXPIRED, InsufficientPoints, NotReversible, add_months, expire_due, rebuild, spend_plan
from hub.records import PostingRecord
from hub.testing import reset_database

UTC = timezone.utc


@pytest.fixture
def config_data(config_data):
    config_data["rewards"] = {"points_expire_after_months": 12}
    return config_data


@pytest.fixture
def acc(hub):
    account, _ = hub.open_account("saver-1")
    return account.id


def credit(hub, account, points, key, *, expires=None, issuer="@issuer:test"):
    memo = {"points_expire_at": expires.isoformat()} if expires else {}
    tx, _ = hub.ledger.post(TxRequest(key=key, kind="credit", postings=(
        PostingRecord(issuer, "pts", -points), PostingRecord(user_points(account), "pts", points)), memo=memo))
    return tx.seq


def spend(hub, account, points, key):
    """What a redemption hold does: take a plan of lots under the ledger lock and post it."""
    with db.database.atomic():
        db.lock_ledger()
        plan = spend_plan(account, points, hub.now())
        hub.ledger.post_many([TxRequest(key=key, kind="test_spend", postings=(
            PostingRecord(user_points(account), "pts", -points), PostingRecord("@escrow:test", "pts", points)),
            memo={"lots": {"account": account, "spend": plan}})])
    return plan


def remaining(account):
    return {lot.seq: lot.remaining for lot in PointLot.select().where(PointLot.account == account)}


def balance(account):
    return Ledger.balance(user_points(account), "pts")


def assert_consistent(*accounts):
    for account in accounts:
        assert sum(remaining(account).values()) == max(balance(account), 0), account
    report = rebuild()
    assert report.ok, report.differences
    assert verify().ok


def at(y, m, d, h=0):
    return datetime(y, m, d, h, tzinfo=SHANGHAI)


# --- earning -----------------------------------------------------------------------------------


def test_a_credit_through_the_pipeline_opens_a_lot_expiring_at_the_end_of_the_day_a_year_later(hub, acc):
    hub.set_consent(acc, "metro", True, at=at(2019, 1, 1))
    result = hub.pipeline.ingest("szmetro", [metro_ride(acc, "R-1", NOW - timedelta(hours=3))])
    seq = result.records[0].behaviours[0].tx_seq
    lot = PointLot.get((PointLot.account == acc) & (PointLot.seq == seq))
    # Credited at 12:00 on 21 Nov 2026 in Shanghai: usable through 21 Nov 2027, gone at midnight.
    assert db.from_db(lot.expires_at) == at(2027, 11, 22)
    assert (lot.account, lot.amount, lot.remaining) == (acc, 88, 88)
    assert db.from_db(lot.earned_at) == NOW
    assert LedgerTransaction.get_by_id(seq).memo["points_expire_at"] == at(2027, 11, 22).astimezone(UTC).isoformat()
    assert_consistent(acc)


def test_without_an_expiry_setting_lots_never_expire(settings, database_url, clock):
    from dataclasses import replace

    from hub.config import RewardsConfig
    from hub.core import Hub

    settings.rewards = replace(RewardsConfig(), points_expire_after_months=0)
    hub = Hub(settings, clock=clock, database_url=database_url)
    hub.init_db()
    account, _ = hub.open_account("saver-2")
    hub.set_consent(account.id, "metro", True, at=at(2019, 1, 1))
    result = hub.pipeline.ingest("szmetro", [metro_ride(account.id, "R-1", NOW - timedelta(hours=3))])
    lot = PointLot.get(PointLot.seq == result.records[0].behaviours[0].tx_seq)
    assert lot.expires_at is None
    assert "points_expire_at" not in LedgerTransaction.get_by_id(lot.seq).memo


@pytest.mark.parametrize("day, months, expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 2, 29), 12, date(2029, 2, 28)),
    (date(2026, 11, 21), 12, date(2027, 11, 21)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
])
def test_add_months_clamps_to_the_end_of_the_month(day, months, expected):
    assert add_months(day, months) == expected


def test_a_transaction_crediting_two_users_opens_a_lot_for_each(hub, acc):
    other, _ = hub.open_account("saver-2")
    tx, _ = hub.ledger.post(TxRequest(key="two", kind="credit", postings=(
        PostingRecord("@issuer:test", "pts", -30), PostingRecord(user_points(acc), "pts", 10),
        PostingRecord(user_points(other.id), "pts", 20))))
    assert remaining(acc) == {tx.seq: 10} and remaining(other.id) == {tx.seq: 20}
    assert_consistent(acc, other.id)


def test_a_transfer_between_users_moves_lots(hub, acc):
    other, _ = hub.open_account("saver-2")
    lot = credit(hub, acc, 50, "c", expires=at(2027, 1, 1))
    tx, _ = hub.ledger.post(TxRequest(key="gift", kind="transfer", postings=(
        PostingRecord(user_points(acc), "pts", -30), PostingRecord(user_points(other.id), "pts", 30))))
    assert remaining(acc) == {lot: 20} and remaining(other.id) == {tx.seq: 30}
    assert_consistent(acc, other.id)


# --- spending ----------------------------------------------------------------------------------


def test_spending_takes_the_first_expiring_lots_and_never_expiring_ones_last(hub, acc):
    never = credit(hub, acc, 100, "c-never")
    late = credit(hub, acc, 100, "c-late", expires=at(2027, 6, 1))
    soon = credit(hub, acc, 100, "c-soon", expires=at(2027, 1, 1))
    plan = spend(hub, acc, 150, "s-1")
    assert plan == [[soon, 100], [late, 50]]
    assert remaining(acc) == {never: 100, late: 50, soon: 0}
    assert spend(hub, acc, 100, "s-2") == [[late, 50], [never, 50]]
    assert remaining(acc) == {never: 50, late: 0, soon: 0}
    assert_consistent(acc)


def test_equal_expiry_is_spent_oldest_lot_first(hub, acc):
    first = credit(hub, acc, 10, "c-1", expires=at(2027, 1, 1))
    second = credit(hub, acc, 10, "c-2", expires=at(2027, 1, 1))
    assert spend(hub, acc, 15, "s") == [[first, 10], [second, 5]]


def test_lots_past_their_expiry_cannot_be_spent_even_before_the_job_runs(hub, acc, clock):
    credit(hub, acc, 100, "c-old", expires=NOW + timedelta(days=1))
    fresh = credit(hub, acc, 30, "c-new", expires=NOW + timedelta(days=90))
    clock.advance(days=2)
    assert balance(acc) == 130  # the ledger still holds them until the expiry is posted
    with pytest.raises(InsufficientPoints) as err:
        spend(hub, acc, 50, "s")
    assert err.value.details == {"needed": 50, "available": 30}
    assert spend(hub, acc, 30, "s-ok") == [[fresh, 30]]


def test_a_plan_taking_more_than_a_lot_holds_is_refused_and_nothing_is_posted(hub, acc):
    lot = credit(hub, acc, 10, "c")
    with pytest.raises(InsufficientPoints):
        hub.ledger.post(TxRequest(key="greedy", kind="test_spend", postings=(
            PostingRecord(user_points(acc), "pts", -20), PostingRecord("@escrow:test", "pts", 20)),
            memo={"lots": {"account": acc, "spend": [[lot, 20]]}}))
    assert balance(acc) == 10 and remaining(acc) == {lot: 10}
    assert not LedgerTransaction.select().where(LedgerTransaction.key == "greedy").exists()


def test_a_plan_that_does_not_match_the_postings_is_refused(hub, acc):
    lot = credit(hub, acc, 10, "c")
    with pytest.raises(InvalidTransaction, match="moves -5 pts, the postings -8"):
        hub.ledger.post(TxRequest(key="off", kind="test_spend", postings=(
            PostingRecord(user_points(acc), "pts", -8), PostingRecord("@escrow:test", "pts", 8)),
            memo={"lots": {"account": acc, "spend": [[lot, 5]]}}))
    assert remaining(acc) == {lot: 10}


# --- expiry ------------------------------------------------------------------------------------


def test_expiry_posts_each_remainder_to_expired_once(hub, acc, clock):
    old = credit(hub, acc, 100, "c-old", expires=NOW + timedelta(days=1))
    keep = credit(hub, acc, 50, "c-keep", expires=NOW + timedelta(days=30))
    spend(hub, acc, 40, "s")  # 40 of the old lot
    clock.advance(days=2)
    result = expire_due(hub)
    assert (result.lots, result.points) == (1, 60)
    tx = LedgerTransaction.get(LedgerTransaction.key == f"expire:{acc}:{old}")
    assert tx.kind == "points_expiry"
    assert sorted((p.account, p.amount) for p in Ledger.postings_of(tx.seq)) == [
        (EXPIRED, 60), (user_points(acc), -60)]
    assert balance(acc) == 50 and Ledger.balance(EXPIRED, "pts") == 60
    assert remaining(acc) == {old: 0, keep: 50}
    head = LedgerTransaction.select().count()
    again = expire_due(hub)
    assert (again.lots, again.points) == (0, 0) and LedgerTransaction.select().count() == head
    assert_consistent(acc)


def test_expiry_of_many_lots_runs_in_batches(hub, clock):
    accounts = [hub.open_account(f"many-{i}")[0].id for i in range(7)]
    for i, account in enumerate(accounts):
        credit(hub, account, 10 + i, f"c-{i}", expires=NOW + timedelta(hours=1 + i))
    clock.advance(days=1)
    result = expire_due(hub, batch=3)
    assert (result.lots, result.points) == (7, sum(10 + i for i in range(7)))
    assert all(balance(a) == 0 for a in accounts)
    assert_consistent(*accounts)


def test_an_expiry_cannot_be_reversed_by_hand(hub, acc, clock):
    credit(hub, acc, 10, "c", expires=NOW + timedelta(days=1))
    clock.advance(days=2)
    (tx,) = expire_due(hub).transactions
    with pytest.raises(NotReversible, match="never reversed by hand"):
        hub.ledger.reverse(tx.seq, "give them back")
    assert balance(acc) == 0 and verify().ok


def test_the_scheduler_runs_expiry_and_the_stale_holds_job(hub, acc, clock):
    from hub.scheduler import build_scheduler

    credit(hub, acc, 10, "c", expires=NOW + timedelta(days=1))
    clock.advance(days=2)
    scheduler = build_scheduler(hub)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"points-expiry", "redemptions-void-stale", "ledger-verify"}
    assert jobs["points-expiry"].trigger.interval == timedelta(seconds=hub.settings.rewards.expire_every_s)
    assert jobs["points-expiry"].max_instances == 1 and jobs["points-expiry"].coalesce
    jobs["points-expiry"].func(*jobs["points-expiry"].args)  # what the scheduler's thread calls
    assert balance(acc) == 0
    jobs["redemptions-void-stale"].func(*jobs["redemptions-void-stale"].args)  # nothing held: nothing to do


# --- reversals and debts -----------------------------------------------------------------------


def test_reversing_a_credit_takes_its_own_lot_first_then_the_first_expiring(hub, acc):
    a = credit(hub, acc, 100, "c-a", expires=at(2027, 3, 1))
    b = credit(hub, acc, 100, "c-b", expires=at(2027, 1, 1))
    c = credit(hub, acc, 100, "c-c")
    spend(hub, acc, 160, "s")  # b: 100, a: 60 -> a holds 40
    hub.ledger.reverse(c, "credited twice by mistake")
    assert remaining(acc) == {a: 40, b: 0, c: 0}
    hub.ledger.reverse(a, "wrong partner")  # 100 back from a user holding 40: a debt of 60
    assert balance(acc) == -60 and sum(remaining(acc).values()) == 0
    d = credit(hub, acc, 100, "c-d")  # the debt is paid first
    assert remaining(acc)[d] == 40 and balance(acc) == 40
    assert_consistent(acc)


def test_the_lots_of_a_ledger_from_before_lots_are_derived_at_start_up(hub, acc, settings, database_url, clock):
    from hub.core import Hub

    first = credit(hub, acc, 70, "c-1", expires=at(2027, 1, 1))
    spend(hub, acc, 20, "s")
    PointLot.delete().execute()  # as a database from before this feature would be
    assert lots.needs_rebuild()
    again = Hub(settings, clock=clock, database_url=database_url)
    again.init_db()
    assert remaining(acc) == {first: 50}


def test_rebuild_finds_a_tampered_lot_and_repairs_it(hub, acc):
    lot = credit(hub, acc, 70, "c-1")
    PointLot.update(remaining=999).where(PointLot.seq == lot).execute()
    report = rebuild()
    assert not report.ok and "lot" in report.differences[0] and "999" in report.differences[0]
    assert rebuild(write=True).written
    assert remaining(acc) == {lot: 70} and rebuild().ok


# --- the whole story, as a property --------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["credit", "spend", "expire", "reverse", "tick"]),
                         st.integers(1, 120), st.integers(0, 40)), min_size=1, max_size=25)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_lots_always_hold_the_balance_and_rebuild_to_the_same(hub, clock, ops):
    reset_database()  # each example starts on an empty store, as on a new database
    hub.init_db()
    account = hub.open_account("prop")[0].id
    credits, n = [], 0
    for op, amount, days in ops:
        n += 1
        if op == "credit":
            expires = clock() + timedelta(days=days) if days % 3 else None
            credits.append(credit(hub, account, amount, f"c-{n}", expires=expires))
        elif op == "spend":
            try:
                spend(hub, account, amount, f"s-{n}")
            except InsufficientPoints:
                pass
        elif op == "expire":
            expire_due(hub)
        elif op == "reverse" and credits:
            seq = credits[days % len(credits)]
            if not LedgerTransaction.select().where(LedgerTransaction.reverses == seq).exists():
                hub.ledger.reverse(seq, "property")
        else:
            clock.advance(days=days)
        assert sum(remaining(account).values()) == max(balance(account), 0)
        assert all(0 <= r for r in remaining(account).values())
    report = rebuild()
    assert report.ok, report.differences
    clock.current = NOW


# --- the API and the commands ------------------------------------------------------------------


def test_points_view_shows_balance_lots_and_what_expires_next(client, hub, acc, clock):
    never = credit(hub, acc, 10, "c-never")
    soon = credit(hub, acc, 20, "c-soon", expires=at(2026, 12, 1))
    same = credit(hub, acc, 5, "c-same", expires=at(2026, 12, 1))
    credit(hub, acc, 7, "c-gone", expires=NOW + timedelta(hours=1))
    clock.advance(hours=2)
    body = client.get(f"/v1/accounts/{acc}/points", headers=auth("reader")).get_json()
    assert body["balance"] == 42 and body["expired_pending"] == 7 and body["spendable"] == 35
    assert body["held"] == 0
    assert body["next_expiry"] == {"expires_at": "2026-11-30T16:00:00+00:00", "points": 25}
    assert [lot["id"] for lot in body["lots"]] == [never + 3, soon, same, never]
    assert body["lots"][-1] == {"id": never, "points": 10, "remaining": 10, "earned_at": NOW.isoformat(),
                                "expires_at": None}
    assert client.get("/v1/accounts/acc_nope/points", headers=auth("reader")).status_code == 404
    assert client.get(f"/v1/accounts/{acc}/points").status_code == 401


def test_points_commands_expire_and_check(hub, acc, clock, tmp_path, database_url, monkeypatch):
    from hub.cli import main

    credit(hub, acc, 30, "c", expires=at(2020, 1, 1))  # past for the command's real clock too
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\ntimezone = "Asia/Shanghai"\n[rewards]\npoints_expire_after_months = 12\n')
    runner = CliRunner()
    env = {"CARBONHUB_DATABASE_URL": database_url}
    out = runner.invoke(main, ["--config", str(config), "points", "expire"], env=env, catch_exceptions=False)
    assert out.exit_code == 0 and "expired 30 pts from 1 lot(s)" in out.output
    out = runner.invoke(main, ["--config", str(config), "points", "expire"], env=env, catch_exceptions=False)
    assert "expired 0 pts from 0 lot(s)" in out.output
    db.bind(database_url)
    PointLot.update(remaining=5).execute()
    out = runner.invoke(main, ["--config", str(config), "points", "rebuild", "--check"], env=env)
    assert out.exit_code == 1 and "DIFFER" in out.output
    out = runner.invoke(main, ["--config", str(config), "points", "rebuild"], env=env, catch_exceptions=False)
    assert out.exit_code == 0 and "lots rebuilt" in out.output
    out = runner.invoke(main, ["--config", str(config), "points", "rebuild", "--check"], env=env)
    assert out.exit_code == 0 and "lots ok" in out.output
