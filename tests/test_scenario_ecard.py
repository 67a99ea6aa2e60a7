"""The e-credit-card scenario end to end, as documented in docs/scenarios/ecard.md.

Native records from ``tests/fixtures/ecard`` go through the real pipeline with
the shipped ``config/hub.toml`` rules (one e-card a month, 100 points per kg +
10). Expected grams are worked out by hand from the published factors: 89 g
per application (CITIC carbon account, 2022), or, for the conservative
alternative, a 5.07 g PVC card at 4.1 kg CO2/kg plus a 10 g mailer (TruCert
for Mastercard). The plastic-card correction runs through the HTTP API the
bank's operator uses.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import auth, error_of, open_account, push
from conftest import SECRETS, shipped_config
from scenario_helpers import contains, fixture_loader, json_blocks, Recorder, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points
from plugins.cardnumbers import looks_like_pan

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ecard"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
GRAMS_PER_CARD = 89  # CITIC carbon account methodology, 2022 (docs/scenarios/ecard.md)
POINTS_PER_CARD = 89 * 100 // 1000 + 10  # shipped rule per_kg = 100, bonus = 10: 8 + 10
# TruCert for Mastercard: 5.07 g of PVC at 4.1 g CO2 per g, plus the lower bound of the mailer.
PVC_CARD_G = math.floor(Decimal("5.07") * Decimal("4.1") + 10)
CARD_CENTRE_SECRET = SECRETS["CARBONHUB_SECRET_CARDCENTRE"]


load = fixture_loader(FIXTURES)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def extra_plugins(recorder):
    return [recorder]


@pytest.fixture
def config_data(config_data):
    """The card centre and the e-card rules exactly as shipped, plus a second system of the
    bank (its online application platform) allowed to report e-card issuances too."""
    shipped = shipped_config()
    config_data["partners"]["cardcentre"] = shipped["partners"]["cardcentre"]
    for sid in shipped["partners"]["cardcentre"]["scenarios"]:
        config_data["scenarios"][sid] = shipped["scenarios"][sid]
    config_data["partners"]["cardapply"] = {"name": "Online card application platform",
                                            "secret_env": "CARBONHUB_SECRET_CARDAPPLY", "scenarios": ["ecard"]}
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-ecard-0001")
    hub.set_consent(acc.id, "ecard", True, at=CONSENT_AT)
    return acc


def issued(account_id: str, **changes) -> dict:
    """The worked example's e-card (docs/scenarios/ecard.md), with changes."""
    base = with_account(load("good.json")[0], account_id)
    assert base["application_id"] == "ECA-20261115-000731"  # the fixture's first record is the worked example
    return {**base, **changes}


def ingest(hub, *records, partner: str = "cardcentre"):
    return hub.pipeline.ingest(partner, list(records)).records


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("ecard")
    assert view["methodology"]["id"] == "ecard-no-plastic"
    assert view["methodology"]["version_in_force"] == "2022.1"
    assert view["caps"] == {"per_month_count": 1}  # methodology 2, config 1: the lower wins
    assert view["points"] == {"per_kg": 100, "bonus": 10}
    assert view["partners"] == ["cardapply", "cardcentre"]


