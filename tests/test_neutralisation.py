"""Neutralisation: retiring a user's grams against a footprint, with certificates.

Numbers: an 18.6 km Shenzhen Metro ride is 870 g (18.6 × 46.8 = 870.48, rounded
down), a 5 km ride 234 g (5 × 46.8 = 234). A user with rides on the 1st, 2nd
and 3rd of October holds 870 + 870 + 234 = 1974 g.
"""
from __future__ import annotations

import random
import threading
from datetime import datetime

import pytest
from api_helpers import auth, error_of, openapi_check
from conftest import NOW
from plugin_helpers import SHANGHAI, metro_ride

from hub import carbon_uses, db, neutralisation
from hub.carbon_uses import CarbonRetired, InsufficientCarbon, NotReversible
from hub.db import Behaviour, Certificate, CarbonUse, LedgerTransaction
from hub.ledger import IdempotencyConflict, Ledger, user_carbon, verify

FLIGHT = {"kind": "flight", "from": "PEK", "to": "SZX"}
CONSENT_AT = datetime(2026, 1, 1, tzinfo=SHANGHAI)


def local(month: int, day: int, hour: int = 8) -> datetime:
    return datetime(2026, month, day, hour, 1, tzinfo=SHANGHAI)


def open_account(hub, bank_ref: str) -> str:
    account, _ = hub.open_account(bank_ref)
    hub.set_consent(account.id, "metro", True, at=CONSENT_AT)
    return account.id


def credit_rides(hub, account: str, rides: list[tuple[datetime, str]], prefix: str = "R") -> list[str]:
    """Push rides ``(entry time, km)``; returns their behaviour ids in the same order."""
    records = [metro_ride(account, f"{prefix}-{account}-{i}", at, distance_km=km, card=f"card-{account}")
               for i, (at, km) in enumerate(rides)]
    result = hub.pipeline.ingest("szmetro", records)
    ids = [r.behaviours[0].id for r in result.records]
    assert [r.behaviours[0].status for r in result.records] == ["accepted"] * len(rides), result.summary()
    return ids


def carbon(account: str) -> int:
    return Ledger.balance(user_carbon(account), "g")


def held(account: str) -> int:
    return sum(h.grams for h in carbon_uses.holdings_of(account))


def assert_invariants(*accounts: str) -> None:
    """What behaviours hold equals the balance; @retired equals every certificate; the ledger verifies."""
    for account in accounts:
        assert held(account) == carbon(account)
    assert Ledger.balance("@retired", "g") == sum(c.grams for c in Certificate.select())
    assert sum(u.grams for u in CarbonUse.select().where(CarbonUse.kind == "retired")) == \
        Ledger.balance("@retired", "g")
    report = verify()
    assert report.ok, report.problems


@pytest.fixture
def alice(hub) -> str:
    return open_account(hub, "cust-alice")


@pytest.fixture
def rides(hub, alice) -> list[str]:
    """Alice's three October rides: 870 g, 870 g, 234 g (credited newest first, to prove the order is the act's)."""
    later = credit_rides(hub, alice, [(local(10, 3), "5")], prefix="late")
    earlier = credit_rides(hub, alice, [(local(10, 1), "18.6"), (local(10, 2), "18.6")])
    return [*earlier, *later]


# --- the domain ---------------------------------------------------------------------------------


def test_neutralisation_retires_the_oldest_grams_first_and_keeps_receipts(hub, alice, rides):
    cert, created = neutralisation.neutralise(hub, alice, 1000, FLIGHT, "key-1")
    assert created
    assert cert["grams"] == 1000 and cert["footprint"] == FLIGHT and cert["account"] == alice
    assert cert["created_at"] == NOW
    # 870 g of the 1 October ride, then 130 g of the 2 October ride.
    assert [(r["behaviour"], r["grams"]) for r in cert["receipts"]] == [(rides[0], 870), (rides[1], 130)]
    assert cert["receipts"][0]["scenario"] == "metro"
    assert cert["receipts"][0]["methodology"] == "metro-avoided-car" and cert["receipts"][0]["version"] == "2021.1"
    assert cert["receipts"][0]["occurred_at"] == local(10, 1)
    assert carbon(alice) == 1974 - 1000
    assert Ledger.balance("@retired", "g") == 1000
    tx = hub.ledger.get(cert["transaction"])
    assert tx.kind == "neutralisation" and tx.key == f"neutralisation:{cert['id']}"
    assert sorted((p.account, p.amount) for p in tx.postings) == [("@retired", 1000), (user_carbon(alice), -1000)]
    assert tx.memo["draws"] == [{"behaviour": rides[0], "grams": 870}, {"behaviour": rides[1], "grams": 130}]
    assert tx.memo["footprint"] == FLIGHT
    assert_invariants(alice)


