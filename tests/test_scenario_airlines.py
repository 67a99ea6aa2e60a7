"""The airlines scenario (flights without a checked bag) end to end, as documented in docs/scenarios/airlines.md.

Native records from ``tests/fixtures/airlines`` (the airline's miles programme
``xiamenair`` and the travel agency ``ctrip``) go through the real pipeline with
the shipped ``config/hub.toml`` rules. Expected grams are worked out here from
the published factor (ECTA 2011: 0.602 kgCO2 per tonne-km), the 20 kg bag and
the great-circle distance between the airports, computed in this module with
another formula than the plugin's (the spherical law of cosines in its
atan2 form, not the haversine): never read back from the code.
"""
from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from api_helpers import auth, open_account, push
from conftest import shipped_config
from scenario_helpers import contains, fixture_loader, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points
from hub.records import Behaviour, Factor

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "airlines"
AIRPORTS_CSV = ROOT / "plugins" / "airlines" / "airports.csv"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
FREIGHT_KG_PER_TKM = Decimal("0.602")  # ECTA 2011, air freight
BAG_KG = 20  # the methodology's typical checked bag
POINTS_PER_KG, E_BOARDING_POINTS = 10, 5  # shipped config: per_kg = 10, bonus = 0; e_boarding_points = 5
EARTH_RADIUS_KM = 6371
# Aerodrome reference points (degrees) as printed in docs/scenarios/airlines.md.
XMN = (24.5440, 118.1277)
PEK = (40.0801, 116.5846)
WORKED_KM, WORKED_G = 1733, 20865  # 1733 × 20 × 0.602 = 20865.32
SECRETS = {"xiamenair": "xiamenair-secret-0123456789", "ctrip": "ctrip-secret-0123456789"}  # conftest's default


load = fixture_loader(FIXTURES)


def table() -> dict[str, dict]:
    with open(AIRPORTS_CSV, encoding="utf-8", newline="") as fh:
        return {row["iata"]: row for row in csv.DictReader(fh)}


def sphere_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance by the spherical law of cosines (atan2 form): a check on the plugin's haversine."""
    p1, l1, p2, l2 = map(math.radians, (*a, *b))
    dl = l2 - l1
    y = math.hypot(math.cos(p2) * math.sin(dl),
                   math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl))
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return EARTH_RADIUS_KM * math.atan2(y, x)


def route_km(origin: str, destination: str) -> int:
    rows = table()
    a, b = rows[origin.upper()], rows[destination.upper()]
    return math.floor(sphere_km((float(a["latitude"]), float(a["longitude"])),
                                (float(b["latitude"]), float(b["longitude"]))))


def grams_for(km: int) -> int:
    return math.floor(km * BAG_KG * FREIGHT_KG_PER_TKM)


def points_for(grams: int, e_boarding: bool) -> int:
    return grams * POINTS_PER_KG // 1000 + (E_BOARDING_POINTS if e_boarding else 0)


@pytest.fixture
def config_data(config_data):
    """The test config with the airline rules, partners and plugin settings exactly as shipped."""
    shipped = shipped_config()
    config_data["scenarios"]["light_travel"] = shipped["scenarios"]["light_travel"]
    for partner in ("xiamenair", "ctrip"):
        config_data["partners"][partner] = shipped["partners"][partner]
    config_data.setdefault("plugin_config", {})["airlines"] = dict(shipped["plugin_config"]["airlines"])
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-air-0001")
    hub.set_consent(acc.id, "light_travel", True, at=CONSENT_AT)
    return acc


def flight(account_id: str, **changes) -> dict:
    """The worked example's segment (docs/scenarios/airlines.md), with changes."""
    base = with_account(load("good.json")[0], account_id)
    assert base["segment_id"] == "MF-7312045518330-1"  # the fixture's first record is the worked example
    return {**base, **changes}


def agency(account_id: str, segment: dict | None = None, **changes) -> dict:
    """The travel agency's report of the worked example's flight (departure written in UTC)."""
    record = {"order_id": "CT-2611170011820", "segment_no": 1, "account_id": account_id,
              "passenger": {"ffp_token": "egret_5c81e07a"},
              "segment": {"operating_flight": "MF8101", "marketing_flight": "CZ5101", "from": "XMN", "to": "PEK",
                          "departure_time": "2026-11-17T23:05:00Z"},
              "ticket_status": "used", "baggage_pieces": 0, "e_boarding": True}
    record["segment"].update(segment or {})
    return {**record, **changes}


def ingest(hub, partner: str, *records):
    return hub.pipeline.ingest(partner, list(records)).records


