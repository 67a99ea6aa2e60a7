"""The metro scenario end to end, as documented in docs/scenarios/metro.md.

Native records from ``tests/fixtures/metro`` go through the real pipeline
(plugin, gate, methodology, caps, rewards, ledger) with the shipped
``config/hub.toml`` rules for the metro scenario. The expected grams and points
are worked out by hand from the published factors (Shenzhen 46.8 gCO2e per
passenger-km; Wuhan 78.4 g per km from version 2026.1, in force from
2026-12-01) and the config rule (per_kg = 100, bonus = 1), not read back from
the code. Wuhan Metro (``whmetro``) and a card network (``unionpay``, its own
transaction format) report rides too; the same ride from both is credited once.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import auth, push
from conftest import shipped_config
from scenario_helpers import contains, fixture_loader, json_blocks, Recorder, verdict, with_account

from hub import db
from hub.config import load_settings
from hub.core import Hub
from hub.hookspecs import hookimpl
from hub.ledger import user_carbon, user_points
from hub.records import Behaviour, PointGrant

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "metro"
CST = timezone(timedelta(hours=8))
# Consent predates every good record; the bad ones include a ride before it.
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
FACTOR_G_PER_PKM = Decimal("46.8")  # Shenzhen trial methodology, 2021 (docs/scenarios/metro.md)
WUHAN_G_PER_PKM = Decimal("78.4")  # Wuhan carbon-inclusion scheme, reported 2025
DECEMBER = datetime(2026, 12, 8, 12, 0, tzinfo=CST)  # the hub's clock once 2026.1 (from 2026-12-01) is in force
MID = "metro-avoided-car"


load = fixture_loader(FIXTURES)


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
    # Wuhan Metro, and the card network of the shipped config for its transit fares (metro and bus);
    # test_the_shipped_config_routes_card_network_fares runs it with all its scenarios.
    config_data["partners"]["whmetro"] = shipped["partners"]["whmetro"]
    config_data["partners"]["unionpay"] = dict(shipped["partners"]["unionpay"], scenarios=["metro", "bus"])
    config_data["scenarios"]["bus"] = shipped["scenarios"]["bus"]
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


# --- city factor sets: version 2026.1 (Shenzhen and Wuhan) ------------------------------------------


def wuhan_ride(account_id: str, **changes) -> dict:
    """The Wuhan worked example's ride (docs/scenarios/metro.md), with changes."""
    base = with_account(load("good_wuhan.json")[0], account_id)
    assert base["ride_id"] == "WHM-20261207-000418"
    return {**base, **changes}


def network_txn(account_id: str, index: int = 0, **changes) -> dict:
    """A card network's transit transaction from good_unionpay.json, with changes."""
    return {**with_account(load("good_unionpay.json")[index], account_id), **changes}


def receipt_of(outcome) -> db.Receipt:
    return db.Receipt.get(db.Receipt.behaviour == outcome.behaviours[0].id)


def floor_g(km, factor: Decimal) -> int:
    return math.floor(Decimal(str(km)) * factor)


def test_2026_version_supersedes_2021_without_editing_it(hub):
    v2021, v2026 = hub.methodologies.versions[MID]
    assert (v2021.version, v2021.family, v2021.effective_from, v2021.effective_to) == (
        "2021.1", "per_quantity", date(2021, 1, 1), None)
    assert v2021.superseded_on == date(2026, 12, 1)  # ended by the newer document, not by an edit
    assert {n: f.value for n, f in v2021.factors.items()} == {"baseline": FACTOR_G_PER_PKM}
    assert (v2026.version, v2026.family, v2026.effective_from, v2026.ends_on) == (
        "2026.1", "by_city", date(2026, 12, 1), None)
    assert {n: f.value for n, f in v2026.factors.items()} == {"baseline@shenzhen": FACTOR_G_PER_PKM,
                                                               "baseline@wuhan": WUHAN_G_PER_PKM}
    assert "Wuhan" in v2026.factors["baseline@wuhan"].source
    assert v2026.evidence == v2021.evidence and v2026.caps == v2021.caps == {"per_day_count": 10}
    # Local dates decide: the last evening of November and the first morning of December.
    in_force = lambda at: hub.scenario_view("metro", at=at)["methodology"]["version_in_force"]  # noqa: E731
    assert in_force(datetime(2026, 11, 30, 23, 59, tzinfo=CST)) == "2021.1"
    assert in_force(datetime(2026, 11, 30, 16, 0, tzinfo=timezone.utc)) == "2026.1"  # 00:00 on 1 December
    assert in_force(DECEMBER) == "2026.1"