def test_later_certificates_never_draw_the_same_gram_twice(hub, alice, rides):
    first, _ = neutralisation.neutralise(hub, alice, 500, "Taxi to the airport", "k1")
    second, _ = neutralisation.neutralise(hub, alice, 500, FLIGHT, "k2")
    third, _ = neutralisation.neutralise(hub, alice, 974, {"kind": "hotel", "nights": 2}, "k3")
    assert [(r["behaviour"], r["grams"]) for r in first["receipts"]] == [(rides[0], 500)]
    assert [(r["behaviour"], r["grams"]) for r in second["receipts"]] == [(rides[0], 370), (rides[1], 130)]
    assert [(r["behaviour"], r["grams"]) for r in third["receipts"]] == [(rides[1], 740), (rides[2], 234)]
    per_behaviour = {}
    for use in CarbonUse.select():
        per_behaviour[use.behaviour] = per_behaviour.get(use.behaviour, 0) + use.grams
    assert per_behaviour == {rides[0]: 870, rides[1]: 870, rides[2]: 234}  # exactly what was credited
    assert carbon(alice) == 0
    with pytest.raises(InsufficientCarbon):
        neutralisation.neutralise(hub, alice, 1, "one more gram", "k4")
    assert_invariants(alice)


def test_not_enough_carbon_is_refused_and_writes_nothing(hub, alice, rides):
    before = LedgerTransaction.select().count()
    with pytest.raises(InsufficientCarbon) as exc:
        neutralisation.neutralise(hub, alice, 1975, FLIGHT, "too-much")
    assert exc.value.status == 409 and exc.value.code == "insufficient_carbon"
    assert exc.value.details == {"available": 1974, "requested": 1975}
    assert LedgerTransaction.select().count() == before
    assert Certificate.select().count() == 0 and CarbonUse.select().count() == 0
    cert, _ = neutralisation.neutralise(hub, alice, 1974, FLIGHT, "all")  # exactly everything is fine
    assert carbon(alice) == 0 and len(cert["receipts"]) == 3


def test_same_key_same_request_returns_the_original_and_other_request_conflicts(hub, alice, rides):
    cert, created = neutralisation.neutralise(hub, alice, 300, FLIGHT, "same")
    again, created_again = neutralisation.neutralise(hub, alice, 300, dict(FLIGHT), "same")
    assert created and not created_again and again == cert
    assert carbon(alice) == 1974 - 300 and Certificate.select().count() == 1
    for grams, footprint in ((301, FLIGHT), (300, {**FLIGHT, "to": "CAN"})):
        with pytest.raises(IdempotencyConflict) as exc:
            neutralisation.neutralise(hub, alice, grams, footprint, "same")
        assert exc.value.status == 409
    bob = open_account(hub, "cust-bob")
    credit_rides(hub, bob, [(local(10, 5), "5")])
    other, created_other = neutralisation.neutralise(hub, bob, 200, FLIGHT, "same")  # keys are per account
    assert created_other and other["id"] != cert["id"]
    assert_invariants(alice, bob)


def test_grams_of_a_reversed_credit_are_not_available(hub, alice, rides):
    credit_seq = Behaviour.get_by_id(rides[0]).tx_seq
    hub.reverse(credit_seq, "ride was a test card")
    assert held(alice) == carbon(alice) == 870 + 234
    cert, _ = neutralisation.neutralise(hub, alice, 1000, FLIGHT, "k")
    assert [(r["behaviour"], r["grams"]) for r in cert["receipts"]] == [(rides[1], 870), (rides[2], 130)]
    assert_invariants(alice)


def test_a_credit_whose_grams_were_retired_cannot_be_reversed(hub, alice, rides):
    neutralisation.neutralise(hub, alice, 1000, FLIGHT, "k")
    partly_retired = Behaviour.get_by_id(rides[1]).tx_seq
    before = LedgerTransaction.select().count()
    with pytest.raises(CarbonRetired) as exc:
        hub.reverse(partly_retired, "fraud")
    assert exc.value.status == 409 and "certificate" in str(exc.value)
    assert LedgerTransaction.select().count() == before
    # A credit none of whose grams were retired is still corrected as before.
    untouched = Behaviour.get_by_id(rides[2]).tx_seq
    tx, created = hub.reverse(untouched, "fraud")
    assert created and tx.reverses == untouched
    assert carbon(alice) == 1974 - 1000 - 234
    assert_invariants(alice)


