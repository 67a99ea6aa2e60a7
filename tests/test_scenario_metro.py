"""The metro scenario end to end, as documented in docs/scenarios/metro.md.

Native records from ``tests/fixtures/metro`` go through the real pipeline
(plugin, gate, methodology, caps, rewards, ledger) with the shipped
``config/hub.toml`` rules for the metro scenario. The expected grams and points
are worked out by hand from the published factor (46.8 gCO2e per
passenger-km) and the config rule (per_kg = 100, bonus = 1), not read back
from the code.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import shipped_config

from hub import db
from hub.hookspecs import hookimpl
from hub.ledger import user_carbon, user_points
from hub.records import PointGrant

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "metro"
CST = timezone(timedelta(hours=8))
# Consent predates every good record; the bad ones include a ride before it.
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
FACTOR_G_PER_PKM = Decimal("46.8")  # Shenzhen trial methodology, 2021 (docs/scenarios/metro.md)


def load(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def with_account(record: dict, account_id: str) -> dict:
    return {k: (account_id if v == "{account}" else v) for k, v in record.items()}


def verdict(outcome) -> tuple[str, str | None, str | None]:
    """(status, reason, field) of a record: the record's own problem, else its behaviour's."""
    if outcome.reason:
        return outcome.status, outcome.reason, outcome.field
    (b,) = outcome.behaviours
    return outcome.status, b.reason, b.field


class Recorder:
    """A notification plugin: keeps every transaction the hub announces."""

    CARBONHUB_API = "1.0"

    def __init__(self):
        self.transactions = []

    @hookimpl
    def carbonhub_transaction_posted(self, ctx, transaction):
        self.transactions.append(transaction)


class WeekendBonus:
    """A partner's reward rule: 10 extra points for a metro ride at the weekend (docs/hooks.md)."""

    CARBONHUB_API = "1.0"

    @hookimpl
    def carbonhub_evaluate_rewards(self, ctx, behaviour, reduction, scenario_config):
        if behaviour.scenario != "metro" or behaviour.occurred_at.astimezone(ctx.tz).weekday() < 5:
            return []
        return [PointGrant(points=10, rule="weekend-metro", detail="weekend ride bonus")]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def extra_plugins(recorder):
    return [recorder]


@pytest.fixture
def config_data(config_data):
    """The test config with the metro rules exactly as shipped in config/hub.toml,
    plus a second partner (a card network) allowed to report metro rides."""
    shipped = shipped_config()
    config_data["scenarios"]["metro"] = shipped["scenarios"]["metro"]
    config_data["partners"]["szmetro"] = shipped["partners"]["szmetro"]
    config_data["partners"]["cardnet"] = {"name": "Transit card network", "secret_env": "CARBONHUB_SECRET_CARDNET",
                                          "scenarios": ["metro"]}
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-metro-0001")
    hub.set_consent(acc.id, "metro", True, at=CONSENT_AT)
    return acc


def ride(account_id: str, **changes) -> dict:
    """The worked example's ride (docs/scenarios/metro.md), with changes."""
    base = with_account(load("good.json")[0], account_id)
    assert base["ride_id"] == "SZM-20261120-000123"  # the fixture's first record is the worked example
    return {**base, **changes}


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("metro")
    assert view["methodology"]["id"] == "metro-avoided-car"
    assert view["methodology"]["version_in_force"] == "2021.1"
    # methodology per_day_count 10 vs config 5: the lower wins
    assert view["caps"] == {"per_day_count": 5, "per_day_g": 3000, "per_month_g": 60000}
    assert view["points"] == {"per_kg": 100, "bonus": 1}


