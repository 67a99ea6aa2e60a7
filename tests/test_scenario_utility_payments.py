"""The utility-payments scenario end to end, as documented in docs/scenarios/utility_payments.md.

Native payment records from ``tests/fixtures/utility_payments`` go through the
real pipeline with the shipped ``config/hub.toml`` rules, reported by the biller
(``sgcc``) and by the payment network (``unionpay``); the worked example also
through a signed HTTP push. Expected grams come from the published factor
(89 g per payment, CITIC carbon account, 2022) and the config rule
(per_kg = 100, bonus = 1), worked out by hand.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from api_helpers import auth, open_account, push
from conftest import shipped_config
from scenario_helpers import fixture_loader, json_blocks, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "utility_payments"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
GRAMS = 89  # per payment: CITIC carbon account methodology, 2022
POINTS = 9  # 89 × 100 // 1000 + 1
BILLER, NETWORK = "sgcc", "unionpay"


load = fixture_loader(FIXTURES)


@pytest.fixture
def config_data(config_data):
    """The test config with the scenario, the biller and the payment network exactly as shipped."""
    shipped = shipped_config()
    config_data["scenarios"]["utility_payments"] = shipped["scenarios"]["utility_payments"]
    config_data["partners"][BILLER] = shipped["partners"][BILLER]
    network = dict(shipped["partners"][NETWORK])
    # Only the scenarios this test config has (the network may also report metro or bus).
    network["scenarios"] = [s for s in network["scenarios"] if s in config_data["scenarios"]]
    assert "utility_payments" in network["scenarios"]
    config_data["partners"][NETWORK] = network
    return config_data


def open_consenting(hub, bank_ref: str):
    acc, _ = hub.open_account(bank_ref)
    hub.set_consent(acc.id, "utility_payments", True, at=CONSENT_AT)
    return acc


@pytest.fixture
def account(hub):
    return open_consenting(hub, "cust-bills-0001")


def payment(account_id: str, **changes) -> dict:
    """The worked example's payment (docs/scenarios/utility_payments.md), with changes (None drops a field)."""
    base = with_account(load("good.json")[0], account_id)
    assert base["payment_id"] == "SGCC-HB-20261105-00031877"  # the fixture's first record is the worked example
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def ingest(hub, *records, partner=BILLER):
    return hub.pipeline.ingest(partner, list(records)).records


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("utility_payments")
    assert view["methodology"]["id"] == "utility-payment-online"
    assert view["methodology"]["version_in_force"] == "2022.1"
    assert view["caps"] == {"per_month_count": 10, "per_subject_month_count": 1}  # the document's, untouched
    assert view["cap_subject"] == "bill_account"
    assert view["points"] == {"per_kg": 100, "bonus": 1}
    assert view["partners"] == ["sgcc", "unionpay"]


