"""The shared-bike scenario end to end, as documented in docs/scenarios/bike.md.

Native ride records from ``tests/fixtures/bike`` go through the real pipeline
(plugin, gate, methodology, caps, rewards, ledger) with the shipped
``config/hub.toml`` rules for the bike scenario, and the worked example also
through a signed HTTP push. Expected grams are worked out by hand from the
published factor (93.3 g per km, Wuhan carbon-inclusion scheme, 2025) and the
config rule (per_kg = 100, bonus = 1), never read back from the code.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import auth, open_account, push
from conftest import shipped_config
from scenario_helpers import contains, fixture_loader, json_blocks, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "bike"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)  # before every good ride; bad.json has one before it
FACTOR_G_PER_KM = Decimal("93.3")  # Wuhan carbon-inclusion scheme, reported 2025
PARTNER = "hellobike"
SECRET = "hellobike-secret-0123456789"  # conftest's test secret for every configured partner


load = fixture_loader(FIXTURES)


def points(grams: int) -> int:
    return grams * 100 // 1000 + 1  # shipped rule: 100 pts per kg, rounded down, + 1 per ride


def law_of_cosines_m(start: dict, end: dict) -> float:
    """Great-circle distance by the spherical law of cosines (not the plugin's haversine)."""
    p1, l1, p2, l2 = (math.radians(float(x)) for x in (start["lat"], start["lng"], end["lat"], end["lng"]))
    return 6_371_000 * math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(l2 - l1))


def expected_grams(record: dict) -> int:
    if "distance_m" in record:
        km = Decimal(str(record["distance_m"])) / 1000
    else:
        km = Decimal(math.floor(law_of_cosines_m(record["unlock_location"], record["lock_location"]))) / 1000
    return math.floor(km * FACTOR_G_PER_KM)


@pytest.fixture
def config_data(config_data):
    """The test config with the bike rules exactly as shipped, plus a MaaS app that also reports rides."""
    shipped = shipped_config()
    config_data["scenarios"]["bike"] = shipped["scenarios"]["bike"]
    config_data["partners"][PARTNER] = shipped["partners"][PARTNER]
    config_data["partners"]["whmaas"] = {"name": "Wuhan MaaS app", "secret_env": "CARBONHUB_SECRET_WHMAAS",
                                         "scenarios": ["bike"]}
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-bike-0001")
    hub.set_consent(acc.id, "bike", True, at=CONSENT_AT)
    return acc


def ride(account_id: str, **changes) -> dict:
    """The worked example's ride (docs/scenarios/bike.md), with changes."""
    base = with_account(load("good.json")[0], account_id)
    assert base["order_id"] == "HB-20261120-7730015"  # the fixture's first record is the worked example
    return {**base, **changes}


def ingest(hub, *records, partner=PARTNER):
    return hub.pipeline.ingest(partner, list(records)).records


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("bike")
    assert view["methodology"]["id"] == "bike-shared-ride"
    assert view["methodology"]["version_in_force"] == "2025.1"
    # methodology 1500 g and 10 rides a day, config 1000 g: the lower wins
    assert view["caps"] == {"per_day_g": 1000, "per_day_count": 10}
    assert view["points"] == {"per_kg": 100, "bonus": 1}


def test_worked_example_3_42_km(hub, account):
    (rec,) = ingest(hub, ride(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 319, 32)  # 3.42 × 93.3 = 319.086 → 319; 31 + 1
    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version) == ("bike-shared-ride", "2025.1")
    assert (receipt.quantity, receipt.unit) == ("3.42", "km")
    assert Decimal(receipt.baseline_g) == Decimal("319.086") and Decimal(receipt.project_g) == 0
    assert (receipt.computed_g, receipt.credited_g) == (319, 319)
    assert receipt.formula == "3.42 km × 93.3 gCO2e/km − 0"
    (factor,) = receipt.factors
    assert Decimal(str(factor["value"])) == FACTOR_G_PER_KM and "Wuhan" in factor["source"]
    assert receipt.points == [{"points": 32, "rule": "config:bike", "detail": "319 g × 100 pts/kg + 1"}]
    tx = hub.ledger.get(b.tx_seq)
    assert tx.kind == "credit"
    assert sorted((p.account, p.unit, p.amount) for p in tx.postings) == sorted([
        ("@issuer:bike", "g", -319), (user_carbon(account.id), "g", 319),
        ("@issuer:bike", "pts", -32), (user_points(account.id), "pts", 32)])
    # Coordinates are read, never kept: the behaviour's evidence has none.
    row = db.Behaviour.get(db.Behaviour.id == b.id)
    assert "lat" not in json.dumps(row.attributes) and row.attributes["distance_source"] == "operator"


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    result = ingest(hub, *records)
    assert [r.status for r in result] == ["accepted"] * len(records)
    expected = [expected_grams(r) for r in records]
    # By hand: 3.42, 3.615, 2.946 (straight line), 1.25, 7.8, 0.3 and 0.95 km × 93.3 g/km, rounded down.
    assert expected == [319, 337, 274, 116, 727, 27, 88]
    assert [r.behaviours[0].grams for r in result] == expected
    assert [r.behaviours[0].points for r in result] == [points(g) for g in expected]
    assert not any(r.behaviours[0].capped for r in result)
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected)