def test_worked_example_18_6_km(hub, account, recorder):
    result = hub.pipeline.ingest("szmetro", [ride(account.id)])
    (rec,) = result.records
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 870, 88)  # 18.6 × 46.8 = 870.48 → 870; 87 + 1
    assert hub.ledger.balance(user_carbon(account.id), "g") == 870
    assert hub.ledger.balance(user_points(account.id), "pts") == 88

    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version) == ("metro-avoided-car", "2021.1")
    assert (receipt.quantity, receipt.unit) == ("18.6", "pkm")
    assert Decimal(receipt.baseline_g) == Decimal("870.48") and Decimal(receipt.project_g) == 0
    assert (receipt.computed_g, receipt.credited_g) == (870, 870)
    assert receipt.formula == "18.6 pkm × 46.8 gCO2e/pkm − 0"
    (factor,) = receipt.factors
    assert Decimal(str(factor["value"])) == FACTOR_G_PER_PKM and "Shenzhen" in factor["source"]
    assert receipt.points == [{"points": 88, "rule": "config:metro", "detail": "870 g × 100 pts/kg + 1"}]

    (tx,) = recorder.transactions
    assert tx.seq == b.tx_seq and tx.kind == "credit"
    assert sorted((p.account, p.unit, p.amount) for p in tx.postings) == sorted([
        ("@issuer:metro", "g", -870), (user_carbon(account.id), "g", 870),
        ("@issuer:metro", "pts", -88), (user_points(account.id), "pts", 88)])


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    result = hub.pipeline.ingest("szmetro", records)
    assert [r.status for r in result.records] == ["accepted"] * len(records)
    expected_g = [math.floor(Decimal(str(r["distance_km"])) * FACTOR_G_PER_PKM) for r in records]
    assert [r.behaviours[0].grams for r in result.records] == expected_g
    assert [r.behaviours[0].points for r in result.records] == [g * 100 // 1000 + 1 for g in expected_g]
    assert not any(r.behaviours[0].capped for r in result.records)
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected_g)


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = hub.pipeline.ingest("szmetro", [with_account(c["record"], account.id) for c in cases])
    got = [verdict(r) for r in result.records]
    assert got == [("rejected", c["reason"], c["field"]) for c in cases]
    # Operators see the same reasons in the inbox, one row per record.
    stored = {row.id: row.reason for row in db.InboxRecord.select().where(db.InboxRecord.batch_id == result.batch_id)}
    assert [stored[r.inbox_id] for r in result.records] == [c["reason"] for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_same_event_resent_is_duplicate_event(hub, account):
    first = hub.pipeline.ingest("szmetro", [ride(account.id)]).records[0]
    again = hub.pipeline.ingest("szmetro", [ride(account.id)]).records[0]
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 870


@pytest.mark.parametrize("changes", [
    {"ride_id": "SZM-20261120-900001"},  # operator re-issued the ride under another id
    {"ride_id": "SZM-20261120-900002", "entry_at": "2026-11-20T00:01:00Z",  # same instant in UTC
     "exit_at": "2026-11-20T00:40:00Z"},
    {"ride_id": "SZM-20261120-900003", "entry_at": "2026-11-20T08:01:42+08:00",  # seconds differ
     "city": "Shenzhen"},  # city case differs
], ids=["new-ride-id", "utc-offset", "seconds-and-case"])
def test_same_act_is_a_double_claim(hub, account, changes):
    first = hub.pipeline.ingest("szmetro", [ride(account.id)]).records[0]
    second = hub.pipeline.ingest("szmetro", [ride(account.id, **changes)]).records[0]
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 870


def test_same_act_reported_by_another_partner_is_credited_once(hub, account):
    first = hub.pipeline.ingest("szmetro", [ride(account.id)]).records[0]
    card_network = ride(account.id, ride_id="CN-77120931", entry_at="2026-11-20T00:01:05Z",
                        exit_at="2026-11-20T00:40:00Z")
    second = hub.pipeline.ingest("cardnet", [card_network]).records[0]
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 870


@pytest.mark.parametrize("changes", [
    {"entry_at": "2026-11-20T08:02:00+08:00"},  # next minute
    {"entry_station": "Guomao"},  # another station
    {"card_token": "tok_0d3e88b1"},  # another card (a companion's)
], ids=["minute", "station", "card"])
def test_a_different_act_is_credited(hub, account, changes):
    hub.pipeline.ingest("szmetro", [ride(account.id)])
    other = hub.pipeline.ingest("szmetro", [ride(account.id, ride_id="SZM-20261120-000124", **changes)])
    assert verdict(other.records[0]) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 870


def test_daily_gram_cap_trims_then_rejects(hub, account):
    """Five 18.6 km rides on one day: 870 + 870 + 870 + 390 (3000 g a day), then nothing."""
    rides = [ride(account.id, ride_id=f"SZM-20261120-10{i}", entry_at=f"2026-11-20T{8 + 2 * i:02d}:01:00+08:00",
                  exit_at=f"2026-11-20T{8 + 2 * i:02d}:40:00+08:00") for i in range(5)]
    result = hub.pipeline.ingest("szmetro", rides)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result.records]
    assert got == [("accepted", 870, 88, None)] * 3 + [("accepted", 390, 40, None),
                                                       ("rejected", 0, 0, "cap_reached")]
    capped = db.Receipt.get(db.Receipt.behaviour == result.records[3].behaviours[0].id)
    assert (capped.computed_g, capped.credited_g) == (870, 390)
    assert capped.caps == [{"cap": "per_day_g", "limit": 3000, "used_before": 2610, "computed_g": 870,
                            "credited_g": 390}]
    # The cap is per local day: the next morning earns again.
    next_day = ride(account.id, ride_id="SZM-20261121-000001", entry_at="2026-11-21T08:01:00+08:00",
                    exit_at="2026-11-21T08:40:00+08:00")
    assert hub.pipeline.ingest("szmetro", [next_day]).records[0].behaviours[0].grams == 870