# --- the airport table and the distance -------------------------------------------------------------


def test_airport_table_is_complete_and_sane():
    rows = table()
    assert len(rows) >= 60
    for code, row in rows.items():
        assert re.fullmatch(r"[A-Z]{3}", code) and row["name"] and row["city"], row
        ZoneInfo(row["timezone"])  # a real IANA zone
        lat, lon = float(row["latitude"]), float(row["longitude"])
        if row["country"] == "CN":  # mainland China: catches a swapped or mis-signed coordinate
            assert 18 <= lat <= 54 and 73 <= lon <= 135, row
            assert row["timezone"] == "Asia/Shanghai", row
        else:
            assert -90 <= lat <= 90 and -180 <= lon <= 180, row


@pytest.mark.parametrize("origin, destination, published_km", [
    ("PEK", "SHA", 1080), ("PEK", "CAN", 1900), ("SZX", "PEK", 1950),
], ids=["PEK-SHA", "PEK-CAN", "SZX-PEK"])
def test_known_distances_within_one_percent(origin, destination, published_km):
    from plugins.airlines import distance_km
    km = distance_km(origin, destination)
    assert Decimal("0.99") * published_km <= km <= Decimal("1.01") * published_km
    assert km == route_km(origin, destination)  # haversine and law of cosines agree to the km


def test_worked_example_distance_and_grams_by_hand():
    km = sphere_km(XMN, PEK)
    assert math.floor(km) == WORKED_KM, km
    assert grams_for(WORKED_KM) == WORKED_G  # 1733 × 20 × 0.602 = 20865.32
    assert points_for(WORKED_G, True) == 208 + 5


def test_family_refuses_factors_in_other_units():
    from methodologies.great_circle_freight import compute
    b = Behaviour(scenario="light_travel", account_id="acc", event_id="e", fingerprint="f",
                  occurred_at=datetime(2026, 11, 18, tzinfo=CST), quantity=Decimal(1733), unit="km")
    ok = {"payload": Factor("payload", Decimal(20), "kg", "assumption"),
          "freight": Factor("freight", FREIGHT_KG_PER_TKM, "kgCO2/tkm", "ECTA 2011")}
    calc = compute(ok, b)
    assert (calc.baseline_g, calc.project_g) == (Decimal("20865.320"), 0)
    with pytest.raises(ValueError):
        compute({**ok, "freight": Factor("freight", Decimal("602"), "gCO2/tkm", "ECTA 2011")}, b)


# --- the pipeline ---------------------------------------------------------------------------------


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("light_travel")
    assert view["methodology"]["id"] == "light-travel-avoided-freight"
    assert view["methodology"]["version_in_force"] == "2023.1"
    # document: 6 a day per account, 4 a day per member; config: 4 a day, 20 a month, 50 kg a day
    assert view["caps"] == {"per_day_count": 4, "per_subject_day_count": 4, "per_month_count": 20,
                            "per_day_g": 50000}
    assert view["cap_subject"] == "ffp_token"
    assert view["points"] == {"per_kg": 10, "bonus": 0}
    assert view["partners"] == ["ctrip", "xiamenair"]