def test_a_neutralisation_is_never_reversed(hub, alice, rides):
    cert, _ = neutralisation.neutralise(hub, alice, 100, FLIGHT, "k")
    with pytest.raises(NotReversible) as exc:
        hub.reverse(cert["transaction"], "user changed their mind")
    assert exc.value.code == "not_reversible"
    assert Ledger.balance("@retired", "g") == 100
    assert_invariants(alice)


def test_random_certificates_keep_the_books_consistent(hub, alice, rides):
    rng = random.Random(20261121)
    for i in range(25):
        grams = rng.randint(1, 300)
        try:
            neutralisation.neutralise(hub, alice, grams, {"n": i}, f"k{i}")
        except InsufficientCarbon:
            assert carbon(alice) < grams
        assert_invariants(alice)
    assert carbon(alice) + Ledger.balance("@retired", "g") == 1974


@pytest.mark.parametrize("footprint, ok", [
    ("Flight PEK-SZX", True), (FLIGHT, True), ({"kind": "car", "km": 12.5, "electric": False}, True),
    ("", False), ("   ", False), ("x" * 501, False), ({}, False), ([], False), (12, False),
    ({"kind": {"nested": 1}}, False), ({"kind": ["a"]}, False), ({"kind": None}, False),
    ({f"k{i}": i for i in range(21)}, False), ({"kind": "x" * 201}, False),
])
def test_footprint_rules(footprint, ok):
    assert (neutralisation.footprint_problem(footprint) is None) is ok


# --- concurrency ------------------------------------------------------------------------------