def test_straight_line_distance_when_the_operator_sends_no_distance(hub, account):
    """The third good ride has only coordinates: about 2946.9 m apart, so 2.946 km."""
    record = with_account(load("good.json")[2], account.id)
    assert "distance_m" not in record
    assert 2946 < law_of_cosines_m(record["unlock_location"], record["lock_location"]) < 2947
    (rec,) = ingest(hub, record)
    receipt = db.Receipt.get(db.Receipt.behaviour == rec.behaviours[0].id)
    assert (receipt.quantity, receipt.computed_g) == ("2.946", 274)  # 2.946 × 93.3 = 274.8618
    row = db.Behaviour.get(db.Behaviour.id == rec.behaviours[0].id)
    assert row.attributes["distance_source"] == "straight_line"


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_same_order_resent_is_duplicate_event(hub, account):
    first, = ingest(hub, ride(account.id))
    again, = ingest(hub, ride(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 319


@pytest.mark.parametrize("changes", [
    # The operator's billing system reports the ride its trip system already sent: another
    # order id, the unlock a few seconds later in UTC, a slightly different measured distance.
    {"order_id": "HBP-5530017720", "unlock_at": "2026-11-20T00:03:48Z", "lock_at": "2026-11-20T00:21:40Z",
     "distance_m": 3380},
    # ... or with coordinates only, and the bike type in capitals.
    {"order_id": "HBP-5530017721", "distance_m": None, "bike_type": "PEDAL"},
], ids=["second-system", "coordinates-only"])
def test_same_ride_from_the_operators_two_systems_is_a_double_claim(hub, account, changes):
    first, = ingest(hub, ride(account.id))
    other = {k: v for k, v in ride(account.id, **changes).items() if v is not None}
    second, = ingest(hub, other)
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 319


def test_same_ride_reported_by_another_partner_is_credited_once(hub, account):
    first, = ingest(hub, ride(account.id))
    maas = ride(account.id, order_id="WHM-RIDE-00912", unlock_at="2026-11-20T00:03:00Z",
                lock_at="2026-11-20T00:22:00Z", distance_m="3500")
    second, = ingest(hub, maas, partner="whmaas")
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 319


@pytest.mark.parametrize("changes", [
    {"unlock_at": "2026-11-20T08:04:00+08:00"},  # the next minute: the bike was relocked and ridden again
    {"bike_id": "8620113578"},  # another bike in the same minute (a companion's, on the same account)
], ids=["minute", "bike"])
def test_a_different_ride_is_credited(hub, account, changes):
    ingest(hub, ride(account.id))
    other, = ingest(hub, ride(account.id, order_id="HB-20261120-7730016", **changes))
    assert verdict(other) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 319


def test_daily_gram_cap_trims_then_rejects(hub, account):
    """Five 3.42 km rides on one day: 319 × 3, then 43 g (1000 g a day), then nothing."""
    rides = [ride(account.id, order_id=f"HB-20261119-90{i}", unlock_at=f"2026-11-19T{8 + 2 * i:02d}:03:12+08:00",
                  lock_at=f"2026-11-19T{8 + 2 * i:02d}:21:40+08:00") for i in range(5)]
    result = ingest(hub, *rides)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result]
    assert got == [("accepted", 319, 32, None)] * 3 + [("accepted", 43, 5, None),  # 43 × 100 // 1000 + 1
                                                       ("rejected", 0, 0, "cap_reached")]
    capped = db.Receipt.get(db.Receipt.behaviour == result[3].behaviours[0].id)
    assert capped.caps == [{"cap": "per_day_g", "limit": 1000, "used_before": 957, "computed_g": 319,
                            "credited_g": 43}]
    # A ride at 00:30 on 20 November in Wuhan, reported in UTC (19 November): a new day.
    next_day, = ingest(hub, ride(account.id, order_id="HB-20261120-0000031", unlock_at="2026-11-19T16:30:00Z",
                                 lock_at="2026-11-19T16:48:28Z"))
    assert (verdict(next_day), next_day.behaviours[0].grams) == (("accepted", None, None), 319)


def test_daily_ride_count_cap(hub, account):
    """Eleven 500 m hops (46 g each) on one day: the eleventh is over the 10-ride cap."""
    hops = [ride(account.id, order_id=f"HB-20261118-80{i:02d}", distance_m=500,
                 unlock_at=f"2026-11-18T{8 + i:02d}:00:00+08:00", lock_at=f"2026-11-18T{8 + i:02d}:03:00+08:00")
            for i in range(11)]
    result = ingest(hub, *hops)
    assert [verdict(r)[1] for r in result] == [None] * 10 + ["cap_reached"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 10 * 46  # 0.5 × 93.3 = 46.65 → 46
    assert hub.ledger.balance(user_points(account.id), "pts") == 10 * points(46)


@pytest.mark.parametrize("changes, verdict_", [
    ({"lock_at": "2026-11-20T08:05:11+08:00", "distance_m": 400}, ("rejected", "ride_too_brief", "lock_at")),  # 119 s
    ({"lock_at": "2026-11-20T08:05:12+08:00", "distance_m": 400}, ("accepted", None, None)),  # 120 s
    ({"distance_m": 299}, ("rejected", "ride_too_short", "distance_m")),
    ({"distance_m": "299.9"}, ("rejected", "ride_too_short", "distance_m")),
    # 10 km in 20 min is exactly 30 km/h: allowed; 10.01 km is over.
    ({"lock_at": "2026-11-20T08:23:12+08:00", "distance_m": 10000}, ("accepted", None, None)),
    ({"lock_at": "2026-11-20T08:23:12+08:00", "distance_m": 10010}, ("rejected", "implausible_speed", "lock_at")),
], ids=["119s", "120s", "299m", "299.9m", "30kmh", "30.03kmh"])
def test_minimum_trip_and_speed_limits(hub, account, changes, verdict_):
    (rec,) = ingest(hub, ride(account.id, **changes))
    assert verdict(rec) == verdict_


def test_ebike_ride_is_rejected_and_kept_for_replay(hub, account):
    rec, = ingest(hub, ride(account.id, bike_type="ebike"))
    assert verdict(rec) == ("rejected", "ebike_not_covered", "bike_type")
    row = db.InboxRecord.get(db.InboxRecord.id == rec.inbox_id)
    assert (row.status, row.reason) == ("rejected", "ebike_not_covered")
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0
    # A rejected ride claims nothing: the operator's corrected report (a pedal bike) is credited.
    fixed, = ingest(hub, ride(account.id, order_id="HB-20261120-7730015-R"))
    assert (verdict(fixed), fixed.behaviours[0].grams) == (("accepted", None, None), 319)


# --- the worked example over HTTP ----------------------------------------------------------------


def test_worked_example_through_a_signed_push(client, hub, clock):
    account_id = open_account(client, "cust-bike-http")
    hub.set_consent(account_id, "bike", True, at=CONSENT_AT)
    example = ride(account_id)
    maas_copy = ride(account_id, order_id="HBP-5530017720", unlock_at="2026-11-20T00:03:48Z")
    response = push(client, PARTNER, [example, example, maas_copy], clock, secret=SECRET)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [
        ("accepted", None), ("duplicate", "duplicate_event"), ("duplicate", "double_claim")]
    assert (body["batch"]["grams"], body["batch"]["points"]) == (319, 32)
    credited = body["results"][0]["behaviours"][0]
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{credited['id']}", headers=auth()).get_json()
    assert detail["receipt"]["formula"] == "3.42 km × 93.3 gCO2e/km − 0"
    assert detail["receipt"]["computed_g"] == 319
    balances = client.get(f"/v1/accounts/{account_id}", headers=auth()).get_json()["balances"]
    assert balances == {"carbon_g": 319, "points": 32}
    entries = client.get(f"/v1/accounts/{account_id}/ledger", headers=auth()).get_json()["entries"]
    assert sorted((e["unit"], e["amount"], e["methodology"], e["event_id"]) for e in entries) == [
        ("g", 319, "bike-shared-ride@2025.1", "HB-20261120-7730015"),
        ("pts", 32, "bike-shared-ride@2025.1", "HB-20261120-7730015")]


# --- the numbers printed in docs/scenarios/bike.md -------------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "bike.md")


def test_docs_worked_example_is_the_tested_ride(hub, account):
    example, response = doc_json_blocks()[:2]
    assert dict(example, account_id=account.id) == ride(account.id)
    result = hub.pipeline.ingest(PARTNER, [ride(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    assert contains(response, actual), (response, actual)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]))
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result]
    assert got == [("accepted", 319, 32, None), ("accepted", 274, 28, None), ("rejected", 0, 0, "ride_too_brief")]