def test_daily_ride_count_cap(hub, account):
    """Six short 2 km rides (93 g each) on one day: the sixth is over the 5-ride cap."""
    rides = [ride(account.id, ride_id=f"SZM-20261119-20{i}", entry_station=f"Station {i}", distance_km="2",
                  entry_at=f"2026-11-19T{9 + i:02d}:00:00+08:00", exit_at=f"2026-11-19T{9 + i:02d}:06:00+08:00")
             for i in range(6)]
    result = hub.pipeline.ingest("szmetro", rides)
    assert [verdict(r)[1] for r in result.records] == [None] * 5 + ["cap_reached"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 5 * 93
    assert hub.ledger.balance(user_points(account.id), "pts") == 5 * (93 * 100 // 1000 + 1)


@pytest.mark.parametrize("extra_plugins", [[WeekendBonus()]], ids=["weekend-bonus"])
def test_partner_reward_rule_adds_to_the_config_rule(hub, account):
    friday = ride(account.id)  # 2026-11-20 is a Friday
    # Sunday 2026-11-15 08:01 in Shanghai, reported in UTC: still Sunday locally.
    sunday = ride(account.id, ride_id="SZM-20261115-000077", entry_at="2026-11-15T00:01:00Z",
                  exit_at="2026-11-15T00:40:00Z")
    result = hub.pipeline.ingest("szmetro", [friday, sunday])
    assert [r.behaviours[0].points for r in result.records] == [88, 88 + 10]
    receipt = db.Receipt.get(db.Receipt.behaviour == result.records[1].behaviours[0].id)
    assert sorted(g["rule"] for g in receipt.points) == ["config:metro", "weekend-metro"]
    tx = hub.ledger.get(result.records[1].behaviours[0].tx_seq)
    assert sorted(tx.memo["rules"]) == ["config:metro", "weekend-metro"]
    assert hub.ledger.balance(user_points(account.id), "pts") == 88 + 98


# --- the numbers printed in docs/scenarios/metro.md ------------------------------------------------


def doc_json_blocks() -> list:
    text = (ROOT / "docs" / "scenarios" / "metro.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def contains(documented, actual) -> bool:
    """Whether everything the (abridged) documentation shows is in the actual value."""
    if isinstance(documented, dict):
        return isinstance(actual, dict) and all(k in actual and contains(v, actual[k]) for k, v in documented.items())
    if isinstance(documented, list):
        return isinstance(actual, list) and len(documented) == len(actual) and all(
            contains(d, a) for d, a in zip(documented, actual))
    return documented == actual


def test_docs_worked_example_is_the_tested_ride(hub, account):
    example, response = doc_json_blocks()[:2]
    assert dict(example, account_id=account.id) == ride(account.id)
    result = hub.pipeline.ingest("szmetro", [ride(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    assert contains(response, actual), (response, actual)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    records = [dict(r, account_id=account.id) for r in sample["records"]]
    result = hub.pipeline.ingest("szmetro", records)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result.records]
    assert got == [("accepted", 870, 88, None), ("accepted", 524, 53, None), ("rejected", 0, 0, "same_station")]
