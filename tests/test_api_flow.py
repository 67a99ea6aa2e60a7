"""End to end over HTTP: a newcomer's first rides, and consent given then taken back."""
from __future__ import annotations

from datetime import timedelta

from api_helpers import auth, metro_grams, metro_points, open_account, push, ride, statement

from conftest import NOW

KM = {"SZM-1": "18.6", "SZM-2": "12.3", "SZM-3": "40"}


def test_newcomer_flow(client, clock):
    # 1. The app opens the account and the user authorises metro rides (at NOW, 12:00 in Shenzhen).
    account = open_account(client, "cust-newcomer")
    assert client.put(f"/v1/accounts/{account}/consents/metro", headers=auth()).get_json()["changed"] is True
    clock.advance(hours=6)

    # 2. The metro operator pushes the afternoon's rides, signed.
    at = lambda h, m=0: NOW + timedelta(hours=h, minutes=m)  # noqa: E731
    rides = [
        ride(account, "SZM-1", at(0, 30), km=KM["SZM-1"], minutes=39),
        ride(account, "SZM-2", at(1, 30), km=KM["SZM-2"], minutes=30, entry_station="Futian",
             exit_station="Chegongmiao", card="tok_9f2c"),
        ride(account, "SZM-1", at(0, 30), km=KM["SZM-1"], minutes=39),  # the same report again
        ride(account, "CARD-77", at(0, 30), km=KM["SZM-1"], minutes=39),  # same act, other id
        ride(account, "SZM-0", at(-0, -30), km="5", minutes=10, entry_station="Laojie"),  # before consent
        ride(account, "SZM-3", at(3), km=KM["SZM-3"], minutes=45, entry_station="Airport"),  # hits per_day_g
        ride(account, "SZM-4", at(4, 30), km="10", minutes=20, entry_station="Xili"),  # day is full
    ]
    response = push(client, "szmetro", rides, clock)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    outcome = [(r["event_id"], r["status"], r["behaviours"][0].get("reason")) for r in body["results"]]
    assert outcome == [
        ("SZM-1", "accepted", None),
        ("SZM-2", "accepted", None),
        ("SZM-1", "duplicate", "duplicate_event"),
        ("CARD-77", "duplicate", "double_claim"),
        ("SZM-0", "rejected", "no_consent"),
        ("SZM-3", "accepted", None),
        ("SZM-4", "rejected", "cap_reached"),
    ]
    # Daily cap 3000 g: 870 + 575 credited in full, the airport ride trimmed to what is left.
    full = metro_grams(KM["SZM-1"]) + metro_grams(KM["SZM-2"])
    assert (metro_grams(KM["SZM-1"]), metro_grams(KM["SZM-2"]), metro_grams(KM["SZM-3"])) == (870, 575, 1872)
    trimmed = 3000 - full
    credited = {"SZM-1": metro_grams(KM["SZM-1"]), "SZM-2": metro_grams(KM["SZM-2"]), "SZM-3": trimmed}
    accepted = {r["event_id"]: r["behaviours"][0] for r in body["results"] if r["status"] == "accepted"}
    assert {k: b["grams"] for k, b in accepted.items()} == credited
    assert accepted["SZM-3"]["capped"] is True
    # The record says why too, not only its behaviour.
    assert [r.get("reason") for r in body["results"]] == [o[2] for o in outcome]
    assert body["batch"]["grams"] == 3000
    first_report = accepted["SZM-1"]["id"]
    assert [r["behaviours"][0]["duplicate_of"] for r in body["results"][2:4]] == [first_report] * 2

    # 3. An e-statement for the same user: no consent for that scenario.
    response = push(client, "cardcentre", [statement(account, "ST-1", at(1))], clock)
    assert [(r["status"], r["behaviours"][0]["reason"]) for r in response.get_json()["results"]] == [
        ("rejected", "no_consent")]

    # 4. The balance is exactly the credits; points follow the config rule per credit.
    points = sum(metro_points(g) for g in credited.values())
    assert client.get(f"/v1/accounts/{account}", headers=auth()).get_json()["balances"] == {
        "carbon_g": 3000, "points": points}

    # 5. The ledger has exactly one credit per real ride credited, carbon and points.
    ledger = client.get(f"/v1/accounts/{account}/ledger", headers=auth()).get_json()
    assert ledger["next"] is None
    carbon = [e for e in ledger["entries"] if e["unit"] == "g"]
    assert sorted((e["event_id"], e["amount"]) for e in carbon) == sorted(credited.items())
    assert {e["behaviour"] for e in carbon} == {b["id"] for b in accepted.values()}
    assert all(e["kind"] == "credit" and e["methodology"] == "metro-avoided-car@2021.1"
               and e["scenario"] == "metro" for e in ledger["entries"])
    assert sum(e["amount"] for e in ledger["entries"] if e["unit"] == "pts") == points

    # 6. Every credit has a receipt that explains its grams.
    for event_id, b in accepted.items():
        detail = client.get(f"/v1/accounts/{account}/behaviours/{b['id']}", headers=auth("reader")).get_json()
        receipt = detail["receipt"]
        km = KM[event_id]
        assert detail["status"] == "accepted" and detail["quantity"] == km and detail["unit"] == "pkm"
        assert detail["transaction"] == b["transaction"]
        assert receipt["methodology"] == "metro-avoided-car" and receipt["version"] == "2021.1"
        assert receipt["quantity"] == km and receipt["unit"] == "pkm"
        assert receipt["computed_g"] == metro_grams(km)
        assert receipt["credited_g"] == credited[event_id] == detail["grams"]
        assert receipt["formula"] == f"{km} pkm × 46.8 gCO2e/pkm − 0"
        assert f"rounded down to {metro_grams(km)} g" in receipt["explanation"]
        (factor,) = receipt["factors"]
        assert (factor["name"], factor["value"], factor["unit"]) == ("baseline", "46.8", "gCO2e/pkm")
        assert factor["source"]
        assert [(p["points"], p["rule"]) for p in receipt["points"]] == [(metro_points(credited[event_id]),
                                                                           "config:metro")]
    capped = client.get(f"/v1/accounts/{account}/behaviours/{accepted['SZM-3']['id']}", headers=auth()).get_json()
    assert capped["receipt"]["caps"] == [{"cap": "per_day_g", "limit": 3000, "used_before": full,
                                          "computed_g": 1872, "credited_g": trimmed}]
    assert capped["receipt"]["explanation"].endswith(f"leaves {trimmed} g; credited {trimmed} g")

    # 7. The duplicates point at the first report and show its receipt; rejections have none.
    behaviours = client.get(f"/v1/accounts/{account}/behaviours", headers=auth()).get_json()["behaviours"]
    assert len(behaviours) == 8 and all(b["partner"] in ("szmetro", "cardcentre") for b in behaviours)
    for b in behaviours:
        detail = client.get(f"/v1/accounts/{account}/behaviours/{b['id']}", headers=auth()).get_json()
        if b["status"] == "duplicate":
            assert detail["duplicate_of"] == first_report and detail["receipt"]["behaviour"] == first_report
            assert detail["grams"] == 0
        elif b["status"] == "rejected":
            assert detail["receipt"] is None and detail["reason"] in ("no_consent", "cap_reached")
            assert detail["message"]

    # 8. The console finds the ledger intact.
    verify = client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()
    assert verify["ok"] is True and verify["transactions"] == 3


