"""The reading scenario end to end, as documented in docs/scenarios/reading.md.

Native progress reports from ``tests/fixtures/reading`` go through the real
pipeline with the shipped ``config/hub.toml`` rules for the scenario. Expected
grams are worked out by hand from the published figures (Berners-Lee: about
1 kg per paperback; reading on a phone about 1 g, a tablet 6 g, an e-reader
500 g per book), a quarter of a book per milestone (25/50/75/100 %), rounded
down per milestone; points by the shipped rule per_kg = 20, bonus = 1.
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
FIXTURES = ROOT / "tests" / "fixtures" / "reading"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)

PRINTED_BOOK_G = Decimal(1000)
SCREEN_G = {"phone": Decimal(1), "tablet": Decimal(6), "e_reader": Decimal(500)}
QUARTER = Decimal("0.25")


def quarter_grams(device: str) -> int:
    """One milestone: a quarter of the printed book minus a quarter of the screen reading."""
    return math.floor(QUARTER * PRINTED_BOOK_G - QUARTER * SCREEN_G[device])


PHONE_QUARTER = quarter_grams("phone")  # 0.25 × 1000 − 0.25 × 1 = 249.75 → 249


def points(grams: int) -> int:
    return grams * 20 // 1000 + 1  # shipped rule: per_kg = 20, bonus = 1


load = fixture_loader(FIXTURES)


def verdict(outcome) -> tuple[str, str | None, str | None]:
    return outcome.status, outcome.reason, outcome.field


def milestones(outcome) -> list[tuple[str, str | None, int]]:
    """(status, reason, grams) of each milestone behaviour of a report."""
    return [(b.status, b.reason, b.grams) for b in outcome.behaviours]


@pytest.fixture
def config_data(config_data):
    """The shipped reading rules, plus the bank app's own e-book shelf, which may report the same reading."""
    shipped = shipped_config()
    config_data["scenarios"]["reading"] = shipped["scenarios"]["reading"]
    config_data["partners"]["citicpress"] = shipped["partners"]["citicpress"]
    config_data["partners"]["ebookshelf"] = {"name": "Bank app e-book shelf",
                                             "secret_env": "CARBONHUB_SECRET_EBOOKSHELF", "scenarios": ["reading"]}
    return config_data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-reader-0001")
    hub.set_consent(acc.id, "reading", True, at=CONSENT_AT)
    return acc


def report(account_id: str, index: int = 0, **changes) -> dict:
    """A good fixture report (0: the worked example's), with changes."""
    base = with_account(load("good.json")[index], account_id)
    if index == 0:
        assert base["report_id"] == "CPR-20261118-000042"  # the fixture's first record is the worked example
    return {**base, **changes}


def finished(account_id: str, report_id: str, at: str, **changes) -> dict:
    """The worked example's book read to the end (24 of 24 chapters, 8 hours of reading in all)."""
    return report(account_id, **{"report_id": report_id, "chapters_read": 24, "reading_seconds": 28800,
                                 "reported_at": at, **changes})


def ingest(hub, *records, partner: str = "citicpress"):
    return hub.pipeline.ingest(partner, list(records)).records


def test_shipped_config_is_what_the_docs_describe(hub):
    view = hub.scenario_view("reading")
    assert view["methodology"]["id"] == "reading-digital"
    assert view["methodology"]["version_in_force"] == "2022.1"
    assert view["caps"] == {"per_day_count": 8, "per_month_g": 10000}  # document 12 a day, config 8: lower wins
    assert view["points"] == {"per_kg": 20, "bonus": 1}


def test_worked_example_half_a_book_on_a_phone(hub, account):
    (rec,) = ingest(hub, report(account.id))
    assert rec.status == "accepted"
    # 12 of 24 chapters = 50 %: milestones 25 and 50, a quarter of a book each
    assert [(b.event_id, b.status, b.grams, b.points) for b in rec.behaviours] == [
        ("CPR-20261118-000042#25", "accepted", 249, 5), ("CPR-20261118-000042#50", "accepted", 249, 5)]
    assert PHONE_QUARTER == 249  # 249 × 20 // 1000 + 1 = 4 + 1 = 5 points
    receipt = db.Receipt.get(db.Receipt.behaviour == rec.behaviours[0].id)
    assert (receipt.methodology, receipt.version, receipt.quantity, receipt.unit) == (
        "reading-digital", "2022.1", "0.25", "book")
    assert Decimal(receipt.baseline_g) == Decimal("250") and Decimal(receipt.project_g) == Decimal("0.25")
    assert (receipt.computed_g, receipt.credited_g) == (249, 249)
    assert receipt.formula == "0.25 book × 1000 gCO2e/book − 0.25 book × 1 gCO2e/book (phone)"
    assert [(f["name"], Decimal(str(f["value"]))) for f in receipt.factors] == [
        ("book_print", PRINTED_BOOK_G), ("device_phone", SCREEN_G["phone"])]
    assert all("Berners-Lee" in f["source"] for f in receipt.factors)
    assert receipt.points == [{"points": 5, "rule": "config:reading", "detail": "249 g × 20 pts/kg + 1"}]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 498
    assert hub.ledger.balance(user_points(account.id), "pts") == 10