def test_worked_example(hub, account, recorder):
    (rec,) = ingest(hub, issued(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", GRAMS_PER_CARD, POINTS_PER_CARD) == ("accepted", 89, 18)
    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "ecard-no-plastic", "2022.1", "1", "application")
    assert Decimal(receipt.baseline_g) == 89 and Decimal(receipt.project_g) == 0
    assert receipt.formula == "1 application × 89 gCO2e/application − 0"
    (factor,) = receipt.factors
    assert "CITIC" in factor["source"] and "89 g" in factor["source"]
    assert receipt.points == [{"points": 18, "rule": "config:ecard", "detail": "89 g × 100 pts/kg + 10"}]
    row = db.Behaviour.get(db.Behaviour.id == b.id)
    assert row.attributes["card_token"] == "ctk_5b0e9a27c4d1" and row.attributes["plastic_card"] is False
    (tx,) = recorder.transactions
    assert sorted((p.account, p.unit, p.amount) for p in tx.postings) == sorted([
        ("@issuer:ecard", "g", -89), (user_carbon(account.id), "g", 89),
        ("@issuer:ecard", "pts", -18), (user_points(account.id), "pts", 18)])
    assert tx.memo["event_id"] == "ECA-20261115-000731"


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    months = {datetime.fromisoformat(r["issued_at"].replace("Z", "+00:00")).astimezone(CST).strftime("%Y-%m")
              for r in records}
    assert len(months) == len(records)  # one per month: the shipped cap is one e-card a month
    result = ingest(hub, *records)
    assert [(r.status, r.behaviours[0].grams, r.behaviours[0].points) for r in result] == \
        [("accepted", GRAMS_PER_CARD, POINTS_PER_CARD)] * len(records)
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS_PER_CARD * len(records)


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    stored = {row.id: row.reason for row in db.InboxRecord.select()}
    assert [stored[r.inbox_id] for r in result] == [c["reason"] for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_same_application_resent_is_duplicate_event(hub, account):
    first, = ingest(hub, issued(account.id))
    again, = ingest(hub, issued(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 89


@pytest.mark.parametrize("partner, changes", [
    ("cardcentre", {"application_id": "ECA-20261115-000731-R"}),  # re-keyed by the card centre
    # The application platform reports the same card with its own id, in UTC, seconds later.
    ("cardapply", {"application_id": "APP-7781203", "issued_at": "2026-11-15T02:22:41Z",
                   "applied_at": "2026-11-15T01:48:00Z", "product": "CITIC e-card (UnionPay)"}),
], ids=["card-centre-again", "application-platform"])
def test_same_card_is_credited_once(hub, account, partner, changes):
    first, = ingest(hub, issued(account.id))
    second, = ingest(hub, issued(account.id, **changes), partner=partner)
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert second.behaviours[0].grams == 0
    assert hub.ledger.balance(user_carbon(account.id), "g") == 89


def test_another_card_is_another_credit(hub, account):
    ingest(hub, issued(account.id))
    other, = ingest(hub, issued(account.id, application_id="ECA-20261020-000120", card_token="ctk_2c9e4f0a8b17",
                                 applied_at="2026-10-20T10:00:00+08:00", issued_at="2026-10-20T10:05:00+08:00"))
    assert verdict(other) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 89


def test_monthly_cap_of_shipped_config(hub, account):
    """Two new e-cards in November: the second is over the one-a-month cap; October is its own month."""
    second = issued(account.id, application_id="ECA-20261119-000400", card_token="ctk_f3a2b1c0d9e8",
                    applied_at="2026-11-19T11:00:00+08:00", issued_at="2026-11-19T11:02:00+08:00")
    # 16:30 UTC on 31 October is already 1 November in Shanghai: November too.
    edge = issued(account.id, application_id="ECA-20261031-000777", card_token="ctk_0e1d2c3b4a59",
                  applied_at="2026-10-31T16:20:00Z", issued_at="2026-10-31T16:30:00Z")
    october = issued(account.id, application_id="ECA-20261031-000778", card_token="ctk_9a8b7c6d5e4f",
                     applied_at="2026-10-31T15:20:00Z", issued_at="2026-10-31T15:30:00Z")  # 23:30 local
    result = ingest(hub, issued(account.id), second, edge, october)
    assert [verdict(r) for r in result] == [("accepted", None, None), ("rejected", "cap_reached", None),
                                            ("rejected", "cap_reached", None), ("accepted", None, None)]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 89
    # A card refused by the cap is not "used up": its fingerprint was never credited.
    assert db.Behaviour.get(db.Behaviour.id == result[1].behaviours[0].id).credit_fingerprint is None


def test_card_centre_feed_mixes_statements_and_ecards(hub, account):
    """One push of the card centre: each record goes to its own plugin (e-card records have a type)."""
    hub.set_consent(account.id, "estatement", True, at=CONSENT_AT)
    statement = {"statement_id": "ST-202610-000451", "account_id": account.id, "card_ref": "card_7c1e",
                 "cycle": "2026-10", "viewed_at": "2026-11-03T09:12:00+08:00", "channel": "app",
                 "paper_suppressed": True}
    result = hub.pipeline.ingest("cardcentre", [statement, issued(account.id)]).records
    assert [(r.status, r.behaviours[0].scenario, r.behaviours[0].grams) for r in result] == [
        ("accepted", "estatement", 24), ("accepted", "ecard", 89)]


@pytest.fixture
def pvc_config(config_data):
    config_data["scenarios"]["ecard"] = {**config_data["scenarios"]["ecard"], "methodology": "ecard-pvc-card"}
    return config_data


def test_conservative_alternative_methodology(pvc_config, hub, account):
    """A bank selling reductions on an exchange picks the bottom-up PVC card footprint: 30 g."""
    assert PVC_CARD_G == 30  # 20.787 g card + 10 g mailer = 30.787 g, rounded down
    (rec,) = ingest(hub, issued(account.id))
    assert (rec.status, rec.behaviours[0].grams, rec.behaviours[0].points) == (
        "accepted", PVC_CARD_G, PVC_CARD_G * 100 // 1000 + 10)
    receipt = db.Receipt.get(db.Receipt.behaviour == rec.behaviours[0].id)
    assert (receipt.methodology, receipt.version) == ("ecard-pvc-card", "2026.1")
    assert receipt.formula == "1 application × 30.787 gCO2/application − 0"
    assert "TruCert" in receipt.factors[0]["source"]


# --- no card number (PAN) is ever kept ---------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "4111111111111111", 4111111111111111, "4111 1111 1111 1111", "4111-1111-1111-1111",
    "5555555555554444", "378282246310005", "3782 822463 10005", "6212345678901232",
    "6225880137000007", "card 4379123456789010 (main)",
])
def test_looks_like_pan(value):
    assert looks_like_pan(value)


@pytest.mark.parametrize("value", [
    "4111111111111112",  # fails the Luhn check
    "ctk_5b0e9a27c4d1", "acc_3e2bb1cde723eba63bdc", "ECA-20261115-000731", "2026-11-15T10:22:00+08:00",
    "ctk4111111111111111", "4111111111111111a",  # glued to a token: not a card number written alone
    "1793668320000",  # epoch milliseconds: major industry identifier 1 is not a card issuer's
    "411111111111",  # 12 digits
    "4111 11111111 1111",  # not a printed grouping
    True, None,
])
def test_does_not_look_like_pan(value):
    assert not looks_like_pan(value)


def test_a_pan_is_refused_before_anything_is_read(hub, account):
    """A PAN anywhere in the record, even in a field the plugin ignores, refuses the whole record."""
    pan = "6225880137000007"
    cases = [issued(account.id, card_token=pan), issued(account.id, card_token="ctk_71aa", note=f"PAN {pan}"),
             issued(account.id, card_token="ctk_72bb", holder={"card": {"number": int(pan)}}),
             issued(account.id, card_token=pan, issued_at="yesterday")]  # the PAN check comes first
    result = ingest(hub, *cases)
    assert [verdict(r) for r in result] == [("rejected", "pan_not_allowed", f) for f in (
        "card_token", "note", "holder.card.number", "card_token")]
    assert all(pan not in r.message for r in result)  # the reason never echoes the number
    assert db.Behaviour.select().count() == 0 and db.Receipt.select().count() == 0
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_a_refused_pan_is_not_kept_in_the_inbox(hub, account):
    pan = "6225880137000007"
    ingest(hub, issued(account.id, card_token=pan))
    (row,) = db.InboxRecord.select()
    assert (row.status, row.reason) == ("rejected", "pan_not_allowed")
    assert pan not in json.dumps(row.payload) and row.payload["card_token"] == "[redacted]"
    assert row.payload["application_id"] == issued(account.id)["application_id"]  # the rest is kept
    assert row.detail["redacted"] == ["card_token"]
    # The redacted record is not replayed (it could only be credited wrongly): the card centre resends it.
    assert sum(hub.pipeline.replay(reason="pan_not_allowed").counts.values()) == 0
    assert db.Behaviour.select().where(db.Behaviour.status == "accepted").count() == 0


# --- over HTTP: the worked example, and the operator's correction after a plastic card --------------


def behaviours_of(client, account_id: str, **query) -> list[dict]:
    response = client.get(f"/v1/accounts/{account_id}/behaviours", query_string=query, headers=auth("app"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["behaviours"]


def test_worked_example_over_http(client, hub, clock):
    account_id = open_account(client, "cust-ecard-http")
    hub.set_consent(account_id, "ecard", True, at=CONSENT_AT)
    response = push(client, "cardcentre", [issued(account_id)], clock)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("records", "accepted", "grams", "points")} == {
        "records": 1, "accepted": 1, "grams": 89, "points": 18}
    (b,) = body["results"][0]["behaviours"]
    assert (b["scenario"], b["status"], b["grams"], b["points"]) == ("ecard", "accepted", 89, 18)
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{b['id']}", headers=auth("app")).get_json()
    assert detail["receipt"]["explanation"] == "1 application × 89 gCO2e/application − 0 = 89 g, rounded down " \
                                               "to 89 g; credited 89 g"


def test_plastic_card_ordered_later_is_reversed_by_the_operator(client, hub, clock):
    account_id = open_account(client, "cust-ecard-plastic")
    hub.set_consent(account_id, "ecard", True, at=CONSENT_AT)
    assert push(client, "cardcentre", [issued(account_id)], clock).get_json()["batch"]["accepted"] == 1
    balances = lambda: client.get(f"/v1/accounts/{account_id}", headers=auth("app")).get_json()["balances"]  # noqa
    assert balances() == {"carbon_g": 89, "points": 18}

    # 1. The card centre reports that the customer ordered a plastic card for that card.
    notice = with_account(load("bad.json")[9]["record"], account_id)
    assert notice["type"] == "plastic_ordered" and notice["application_id"] == "ECA-20261115-000731"
    result = push(client, "cardcentre", [notice], clock).get_json()["results"][0]
    assert (result["status"], result["reason"], result["field"]) == ("rejected", "plastic_card_ordered", "type")
    assert "ECA-20261115-000731" in result["message"] and balances()["carbon_g"] == 89  # nothing automatic

    # 2. The operator's console finds the notice in the inbox, and from it the credit.
    inbox = client.get("/v1/admin/inbox", query_string={"reason": "plastic_card_ordered"},
                       headers=auth("console")).get_json()["records"]
    assert [r["payload"]["application_id"] for r in inbox] == ["ECA-20261115-000731"]
    account, application = inbox[0]["payload"]["account_id"], inbox[0]["payload"]["application_id"]
    (credit,) = [b for b in behaviours_of(client, account, scenario="ecard", status="accepted")
                 if b["event_id"] == application]

    # 3. It reverses the credit's transaction: carbon and points go back to the issuer.
    url = f"/v1/admin/transactions/{credit['transaction']}/reversal"
    reason = {"reason": f"plastic card ordered ({notice['notice_id']})"}
    assert client.post(url, json=reason, headers=auth("app")).status_code == 403  # admin scope only
    reversal = client.post(url, json=reason, headers=auth("console"))
    assert reversal.status_code == 201, reversal.get_json()
    tx = reversal.get_json()
    assert tx["reverses"] == credit["transaction"] and tx["memo"]["reason"] == reason["reason"]
    assert sorted((p["account"], p["unit"], p["amount"]) for p in tx["postings"]) == sorted([
        ("@issuer:ecard", "g", 89), (f"user:{account_id}:carbon", "g", -89),
        ("@issuer:ecard", "pts", 18), (f"user:{account_id}:points", "pts", -18)])
    assert balances() == {"carbon_g": 0, "points": 0}
    # A retry of the same correction is the same reversal; a second, different one is refused.
    assert client.post(url, json=reason, headers=auth("console")).status_code == 200
    assert error_of(client.post(url, json={"reason": "again"}, headers=auth("console")))["code"] == \
        "already_reversed"
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{credit['id']}", headers=auth("app")).get_json()
    assert detail["reversed_by"] == tx["seq"]
    ledger = client.get(f"/v1/accounts/{account_id}/ledger", query_string={"scenario": "ecard"},
                        headers=auth("app")).get_json()["entries"]
    assert sorted((e["kind"], e["unit"], e["amount"]) for e in ledger) == sorted([
        ("credit", "g", 89), ("credit", "pts", 18), ("reversal", "g", -89), ("reversal", "pts", -18)])

    # 4. The card never earns again, whoever reports it.
    again = push(client, "cardapply", [issued(account_id, application_id="APP-7781203")], clock,
                 secret="cardapply-secret-0123456789").get_json()["results"][0]
    assert (again["status"], again["reason"]) == ("duplicate", "double_claim")
    assert again["behaviours"][0]["duplicate_of"] == credit["id"] and balances()["carbon_g"] == 0
    assert client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()["ok"] is True


# --- the numbers printed in docs/scenarios/ecard.md --------------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "ecard.md")


def test_docs_worked_example_is_the_tested_card(account):
    example, notice = doc_json_blocks()[:2]
    assert dict(example, account_id=account.id) == issued(account.id)
    assert dict(notice, account_id="{account}") == load("bad.json")[9]["record"]


def test_docs_push_response(hub, account):
    response = doc_json_blocks()[2]
    result = hub.pipeline.ingest("cardcentre", [issued(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    assert contains(response, actual), (response, actual)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]))
    assert [verdict(r) for r in result] == [("accepted", None, None), ("duplicate", "double_claim", None),
                                            ("rejected", "pan_not_allowed", "card_token"),
                                            ("rejected", "plastic_card_issued", "plastic_card")]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 89