def test_wuhan_worked_example_16_7_km(hub, account, clock):
    clock.current = DECEMBER
    (rec,) = hub.pipeline.ingest("whmetro", [wuhan_ride(account.id)]).records
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 1309, 131)  # 16.7 × 78.4 = 1309.28 → 1309; 130 + 1
    receipt = receipt_of(rec)
    assert (receipt.methodology, receipt.version) == (MID, "2026.1")
    assert (receipt.quantity, receipt.unit) == ("16.7", "pkm")
    assert Decimal(receipt.baseline_g) == Decimal("1309.28") and Decimal(receipt.project_g) == 0
    assert receipt.formula == "16.7 pkm × 78.4 gCO2e/pkm (wuhan) − 0"
    (factor,) = receipt.factors
    assert factor["name"] == "baseline@wuhan" and Decimal(str(factor["value"])) == WUHAN_G_PER_PKM
    assert "Wuhan" in factor["source"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 1309
    assert hub.ledger.balance(user_points(account.id), "pts") == 131


def test_wuhan_good_fixture_is_credited_in_full(hub, account, clock):
    clock.current = DECEMBER
    records = [with_account(r, account.id) for r in load("good_wuhan.json")]
    result = hub.pipeline.ingest("whmetro", records)
    assert [verdict(r) for r in result.records] == [("accepted", None, None)] * len(records)
    expected_g = [floor_g(r["distance_km"], WUHAN_G_PER_PKM) for r in records]
    assert [r.behaviours[0].grams for r in result.records] == expected_g
    assert [r.behaviours[0].points for r in result.records] == [g * 100 // 1000 + 1 for g in expected_g]
    assert {receipt_of(r).version for r in result.records} == {"2026.1"}
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected_g)


def test_the_ride_date_picks_the_version_and_the_city_the_factor(hub, account, clock):
    clock.current = DECEMBER
    gz = dict(city="guangzhou", line="3", entry_station="Tiyu Xilu", exit_station="Guangzhou East Railway Station",
              distance_km="3.6")
    cases = [  # (partner, record, expected version, grams or reason)
        ("szmetro", ride(account.id, ride_id="SZM-20240506-000031", entry_at="2024-05-06T08:01:00+08:00",
                         exit_at="2024-05-06T08:40:00+08:00"), "2021.1", floor_g("18.6", FACTOR_G_PER_PKM)),
        ("szmetro", ride(account.id, ride_id="SZM-20261207-000123", entry_at="2026-12-07T08:01:00+08:00",
                         exit_at="2026-12-07T08:40:00+08:00"), "2026.1", floor_g("18.6", FACTOR_G_PER_PKM)),
        # Wuhan before 2026.1: the 2021.1 figure (Shenzhen's, lower) applied to every city.
        ("whmetro", wuhan_ride(account.id, ride_id="WHM-20261120-000418", entry_at="2026-11-20T08:10:00+08:00",
                               exit_at="2026-11-20T08:52:00+08:00"), "2021.1", floor_g("16.7", FACTOR_G_PER_PKM)),
        ("whmetro", wuhan_ride(account.id), "2026.1", floor_g("16.7", WUHAN_G_PER_PKM)),
        # 22:30 UTC on 30 November is 06:30 on 1 December in Wuhan: the local date counts.
        ("whmetro", wuhan_ride(account.id, ride_id="WHM-20261201-000002", entry_at="2026-11-30T22:30:00Z",
                               exit_at="2026-11-30T23:12:00Z"), "2026.1", floor_g("16.7", WUHAN_G_PER_PKM)),
        ("unionpay", network_txn(account.id, txn_id="UPT-20261120-70000001", entry_at="2026-11-20T02:10:00Z",
                                 exit_at="2026-11-20T02:19:00Z", **gz), "2021.1", floor_g("3.6", FACTOR_G_PER_PKM)),
        ("unionpay", network_txn(account.id, txn_id="UPT-20261205-70000002", entry_at="2026-12-05T02:10:00Z",
                                 exit_at="2026-12-05T02:19:00Z", **gz), None, "no_factor_for_city"),
    ]
    got, expected = [], []
    for partner, record, version, outcome in cases:
        (rec,) = hub.pipeline.ingest(partner, [record]).records
        if version is None:
            got.append(verdict(rec))
            expected.append(("rejected", outcome, "city"))
        else:
            got.append((rec.status, receipt_of(rec).version, rec.behaviours[0].grams))
            expected.append(("accepted", version, outcome))
    assert got == expected
    assert [g for _, _, g in expected[:6]] == [870, 870, 781, 1309, 1309, 168]  # the arithmetic, by hand


def test_receipts_stay_reproducible_after_the_new_version(hub, account, clock, client):
    # November: the Shenzhen worked example is credited under 2021.1.
    old = hub.pipeline.ingest("szmetro", [ride(account.id)]).records[0]
    old_row = dict(receipt_of(old).__data__)
    # December: 2026.1 is in force for new rides; a late record of November still gets 2021.1.
    clock.current = DECEMBER
    new_sz = hub.pipeline.ingest("szmetro", [ride(account.id, ride_id="SZM-20261207-000123",
                                                  entry_at="2026-12-07T08:01:00+08:00",
                                                  exit_at="2026-12-07T08:40:00+08:00")]).records[0]
    new_wh = hub.pipeline.ingest("whmetro", [wuhan_ride(account.id)]).records[0]
    late = hub.pipeline.ingest("szmetro", [ride(account.id, ride_id="SZM-20261119-000981", line="4",
                                                entry_station="Shenzhen North", exit_station="Futian Checkpoint",
                                                entry_at="2026-11-19T08:15:00+08:00",
                                                exit_at="2026-11-19T08:38:00+08:00", distance_km="11.2")]).records[0]
    assert dict(receipt_of(old).__data__) == old_row  # the stored receipt is untouched

    expected = {  # behaviour -> (version, factor name, factor value, formula, grams)
        old.behaviours[0].id: ("2021.1", "baseline", "46.8", "18.6 pkm × 46.8 gCO2e/pkm − 0", 870),
        late.behaviours[0].id: ("2021.1", "baseline", "46.8", "11.2 pkm × 46.8 gCO2e/pkm − 0", 524),
        new_sz.behaviours[0].id: ("2026.1", "baseline@shenzhen", "46.8",
                                  "18.6 pkm × 46.8 gCO2e/pkm (shenzhen) − 0", 870),
        new_wh.behaviours[0].id: ("2026.1", "baseline@wuhan", "78.4", "16.7 pkm × 78.4 gCO2e/pkm (wuhan) − 0", 1309),
    }
    for bid, (version, name, value, formula, grams) in expected.items():
        detail = client.get(f"/v1/accounts/{account.id}/behaviours/{bid}", headers=auth("reader")).get_json()
        receipt = detail["receipt"]
        (factor,) = receipt["factors"]
        assert (receipt["version"], factor["name"], factor["value"], receipt["formula"]) == (
            version, name, value, formula)
        # From the receipt alone: quantity × the factor it names.
        assert math.floor(Decimal(receipt["quantity"]) * Decimal(factor["value"])) == receipt["computed_g"] == grams
        # And again with the version it names, from the stored behaviour.
        row = db.Behaviour.get_by_id(bid)
        stored = Behaviour(scenario=row.scenario, account_id=row.account, event_id=row.event_id,
                           fingerprint=row.fingerprint, occurred_at=db.from_db(row.occurred_at),
                           quantity=Decimal(row.quantity), unit=row.unit, attributes=row.attributes)
        again = hub.methodologies.get(MID, version).compute(stored)
        assert (again.grams, again.formula) == (grams, formula)


@pytest.mark.parametrize("first, second", [("operator", "network"), ("network", "operator")])
@pytest.mark.parametrize("city", ["shenzhen", "wuhan"])
def test_operator_and_card_network_report_the_same_ride_once(hub, account, clock, city, first, second):
    clock.current = DECEMBER
    if city == "shenzhen":  # good_unionpay.json[0]: 00:01:05Z = 08:01:05 in Shenzhen
        operator = ("szmetro", ride(account.id, ride_id="SZM-20261207-000123", entry_at="2026-12-07T08:01:00+08:00",
                                    exit_at="2026-12-07T08:40:00+08:00"))
        network, grams = ("unionpay", network_txn(account.id, 0)), floor_g("18.6", FACTOR_G_PER_PKM)
    else:  # good_unionpay.json[1]: 06:40:31Z = 14:40:31 in Wuhan
        operator = ("whmetro", wuhan_ride(account.id, ride_id="WHM-20261206-004410", entry_station="Jianghan Road",
                                          exit_station="Guanggu Square", entry_at="2026-12-06T14:40:00+08:00",
                                          exit_at="2026-12-06T15:21:00+08:00", distance_km="15.0"))
        network, grams = ("unionpay", network_txn(account.id, 1)), floor_g("15.0", WUHAN_G_PER_PKM)
    reports = {"operator": operator, "network": network}
    (one,) = hub.pipeline.ingest(reports[first][0], [reports[first][1]]).records
    (two,) = hub.pipeline.ingest(reports[second][0], [reports[second][1]]).records
    assert verdict(one) == ("accepted", None, None) and one.behaviours[0].grams == grams
    assert verdict(two) == ("duplicate", "double_claim", None)
    assert two.behaviours[0].duplicate_of == one.behaviours[0].id and two.behaviours[0].grams == 0
    assert hub.ledger.balance(user_carbon(account.id), "g") == grams


def test_card_network_good_fixture(hub, account, clock):
    clock.current = DECEMBER
    records = [with_account(r, account.id) for r in load("good_unionpay.json")]
    result = hub.pipeline.ingest("unionpay", records)
    factor = {"shenzhen": FACTOR_G_PER_PKM, "wuhan": WUHAN_G_PER_PKM}
    expected_g = [floor_g(r["distance_km"], factor[r["city"]]) for r in records]
    assert [(r.status, r.behaviours[0].scenario, r.behaviours[0].grams) for r in result.records] == [
        ("accepted", "metro", g) for g in expected_g]
    assert expected_g == [870, 1176]  # 18.6 × 46.8 = 870.48; 15.0 × 78.4 = 1176


def test_card_network_bad_fixture_reasons_and_fields(hub, account, clock):
    clock.current = DECEMBER
    cases = load("bad_unionpay.json")
    result = hub.pipeline.ingest("unionpay", [with_account(c["record"], account.id) for c in cases])
    assert [verdict(r) for r in result.records] == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_card_network_bus_fare_is_left_to_the_bus_plugin(hub, account, clock):
    """unionpay reports metro and bus: a bus fare becomes a bus behaviour (here without bus consent)."""
    clock.current = DECEMBER
    bus_fare = {"txn_id": "UPT-20261207-51000419", "account_id": account.id, "card_token": "tok_5b80e2aa",
                "mode": "bus", "merchant": "Wuhan Public Transport Group", "amount": "2.00", "city": "wuhan",
                "line": "402", "boarding_stop": "Wuchang Railway Station", "tap_at": "2026-12-07T00:05:00Z"}
    (rec,) = hub.pipeline.ingest("unionpay", [bus_fare]).records
    assert rec.behaviours[0].scenario == "bus" and verdict(rec) == ("rejected", "no_consent", "occurred_at")


def test_the_shipped_config_routes_card_network_fares(database_url, clock):
    """The whole shipped config: unionpay reports other scenarios too, and no plugin takes a fare that is not its."""
    data = shipped_config()
    data["hub"]["secrets_file"] = "/nonexistent/secrets.env"
    h = Hub(load_settings(data=data, environ={}), clock=clock, database_url=database_url)
    h.init_db()
    try:
        clock.current = DECEMBER
        acc, _ = h.open_account("cust-metro-0002")
        for scenario in ("metro", "bus"):
            h.set_consent(acc.id, scenario, True, at=CONSENT_AT)
        bus_fare = {"txn_id": "UPT-20261207-51000419", "account_id": acc.id, "card_token": "tok_5b80e2aa",
                    "mode": "bus", "merchant": "Wuhan Public Transport Group", "amount": "2.00", "city": "wuhan",
                    "line": "402", "boarding_stop": "Wuchang Railway Station", "tap_at": "2026-12-07T00:05:00Z"}
        result = h.pipeline.ingest("unionpay", [network_txn(acc.id, 0), bus_fare])
        assert [(r.status, r.reason, [b.scenario for b in r.behaviours]) for r in result.records] == [
            ("accepted", None, ["metro"]), ("accepted", None, ["bus"])]
        assert [r.behaviours[0].grams for r in result.records] == [870, 212]  # 18.6 × 46.8; Wuhan bus 212.5
    finally:
        if not db.database.is_closed():
            db.database.close()


@pytest.mark.parametrize("partner, at, grams, points, version", [
    ("szmetro", None, 870, 88, "2021.1"),
    ("whmetro", DECEMBER, 1309, 131, "2026.1"),
], ids=["shenzhen", "wuhan"])
def test_worked_examples_through_the_http_api(hub, account, clock, client, partner, at, grams, points, version):
    if at is not None:
        clock.current = at
    record = ride(account.id) if partner == "szmetro" else wuhan_ride(account.id)
    secret = hub.settings.secret(hub.settings.partners[partner].secret_env)
    response = push(client, partner, [record], clock, secret=secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("accepted", "grams", "points")} == {
        "accepted": 1, "grams": grams, "points": points}
    (b,) = body["results"][0]["behaviours"]
    detail = client.get(f"/v1/accounts/{account.id}/behaviours/{b['id']}", headers=auth("reader")).get_json()
    assert (detail["receipt"]["version"], detail["receipt"]["credited_g"]) == (version, grams)
    again = push(client, partner, [record], clock, secret=secret).get_json()
    assert again["results"][0]["behaviours"][0]["reason"] == "duplicate_event"


# --- the numbers printed in docs/scenarios/metro.md ------------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "metro.md")


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


def test_docs_wuhan_worked_example_is_the_tested_ride(hub, account, clock):
    (example,) = [b for b in doc_json_blocks() if isinstance(b, dict) and b.get("ride_id") == "WHM-20261207-000418"]
    assert dict(example, account_id=account.id) == wuhan_ride(account.id)
    (response,) = [b for b in doc_json_blocks() if isinstance(b, dict)
                   and b.get("results", [{}])[0].get("event_id") == "WHM-20261207-000418"]
    clock.current = DECEMBER
    result = hub.pipeline.ingest("whmetro", [wuhan_ride(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    assert contains(response, actual), (response, actual)


def test_docs_card_network_record_is_the_fixture(account):
    (example,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "txn_id" in b]
    assert dict(example, account_id=account.id) == network_txn(account.id, 0)
