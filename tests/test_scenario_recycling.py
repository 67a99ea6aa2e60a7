"""The recycling scenario end to end, as documented in docs/scenarios/recycling.md.

Native item records from ``tests/fixtures/recycling`` go through the real
pipeline with the shipped ``config/hub.toml`` rules for the scenario. Expected
grams are worked out by hand from the published figures, per item kind:

- phones until 2023-09-30 (version 2022.1): 25 kg per phone (expert estimate);
- phones from 2023-10-01 (version 2023.1, CACE 2023): 57.67 kg production
  footprint × replacement rate 0.90 / 0.80 / 0.70 by grade (51.9 kg for a
  90%-new large phone);
- clothes: 3.6 kg per kg of reused textiles (BIR 2008);
- books: 1 kg per paperback (Berners-Lee) × the assumed replacement rate 0.5.

Points: shipped rule per_kg = 10, bonus = 5.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import auth, open_account, push
from conftest import shipped_config
from scenario_helpers import fixture_loader, json_blocks, with_account

from hub import db
from hub.ledger import user_carbon, user_points

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "recycling"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)

# The published figures (docs/scenarios/recycling.md), in grams.
PHONE_FLAT_2022 = Decimal(25000)
PHONE_PRODUCTION_2023 = Decimal("57670")
REPLACEMENT_BY_GRADE = {90: Decimal("0.90"), 80: Decimal("0.80"), 70: Decimal("0.70")}
CLOTHES_PER_KG = Decimal(3600)
BOOK = Decimal(1000) * Decimal("0.5")
CACE_FROM = datetime(2023, 10, 1, tzinfo=CST)  # local midnight: 2023.1 in force


load = fixture_loader(FIXTURES)


def verdict(outcome) -> tuple[str, str | None, str | None]:
    """(status, reason, field) of a record (its own problem, else the deciding behaviour's)."""
    return outcome.status, outcome.reason, outcome.field


def points(grams: int) -> int:
    return grams * 10 // 1000 + 5  # shipped rule: per_kg = 10, bonus = 5


def expected_grams(record: dict) -> int:
    """The reduction of a good record, from the published figures above."""
    kind = record["item_kind"].lower()
    at = datetime.fromisoformat(record["handed_over_at"].replace("Z", "+00:00"))
    if kind == "phone":
        if at < CACE_FROM:
            return int(PHONE_FLAT_2022)
        condition = int(record["condition_pct"])
        grade = max(g for g in REPLACEMENT_BY_GRADE if g <= condition)
        return math.floor(PHONE_PRODUCTION_2023 * REPLACEMENT_BY_GRADE[grade])
    if kind == "clothes":
        return math.floor(Decimal(str(record["weight_kg"])) * CLOTHES_PER_KG)
    return math.floor(int(record["copies"]) * BOOK)


@pytest.fixture
def approved():
    """Versions the bank approves for the scenario (None: as shipped, every loaded version)."""
    return None


@pytest.fixture
def config_data(config_data, approved):
    """The shipped recycling rules, plus a second platform (a second-hand marketplace)
    allowed to report the same items."""
    shipped = shipped_config()
    config_data["scenarios"]["recycling"] = dict(shipped["scenarios"]["recycling"])
    if approved is not None:
        config_data["scenarios"]["recycling"]["versions"] = approved
    config_data["partners"]["aihuishou"] = shipped["partners"]["aihuishou"]
    config_data["partners"]["xianyu"] = {"name": "Second-hand marketplace", "secret_env": "CARBONHUB_SECRET_XIANYU",
                                         "scenarios": ["recycling"]}
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-recycle-0001")
    hub.set_consent(acc.id, "recycling", True, at=CONSENT_AT)
    return acc


@pytest.fixture
def neighbour(hub):
    acc, _ = hub.open_account("cust-recycle-0002")
    hub.set_consent(acc.id, "recycling", True, at=CONSENT_AT)
    return acc


def item(account_id: str, index: int = 0, **changes) -> dict:
    """A good fixture record (0: the worked example's phone), with changes."""
    base = with_account(load("good.json")[index], account_id)
    if index == 0:
        assert base["item_id"] == "AHS-20261118-000731-01"  # the fixture's first record is the worked example
    return {**base, **changes}


def phone(account_id: str, item_id: str, at: str, **changes) -> dict:
    return item(account_id, 0, item_id=item_id, handed_over_at=at, **changes)


def ingest(hub, *records, partner: str = "aihuishou"):
    return hub.pipeline.ingest(partner, list(records)).records


def receipt_of(outcome):
    (b,) = outcome.behaviours
    return db.Receipt.get(db.Receipt.behaviour == b.id)


def grams(outcomes) -> list[int]:
    return [o.behaviours[0].grams for o in outcomes]


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("recycling")
    assert view["methodology"]["id"] == "recycling-reuse"
    assert view["methodology"]["version_in_force"] == "2023.1"
    assert view["methodology"]["approved_versions"] == ["2022.1", "2023.1"]
    # document: 10 a day, 30 a month, one credit per item a month; config: 5 a day, 60 kg a day, 150 kg a month
    assert view["caps"] == {"per_day_count": 5, "per_month_count": 30, "per_subject_month_count": 1,
                            "per_day_g": 60000, "per_month_g": 150000}
    assert view["cap_subject"] == "item_ref"
    assert view["points"] == {"per_kg": 10, "bonus": 5}
    assert hub.scenario_view("recycling", at=datetime(2022, 6, 15, tzinfo=CST))["methodology"][
        "version_in_force"] == "2022.1"


def test_worked_example_90_percent_new_phone(hub, account):
    (rec,) = ingest(hub, item(account.id))
    (b,) = rec.behaviours
    # 1 × 57 670 g × 0.90 = 51 903 g (the CACE example's 51.9 kg); 51903 × 10 // 1000 + 5 = 519 + 5
    assert (rec.status, b.grams, b.points) == ("accepted", 51903, 524)
    receipt = receipt_of(rec)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "recycling-reuse", "2023.1", "1", "item")
    assert Decimal(receipt.baseline_g) == Decimal("51903") and Decimal(receipt.project_g) == 0
    assert (receipt.computed_g, receipt.credited_g) == (51903, 51903)
    assert receipt.formula == "phone (90% new, grade 90): 1 item × 57670 gCO2e/item × 0.90 ratio − 0"
    assert [(f["name"], Decimal(str(f["value"]))) for f in receipt.factors] == [
        ("phone_production", PHONE_PRODUCTION_2023), ("phone_replacement_90", Decimal("0.90"))]
    assert all("CACE" in f["source"] for f in receipt.factors)
    assert receipt.points == [{"points": 524, "rule": "config:recycling", "detail": "51903 g × 10 pts/kg + 5"}]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 51903
    assert hub.ledger.balance(user_points(account.id), "pts") == 524
    tx = hub.ledger.get(b.tx_seq)
    assert sorted((p.account, p.unit, p.amount) for p in tx.postings) == sorted([
        ("@issuer:recycling", "g", -51903), (user_carbon(account.id), "g", 51903),
        ("@issuer:recycling", "pts", -524), (user_points(account.id), "pts", 524)])


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    result = ingest(hub, *records)
    expected = [expected_grams(r) for r in records]
    # the kinds and versions the fixture covers, worked out by hand
    assert expected == [51903, 8460, 1500, 500, 46136, 45000, 40369, 25000]
    assert [r.status for r in result] == ["accepted"] * len(records)
    assert grams(result) == expected
    assert [r.behaviours[0].points for r in result] == [points(g) for g in expected]
    assert not any(r.behaviours[0].capped for r in result)
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(expected)