def test_worked_example(hub, account):
    (rec,) = ingest(hub, payment(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", GRAMS, POINTS)  # 1 × 89 g; 8 + 1 points
    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "utility-payment-online", "2022.1", "1", "payment")
    assert receipt.formula == "1 payment × 89 gCO2e/payment − 0"
    assert "CITIC" in receipt.factors[0]["source"]
    assert receipt.points == [{"points": 9, "rule": "config:utility_payments", "detail": "89 g × 100 pts/kg + 1"}]
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS
    assert hub.ledger.balance(user_points(account.id), "pts") == POINTS
    # Money in integer fen; the bill account is not kept in clear, only its last four digits.
    attributes = db.Behaviour.get(db.Behaviour.id == b.id).attributes
    assert attributes["amount_fen"] == 23650 and attributes["bill_account_tail"] == "2877"
    assert "3300912877" not in json.dumps(attributes)


def test_good_fixture_is_credited_in_full(hub, account):
    """The payment network reports every biller's payments: six bills, each credited 89 g."""
    records = [with_account(r, account.id) for r in load("good.json")]
    result = ingest(hub, *records, partner=NETWORK)
    assert [(r.status, r.behaviours[0].grams, r.behaviours[0].points) for r in result] == \
        [("accepted", GRAMS, POINTS)] * len(records)
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS * len(records)
    fen = [db.Behaviour.get(db.Behaviour.id == r.behaviours[0].id).attributes["amount_fen"] for r in result]
    assert fen == [23650, 19870, 5820, 9600, 5800, 3105]  # "236.50", 19870, "58.20", "96", "5800", "31.05"


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_same_payment_resent_is_duplicate_event(hub, account):
    first, = ingest(hub, payment(account.id))
    again, = ingest(hub, payment(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS


@pytest.mark.parametrize("biller_first", [True, False], ids=["biller-first", "network-first"])
def test_same_payment_from_the_biller_and_the_network_is_credited_once(hub, account, biller_first):
    from_biller = payment(account.id)
    # UnionPay's record of the same payment: its own id, its own clock, the amount in fen,
    # the biller's name in capitals.
    from_network = payment(account.id, payment_id="UP-BP-202611050007731", biller="SGCC-Hubei",
                           paid_at="2026-11-05T12:14:11Z", amount=None, amount_fen=23650, currency=None)
    reports = [(BILLER, from_biller), (NETWORK, from_network)]
    if not biller_first:
        reports.reverse()
    first, = ingest(hub, reports[0][1], partner=reports[0][0])
    second, = ingest(hub, reports[1][1], partner=reports[1][0])
    assert verdict(first) == ("accepted", None, None)
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS


def test_same_bill_paid_in_instalments_is_one_act(hub, account):
    ingest(hub, payment(account.id, amount="100.00"))
    rest, = ingest(hub, payment(account.id, payment_id="SGCC-HB-20261109-00040012", amount="136.50",
                                paid_at="2026-11-09T08:00:00+08:00"))
    assert verdict(rest) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS


def test_one_payment_per_bill_account_a_month_across_users(hub, account):
    """Two family members pay the same household's power bill account in November:
    September's arrears, then October's bill. One credit for the account that month."""
    spouse = open_consenting(hub, "cust-bills-0002")
    arrears, = ingest(hub, payment(account.id, payment_id="SGCC-HB-20261104-00029901", billing_period="2026-09",
                                   paid_at="2026-11-04T19:00:00+08:00"))
    october, = ingest(hub, payment(spouse.id))
    assert verdict(arrears) == ("accepted", None, None)
    assert verdict(october) == ("rejected", "cap_reached", "attributes.bill_account")
    # Another bill account (the same number at another biller is another account) is not capped ...
    water, = ingest(hub, payment(spouse.id, payment_id="UP-BP-202611060000277", biller="wuhan-water",
                                 bill_type="water"), partner=NETWORK)
    assert verdict(water) == ("accepted", None, None)
    # The month is the local month of paid_at: 00:30 on 1 November in Wuhan is November (full) ...
    august_late, = ingest(hub, payment(spouse.id, payment_id="SGCC-HB-20261101-00000101", billing_period="2026-08",
                                       paid_at="2026-10-31T16:30:00Z"))
    assert verdict(august_late) == ("rejected", "cap_reached", "attributes.bill_account")
    # ... 23:30 on 31 October is October, when the account had no credit yet.
    august, = ingest(hub, payment(spouse.id, payment_id="SGCC-HB-20261031-00091101", billing_period="2026-08",
                                  paid_at="2026-10-31T15:30:00Z"))
    assert verdict(august) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS
    assert hub.ledger.balance(user_carbon(spouse.id), "g") == 2 * GRAMS


def test_a_reversed_payment_frees_its_bill_account_for_the_month(hub, account):
    spouse = open_consenting(hub, "cust-bills-0002")
    arrears, = ingest(hub, payment(account.id, payment_id="SGCC-HB-20261104-00029901", billing_period="2026-09",
                                   paid_at="2026-11-04T19:00:00+08:00"))
    assert verdict(ingest(hub, payment(spouse.id))[0]) == ("rejected", "cap_reached", "attributes.bill_account")
    hub.reverse(arrears.behaviours[0].tx_seq, "payment refunded by the biller")
    october, = ingest(hub, payment(spouse.id, payment_id="SGCC-HB-20261105-00031878"))
    assert verdict(october) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(spouse.id), "g") == GRAMS


def test_ten_payments_per_user_a_month(hub, account):
    """A landlord pays eleven flats' water bills in November: ten are credited."""
    bills = [payment(account.id, payment_id=f"UP-BP-2026111000{i:02d}", biller="wuhan-water", bill_type="water",
                     bill_account=f"01-0456-{2200 + i}", paid_at=f"2026-11-10T{8 + i:02d}:00:00+08:00")
             for i in range(11)]
    result = ingest(hub, *bills, partner=NETWORK)
    assert [verdict(r) for r in result] == [("accepted", None, None)] * 10 + [("rejected", "cap_reached", None)]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 10 * GRAMS
    assert hub.ledger.balance(user_points(account.id), "pts") == 10 * POINTS
    # The eleventh flat's bill is not used up: paid by its tenant, it earns.
    tenant = open_consenting(hub, "cust-bills-0003")
    own, = ingest(hub, dict(bills[10], payment_id="UP-BP-202611200000001", account_id=tenant.id), partner=NETWORK)
    assert verdict(own) == ("accepted", None, None)


@pytest.mark.parametrize("changes, expected", [
    ({"amount": "236.5"}, ("accepted", None, None)),
    ({"amount": "0.01"}, ("accepted", None, None)),
    ({"amount": None, "amount_fen": "23650"}, ("accepted", None, None)),
    ({"amount": "-236.50"}, ("rejected", "non_positive_amount", "amount")),
    ({"amount": 236}, ("rejected", "invalid_record", "amount")),  # a JSON number in yuan: ambiguous, refused
    ({"amount": None, "amount_fen": True}, ("rejected", "invalid_record", "amount_fen")),
    ({"amount": None, "amount_fen": "236.50"}, ("rejected", "invalid_record", "amount_fen")),
], ids=["one-decimal", "one-fen", "fen-string", "refund", "yuan-number", "fen-bool", "fen-decimal"])
def test_money_is_never_a_float(hub, account, changes, expected):
    (rec,) = ingest(hub, payment(account.id, **changes))
    assert verdict(rec) == expected


def test_paid_before_period_uses_the_local_month(hub, account):
    early, = ingest(hub, payment(account.id, payment_id="P-1", billing_period="2026-11",
                                 paid_at="2026-10-31T15:59:00Z"))  # 23:59 on 31 October in Wuhan
    in_period, = ingest(hub, payment(account.id, payment_id="P-2", billing_period="2026-11",
                                     paid_at="2026-10-31T16:00:00Z"))  # 00:00 on 1 November
    assert verdict(early) == ("rejected", "paid_before_period", "paid_at")
    assert verdict(in_period) == ("accepted", None, None)


# --- the worked example over HTTP ----------------------------------------------------------------


def test_worked_example_through_signed_pushes(client, hub, clock):
    account_id = open_account(client, "cust-bills-http")
    hub.set_consent(account_id, "utility_payments", True, at=CONSENT_AT)
    example = payment(account_id)
    response = push(client, BILLER, [example], clock, secret="sgcc-secret-0123456789")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["batch"]["accepted"], body["batch"]["grams"], body["batch"]["points"]) == (1, GRAMS, POINTS)
    credited = body["results"][0]["behaviours"][0]
    # The payment network's report of the same payment, in its own push.
    network_copy = payment(account_id, payment_id="UP-BP-202611050007731", paid_at="2026-11-05T12:14:11Z",
                           amount=None, amount_fen=23650)
    response = push(client, NETWORK, [network_copy], clock, secret="unionpay-secret-0123456789")
    assert response.status_code == 200, response.get_json()
    (result,) = response.get_json()["results"]
    assert (result["status"], result["reason"]) == ("duplicate", "double_claim")
    assert result["behaviours"][0]["duplicate_of"] == credited["id"]
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{credited['id']}", headers=auth()).get_json()
    assert detail["receipt"]["formula"] == "1 payment × 89 gCO2e/payment − 0"
    balances = client.get(f"/v1/accounts/{account_id}", headers=auth()).get_json()["balances"]
    assert balances == {"carbon_g": GRAMS, "points": POINTS}


# --- the numbers printed in docs/scenarios/utility_payments.md -----------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "utility_payments.md")


def test_docs_worked_example_is_the_tested_payment(account):
    example = doc_json_blocks()[0]
    assert dict(example, account_id=account.id) == payment(account.id)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]), partner=NETWORK)
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result]
    assert got == [("accepted", GRAMS, POINTS, None), ("accepted", GRAMS, POINTS, None),
                   ("rejected", 0, 0, "offline_payment"), ("rejected", 0, 0, "cap_reached")]
