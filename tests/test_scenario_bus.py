"""The bus scenario end to end, as documented in docs/scenarios/bus.md.

Native tap records from ``tests/fixtures/bus`` go through the real pipeline
with the shipped ``config/hub.toml`` rules for the bus scenario (at most 6
rides and 1500 g a day, 30 kg a month; 100 points per kg + 1 per ride). The
expected grams are worked out by hand from the published factors: Shenzhen
26.9 gCO2e per passenger-km of electric bus (distance from the tap-off),
Wuhan 212.5 g per ride (flat fare, no tap-off), never read back from the code.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import auth, push
from conftest import shipped_config
from scenario_helpers import contains, fixture_loader, json_blocks, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "bus"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2024, 1, 1, tzinfo=CST)  # after the bad fixture's 2023 ride, before its 2024 one
SHENZHEN_G_PER_PKM = Decimal("26.9")  # Shenzhen trial methodology 2021, electric bus
WUHAN_G_PER_RIDE = Decimal("212.5")  # Wuhan carbon-inclusion scheme, reported 2025
PARTNER = {"shenzhen": "szbus", "wuhan": "whbus"}


load = fixture_loader(FIXTURES)


def expected_grams(record: dict) -> int:
    """By hand: Shenzhen per passenger-km of the tap-off distance, Wuhan per ride."""
    if record["city"].lower() == "shenzhen":
        return math.floor(Decimal(str(record["distance_km"])) * SHENZHEN_G_PER_PKM)
    return math.floor(WUHAN_G_PER_RIDE)


def points_for(grams: int) -> int:
    return grams * 100 // 1000 + 1  # shipped rule: per_kg = 100, bonus = 1


@pytest.fixture
def config_data(config_data):
    """The test config with the bus rules and partners exactly as shipped, and the card network
    for its transit fares (metro and bus)."""
    shipped = shipped_config()
    config_data["scenarios"]["bus"] = shipped["scenarios"]["bus"]
    for pid in ("szbus", "whbus"):
        config_data["partners"][pid] = shipped["partners"][pid]
    config_data["partners"]["unionpay"] = dict(shipped["partners"]["unionpay"], scenarios=["metro", "bus"])
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-bus-0001")
    hub.set_consent(acc.id, "bus", True, at=CONSENT_AT)
    return acc


def good(account_id: str, which: str, **changes) -> dict:
    """The good fixture's record with tap id ``which``, with changes."""
    (base,) = [r for r in load("good.json") if r["tap_id"] == which]
    return {**with_account(base, account_id), **changes}


def shenzhen_ride(account_id: str, **changes) -> dict:
    """The Shenzhen worked example (docs/scenarios/bus.md), with changes."""
    return good(account_id, "SZB-20261120-26-004417", **changes)


def wuhan_ride(account_id: str, **changes) -> dict:
    """The Wuhan worked example (docs/scenarios/bus.md), with changes."""
    return good(account_id, "WHB-20261120-402-000931", **changes)


def ingest_one(hub, partner: str, record: dict):
    (rec,) = hub.pipeline.ingest(partner, [record]).records
    return rec


def receipt_of(outcome) -> db.Receipt:
    return db.Receipt.get(db.Receipt.behaviour == outcome.behaviours[0].id)


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("bus")
    assert view["unit"] == "ride" and view["partners"] == ["szbus", "unionpay", "whbus"]
    assert view["methodology"]["id"] == "bus-avoided-car"
    assert view["methodology"]["version_in_force"] == "2025.1"
    # methodology per_day_count 8 vs config 6: the lower wins
    assert view["caps"] == {"per_day_count": 6, "per_day_g": 1500, "per_month_g": 30000}
    assert view["points"] == {"per_kg": 100, "bonus": 1}


def test_methodology_document(hub):
    (v,) = hub.methodologies.versions["bus-avoided-car"]
    assert (v.version, v.family, v.quantity_unit, v.effective_from, v.ends_on) == (
        "2025.1", "by_city", "ride", date(2025, 1, 1), None)
    assert {n: (f.value, f.unit) for n, f in v.factors.items()} == {
        "baseline@shenzhen": (SHENZHEN_G_PER_PKM, "gCO2e/pkm"), "baseline@wuhan": (WUHAN_G_PER_RIDE, "gCO2e/ride")}
    assert "Shenzhen" in v.factors["baseline@shenzhen"].source and "Wuhan" in v.factors["baseline@wuhan"].source
    assert v.evidence == ("city", "line", "boarding_stop") and v.caps == {"per_day_count": 8}