def test_good_fixture_is_credited_in_full(hub, account):
    records = [with_account(r, account.id) for r in load("good.json")]
    result = ingest(hub, *records)
    # half a book on a phone, a whole one on a tablet, three quarters on an e-reader, a quarter on a phone
    expected = [[249, 249], [248] * 4, [125] * 3, [249]]
    assert [[quarter_grams("phone")] * 2, [quarter_grams("tablet")] * 4, [quarter_grams("e_reader")] * 3,
            [quarter_grams("phone")]] == expected
    assert [r.status for r in result] == ["accepted"] * len(records)
    assert [[b.grams for b in r.behaviours] for r in result] == expected
    assert [[b.points for b in r.behaviours] for r in result] == [[points(g) for g in gs] for gs in expected]
    assert hub.ledger.balance(user_carbon(account.id), "g") == sum(map(sum, expected))


def test_bad_fixture_reasons_and_fields(hub, account):
    cases = load("bad.json")
    result = ingest(hub, *(with_account(c["record"], account.id) for c in cases))
    assert [verdict(r) for r in result] == [("rejected", c["reason"], c["field"]) for c in cases]
    stored = {row.id: row.reason for row in db.InboxRecord.select()}
    assert [stored[r.inbox_id] for r in result] == [c["reason"] for c in cases]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 0


# --- progress over several days: only the new share -----------------------------------------------------


def test_progress_reports_credit_only_the_new_share(hub, account):
    """Half the book on Wednesday, the whole book on Friday: Friday credits the last two quarters."""
    (wednesday,) = ingest(hub, report(account.id))
    (friday,) = ingest(hub, finished(account.id, "CPR-20261120-000310", "2026-11-20T21:40:00+08:00"))
    assert verdict(friday) == ("accepted", None, None)
    assert milestones(friday) == [("duplicate", "double_claim", 0), ("duplicate", "double_claim", 0),
                                  ("accepted", None, 249), ("accepted", None, 249)]
    assert [b.duplicate_of for b in friday.behaviours[:2]] == [b.id for b in wednesday.behaviours]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 4 * 249 == 996
    # Reading it again, or reporting the end again, earns nothing more: one book's worth per book.
    (again,) = ingest(hub, finished(account.id, "CPR-20261121-000007", "2026-11-21T09:00:00+08:00",
                                    reading_seconds=40000))
    assert verdict(again) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 996


def test_a_whole_book_in_one_report(hub, account):
    (rec,) = ingest(hub, finished(account.id, "CPR-20261119-000500", "2026-11-19T23:00:00+08:00"))
    assert milestones(rec) == [("accepted", None, 249)] * 4
    assert hub.ledger.balance(user_carbon(account.id), "g") == 996
    assert hub.ledger.balance(user_points(account.id), "pts") == 4 * 5


def test_progress_going_back_earns_nothing(hub, account):
    ingest(hub, report(account.id))
    (back,) = ingest(hub, report(account.id, report_id="CPR-20261119-000011", chapters_read=8,
                                 reported_at="2026-11-19T07:30:00+08:00"))  # 33 %: milestone 25 again
    assert verdict(back) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 498


def test_between_milestones_nothing_new(hub, account):
    ingest(hub, report(account.id))
    (rec,) = ingest(hub, report(account.id, report_id="CPR-20261119-000012", chapters_read=17,
                                reading_seconds=20000, reported_at="2026-11-19T21:00:00+08:00"))  # 70.8 %
    assert verdict(rec) == ("duplicate", "double_claim", None)
    assert [b.reason for b in rec.behaviours] == ["double_claim", "double_claim"]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 498


def test_same_report_resent_is_duplicate_event(hub, account):
    (first,) = ingest(hub, report(account.id))
    (again,) = ingest(hub, report(account.id))
    assert verdict(again) == ("duplicate", "duplicate_event", None)
    assert [b.duplicate_of for b in again.behaviours] == [b.id for b in first.behaviours]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 498