def test_worked_example_xmn_pek(hub, account):
    (rec,) = ingest(hub, "xiamenair", flight(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", WORKED_G, 208 + 5)
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G
    assert hub.ledger.balance(user_points(account.id), "pts") == 213

    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version) == ("light-travel-avoided-freight", "2023.1")
    assert (receipt.quantity, receipt.unit) == ("1733", "km")
    assert Decimal(receipt.baseline_g) == Decimal("20865.32") and Decimal(receipt.project_g) == 0
    assert (receipt.computed_g, receipt.credited_g) == (WORKED_G, WORKED_G)
    assert receipt.formula == "1733 km × 20 kg × 0.602 kgCO2/tkm − 0"
    factors = {f["name"]: f for f in receipt.factors}
    assert Decimal(str(factors["freight"]["value"])) == FREIGHT_KG_PER_TKM and "ECTA" in factors["freight"]["source"]
    assert Decimal(str(factors["payload"]["value"])) == BAG_KG and "20 kg" in factors["payload"]["source"]
    assert sorted(receipt.points, key=lambda g: g["rule"]) == [
        {"points": 5, "rule": "airlines:e-boarding", "detail": "boarded with an e-boarding pass"},
        {"points": 208, "rule": "config:light_travel", "detail": "20865 g × 10 pts/kg + 0"}]
    stored = db.Behaviour.get_by_id(b.id)
    attributes = json.loads(stored.attributes) if isinstance(stored.attributes, str) else stored.attributes
    assert attributes == {"source": "airline", "ffp_token": "egret_5c81e07a", "flight_no": "MF8101",
                          "flight_date": "2026-11-18", "origin": "XMN", "destination": "PEK",
                          "coupon_status": "flown", "flown": True, "checked_bags": 0, "e_boarding": True}


def test_good_fixtures_are_credited_in_full(hub, account):
    airline = [with_account(r, account.id) for r in load("good.json")]
    travel_agency = [with_account(r, account.id) for r in load("good_ctrip.json")]
    results = ingest(hub, "xiamenair", *airline) + ingest(hub, "ctrip", *travel_agency)
    routes = [(r["origin"], r["destination"], r["boarding_pass"] == "electronic") for r in airline]
    routes += [(r["segment"]["from"], r["segment"]["to"], r.get("e_boarding", False)) for r in travel_agency]
    expected_g = [grams_for(route_km(o, d)) for o, d, _ in routes]
    assert [verdict(r) for r in results] == [("accepted", None, None)] * len(routes)
    assert [r.behaviours[0].grams for r in results] == expected_g
    assert [r.behaviours[0].points for r in results] == [points_for(g, e) for g, (_, _, e) in zip(expected_g, routes)]
    assert not any(r.behaviours[0].capped for r in results)
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected_g)


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    got = [verdict(ingest(hub, c["partner"], with_account(c["record"], account.id))[0]) for c in cases]
    assert got == [("rejected", c["reason"], c["field"]) for c in cases]
    assert {c["partner"] for c in cases} == {"xiamenair", "ctrip"}
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_same_segment_resent_is_duplicate_event(hub, account):
    (first,) = ingest(hub, "xiamenair", flight(account.id))
    (again,) = ingest(hub, "xiamenair", flight(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G


@pytest.mark.parametrize("changes", [
    {"segment_id": "MF-7312045518330-1R"},  # re-issued under another coupon id
    {"segment_id": "MF-X-2", "flight_no": "mf 08101"},  # another way of writing the flight number
    {"segment_id": "MF-X-3", "scheduled_departure": "2026-11-17T23:05:00Z"},  # same instant, in UTC
    {"segment_id": "MF-X-4", "destination": "PKX", "boarding_pass": "paper"},  # diverted: same flight leg
], ids=["new-id", "flight-no-spelling", "utc", "diverted"])
def test_same_flight_is_a_double_claim(hub, account, changes):
    (first,) = ingest(hub, "xiamenair", flight(account.id))
    (second,) = ingest(hub, "xiamenair", flight(account.id, **changes))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G


def test_same_flight_reported_by_the_travel_agency_is_credited_once(hub, account):
    (first,) = ingest(hub, "xiamenair", flight(account.id))
    # 23:05 UTC on 17 November is 07:05 on 18 November in Xiamen: the same flight date.
    (second,) = ingest(hub, "ctrip", agency(account.id))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G
    assert hub.ledger.balance(user_points(account.id), "pts") == 213


def test_agency_first_then_airline_is_credited_once(hub, account):
    (first,) = ingest(hub, "ctrip", agency(account.id))
    assert verdict(first) == ("accepted", None, None) and first.behaviours[0].grams == WORKED_G
    (second,) = ingest(hub, "xiamenair", flight(account.id))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G


@pytest.mark.parametrize("changes", [
    {"scheduled_departure": "2026-11-19T07:05:00+08:00"},  # the same flight the next day
    {"ffp_token": "egret_0d3e88b1"},  # a companion on the same flight (another member)
    {"origin": "PEK", "destination": "HRB", "scheduled_departure": "2026-11-18T11:40:00+08:00"},  # next leg
], ids=["next-day", "other-member", "next-leg"])
def test_a_different_act_is_credited(hub, account, changes):
    ingest(hub, "xiamenair", flight(account.id))
    (other,) = ingest(hub, "xiamenair", flight(account.id, segment_id="MF-7312045518330-9", **changes))
    assert verdict(other) == ("accepted", None, None)
    km = route_km(changes.get("origin", "XMN"), changes.get("destination", "PEK"))
    assert hub.ledger.balance(user_carbon(account.id), "g") == WORKED_G + grams_for(km)


def test_daily_gram_cap_trims_then_rejects(hub, account):
    """XMN→PEK then PEK→URC on one day: 20,865 g, then the 29,135 g left of 50 kg; a third flight gets nothing."""
    urc_g = grams_for(route_km("PEK", "URC"))  # 2430 km → 29,257 g
    onward = flight(account.id, segment_id="MF-7312045518330-3", flight_no="MF8155", origin="PEK",
                    destination="URC", scheduled_departure="2026-11-18T12:30:00+08:00")
    third = flight(account.id, segment_id="MF-7312045518330-4", flight_no="MF8156", origin="URC",
                   destination="PEK", scheduled_departure="2026-11-18T19:45:00+08:00")
    results = ingest(hub, "xiamenair", flight(account.id), onward, third)
    room = 50000 - WORKED_G
    assert urc_g == 29257 and room == 29135
    got = [(verdict(r), r.behaviours[0].grams, r.behaviours[0].points) for r in results]
    assert got == [(("accepted", None, None), WORKED_G, 213), (("accepted", None, None), room, 291 + 5),
                   (("rejected", "cap_reached", None), 0, 0)]
    receipt = db.Receipt.get(db.Receipt.behaviour == results[1].behaviours[0].id)
    assert (receipt.computed_g, receipt.credited_g) == (urc_g, room)
    assert receipt.caps == [{"cap": "per_day_g", "limit": 50000, "used_before": WORKED_G, "computed_g": urc_g,
                             "credited_g": room}]


def test_long_haul_flight_is_trimmed_to_the_daily_cap(hub, account):
    """XMN→AMS, 9,316 km: 112,164 g computed, 50,000 g credited."""
    ams = flight(account.id, segment_id="MF-7312045777001-1", flight_no="MF811", destination="AMS",
                 scheduled_departure="2026-11-15T00:30:00+08:00")
    (rec,) = ingest(hub, "xiamenair", ams)
    computed = grams_for(route_km("XMN", "AMS"))
    assert computed == 112164
    assert (verdict(rec), rec.behaviours[0].grams, rec.behaviours[0].capped) == (("accepted", None, None), 50000, True)
    assert rec.behaviours[0].points == 500 + 5


def short_hops(account_id: str, day: int, n: int, start: int = 0, token: str = "egret_5c81e07a") -> list[dict]:
    """``n`` Xiamen–Fuzhou shuttle legs (218 km, 2,624 g) on one November day."""
    legs = []
    for i in range(start, start + n):
        origin, destination = ("XMN", "FOC") if i % 2 == 0 else ("FOC", "XMN")
        legs.append(flight(account_id, segment_id=f"MF-SH-{day:02d}-{i}-{token[-4:]}", flight_no=f"MF{8401 + i}",
                           origin=origin, destination=destination, ffp_token=token,
                           scheduled_departure=f"2026-11-{day:02d}T{7 + 2 * i:02d}:00:00+08:00"))
    return legs


def test_daily_flight_count_cap(hub, account):
    results = ingest(hub, "xiamenair", *short_hops(account.id, 10, 5))
    assert [verdict(r)[1] for r in results] == [None] * 4 + ["cap_reached"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 4 * grams_for(218)


def test_monthly_flight_count_cap(hub, account):
    """Four legs a day from 2 to 6 November, then one more on the 9th: the 21st of the month is refused."""
    records = [leg for day in range(2, 7) for leg in short_hops(account.id, day, 4)] + short_hops(account.id, 9, 1)
    results = ingest(hub, "xiamenair", *records)
    assert [verdict(r)[1] for r in results] == [None] * 20 + ["cap_reached"]
    # October is another month: its count is its own.
    (october,) = ingest(hub, "xiamenair", flight(account.id, segment_id="MF-OCT",
                                                 scheduled_departure="2026-10-31T07:05:00+08:00"))
    assert verdict(october) == ("accepted", None, None)


def test_member_cap_counts_across_accounts(hub, account):
    """One Egret member's flights claimed from two carbon accounts: 4 a day in all, not 4 each."""
    other, _ = hub.open_account("cust-air-0002")
    hub.set_consent(other.id, "light_travel", True, at=CONSENT_AT)
    mine = short_hops(account.id, 11, 3)
    theirs = short_hops(other.id, 11, 2, start=3)
    results = ingest(hub, "xiamenair", *mine, *theirs)
    assert [verdict(r) for r in results] == [("accepted", None, None)] * 4 + [
        ("rejected", "cap_reached", "attributes.ffp_token")]
    # Another member's flights that day are not affected.
    (companion,) = ingest(hub, "xiamenair", *short_hops(other.id, 11, 1, start=5, token="egret_0d3e88b1"))
    assert verdict(companion) == ("accepted", None, None)


@pytest.fixture
def airline_settings(config_data, request):
    """The bank's ``[plugin_config.airlines]`` replaced by the test's parameter."""
    assert config_data["plugin_config"]["airlines"] == {"e_boarding_points": 5}  # as shipped
    config_data["plugin_config"]["airlines"] = request.param
    return config_data


@pytest.mark.parametrize("airline_settings, bonus", [({}, 0), ({"e_boarding_points": 0}, 0),
                                                     ({"e_boarding_points": 12}, 12)],
                         indirect=["airline_settings"], ids=["absent", "zero", "twelve"])
def test_e_boarding_bonus_is_the_banks_setting(airline_settings, hub, account, bonus):
    (rec,) = ingest(hub, "xiamenair", flight(account.id))
    assert rec.behaviours[0].points == 208 + bonus
    (paper,) = ingest(hub, "xiamenair", flight(account.id, segment_id="MF-P", boarding_pass="paper",
                                               scheduled_departure="2026-11-19T07:05:00+08:00"))
    assert paper.behaviours[0].points == 208


@pytest.mark.parametrize("airline_settings", [{"e_boarding_points": "5"}, {"e_boarding_points": -1}],
                         indirect=True, ids=["text", "negative"])
def test_e_boarding_bonus_misconfigured_is_reward_failed(airline_settings, hub, account):
    (rec,) = ingest(hub, "xiamenair", flight(account.id))
    assert verdict(rec)[:2] == ("rejected", "reward_failed")
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0
    # A paper boarding pass does not reach the bonus rule: credited as usual.
    (paper,) = ingest(hub, "xiamenair", flight(account.id, segment_id="MF-P", boarding_pass="paper"))
    assert verdict(paper) == ("accepted", None, None) and paper.behaviours[0].points == 208


# --- the HTTP API -------------------------------------------------------------------------------------


def test_worked_example_through_the_http_api(client, hub, clock):
    account_id = open_account(client, "cust-air-http")
    hub.set_consent(account_id, "light_travel", True, at=CONSENT_AT)
    response = push(client, "xiamenair", [flight(account_id)], clock, secret=SECRETS["xiamenair"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["batch"]["accepted"] == 1 and body["batch"]["grams"] == WORKED_G and body["batch"]["points"] == 213
    (result,) = body["results"]
    behaviour = result["behaviours"][0]
    assert (result["event_id"], behaviour["status"], behaviour["grams"]) == ("MF-7312045518330-1", "accepted",
                                                                              WORKED_G)
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{behaviour['id']}", headers=auth()).get_json()
    assert detail["receipt"]["formula"] == "1733 km × 20 kg × 0.602 kgCO2/tkm − 0"
    assert detail["receipt"]["credited_g"] == WORKED_G

    # The travel agency pushes the same flight, signed with its own secret: credited once.
    again = push(client, "ctrip", [agency(account_id)], clock, secret=SECRETS["ctrip"]).get_json()
    assert again["batch"]["duplicate"] == 1 and again["batch"]["grams"] == 0
    assert again["results"][0]["behaviours"][0]["reason"] == "double_claim"
    # A push signed with the airline's secret under the agency's name is refused.
    forged = push(client, "ctrip", [agency(account_id)], clock, secret=SECRETS["xiamenair"])
    assert forged.status_code == 401


# --- the numbers printed in docs/scenarios/airlines.md -----------------------------------------------


def doc_text() -> str:
    return (ROOT / "docs" / "scenarios" / "airlines.md").read_text(encoding="utf-8")


def doc_json_blocks() -> list:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", doc_text(), re.S)]


def test_docs_worked_example_is_the_tested_flight(hub, account):
    blocks = doc_json_blocks()
    example = next(b for b in blocks if isinstance(b, dict) and "segment_id" in b)
    response = next(b for b in blocks if isinstance(b, dict) and "batch" in b)
    assert dict(example, account_id=account.id) == flight(account.id)
    result = hub.pipeline.ingest("xiamenair", [flight(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    assert contains(response, actual), (response, actual)


def test_docs_agency_example_is_the_tested_report(account):
    (agency_example,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "segment" in b]
    assert dict(agency_example, account_id=account.id) == agency(account.id)


def test_docs_airport_coordinates_are_the_shipped_ones():
    rows = table()
    for code, (lat, lon) in (("XMN", XMN), ("PEK", PEK)):
        assert (float(rows[code]["latitude"]), float(rows[code]["longitude"])) == (lat, lon)
        assert f"| `{code}` | {rows[code]['name']} | {lat:.4f} | {lon:.4f} |" in doc_text()


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    records = [dict(r, account_id=account.id) for r in sample["records"]]
    results = ingest(hub, "xiamenair", *records)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in results]
    assert got == [("accepted", WORKED_G, 213, None), ("accepted", WORKED_G, 208, None),
                   ("rejected", 0, 0, "checked_bag")]
