"""The console's operations: inbox, replay after a fix, ledger verification."""
from __future__ import annotations

from datetime import timedelta

import pytest
from api_helpers import auth, error_of, metro_grams, open_account, push, ride, statement

from conftest import NOW
from hub import db


@pytest.fixture
def account(client):
    return open_account(client, "cust-admin")


@pytest.fixture
def newcomer(client):
    """An account that has not consented to anything (yet)."""
    return open_account(client, "cust-newcomer")


@pytest.fixture
def pushed(client, hub, clock, account, newcomer):
    """Five metro records (2 no_consent, 1 invalid, 2 accepted) and one e-statement (no_consent)."""
    hub.set_consent(account, "metro", True, at=NOW - timedelta(days=1))
    early = NOW - timedelta(days=3)
    bad = ride(account, "R-bad", NOW - timedelta(hours=5))
    bad["distance_km"] = "far"
    records = [ride(newcomer, "R-early-1", early, km="5", minutes=10, card="tok_n"),
               ride(newcomer, "R-early-2", early + timedelta(hours=1), km="6", minutes=10, card="tok_n"),
               bad,
               ride(account, "R-ok-1", NOW - timedelta(hours=3), km="7", minutes=10),
               ride(account, "R-ok-2", NOW - timedelta(hours=2), km="8", minutes=10)]
    push(client, "szmetro", records, clock)
    clock.advance(minutes=1)
    push(client, "cardcentre", [statement(newcomer, "ST-1", NOW - timedelta(days=2))], clock)
    clock.advance(minutes=1)


def event(record) -> str:
    """The record's event id; an unreadable record has none, so use its native ride id."""
    return record["event_id"] or record["payload"]["ride_id"]