@pytest.mark.parametrize("changes", [
    {"isbn": "9787508684918"},  # without hyphens
    {"isbn": "978 7 5086 8491 8", "progress_pct": "50"},  # spaces; percent instead of chapters
    {"device": "tablet", "reported_at": "2026-11-19T02:00:00Z"},  # another device, another day
], ids=["isbn-digits", "isbn-spaces-and-percent", "other-device"])
def test_same_reader_same_book_is_one_book(hub, account, changes):
    ingest(hub, report(account.id))
    (second,) = ingest(hub, report(account.id, report_id="CPR-20261119-000999", **changes))
    assert verdict(second) == ("duplicate", "double_claim", None)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 498


def test_isbn_10_and_13_of_one_book_agree(hub, account):
    ingest(hub, report(account.id, 3))  # reported as ISBN-10 7-5086-3954-5
    (second,) = ingest(hub, report(account.id, 3, report_id="CPR-20261116-000021", isbn="978-7-5086-3954-3"))
    assert verdict(second) == ("duplicate", "double_claim", None)


def test_the_same_reading_reported_by_another_partner(hub, account):
    ingest(hub, report(account.id))
    shelf = report(account.id, report_id="SHELF-77120931", progress_pct=75, chapters_read=None,
                   reading_seconds=20000, reported_at="2026-11-19T12:00:00Z")
    (other,) = ingest(hub, shelf, partner="ebookshelf")
    # 25 and 50 were credited through the library; only 75 is new
    assert milestones(other) == [("duplicate", "double_claim", 0), ("duplicate", "double_claim", 0),
                                 ("accepted", None, 249)]
    assert hub.ledger.balance(user_carbon(account.id), "g") == 3 * 249


def test_another_reader_of_the_same_book_earns(hub, account):
    other, _ = hub.open_account("cust-reader-0002")
    hub.set_consent(other.id, "reading", True, at=CONSENT_AT)
    ingest(hub, report(account.id))
    (rec,) = ingest(hub, report(other.id, report_id="CPR-20261118-000043"))
    assert milestones(rec) == [("accepted", None, 249)] * 2


# --- plausibility ----------------------------------------------------------------------------------------


def test_too_fast_then_plausible(hub, account):
    """320 pages in one hour is rejected; the next report, after enough reading, credits everything."""
    (fast,) = ingest(hub, finished(account.id, "CPR-20261119-000101", "2026-11-19T21:00:00+08:00",
                                   reading_seconds=3600))
    assert verdict(fast) == ("rejected", "implausible_reading_speed", "reading_seconds")
    assert {b.reason for b in fast.behaviours} == {"implausible_reading_speed"}
    # 160 pages at 120 pages an hour is 4800 s: exactly the limit is plausible, a second less is not.
    (limit,) = ingest(hub, report(account.id, report_id="CPR-20261119-000102", reading_seconds=4800))
    (under,) = ingest(hub, report(account.id, 1, report_id="CPR-20261117-000919", reading_seconds=7679))
    assert verdict(limit)[0] == "accepted"
    assert verdict(under) == ("rejected", "implausible_reading_speed", "reading_seconds")  # 256 p in 7679 s
    (later,) = ingest(hub, finished(account.id, "CPR-20261120-000103", "2026-11-20T21:00:00+08:00"))
    assert [b.reason for b in later.behaviours] == ["double_claim", "double_claim", None, None]


def test_e_reader_is_credited_less(hub, account):
    (rec,) = ingest(hub, report(account.id, device="e-reader"))
    # 0.25 × 1000 − 0.25 × 500 = 125 g a quarter: the e-reader's manufacture over 100 books
    assert [b.grams for b in rec.behaviours] == [125, 125]
    receipt = db.Receipt.get(db.Receipt.behaviour == rec.behaviours[0].id)
    assert receipt.formula == "0.25 book × 1000 gCO2e/book − 0.25 book × 500 gCO2e/book (e_reader)"


# --- caps ----------------------------------------------------------------------------------------------


def isbn13(twelve: str) -> str:
    return twelve + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(twelve)) % 10)


def a_book(account_id: str, n: int, at: str) -> dict:
    """Book n of a reading spree, read to the end on a phone."""
    return {"report_id": f"CPR-SPREE-{n:03d}", "account_id": account_id, "isbn": isbn13(f"978721710{n:03d}"),
            "device": "phone", "progress_pct": 100, "pages": 200, "reading_seconds": 18000, "reported_at": at}


