"""The e-statement scenario end to end, as documented in docs/scenarios/estatement.md.

Native records from ``tests/fixtures/estatement`` (the card centre's statement
records, and the mobile-banking app's view log in ``view_log_*.json``) go
through the real pipeline with the shipped ``config/hub.toml`` rules for the
scenario (at most 3 statements a month, 5 points each). Expected grams come
from the published factor (24 g per statement), worked out by hand; the same
statement reported by both systems is credited once.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from api_helpers import auth, push
from conftest import shipped_config
from scenario_helpers import contains, fixture_loader, json_blocks, verdict, with_account

from hub import db
from hub.ledger import user_carbon, user_points

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "estatement"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
GRAMS_PER_STATEMENT = 24  # CITIC carbon account methodology, 2022 (docs/scenarios/estatement.md)


load = fixture_loader(FIXTURES)


@pytest.fixture
def config_data(config_data):
    """The test config with the e-statement rules and both reporting partners (the card
    centre and the mobile-banking app) exactly as shipped in config/hub.toml."""
    shipped = shipped_config()
    for pid in ("cardcentre", "mbank"):
        config_data["partners"][pid] = shipped["partners"][pid]
        for sid in shipped["partners"][pid]["scenarios"]:  # the card centre also reports e-cards
            config_data["scenarios"][sid] = shipped["scenarios"][sid]
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-card-0001")
    hub.set_consent(acc.id, "estatement", True, at=CONSENT_AT)
    return acc


def statement(account_id: str, **changes) -> dict:
    """The worked example's statement (docs/scenarios/estatement.md), with changes."""
    base = with_account(load("good.json")[0], account_id)
    assert base["statement_id"] == "ST-202610-000451"  # the fixture's first record is the worked example
    return {**base, **changes}


def ingest(hub, *records):
    return hub.pipeline.ingest("cardcentre", list(records)).records


def ingest_from(hub, partner, *records):
    return hub.pipeline.ingest(partner, list(records)).records


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("estatement")
    assert view["methodology"]["id"] == "estatement-paperless"
    assert view["methodology"]["version_in_force"] == "2022.1"
    assert view["caps"] == {"per_month_count": 3}  # methodology 5, config 3: the lower wins
    assert view["points"] == {"per_kg": 0, "bonus": 5}