@pytest.mark.parametrize("index, formula", [
    (1, "clothes: 2.35 kg × 3600 gCO2/kg − 0"),
    (2, "book: 3 item × 1000 gCO2e/book × 0.5 ratio − 0"),
    (4, "phone (85% new, grade 80): 1 item × 57670 gCO2e/item × 0.80 ratio − 0"),
    (6, "phone (73% new, grade 70): 1 item × 57670 gCO2e/item × 0.70 ratio − 0"),
    (7, "phone: 1 item × 25000 gCO2e/item − 0"),
], ids=["clothes-by-weight", "books-per-copy", "grade-80", "grade-70", "flat-2022"])
def test_each_kind_reads_its_own_measure(hub, account, index, formula):
    (rec,) = ingest(hub, item(account.id, index))
    receipt = receipt_of(rec)
    assert receipt.formula == formula
    assert rec.behaviours[0].grams == expected_grams(item(account.id, index))


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    stored = {row.id: row.reason for row in db.InboxRecord.select()}
    assert [stored[r.inbox_id] for r in result] == [c["reason"] for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


# --- two methodology versions ----------------------------------------------------------------------


def test_a_phone_is_credited_by_the_version_in_force_on_its_day(hub, account):
    """The same kind of phone, 90% new: 25 kg in 2022 (2022.1), 51.9 kg in 2026 (2023.1)."""
    sold_2022, sold_2026 = ingest(
        hub,
        phone(account.id, "AHS-20220315-000001-01", "2022-03-15T10:00:00+08:00", device_token="imei_1f00aa01"),
        phone(account.id, "AHS-20261102-000001-01", "2026-11-02T10:00:00+08:00", device_token="imei_1f00aa02"))
    assert grams([sold_2022, sold_2026]) == [25000, 51903]
    old, new = receipt_of(sold_2022), receipt_of(sold_2026)
    assert (old.version, new.version) == ("2022.1", "2023.1")
    assert [db.LedgerTransaction.get_by_id(r.behaviours[0].tx_seq).methodology for r in (sold_2022, sold_2026)] == [
        "recycling-reuse@2022.1", "recycling-reuse@2023.1"]


def test_both_receipts_stay_reproducible(hub, account, client):
    """A late 2022 report, credited after a 2026 one, keeps 2022.1 and its factor; each receipt
    recomputes from its own factors, and the API shows both versions and both receipts."""
    (new,) = ingest(hub, item(account.id))
    (late,) = ingest(hub, phone(account.id, "AHS-20220615-009999-01", "2022-06-15T11:00:00+08:00",
                                device_token="imei_a41f6c02"))
    for outcome, version, recompute in [
        (new, "2023.1", lambda f: f["phone_production"] * f["phone_replacement_90"]),
        (late, "2022.1", lambda f: f["phone_reuse"]),
    ]:
        receipt = receipt_of(outcome)
        factors = {f["name"]: Decimal(str(f["value"])) for f in receipt.factors}
        assert receipt.version == version
        assert math.floor(Decimal(receipt.quantity) * recompute(factors)) == receipt.computed_g == \
            outcome.behaviours[0].grams
        body = client.get(f"/v1/accounts/{account.id}/behaviours/{outcome.behaviours[0].id}",
                          headers=auth("reader")).get_json()
        assert (body["receipt"]["methodology"], body["receipt"]["version"]) == ("recycling-reuse", version)
        assert body["receipt"]["formula"] == receipt.formula
    (late_factor,) = receipt_of(late).factors
    assert (late_factor["name"], Decimal(str(late_factor["value"]))) == ("phone_reuse", PHONE_FLAT_2022)
    assert "expert estimate" in late_factor["source"].lower()
    # Both versions stay published; the old one ends where the new one starts.
    published = client.get("/v1/methodologies/recycling-reuse").get_json()["versions"]
    assert [(v["version"], v["effective_from"], v["in_force_today"]) for v in published] == [
        ("2022.1", "2022-01-01", False), ("2023.1", "2023-10-01", True)]
    assert published[0]["factors"]["phone_reuse"]["value"] == "25000"
    assert hub.methodologies.get("recycling-reuse", "2022.1").ends_on.isoformat() == "2023-10-01"


@pytest.mark.parametrize("at, version, expected", [
    ("2023-09-30T23:59:00+08:00", "2022.1", 25000),  # last minute of 2022.1, local time
    ("2023-09-30T15:59:00Z", "2022.1", 25000),  # the same minute reported in UTC
    ("2023-10-01T00:00:00+08:00", "2023.1", 51903),  # first minute of 2023.1
    ("2023-09-30T16:00:00Z", "2023.1", 51903),  # still 30 September in UTC, 1 October in Shanghai
], ids=["last-minute-local", "last-minute-utc", "first-minute-local", "first-minute-utc"])
def test_boundary_day_is_the_local_date(hub, account, at, version, expected):
    (rec,) = ingest(hub, phone(account.id, "AHS-BOUNDARY-01", at, device_token="imei_b0a7d001"))
    assert (rec.status, rec.behaviours[0].grams) == ("accepted", expected)
    assert receipt_of(rec).version == version


def test_both_sides_of_the_boundary_in_one_batch(hub, account):
    """Two phones handed over one minute apart around local midnight: each gets its own version."""
    before, after = ingest(hub,
                           phone(account.id, "AHS-20230930-000777-01", "2023-09-30T23:59:00+08:00",
                                 device_token="imei_b0a7d002"),
                           phone(account.id, "AHS-20231001-000001-01", "2023-10-01T00:00:00+08:00",
                                 device_token="imei_b0a7d003"))
    assert grams([before, after]) == [25000, 51903]
    assert [receipt_of(r).version for r in (before, after)] == ["2022.1", "2023.1"]


@pytest.mark.parametrize("approved", [["2023.1"]])
def test_versions_the_bank_has_not_approved_hold_records_for_replay(hub, account):
    old = item(account.id, 7)
    new = item(account.id, 0)
    rejected, accepted = ingest(hub, old, new)
    assert verdict(rejected) == ("rejected", "no_methodology_in_force", "occurred_at")
    assert verdict(accepted) == ("accepted", None, None)


# --- double counting ---------------------------------------------------------------------------------


def test_same_item_resent_is_duplicate_event(hub, account):
    (first,) = ingest(hub, item(account.id))
    (again,) = ingest(hub, item(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert again.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 51903


@pytest.mark.parametrize("changes", [
    {"item_id": "AHS-20261118-000731-09"},  # the platform re-issued the item line
    {"item_id": "AHS-20261118-000990-01", "handed_over_at": "2026-11-18T01:00:00Z"},  # 09:00 the same local day
    {"item_id": "AHS-20261118-000995-01", "handed_over_at": "2026-11-18T23:58:00+08:00",
     "condition_pct": 80, "model": "iPhone 14 Pro Max (refurbished)"},  # resold again that evening
], ids=["new-item-id", "utc-same-local-day", "same-day-other-grade"])
def test_same_device_the_same_local_day_is_a_double_claim(hub, account, changes):
    (first,) = ingest(hub, item(account.id))
    (second,) = ingest(hub, item(account.id, **changes))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert second.behaviours[0].duplicate_of == first.behaviours[0].id
    assert hub.ledger.balance(user_carbon(account.id), "g") == 51903


def test_same_device_resold_by_another_user_the_same_day(hub, account, neighbour):
    """The device's fingerprint does not name the seller: a second sale that day is implausible."""
    ingest(hub, item(account.id))
    (second,) = ingest(hub, item(neighbour.id, item_id="AHS-20261118-001500-01",
                                 handed_over_at="2026-11-18T20:00:00+08:00"))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(neighbour.id), "g") == 0


def test_same_device_reported_by_another_platform(hub, account):
    ingest(hub, item(account.id))
    (other,) = ingest(hub, item(account.id, item_id="XY-88120931", handed_over_at="2026-11-18T07:20:40Z"),
                      partner="xianyu")
    assert verdict(other) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 51903


def test_same_device_later_in_the_month_is_over_its_monthly_cap(hub, account, neighbour):
    """Another local day is another act, but an item is credited once a calendar month, across users."""
    ingest(hub, item(account.id))
    (next_day,) = ingest(hub, item(neighbour.id, item_id="AHS-20261119-000004-01",
                                   handed_over_at="2026-11-18T16:30:00Z"))  # 00:30 on 19 November
    assert verdict(next_day) == ("rejected", "cap_reached", "attributes.item_ref")
    # The month before is another month: credited.
    (october,) = ingest(hub, item(neighbour.id, item_id="AHS-20261025-000321-01",
                                  handed_over_at="2026-10-25T10:00:00+08:00"))
    assert verdict(october) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(neighbour.id), "g") == 51903


def test_a_different_device_the_same_day_is_credited(hub, account):
    ingest(hub, item(account.id))
    (other,) = ingest(hub, item(account.id, item_id="AHS-20261118-000731-02", device_token="imei_2d7740c9",
                                condition_pct=80))
    assert (other.status, other.behaviours[0].grams) == ("accepted", 60000 - 51903)  # trimmed: 60 kg a day


def test_clothes_handover_reported_twice(hub, account):
    bag = item(account.id, 1)
    (first,) = ingest(hub, bag)
    (second,) = ingest(hub, {**bag, "item_id": "AHS-20261117-000288-77", "weight_kg": "2.4",  # reweighed
                             "handed_over_at": "2026-11-17T02:05:30Z"})  # same minute, in UTC
    assert verdict(second) == ("duplicate", "double_claim", None)
    (later,) = ingest(hub, {**bag, "item_id": "AHS-20261117-000301-01", "handed_over_at": "2026-11-17T16:40:00+08:00"})
    assert verdict(later) == ("accepted", None, None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 2 * 8460


# --- caps ----------------------------------------------------------------------------------------------


def test_daily_gram_cap_trims_then_rejects(hub, account):
    """A phone (51 903 g) and a bag of clothes (8 460 g) on one day: 60 kg a day trims the bag to
    8 097 g; a book that day is over the cap."""
    day = "2026-11-18T{}:00+08:00"
    result = ingest(hub, item(account.id),
                    item(account.id, 1, item_id="AHS-20261118-000731-02", handed_over_at=day.format("15:21")),
                    item(account.id, 2, item_id="AHS-20261118-000731-03", handed_over_at=day.format("15:22")))
    got = [(r.status, r.behaviours[0].grams, r.behaviours[0].points, r.behaviours[0].reason) for r in result]
    assert got == [("accepted", 51903, 524, None), ("accepted", 8097, points(8097), None),
                   ("rejected", 0, 0, "cap_reached")]
    capped = receipt_of(result[1])
    assert (capped.computed_g, capped.credited_g) == (8460, 8097)
    assert capped.caps == [{"cap": "per_day_g", "limit": 60000, "used_before": 51903, "computed_g": 8460,
                            "credited_g": 8097}]
    # The next local day starts afresh.
    (next_day,) = ingest(hub, item(account.id, 2, item_id="AHS-20261119-000001-01",
                                   handed_over_at="2026-11-19T09:00:00+08:00"))
    assert next_day.behaviours[0].grams == 1500


def test_daily_item_count_cap(hub, account):
    """Six single books handed over on one day: the shipped config credits five."""
    books = [item(account.id, 3, item_id=f"AHS-20261114-00010{i}-01",
                  handed_over_at=f"2026-11-14T{9 + i:02d}:00:00+08:00") for i in range(6)]
    result = ingest(hub, *books)
    assert [verdict(r)[1] for r in result] == [None] * 5 + ["cap_reached"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 5 * 500
    assert hub.ledger.balance(user_points(account.id), "pts") == 5 * points(500)


def test_monthly_gram_cap(hub, account):
    """Three 90%-new phones in three days of one month: 150 kg a month trims the third."""
    phones = [phone(account.id, f"AHS-2026110{d}-000001-01", f"2026-11-0{d}T10:00:00+08:00",
                    device_token=f"imei_3c00ff0{d}") for d in (2, 3, 4)]
    result = ingest(hub, *phones)
    assert grams(result) == [51903, 51903, 150000 - 2 * 51903]
    assert receipt_of(result[2]).caps[0]["cap"] == "per_month_g"


# --- the HTTP API ----------------------------------------------------------------------------------------


def test_worked_example_through_a_signed_push(client, hub, clock):
    account_id = open_account(client, "cust-recycle-push")
    hub.set_consent(account_id, "recycling", True, at=CONSENT_AT)
    response = push(client, "aihuishou", [item(account_id)], clock, secret="aihuishou-secret-0123456789")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("records", "accepted", "grams", "points")} == {
        "records": 1, "accepted": 1, "grams": 51903, "points": 524}
    (behaviour,) = body["results"][0]["behaviours"]
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{behaviour['id']}", headers=auth("reader")).get_json()
    assert detail["receipt"]["version"] == "2023.1"
    assert detail["receipt"]["formula"] == "phone (90% new, grade 90): 1 item × 57670 gCO2e/item × 0.90 ratio − 0"
    again = push(client, "aihuishou", [item(account_id)], clock, secret="aihuishou-secret-0123456789").get_json()
    assert again["results"][0]["behaviours"][0]["reason"] == "duplicate_event"


# --- the numbers printed in docs/scenarios/recycling.md ------------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "recycling.md")


def test_docs_worked_example_is_the_tested_item(account):
    example = doc_json_blocks()[0]
    assert dict(example, account_id=account.id) == item(account.id)


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]))
    got = [(r.status, r.behaviours[0].grams if r.behaviours else 0, r.behaviours[0].points if r.behaviours else 0,
            r.reason) for r in result]
    assert got == [("accepted", 51903, 524, None), ("accepted", 8460, 89, None), ("accepted", 1500, 20, None),
                   ("accepted", 25000, 255, None), ("rejected", 0, 0, "implausible_weight")]