def test_daily_count_cap_two_books_a_day(hub, account):
    """Three books finished on one day: 8 quarters a day are credited, the third book's are not."""
    day = "2026-11-14T{}:00:00+08:00"
    result = ingest(hub, *(a_book(account.id, n, day.format(h)) for n, h in enumerate(("09", "14", "20"))))
    assert [r.status for r in result] == ["accepted", "accepted", "rejected"]
    assert [b.reason for b in result[2].behaviours] == ["cap_reached"] * 4
    assert hub.ledger.balance(user_carbon(account.id), "g") == 8 * 249
    # The third book reported again the next morning is credited in full: rejected quarters never counted.
    (next_day,) = ingest(hub, {**a_book(account.id, 2, "2026-11-15T08:00:00+08:00"), "report_id": "CPR-SPREE-R02"})
    assert milestones(next_day) == [("accepted", None, 249)] * 4


def test_monthly_gram_cap_about_ten_books(hub, account):
    """Ten whole books (9 960 g) in October, then an eleventh: its first quarter is trimmed to 40 g."""
    books = [a_book(account.id, n, f"2026-10-{1 + n // 2:02d}T{10 + n % 2 * 8}:00:00+08:00") for n in range(10)]
    result = ingest(hub, *books)
    assert all(r.status == "accepted" for r in result)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 10 * 996
    (eleventh,) = ingest(hub, a_book(account.id, 10, "2026-10-20T10:00:00+08:00"))
    assert [(b.status, b.grams, b.reason) for b in eleventh.behaviours] == [
        ("accepted", 40, None), ("rejected", 0, "cap_reached"), ("rejected", 0, "cap_reached"),
        ("rejected", 0, "cap_reached")]
    capped = db.Receipt.get(db.Receipt.behaviour == eleventh.behaviours[0].id)
    assert capped.caps == [{"cap": "per_month_g", "limit": 10000, "used_before": 9960, "computed_g": 249,
                            "credited_g": 40}]
    # November is a new month.
    (november,) = ingest(hub, a_book(account.id, 11, "2026-11-01T10:00:00+08:00"))
    assert [b.grams for b in november.behaviours] == [249] * 4


# --- the HTTP API ----------------------------------------------------------------------------------------


def test_worked_example_through_a_signed_push(client, hub, clock):
    account_id = open_account(client, "cust-reader-push")
    hub.set_consent(account_id, "reading", True, at=CONSENT_AT)
    response = push(client, "citicpress", [report(account_id)], clock, secret="citicpress-secret-0123456789")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {k: body["batch"][k] for k in ("records", "accepted", "grams", "points")} == {
        "records": 1, "accepted": 1, "grams": 498, "points": 10}
    behaviours = body["results"][0]["behaviours"]
    assert [(b["event_id"], b["grams"]) for b in behaviours] == [("CPR-20261118-000042#25", 249),
                                                                 ("CPR-20261118-000042#50", 249)]
    detail = client.get(f"/v1/accounts/{account_id}/behaviours/{behaviours[1]['id']}",
                        headers=auth("reader")).get_json()
    assert detail["receipt"]["formula"] == "0.25 book × 1000 gCO2e/book − 0.25 book × 1 gCO2e/book (phone)"
    later = push(client, "citicpress", [finished(account_id, "CPR-20261120-000310", "2026-11-20T21:40:00+08:00")],
                 clock, secret="citicpress-secret-0123456789").get_json()
    assert [b["status"] for b in later["results"][0]["behaviours"]] == ["duplicate", "duplicate", "accepted",
                                                                        "accepted"]
    assert later["batch"]["grams"] == 498


# --- the numbers printed in docs/scenarios/reading.md ---------------------------------------------------


def doc_json_blocks() -> list:
    return json_blocks(ROOT / "docs" / "scenarios" / "reading.md")


def test_docs_worked_example_is_the_tested_report(account):
    first, second = doc_json_blocks()[:2]
    assert dict(first, account_id=account.id) == report(account.id)
    assert dict(second, account_id=account.id) == finished(account.id, "CPR-20261120-000310",
                                                           "2026-11-20T21:40:00+08:00")


def test_docs_sample_batch(hub, account):
    (sample,) = [b for b in doc_json_blocks() if isinstance(b, dict) and "records" in b]
    result = ingest(hub, *(dict(r, account_id=account.id) for r in sample["records"]))
    got = [(r.status, r.reason, [b.grams for b in r.behaviours]) for r in result]
    assert got == [("accepted", None, [249, 249]), ("accepted", None, [248] * 4), ("accepted", None, [125] * 3),
                   ("rejected", "implausible_reading_speed", [0] * 4), ("rejected", "no_behaviour", [])]