def test_worked_example(hub, account):
    (rec,) = ingest(hub, statement(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 24, 5)  # 1 × 24 g; 24 × 0 // 1000 + 5
    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "estatement-paperless", "2022.1", "1", "statement")
    assert receipt.formula == "1 statement × 24 gCO2e/statement − 0"
    assert "CITIC" in receipt.factors[0]["source"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 24
    assert hub.ledger.balance(user_points(account.id), "pts") == 5


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    result = ingest(hub, *records)
    assert [(r.status, r.behaviours[0].grams, r.behaviours[0].points) for r in result] == \
        [("accepted", GRAMS_PER_STATEMENT, 5)] * len(records)
    assert hub.ledger.balance(user_carbon(account.id), "g") == GRAMS_PER_STATEMENT * len(records)


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


def test_one_statement_per_card_per_cycle(hub, account):
    first, = ingest(hub, statement(account.id))
    # The same cycle of the same card viewed again by e-mail, under another statement id.
    again, = ingest(hub, statement(account.id, statement_id="ST-202610-000451-E", channel="email",
                                   viewed_at="2026-11-09T07:45:00+08:00"))
    assert verdict(again) == ("duplicate", "double_claim", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    # The very same record sent twice is a duplicate event.
    resent, = ingest(hub, statement(account.id))
    assert verdict(resent) == ("duplicate", "duplicate_event", None)
    # Another card, or the next cycle of the same card, is another statement.
    other_card, = ingest(hub, statement(account.id, statement_id="ST-202610-000452", card_ref="card_3a90"))
    next_cycle, = ingest(hub, statement(account.id, statement_id="ST-202611-000451", cycle="2026-11",
                                        viewed_at="2026-11-20T09:00:00+08:00"))
    assert verdict(other_card)[0] == verdict(next_cycle)[0] == "accepted"
    assert hub.ledger.balance(user_carbon(account.id), "g") == 3 * 24


def test_monthly_count_cap_of_shipped_config(hub, account):
    """Four cards' October statements viewed in November: three are credited."""
    cards = ["card_7c1e", "card_3a90", "card_51d2", "card_0b77"]
    records = [statement(account.id, statement_id=f"ST-202610-0010{i}", card_ref=card,
                         viewed_at=f"2026-11-0{i + 1}T09:00:00+08:00") for i, card in enumerate(cards)]
    result = ingest(hub, *records)
    assert [verdict(r) for r in result] == [("accepted", None, None)] * 3 + [("rejected", "cap_reached", None)]
    # The month is the local calendar month of viewed_at: 23:30 UTC on 31 October is
    # already 1 November in Shanghai, so this one is over November's cap too.
    edge, = ingest(hub, statement(account.id, statement_id="ST-202610-001099", card_ref="card_9e12",
                                  viewed_at="2026-10-31T17:30:00Z"))
    assert verdict(edge) == ("rejected", "cap_reached", None)
    # An October view of another statement is within October's cap.
    october, = ingest(hub, statement(account.id, statement_id="ST-202609-001001", card_ref="card_9e12",
                                     cycle="2026-09", viewed_at="2026-10-31T15:30:00Z"))
    assert verdict(october) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 4 * 24


def test_paper_sent_earns_nothing(hub, account):
    rec, = ingest(hub, statement(account.id, paper_suppressed=False))
    assert verdict(rec) == ("rejected", "paper_sent", "paper_suppressed")
    # After the card centre fixes its flag, a corrected record is credited.
    fixed, = ingest(hub, statement(account.id, statement_id="ST-202610-000451-R"))
    assert verdict(fixed) == ("accepted", None, None)


def test_viewed_before_cycle_uses_local_month(hub, account):
    early, = ingest(hub, statement(account.id, statement_id="ST-202611-000001", cycle="2026-11",
                                   viewed_at="2026-10-31T15:59:00Z"))  # 23:59 on 31 October in Shanghai
    assert verdict(early) == ("rejected", "viewed_before_cycle", "viewed_at")
    in_cycle, = ingest(hub, statement(account.id, statement_id="ST-202611-000002", cycle="2026-11",
                                      viewed_at="2026-10-31T16:00:00Z"))  # 00:00 on 1 November in Shanghai
    assert verdict(in_cycle) == ("accepted", None, None)


# --- the numbers printed in docs/scenarios/estatement.md -------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "estatement.md")


def test_docs_worked_example_is_the_tested_statement(account):
    example = next(b for b in doc_json_blocks() if "statement_id" in b)
    assert dict(example, account_id=account.id) == statement(account.id)


def test_docs_view_log_example_and_its_duplicate_answer(hub, account):
    example = next(b for b in doc_json_blocks() if "log_id" in b)
    assert dict(example, carbon_account=account.id) == view(account.id)
    credited, = ingest(hub, statement(account.id))
    result = hub.pipeline.ingest("mbank", [view(account.id)])
    actual = {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
    documented = json.loads(json.dumps(next(b for b in doc_json_blocks() if "batch" in b), ensure_ascii=False)
                            .replace("bhv_…", credited.behaviours[0].id))
    assert contains(documented, actual), (documented, actual)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]))
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result]
    assert got == [("accepted", 24, 5, None), ("accepted", 24, 5, None), ("rejected", 0, 0, "paper_sent")]


# --- the second reporter: the mobile-banking app's view log (partner mbank) ------------------------


def epoch_ms(iso: str) -> int:
    """The view log's ``ts``: milliseconds since 1970-01-01T00:00Z."""
    delta = datetime.fromisoformat(iso) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return delta // timedelta(milliseconds=1)


def view(account_id: str, **changes) -> dict:
    """The app's log of the worked example's statement: same card, same cycle, same minute."""
    base = with_account(load("view_log_good.json")[0], account_id)
    assert base["log_id"] == "MBL-20261103-0091273"
    return {**base, **changes}