def test_shenzhen_worked_example_7_4_km(hub, account):
    rec = ingest_one(hub, "szbus", shenzhen_ride(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 199, 20)  # 7.4 × 26.9 = 199.06 → 199; 19 + 1
    receipt = receipt_of(rec)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "bus-avoided-car", "2025.1", "1", "ride")
    assert Decimal(receipt.baseline_g) == Decimal("199.06") and Decimal(receipt.project_g) == 0
    assert receipt.formula == "7.4 pkm × 26.9 gCO2e/pkm (shenzhen) − 0"
    (factor,) = receipt.factors
    assert factor["name"] == "baseline@shenzhen" and Decimal(str(factor["value"])) == SHENZHEN_G_PER_PKM
    assert receipt.points == [{"points": 20, "rule": "config:bus", "detail": "199 g × 100 pts/kg + 1"}]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 199
    assert hub.ledger.balance(user_points(account.id), "pts") == 20


def test_wuhan_worked_example_one_ride(hub, account):
    rec = ingest_one(hub, "whbus", wuhan_ride(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 212, 22)  # 212.5 → 212; 21 + 1
    receipt = receipt_of(rec)
    assert Decimal(receipt.baseline_g) == WUHAN_G_PER_RIDE
    assert receipt.formula == "1 ride × 212.5 gCO2e/ride (wuhan) − 0"
    (factor,) = receipt.factors
    assert factor["name"] == "baseline@wuhan" and factor["unit"] == "gCO2e/ride"
    tx = hub.ledger.get(b.tx_seq)
    assert sorted((p.account, p.unit, p.amount) for p in tx.postings) == sorted([
        ("@issuer:bus", "g", -212), (user_carbon(account.id), "g", 212),
        ("@issuer:bus", "pts", -22), (user_points(account.id), "pts", 22)])


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    outcomes = [ingest_one(hub, PARTNER[r["city"].lower()], r) for r in records]
    expected = [expected_grams(r) for r in records]
    assert expected == [199, 199, 123, 347, 212, 212, 212]  # the same arithmetic, written out
    assert [verdict(o) for o in outcomes] == [("accepted", None, None)] * len(records)
    assert [o.behaviours[0].grams for o in outcomes] == expected
    assert [o.behaviours[0].points for o in outcomes] == [points_for(g) for g in expected]
    assert not any(o.behaviours[0].capped for o in outcomes)
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected)


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    got = [verdict(ingest_one(hub, c["partner"], with_account(c["record"], account.id))) for c in cases]
    assert got == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_wuhan_distance_does_not_change_the_per_ride_credit(hub, account):
    short, long_ = (ingest_one(hub, "whbus", wuhan_ride(account.id, tap_id=f"WHB-X-{km}", distance_km=km,
                                                      tap_at=at, alighting_stop="Hongshan Square"))
                    for km, at in (("1.2", "2026-11-20T09:00:00+08:00"), ("14.8", "2026-11-20T10:00:00+08:00")))
    assert [short.behaviours[0].grams, long_.behaviours[0].grams] == [212, 212]


def test_shenzhen_ride_without_tap_off_is_not_guessed(hub, account):
    no_tap_off = {k: v for k, v in shenzhen_ride(account.id).items()
                  if k not in ("alighting_stop", "alight_at", "distance_km")}
    assert verdict(ingest_one(hub, "szbus", no_tap_off)) == ("rejected", "missing_distance", "distance_km")
    # The operator's completed record (the tap-off matched later) under the same tap id is credited.
    assert verdict(ingest_one(hub, "szbus", shenzhen_ride(account.id))) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 199


# --- duplicates and double taps -------------------------------------------------------------------


