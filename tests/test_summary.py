"""GET /v1/accounts/<id>/summary: credited grams by scenario and month, rank, equivalents.

Expected grams are computed by hand: metro 46.8 g per km (Shenzhen), e-statement
24 g each; equivalents from docs/calculator.md (271.8 g per car km, 1 kg per paperback).
"""
from __future__ import annotations

import json

from api_helpers import at, auth, consent, error_of, open_account, push, rides, statement

from hub.db import Behaviour


def summary(client, account: str, key: str = "reader"):
    return client.get(f"/v1/accounts/{account}/summary", headers=auth(key))


def build(client, clock) -> dict[str, str]:
    """Four users: A rides in November and December and reads a statement, B rides once, C does nothing,
    D rides far once."""
    ids = {name: open_account(client, f"cust-summary-{name}") for name in "ABCD"}
    for name in "ABD":
        consent(client, ids[name], "metro")
    consent(client, ids["A"], "estatement")
    clock.advance(hours=6)
    rides(client, clock, ids["A"], ("A-1", "10", at(1)), ("A-2", "5", at(2)))  # 468 + 234 g
    rides(client, clock, ids["B"], ("B-1", "5", at(1)))  # 234 g
    rides(client, clock, ids["D"], ("D-1", "40", at(1)))  # 1872 g
    response = push(client, "cardcentre", [statement(ids["A"], "ST-A", at(3))], clock)  # 24 g
    assert response.get_json()["results"][0]["status"] == "accepted", response.get_json()
    clock.advance(days=11)  # 2 December
    rides(client, clock, ids["A"], ("A-3", "20", at(24 * 11 + 1)))  # 936 g
    return ids


def test_totals_by_scenario_and_month_with_equivalents(client, clock):
    ids = build(client, clock)
    response = summary(client, ids["A"])
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["account"] == ids["A"]
    assert data["total_g"] == 468 + 234 + 936 + 24 == 1662
    assert data["by_scenario"] == [{"scenario": "estatement", "grams": 24}, {"scenario": "metro", "grams": 1638}]
    assert data["by_month"] == [{"month": "2026-11", "grams": 726}, {"month": "2026-12", "grams": 936}]
    items = {i["name"]: i for i in data["equivalents"]["items"]}
    assert items["km_not_driven"]["amount"] == 6  # 1662 / 271.8 = 6.11
    assert items["paperbacks_not_printed"]["amount"] == 1  # 1662 / 1000
    assert all(i["source"].strip() for i in items.values())
    assert "Beijing MaaS" in items["km_not_driven"]["source"]
    assert data["equivalents"]["methodology"]["id"] == "footprint-equivalents"


def test_percentile_among_users(client, clock):
    ids = build(client, clock)
    ranks = {name: summary(client, ids[name]).get_json()["percentile"] for name in "ABCD"}
    # Totals: A 1662, B 234, C 0, D 1872; percentile = share of the 3 other users with fewer grams.
    assert ranks == {"A": 66, "B": 33, "C": 0, "D": 100}


def test_reversed_credits_do_not_count(client, clock, hub):
    ids = build(client, clock)
    seq = Behaviour.get((Behaviour.account == ids["B"]) & (Behaviour.status == "accepted")).tx_seq
    hub.reverse(seq, "ride cancelled by the operator")
    data = summary(client, ids["B"]).get_json()
    assert (data["total_g"], data["by_scenario"], data["by_month"], data["percentile"]) == (0, [], [], 0)
    assert summary(client, ids["A"]).get_json()["percentile"] == 66  # B (0) and C (0) below, D above


def test_alone_has_no_percentile(client):
    account = open_account(client, "cust-alone")
    data = summary(client, account).get_json()
    assert (data["total_g"], data["percentile"], data["by_scenario"]) == (0, None, [])
    assert {i["amount"] for i in data["equivalents"]["items"]} == {0}


def test_no_other_users_data_in_the_answer(client, clock):
    ids = build(client, clock)
    data = summary(client, ids["A"]).get_json()
    assert set(data) == {"account", "total_g", "by_scenario", "by_month", "percentile", "equivalents"}
    text = json.dumps(data)
    for name in "BCD":
        assert ids[name] not in text and f"cust-summary-{name}" not in text
    assert "1872" not in text  # D's total


def test_unknown_account_is_404(client):
    response = summary(client, "acc_nope")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_needs_a_key(client):
    account = open_account(client, "cust-key")
    response = client.get(f"/v1/accounts/{account}/summary")
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
