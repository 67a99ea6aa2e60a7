"""`carbonhub demo` on the shipped config: every scenario fed by its partners over three months,
a realistic inbox (duplicates, several rejection reasons), points that differ, and safe to repeat."""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import NOW, shipped_config

from hub import db
from hub.cli import main
from hub.context import FixedClock
from hub.core import Hub
from hub.demo import DEMO_USERS, run_demo
from hub.ledger import Ledger, user_points, verify
from hub.records import ACCEPTED, DUPLICATE, REJECTED

# Reasons that would mean a mistake in the demo's data (a date out of range, a record no plugin reads),
# not one of the partner mistakes it shows on purpose.
DEMO_BUGS = {"future_date", "no_methodology_in_force", "not_handled", "normalize_failed", "no_behaviour",
             "partner_not_allowed", "scenario_disabled", "unit_mismatch", "missing_evidence", "methodology_failed",
             "reward_failed", "no_factor_for_city", "zero_reduction"}
CONFIG = Path(__file__).resolve().parents[1] / "config" / "hub.toml"


@pytest.fixture
def config_data(tmp_path):
    data = shipped_config()
    data["hub"]["secrets_file"] = str(tmp_path / "secrets.env")  # the demo writes the missing local secrets
    return data


@pytest.fixture
def clock(request):
    return FixedClock(getattr(request, "param", NOW))


def _accepted(account: str) -> list[db.Behaviour]:
    return list(db.Behaviour.select().where((db.Behaviour.account == account) & (db.Behaviour.status == ACCEPTED)))


@pytest.mark.parametrize("clock", [
    NOW,
    datetime(2026, 11, 30, 16, 30, tzinfo=timezone.utc),  # 00:30 on 1 December in Shanghai: a new month begins
    datetime(2027, 3, 1, 1, tzinfo=timezone.utc),  # after metro 2026.1 (city factors) came into force
], indirect=True)
def test_demo_feeds_every_scenario_with_a_realistic_mix(hub):
    summary = run_demo(hub)
    accounts = summary["accounts"]
    tz, now = hub.settings.timezone, hub.now()

    # Every partner sends its scenarios' records, and alice has credits in every enabled scenario.
    sent = {(p.id, s) for p in hub.settings.partners.values() for s in p.scenarios if s in hub.enabled_scenarios()}
    assert {tuple(name.split("/")) for name in summary["results"]} == sent
    alice = _accepted(accounts["demo-alice"])
    assert {b.scenario for b in alice} == set(hub.enabled_scenarios())

    # Three months of acts for the monthly chart, none after the hub's clock.
    months = {db.from_db(b.occurred_at).astimezone(tz).strftime("%Y-%m") for b in alice}
    assert len(months) >= 3, months
    assert max(db.from_db(b.occurred_at) for b in db.Behaviour.select()) <= now

    # Mostly accepted; resends and second reporters answered duplicate; several rejection reasons.
    statuses = Counter(r.status for r in db.InboxRecord.select())
    assert statuses[ACCEPTED] > statuses[DUPLICATE] and statuses[ACCEPTED] > 4 * statuses[REJECTED], statuses
    duplicates = {r.reason for r in db.InboxRecord.select().where(db.InboxRecord.status == DUPLICATE)}
    assert {"duplicate_event", "double_claim"} <= duplicates
    rejected = Counter(r.reason for r in db.InboxRecord.select().where(db.InboxRecord.status == REJECTED))
    assert len(rejected) >= 3, rejected
    assert not DEMO_BUGS & set(rejected), rejected
    assert rejected == Counter(summary["rejections"])

    # Alice can redeem a benefit; bob has the fewest points, chen is in between.
    points = {user: Ledger.balance(user_points(account), "pts") for user, account in accounts.items()}
    assert points["demo-bob"] < points["demo-chen"] < points["demo-alice"]
    catalogue = hub.exchange.catalogue(accounts["demo-alice"])
    assert catalogue and points["demo-alice"] >= min(b["cost"] for b in catalogue)
    assert any(b["eligibility"]["can_redeem"] for b in catalogue)


def test_demo_twice_credits_once_and_the_ledger_verifies(hub):
    run_demo(hub)
    balances = {(b.account, b.unit): b.amount for b in db.Balance.select()}
    transactions = db.LedgerTransaction.select().count()

    again = run_demo(hub)
    assert sum(s["accepted"] for s in again["results"].values()) == 0
    assert sum(s["grams"] + s["points"] for s in again["results"].values()) == 0
    assert {(b.account, b.unit): b.amount for b in db.Balance.select()} == balances
    assert db.LedgerTransaction.select().count() == transactions
    assert [a.bank_ref for a in db.Account.select().order_by(db.Account.bank_ref)] == list(DEMO_USERS)
    assert verify().ok


def test_demo_on_a_later_day_sends_the_same_records(settings, database_url):
    """The data is dated from the first run: a month later the demo credits nothing new."""
    first = Hub(settings, clock=FixedClock(NOW), database_url=database_url)
    run_demo(first)
    balances = {(b.account, b.unit): b.amount for b in db.Balance.select()}
    later = Hub(settings, clock=FixedClock(NOW + timedelta(days=33)), database_url=database_url)
    again = run_demo(later)
    assert sum(s["accepted"] for s in again["results"].values()) == 0
    assert {(b.account, b.unit): b.amount for b in db.Balance.select()} == balances
    assert verify().ok
    db.database.close()


def test_carbonhub_demo_with_the_shipped_config_is_fast(tmp_path, database_url):
    """The command as a newcomer runs it (the real clock), twice."""
    config = tmp_path / "hub.toml"
    text = CONFIG.read_text(encoding="utf-8")
    assert 'secrets_file = "var/secrets.env"' in text
    config.write_text(text.replace('secrets_file = "var/secrets.env"', f'secrets_file = "{tmp_path}/secrets.env"'))
    runner = CliRunner()
    env = {"CARBONHUB_DATABASE_URL": database_url, "CARBONHUB_CONFIG": str(config)}
    try:
        started = time.perf_counter()
        first = runner.invoke(main, ["demo"], env=env, catch_exceptions=False)
        elapsed = time.perf_counter() - started
        assert first.exit_code == 0, first.output
        assert elapsed < 5, f"carbonhub demo took {elapsed:.1f} s"
        assert "Rejected, by reason: no_consent" in first.output
        alice = next(line for line in first.output.splitlines() if line.startswith("  demo-alice "))
        assert "metro-ride-voucher" in alice and "none yet" not in alice

        second = runner.invoke(main, ["demo"], env=env, catch_exceptions=False)
        assert second.exit_code == 0, second.output
        batches = [line for line in second.output.splitlines() if " accepted " in line]
        assert len(batches) == first.output.count(" accepted ") >= 9
        assert all(" accepted 0," in line for line in batches)
        verified = runner.invoke(main, ["ledger", "verify"], env=env, catch_exceptions=False)
        assert verified.exit_code == 0 and "ledger ok" in verified.output
    finally:
        if not db.database.is_closed():
            db.database.close()