def run_together(n: int, work) -> tuple[list, list]:
    """Run ``work(i)`` in ``n`` threads released at once; each thread has its own connection."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:  # collected: InsufficientCarbon is an expected answer
            errors.append(exc)
        finally:
            if not db.database.is_closed():
                db.database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def test_racing_neutralisations_never_retire_more_than_the_user_holds(hub, alice, rides):
    # Four requests of 600 g for 1974 g: three fit, the fourth must be refused.
    results, errors = run_together(4, lambda i: neutralisation.neutralise(hub, alice, 600, FLIGHT, f"race-{i}"))
    assert len(errors) == 1 and isinstance(errors[0], InsufficientCarbon), errors
    assert sum(1 for r in results if r) == 3
    assert carbon(alice) == 1974 - 1800
    drawn = [(r["behaviour"], r["grams"]) for res in results if res for r in res[0]["receipts"]]
    assert sum(g for _, g in drawn) == 1800
    assert_invariants(alice)


def test_racing_retries_with_one_key_create_one_certificate(hub, alice, rides):
    results, errors = run_together(3, lambda i: neutralisation.neutralise(hub, alice, 700, FLIGHT, "one-key"))
    assert not errors, errors
    assert sorted(created for _, created in results) == [False, False, True]
    assert len({cert["id"] for cert, _ in results}) == 1
    assert carbon(alice) == 1974 - 700
    assert_invariants(alice)


# --- the HTTP API --------------------------------------------------------------------------------


def post(client, account: str, body, key: str | None = "key-1", api_key: str = "app"):
    headers = auth(api_key)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/accounts/{account}/neutralisations", json=body, headers=headers)


def test_api_neutralise_then_retry_then_conflict(client, alice, rides):
    body = {"grams": 1000, "footprint": FLIGHT}
    created = post(client, alice, body)
    assert created.status_code == 201, created.get_json()
    cert = created.get_json()
    assert created.headers["Location"] == f"/v1/accounts/{alice}/neutralisations/{cert['id']}"
    assert cert["grams"] == 1000 and cert["footprint"] == FLIGHT
    assert cert["created_at"] == "2026-11-21T04:00:00+00:00"
    assert [(r["behaviour"], r["grams"]) for r in cert["receipts"]] == [(rides[0], 870), (rides[1], 130)]
    assert cert["receipts"][0]["occurred_at"] == "2026-10-01T00:01:00+00:00"
    retry = post(client, alice, body)
    assert retry.status_code == 200 and retry.get_json() == cert
    conflict = post(client, alice, {"grams": 999, "footprint": FLIGHT})
    assert conflict.status_code == 409 and error_of(conflict)["code"] == "idempotency_conflict"
    account = client.get(f"/v1/accounts/{alice}", headers=auth()).get_json()
    assert account["balances"]["carbon_g"] == 974
    assert account["carbon"] == {"held_g": 974, "retired_g": 1000, "aggregated_g": 0, "lifetime_g": 1974}


def test_api_insufficient_carbon(client, alice, rides):
    response = post(client, alice, {"grams": 2000, "footprint": "A long-haul flight"})
    assert response.status_code == 409
    err = error_of(response)
    assert err["code"] == "insufficient_carbon" and "1974 g" in err["message"]


@pytest.mark.parametrize("body, field", [
    ({"grams": 0, "footprint": FLIGHT}, "grams"),
    ({"grams": -5, "footprint": FLIGHT}, "grams"),
    ({"grams": 1.5, "footprint": FLIGHT}, "grams"),
    ({"grams": "100", "footprint": FLIGHT}, "grams"),
    ({"footprint": FLIGHT}, "grams"),
    ({"grams": 100}, "footprint"),
    ({"grams": 100, "footprint": ""}, "footprint"),
    ({"grams": 100, "footprint": {"kind": {"deep": 1}}}, "footprint"),
    ({"grams": 100, "footprint": FLIGHT, "note": "x"}, "note"),
])
def test_api_invalid_body(client, alice, rides, body, field):
    response = post(client, alice, body)
    assert response.status_code == 422
    err = error_of(response)
    assert err["code"] == "validation_error" and field in err["fields"], err


@pytest.mark.parametrize("key", [None, "", "has space", "k" * 101, "ключ"])
def test_api_idempotency_key_is_required_and_checked(client, alice, rides, key):
    headers = auth()
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post(f"/v1/accounts/{alice}/neutralisations", json={"grams": 1, "footprint": "x"},
                           headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in error_of(response)["fields"]
    assert Certificate.select().count() == 0


def test_api_scopes_and_unknown_account(client, alice, rides):
    assert post(client, alice, {"grams": 1, "footprint": "x"}, api_key="reader").status_code == 403
    missing = post(client, "acc_nobody", {"grams": 1, "footprint": "x"})
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    assert client.get("/v1/accounts/acc_nobody/neutralisations", headers=auth("reader")).status_code == 404


def test_api_list_and_read_certificates(client, hub, clock, alice, rides):
    ids = []
    for i in range(3):
        response = post(client, alice, {"grams": 100 + i, "footprint": f"trip {i}"}, key=f"k{i}")
        ids.append(response.get_json()["id"])
        clock.advance(minutes=1)
    page = client.get(f"/v1/accounts/{alice}/neutralisations?limit=2", headers=auth("reader")).get_json()
    assert [c["id"] for c in page["certificates"]] == [ids[2], ids[1]] and page["next"]
    rest = client.get(f"/v1/accounts/{alice}/neutralisations?limit=2&before={page['next']}",
                      headers=auth("reader")).get_json()
    assert [c["id"] for c in rest["certificates"]] == [ids[0]] and rest["next"] is None
    assert rest["certificates"][0]["receipts"] == [{"behaviour": rides[0], "grams": 100, "scenario": "metro",
                                                    "occurred_at": "2026-10-01T00:01:00+00:00",
                                                    "methodology": "metro-avoided-car", "version": "2021.1"}]
    one = client.get(f"/v1/accounts/{alice}/neutralisations/{ids[1]}", headers=auth("reader"))
    assert one.status_code == 200 and one.get_json()["footprint"] == "trip 1"
    bob = open_account(hub, "cust-bob")
    other = client.get(f"/v1/accounts/{bob}/neutralisations/{ids[1]}", headers=auth("reader"))
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"


def test_api_reversal_of_retired_credit_is_409(client, alice, rides):
    post(client, alice, {"grams": 900, "footprint": FLIGHT})
    seq = Behaviour.get_by_id(rides[1]).tx_seq
    response = client.post(f"/v1/admin/transactions/{seq}/reversal", json={"reason": "fraud"},
                           headers=auth("console"))
    assert response.status_code == 409 and error_of(response)["code"] == "carbon_retired"


def test_api_answers_match_the_openapi_document(client, alice, rides):
    spec = client.get("/openapi.json").get_json()
    path = "/v1/accounts/{account_id}/neutralisations"
    params = {p["name"]: p for p in spec["paths"][path]["post"]["parameters"]}
    assert params["Idempotency-Key"]["in"] == "header" and params["Idempotency-Key"]["required"]

    check = openapi_check(spec)
    created = post(client, alice, {"grams": 10, "footprint": FLIGHT})
    check(created, path, "post", "201")
    check(post(client, alice, {"grams": 10, "footprint": FLIGHT}), path, "post", "200")
    check(post(client, alice, {"grams": 5, "footprint": "a bus"}, key="k2"), path, "post", "201")
    check(client.get(f"/v1/accounts/{alice}/neutralisations", headers=auth()), path, "get", "200")
    cert = created.get_json()["id"]
    check(client.get(f"/v1/accounts/{alice}/neutralisations/{cert}", headers=auth()),
          path + "/{certificate_id}", "get", "200")
    check(client.get(f"/v1/accounts/{alice}", headers=auth()), "/v1/accounts/{account_id}", "get", "200")
    check(post(client, alice, {"grams": 10 ** 6, "footprint": "x"}, key="k3"), path, "post", "409")