def test_revoked_consent_rejects_later_rides_only(client, clock):
    account = open_account(client, "cust-revoke")
    url = f"/v1/accounts/{account}/consents/metro"
    client.put(url, headers=auth())  # 04:00Z
    clock.advance(hours=1)
    client.delete(url, headers=auth())  # 05:00Z
    clock.advance(hours=2)  # 07:00Z

    during = ride(account, "R-during", NOW + timedelta(minutes=20), km="8")
    after = ride(account, "R-after", NOW + timedelta(hours=1, minutes=30), km="8", entry_station="Futian")
    results = push(client, "szmetro", [after, during], clock).get_json()["results"]
    assert [(r["event_id"], r["status"], r["behaviours"][0].get("reason")) for r in results] == [
        ("R-after", "rejected", "no_consent"), ("R-during", "accepted", None)]
    assert results[0]["behaviours"][0]["field"] == "occurred_at"

    # Granting again does not reach back: a replay of the rejected ride stays rejected.
    client.put(url, headers=auth())  # 07:00Z
    replay = client.post("/v1/admin/inbox/replay", json={"reason": "no_consent"}, headers=auth("console"))
    assert replay.get_json()["batch"]["rejected"] == 1 and replay.get_json()["batch"]["accepted"] == 0
    clock.advance(hours=1)
    later = ride(account, "R-later", NOW + timedelta(hours=3, minutes=10), km="8", entry_station="Xili")
    assert push(client, "szmetro", [later], clock).get_json()["batch"]["accepted"] == 1

    assert client.get(f"/v1/accounts/{account}", headers=auth()).get_json()["balances"]["carbon_g"] == \
        2 * metro_grams("8")
    rejected = client.get(f"/v1/accounts/{account}/behaviours?status=rejected", headers=auth()).get_json()
    # One row per processing attempt: the push and the replay.
    assert [b["event_id"] for b in rejected["behaviours"]] == ["R-after", "R-after"]
    assert {b["reason"] for b in rejected["behaviours"]} == {"no_consent"}