def inbox(client, query=""):
    response = client.get(f"/v1/admin/inbox?{query}", headers=auth("console"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_inbox_lists_everything_newest_first(client, pushed):
    body = inbox(client)
    assert body["next"] is None
    records = body["records"]
    assert len(records) == 6
    assert records[0]["partner"] == "cardcentre" and records[0]["event_id"] == "ST-1"
    assert records[0]["payload"]["statement_id"] == "ST-1" and records[0]["source"] == "push"
    assert records[0]["attempts"] == 1 and records[0]["received_at"] == "2026-11-21T04:01:00+00:00"
    bad = next(r for r in records if event(r) == "R-bad")
    assert bad["event_id"] is None and bad["status"] == "rejected" and bad["reason"] == "invalid_record"
    assert bad["detail"]["field"] == "distance_km"


@pytest.mark.parametrize("query, events", [
    ("status=rejected", {"R-early-1", "R-early-2", "R-bad", "ST-1"}),
    ("status=accepted", {"R-ok-1", "R-ok-2"}),
    ("status=rejected&reason=no_consent", {"R-early-1", "R-early-2", "ST-1"}),
    ("status=rejected&reason=no_consent&partner=szmetro", {"R-early-1", "R-early-2"}),
    ("partner=cardcentre", {"ST-1"}),
    ("reason=cap_reached", set()),
])
def test_inbox_filters(client, pushed, query, events):
    assert {event(r) for r in inbox(client, query)["records"]} == events


def test_inbox_pages(client, pushed):
    ids, cursor = [], None
    for _ in range(10):
        page = inbox(client, "limit=4" + (f"&before={cursor}" if cursor else ""))
        ids += [r["id"] for r in page["records"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert ids == [r["id"] for r in inbox(client)["records"]] and len(ids) == 6


def test_inbox_query_validation(client):
    response = client.get("/v1/admin/inbox?status=lost&limit=0", headers=auth("console"))
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {"status", "limit"}


def test_replay_after_consent_fix(client, hub, newcomer, pushed):
    # The bank learns the user had consented on paper five days earlier and records it.
    hub.set_consent(newcomer, "metro", True, at=NOW - timedelta(days=5), source="paper")
    hub.set_consent(newcomer, "estatement", True, at=NOW - timedelta(days=5), source="paper")
    before = client.get(f"/v1/accounts/{newcomer}", headers=auth()).get_json()["balances"]["carbon_g"]

    only_metro = client.post("/v1/admin/inbox/replay", json={"partner": "szmetro", "reason": "no_consent"},
                             headers=auth("console"))
    assert only_metro.status_code == 200
    batch = only_metro.get_json()["batch"]
    assert (batch["records"], batch["accepted"], batch["grams"]) == (2, 2, metro_grams("5") + metro_grams("6"))
    assert batch["batch_id"].startswith("rpl_")

    everything = client.post("/v1/admin/inbox/replay", json={}, headers=auth("console")).get_json()["batch"]
    # The e-statement is now credited; the unreadable ride stays rejected for the same reason.
    assert (everything["records"], everything["accepted"], everything["rejected"]) == (2, 1, 1)
    assert everything["reasons"] == {"invalid_record": 1}

    after = client.get(f"/v1/accounts/{newcomer}", headers=auth()).get_json()["balances"]["carbon_g"]
    assert before == 0 and after == metro_grams("5") + metro_grams("6") + 24
    replayed = {event(r): r for r in inbox(client)["records"]}
    assert replayed["R-early-1"]["status"] == "accepted" and replayed["R-early-1"]["attempts"] == 2
    assert replayed["R-bad"]["attempts"] == 2  # pushed, then the unfiltered replay


def test_replay_by_ids(client, hub, newcomer, pushed):
    hub.set_consent(newcomer, "metro", True, at=NOW - timedelta(days=5))
    target = next(r["id"] for r in inbox(client, "status=rejected")["records"] if event(r) == "R-early-2")
    batch = client.post("/v1/admin/inbox/replay", json={"ids": [target]}, headers=auth("console")).get_json()["batch"]
    assert (batch["records"], batch["accepted"]) == (1, 1)
    assert {event(r) for r in inbox(client, "status=rejected&partner=szmetro")["records"]} == \
        {"R-early-1", "R-bad"}


@pytest.mark.parametrize("body, field", [({"partner": 3}, "partner"), ({"ids": "in_1"}, "ids"), ({"ids": []}, "ids"),
                                         ({"everything": True}, "everything"), ({"limit": 0}, "limit")])
def test_replay_validation(client, body, field):
    response = client.post("/v1/admin/inbox/replay", json=body, headers=auth("console"))
    assert response.status_code == 422 and field in error_of(response)["fields"]


def test_verify_detects_tampering(client, pushed):
    ok = client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()
    head = db.LedgerTransaction.get_by_id(2)
    assert ok == {"ok": True, "transactions": 2, "accounts": ok["accounts"], "first_break": None, "problems": [],
                  "head_seq": 2, "head_hash": head.hash}
    assert ok["accounts"] == 4  # (account, unit): user carbon g, user points pts, issuer g and pts

    # Someone edits a posting behind the ledger's back.
    posting = db.Posting.select().where(db.Posting.unit == "g", db.Posting.amount > 0).order_by(db.Posting.id).first()
    db.Posting.update(amount=posting.amount + 1000).where(db.Posting.id == posting.id).execute()
    broken = client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()
    assert broken["ok"] is False and broken["first_break"] == posting.tx_seq and broken["problems"]


def test_reversal_corrects_a_credit_once(client, pushed, account):
    balance = client.get(f"/v1/accounts/{account}", headers=auth("app")).get_json()["balances"]
    credit = db.LedgerTransaction.select().where(db.LedgerTransaction.kind == "credit").order_by(
        db.LedgerTransaction.seq).first()
    grams = credit.memo and next(p.amount for p in db.Posting.select().where(
        db.Posting.tx_seq == credit.seq, db.Posting.account == f"user:{account}:carbon"))
    url = f"/v1/admin/transactions/{credit.seq}/reversal"

    assert client.post(url, json={"reason": "ride refunded"}, headers=auth("app")).status_code == 403
    first = client.post(url, json={"reason": "ride refunded"}, headers=auth("console"))
    assert first.status_code == 201, first.get_json()
    tx = first.get_json()
    assert tx["reverses"] == credit.seq and tx["kind"] == "reversal" and tx["memo"]["reason"] == "ride refunded"
    assert {(p["account"], p["amount"]) for p in tx["postings"]} >= {(f"user:{account}:carbon", -grams)}
    after = client.get(f"/v1/accounts/{account}", headers=auth("app")).get_json()["balances"]
    assert after["carbon_g"] == balance["carbon_g"] - grams

    retry = client.post(url, json={"reason": "ride refunded"}, headers=auth("console"))
    assert retry.status_code == 200 and retry.get_json()["seq"] == tx["seq"]
    assert error_of(client.post(url, json={"reason": "another story"}, headers=auth("console")))["code"] == \
        "already_reversed"
    missing = client.post("/v1/admin/transactions/999999/reversal", json={"reason": "nope"}, headers=auth("console"))
    assert missing.status_code == 404 and error_of(missing)["code"] == "transaction_not_found"
    of_reversal = client.post(f"/v1/admin/transactions/{tx['seq']}/reversal", json={"reason": "undo"},
                              headers=auth("console"))
    assert of_reversal.status_code == 422
    assert client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()["ok"] is True
    behaviour = credit.memo["behaviour"]
    detail = client.get(f"/v1/accounts/{account}/behaviours/{behaviour}", headers=auth("app")).get_json()
    assert detail["reversed_by"] == tx["seq"] and detail["receipt"]["credited_g"] == grams