def test_same_tap_resent_is_duplicate_event(hub, account):
    first = ingest_one(hub, "whbus", wuhan_ride(account.id))
    again = ingest_one(hub, "whbus", wuhan_ride(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 212


@pytest.mark.parametrize("changes", [
    {"tap_id": "WHB-20261120-402-900001"},  # resent under another id
    {"tap_id": "WHB-20261120-402-900002", "tap_at": "2026-11-20T00:05:40Z"},  # in UTC, seconds differ
    {"tap_id": "WHB-20261120-402-900003", "city": "Wuhan", "boarding_stop": "Wuchang Station (south square)"},
], ids=["new-tap-id", "utc-and-seconds", "case-and-stop-name"])
def test_same_boarding_is_a_double_claim(hub, account, changes):
    first = ingest_one(hub, "whbus", wuhan_ride(account.id))
    other = ingest_one(hub, "whbus", wuhan_ride(account.id, **changes))
    assert verdict(other) == ("duplicate", "double_claim", None)
    assert other.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 212


def card_network_fare(account_id: str, **changes) -> dict:
    """The card network's record of the Wuhan worked example's fare (docs/scenarios/bus.md)."""
    return {"txn_id": "UPT-20261120-51000931", "account_id": account_id, "card_token": "tok_5b80e2aa",
            "mode": "bus", "merchant": "Wuhan Public Transport Group", "amount": "2.00", "city": "wuhan",
            "line": "402", "boarding_stop": "Wuchang Railway Station", "tap_at": "2026-11-20T00:05:12Z", **changes}


@pytest.mark.parametrize("first_partner", ["whbus", "unionpay"])
def test_operator_and_card_network_report_the_same_boarding_once(hub, account, first_partner):
    reports = {"whbus": wuhan_ride(account.id), "unionpay": card_network_fare(account.id)}
    second_partner = "unionpay" if first_partner == "whbus" else "whbus"
    first = ingest_one(hub, first_partner, reports[first_partner])
    second = ingest_one(hub, second_partner, reports[second_partner])
    assert (verdict(first), first.behaviours[0].grams) == (("accepted", None, None), 212)
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 212


@pytest.mark.parametrize("prev_line, gap_s, expected", [
    ("402", 20, ("rejected", "double_tap", "tap_at")),  # the reader beeped twice
    ("402", 59, ("rejected", "double_tap", "tap_at")),
    ("402", 60, ("accepted", None, None)),  # a minute later: the next bus of the line
    ("9", 50, ("accepted", None, None)),  # another line: a transfer
], ids=["20s", "59s", "60s", "transfer"])
def test_double_tap_on_the_same_line(hub, account, prev_line, gap_s, expected):
    tap_at = datetime(2026, 11, 20, 8, 6, 10, tzinfo=CST)
    record = wuhan_ride(account.id, tap_id="WHB-20261120-402-000932", tap_at=tap_at.isoformat(),
                        prev_tap_at=(tap_at - timedelta(seconds=gap_s)).isoformat(), prev_tap_line=prev_line)
    assert verdict(ingest_one(hub, "whbus", record)) == expected


def test_double_tap_without_the_cards_previous_tap_is_caught_by_the_fingerprint(hub, account):
    first = ingest_one(hub, "whbus", wuhan_ride(account.id))  # 08:05:00
    twice = ingest_one(hub, "whbus", wuhan_ride(account.id, tap_id="WHB-20261120-402-000932",
                                                tap_at="2026-11-20T08:05:35+08:00"))
    assert verdict(twice) == ("duplicate", "double_claim", None)
    assert twice.behaviours[0].duplicate_of == first.behaviours[0].id


@pytest.mark.parametrize("changes", [
    {"tap_at": "2026-11-20T08:07:00+08:00"},  # two minutes later
    {"line": "9"},  # another line
    {"card_token": "tok_0d3e88b1"},  # another card (a companion's)
], ids=["minute", "line", "card"])
def test_a_different_boarding_is_credited(hub, account, changes):
    ingest_one(hub, "whbus", wuhan_ride(account.id))
    other = ingest_one(hub, "whbus", wuhan_ride(account.id, tap_id="WHB-20261120-402-000999", **changes))
    assert verdict(other) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 212


# --- caps -------------------------------------------------------------------------------------------


def test_daily_ride_count_cap(hub, account):
    """Seven Wuhan rides on one day: six are credited (6 × 212 = 1272 g, under 1500 g), the seventh is not."""
    rides = [wuhan_ride(account.id, tap_id=f"WHB-20261119-402-10{i}", tap_at=f"2026-11-19T{7 + 2 * i:02d}:05:00+08:00")
             for i in range(7)]
    result = hub.pipeline.ingest("whbus", rides)
    assert [verdict(r)[1] for r in result.records] == [None] * 6 + ["cap_reached"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 6 * 212
    assert hub.ledger.balance(user_points(account.id), "pts") == 6 * 22


def test_daily_gram_cap_trims_then_rejects(hub, account):
    """Five 15 km Shenzhen rides (403 g each): 403 × 3, then 291 (1500 g a day), then nothing."""
    rides = [shenzhen_ride(account.id, tap_id=f"SZB-20261119-26-20{i}", distance_km="15", prev_tap_at=None,
                           prev_tap_line=None, tap_at=f"2026-11-19T{7 + 2 * i:02d}:00:00+08:00",
                           alight_at=f"2026-11-19T{7 + 2 * i:02d}:45:00+08:00") for i in range(5)]
    rides = [{k: v for k, v in r.items() if v is not None} for r in rides]
    result = hub.pipeline.ingest("szbus", rides)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result.records]
    assert got == [("accepted", 403, 41, None)] * 3 + [("accepted", 291, 30, None), ("rejected", 0, 0, "cap_reached")]
    capped = receipt_of(result.records[3])
    assert (capped.computed_g, capped.credited_g) == (403, 291)
    assert capped.caps == [{"cap": "per_day_g", "limit": 1500, "used_before": 1209, "computed_g": 403,
                            "credited_g": 291}]
    next_day = shenzhen_ride(account.id, tap_id="SZB-20261120-26-000001")
    assert ingest_one(hub, "szbus", next_day).behaviours[0].grams == 199


# --- HTTP API and the numbers printed in docs/scenarios/bus.md --------------------------------------


@pytest.mark.parametrize("partner, grams, points", [("szbus", 199, 20), ("whbus", 212, 22)])
def test_worked_examples_through_the_http_api(hub, account, clock, client, partner, grams, points):
    record = shenzhen_ride(account.id) if partner == "szbus" else wuhan_ride(account.id)
    secret = hub.settings.secret(hub.settings.partners[partner].secret_env)
    response = push(client, partner, [record], clock, secret=secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("accepted", "grams", "points")} == {
        "accepted": 1, "grams": grams, "points": points}
    (b,) = body["results"][0]["behaviours"]
    detail = client.get(f"/v1/accounts/{account.id}/behaviours/{b['id']}", headers=auth("reader")).get_json()
    assert (detail["scenario"], detail["receipt"]["version"], detail["receipt"]["credited_g"]) == (
        "bus", "2025.1", grams)
    balances = client.get(f"/v1/accounts/{account.id}", headers=auth()).get_json()["balances"]
    assert balances == {"carbon_g": grams, "points": points}


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "bus.md")


def test_docs_worked_examples_are_the_tested_rides(hub, account):
    blocks = doc_json_blocks()
    by_id = {b.get("tap_id") or b.get("txn_id"): b for b in blocks if isinstance(b, dict) and "account_id" in b}
    assert dict(by_id["SZB-20261120-26-004417"], account_id=account.id) == shenzhen_ride(account.id)
    assert dict(by_id["WHB-20261120-402-000931"], account_id=account.id) == wuhan_ride(account.id)
    assert dict(by_id["UPT-20261120-51000931"], account_id=account.id) == card_network_fare(account.id)
    responses = [b for b in blocks if isinstance(b, dict) and "batch" in b]
    assert len(responses) == 2
    for response in responses:
        tap_id = response["results"][0]["event_id"]
        partner = "szbus" if tap_id.startswith("SZB") else "whbus"
        result = hub.pipeline.ingest(partner, [dict(by_id[tap_id], account_id=account.id)])
        actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
        assert contains(response, actual), (response, actual)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    records = [dict(r, account_id=account.id) for r in sample["records"]]
    result = hub.pipeline.ingest("whbus", records)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result.records]
    assert got == [("accepted", 212, 22, None), ("accepted", 212, 22, None), ("rejected", 0, 0, "double_tap")]