def test_view_log_is_read_like_the_card_centre_record(hub, account):
    rec, = ingest_from(hub, "mbank", view(account.id))
    (b,) = rec.behaviours
    assert (rec.status, b.grams, b.points) == ("accepted", 24, 5)
    row = db.Behaviour.get(db.Behaviour.id == b.id)
    # ts is 09:12 on 3 November in Shanghai, the card centre's viewed_at.
    assert view(account.id)["ts"] == epoch_ms(statement(account.id)["viewed_at"])
    assert db.from_db(row.occurred_at) == datetime(2026, 11, 3, 9, 12, tzinfo=CST)
    assert row.attributes == {"card_ref": "card_7c1e", "cycle": "2026-10", "channel": "app", "platform": "ios",
                              "paper_suppressed": True}
    receipt = db.Receipt.get(db.Receipt.behaviour == b.id)
    assert receipt.formula == "1 statement × 24 gCO2e/statement − 0"


def test_view_log_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("view_log_good.json")]
    result = ingest_from(hub, "mbank", *records)
    assert [(r.status, r.behaviours[0].grams, r.behaviours[0].points) for r in result] == \
        [("accepted", GRAMS_PER_STATEMENT, 5)] * len(records)


def test_view_log_bad_fixture_reasons_and_fields(hub, account):
    cases = load("view_log_bad.json")
    result = ingest_from(hub, "mbank", *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


@pytest.mark.parametrize("first_partner", ["cardcentre", "mbank"])
def test_same_statement_from_two_systems_is_credited_once(hub, account, first_partner):
    """Whichever system reports first is credited; the other is a duplicate pointing at it."""
    later = epoch_ms("2026-11-03T09:12:27.215+08:00")  # the app logs the view 27 s after the card centre
    reports = {"cardcentre": statement(account.id), "mbank": view(account.id, ts=later)}
    second_partner = "mbank" if first_partner == "cardcentre" else "cardcentre"
    first, = ingest_from(hub, first_partner, reports[first_partner])
    second, = ingest_from(hub, second_partner, reports[second_partner])
    assert verdict(first) == ("accepted", None, None)
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id and second.behaviours[0].grams == 0
    assert hub.ledger.balance(user_carbon(account.id), "g") == 24
    assert hub.ledger.balance(user_points(account.id), "pts") == 5
    # The app viewing the next cycle of the card, or another card, is another statement.
    next_cycle, = ingest_from(hub, "mbank", view(account.id, log_id="MBL-20261120-0000001", bill_month="202611",
                                                 ts=epoch_ms("2026-11-20T08:20:00+08:00")))
    assert verdict(next_cycle) == ("accepted", None, None)


def test_fingerprint_is_unchanged_for_existing_credits(hub, account):
    """Credits made before the view log existed keep deduplicating: the stored fingerprint is
    sha256 of "estatement", the card reference and the cycle, joined by the unit separator."""
    expected = hashlib.sha256("estatement\x1fcard_7c1e\x1f2026-10".encode()).hexdigest()
    card_centre, = ingest(hub, statement(account.id))
    app, = ingest_from(hub, "mbank", view(account.id))
    rows = db.Behaviour.select().where(db.Behaviour.id.in_([card_centre.behaviours[0].id, app.behaviours[0].id]))
    assert {row.fingerprint for row in rows} == {expected}


def test_pan_in_a_statement_record_is_refused(hub, account):
    rec, = ingest(hub, statement(account.id, card_ref="6225 8801 3700 0007"))
    assert verdict(rec) == ("rejected", "pan_not_allowed", "card_ref")


def test_same_statement_from_two_systems_over_http(client, hub, clock, account):
    body = push(client, "cardcentre", [statement(account.id)], clock).get_json()
    credited = body["results"][0]["behaviours"][0]
    assert (credited["status"], credited["grams"]) == ("accepted", 24)
    response = push(client, "mbank", [view(account.id)], clock, secret="mbank-secret-0123456789")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("accepted", "duplicate", "grams", "reasons")} == {
        "accepted": 0, "duplicate": 1, "grams": 0, "reasons": {"double_claim": 1}}
    (dup,) = body["results"][0]["behaviours"]
    assert (dup["status"], dup["reason"], dup["duplicate_of"]) == ("duplicate", "double_claim", credited["id"])
    detail = client.get(f"/v1/accounts/{account.id}/behaviours/{dup['id']}", headers=auth("app")).get_json()
    assert detail["receipt"]["behaviour"] == credited["id"]  # the duplicate shows the credit's receipt
    assert client.get(f"/v1/accounts/{account.id}", headers=auth("app")).get_json()["balances"] == {
        "carbon_g": 24, "points": 5}
