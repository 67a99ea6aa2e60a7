"""A user's ledger and behaviours over HTTP: keyset pagination, filters, receipts, query counts."""
from __future__ import annotations

from datetime import datetime

import pytest
from api_helpers import SHANGHAI, auth, error_of, metro_grams, open_account, push, ride, statement

from conftest import NOW
from hub import db


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def history(client, hub, clock):
    """Fourteen credits pushed at different times (one transaction each):

    - 16-19 Nov, pushed 14:00 local each day: three 10 km rides that morning;
    - 20 Nov 00:30 local (19 Nov in UTC): a late ride of the 19th;
    - 20 Nov 12:00 local: one e-statement.
    """
    account = open_account(client, "cust-history")
    for scenario in ("metro", "estatement"):
        hub.set_consent(account, scenario, True, at=local(1, 0))
    for day in (16, 17, 18, 19):
        clock.current = local(day, 14)
        rides = [ride(account, f"R-{day}-{h}", local(day, h), km="10", minutes=20, entry_station=f"S{h}")
                 for h in (8, 9, 10)]
        assert push(client, "szmetro", rides, clock).get_json()["batch"]["accepted"] == 3
    clock.current = local(20, 0, 30)
    late = push(client, "szmetro", [ride(account, "R-19-22", local(19, 22), km="10", minutes=20)], clock)
    assert late.get_json()["batch"]["accepted"] == 1
    clock.current = local(20, 12)
    estatement = push(client, "cardcentre", [statement(account, "ST-2026-10", local(3, 9))], clock)
    assert estatement.get_json()["batch"]["accepted"] == 1
    clock.current = NOW
    return account


def entries(client, account, query=""):
    response = client.get(f"/v1/accounts/{account}/ledger?{query}", headers=auth("reader"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def walk(client, account, query):
    pages, before = [], None
    while True:
        page = entries(client, account, query + (f"&before={before}" if before else ""))
        pages.append(page["entries"])
        before = page["next"]
        if before is None:
            return pages
        assert len(pages) < 100


def test_all_entries_newest_first(client, history):
    page = entries(client, history)
    assert page["next"] is None and page["account"] == history
    got = page["entries"]
    assert len(got) == 28  # 14 transactions × (carbon, points)
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs, reverse=True)
    assert [e["unit"] for e in got[:2]] == ["g", "pts"] and [e["account"] for e in got[:2]] == ["carbon", "points"]
    newest = got[0]
    assert newest["scenario"] == "estatement" and newest["event_id"] == "ST-2026-10"
    assert newest["created_at"] == "2026-11-20T04:00:00+00:00" and newest["kind"] == "credit"
    metro = [e for e in got if e["scenario"] == "metro" and e["unit"] == "g"]
    assert {e["amount"] for e in metro} == {metro_grams("10")} and len(metro) == 13
    assert all(e["behaviour"].startswith("bhv_") and e["partner"] == "szmetro" for e in metro)


@pytest.mark.parametrize("limit, per_page", [(4, 4), (5, 4), (3, 2), (2, 2), (1, 2), (200, 28)])
def test_keyset_pages_never_split_a_transaction(client, history, limit, per_page):
    pages = walk(client, history, f"limit={limit}")
    assert all(len(p) == per_page for p in pages[:-1]) and 0 < len(pages[-1]) <= per_page
    flat = [e for p in pages for e in p]
    assert len(flat) == 28 and len({(e["seq"], e["unit"]) for e in flat}) == 28
    assert [e["seq"] for e in flat] == sorted((e["seq"] for e in flat), reverse=True)
    seqs_per_page = [{e["seq"] for e in p} for p in pages]
    for a, b in zip(seqs_per_page, seqs_per_page[1:]):
        assert min(a) > max(b)  # a transaction's entries are all on one page
    assert flat == entries(client, history, "limit=200")["entries"]


def test_next_is_the_seq_to_continue_before(client, history):
    first = entries(client, history, "limit=4")
    assert first["next"] == first["entries"][-1]["seq"]
    second = entries(client, history, f"limit=4&before={first['next']}")
    assert second["entries"][0]["seq"] < first["next"]


def test_scenario_filter(client, history):
    estatement = entries(client, history, "scenario=estatement")["entries"]
    assert [(e["unit"], e["amount"]) for e in estatement] == [("g", 24), ("pts", 5)]
    metro_pages = walk(client, history, "scenario=metro&limit=6")
    metro = [e for p in metro_pages for e in p]
    assert len(metro) == 26 and {e["scenario"] for e in metro} == {"metro"}
    assert entries(client, history, "scenario=bus")["entries"] == []


@pytest.mark.parametrize("query, events", [
    # 00:30 on the 20th in Shenzhen is still the 19th in UTC: days are the bank's.
    ("from=2026-11-20&to=2026-11-20", {"R-19-22", "ST-2026-10"}),
    ("from=2026-11-19&to=2026-11-19", {"R-19-8", "R-19-9", "R-19-10"}),
    ("from=2026-11-17&to=2026-11-18", {f"R-{d}-{h}" for d in (17, 18) for h in (8, 9, 10)}),
    ("to=2026-11-16", {"R-16-8", "R-16-9", "R-16-10"}),
    ("from=2026-11-20", {"R-19-22", "ST-2026-10"}),
    ("from=2026-11-21", set()),
    ("from=2026-11-20&scenario=metro", {"R-19-22"}),
])
def test_date_filters_in_the_bank_time_zone(client, history, query, events):
    got = entries(client, history, query)["entries"]
    assert {e["event_id"] for e in got} == events
    assert len(got) == 2 * len(events)


def test_date_filter_with_pagination(client, history):
    pages = walk(client, history, "from=2026-11-17&to=2026-11-19&limit=4")
    assert sum(len(p) for p in pages) == 2 * 9 and all(len(p) == 4 for p in pages[:-1])


def test_unknown_account_ledger_is_404(client):
    response = client.get("/v1/accounts/acc_nobody/ledger", headers=auth())
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def count_queries(monkeypatch, fn):
    """Run ``fn`` and count the SQL statements it sends (the statements still run)."""
    real = db.database.obj.execute_sql
    sent = []

    def counting(sql, params=None):
        sent.append(sql)
        return real(sql, params)

    monkeypatch.setattr(db.database.obj, "execute_sql", counting)
    try:
        fn()
    finally:
        monkeypatch.undo()
    return len(sent)


@pytest.mark.parametrize("path", ["ledger?limit={n}", "behaviours?limit={n}", "ledger?limit={n}&scenario=metro"])
def test_queries_per_page_do_not_grow_with_the_page(client, history, monkeypatch, path):
    url = f"/v1/accounts/{history}/" + path

    def fetch(n):
        return lambda: client.get(url.format(n=n), headers=auth())

    small, large = count_queries(monkeypatch, fetch(2)), count_queries(monkeypatch, fetch(100))
    assert small == large <= 4


# --- behaviours -----------------------------------------------------------------------------------


def behaviours(client, account, query=""):
    response = client.get(f"/v1/accounts/{account}/behaviours?{query}", headers=auth("reader"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_behaviours_keyset_pages(client, history):
    everything = behaviours(client, history, "limit=200")
    assert everything["next"] is None and len(everything["behaviours"]) == 14
    created = [b["created_at"] for b in everything["behaviours"]]
    assert created == sorted(created, reverse=True)

    seen, cursor, pages = [], None, 0
    while True:
        page = behaviours(client, history, "limit=5" + (f"&before={cursor}" if cursor else ""))
        assert len(page["behaviours"]) <= 5
        seen += [b["id"] for b in page["behaviours"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == [b["id"] for b in everything["behaviours"]]


def test_behaviour_filters(client, history, clock):
    push(client, "szmetro", [ride(history, "R-16-8", local(16, 8), km="10", minutes=20, entry_station="S8")], clock)
    assert [b["reason"] for b in behaviours(client, history, "status=duplicate")["behaviours"]] == \
        ["duplicate_event"]
    accepted = behaviours(client, history, "status=accepted")["behaviours"]
    assert len(accepted) == 14 and all(b["transaction"] for b in accepted)
    (st,) = behaviours(client, history, "scenario=estatement")["behaviours"]
    assert st["event_id"] == "ST-2026-10" and st["grams"] == 24 and st["points"] == 5
    assert behaviours(client, history, "scenario=estatement&status=rejected")["behaviours"] == []


def test_behaviour_detail_and_receipt(client, history):
    (st,) = behaviours(client, history, "scenario=estatement")["behaviours"]
    detail = client.get(f"/v1/accounts/{history}/behaviours/{st['id']}", headers=auth()).get_json()
    assert detail["attributes"] == {"card_ref": "card_7c1e", "cycle": "2026-10", "channel": "app",
                                    "paper_suppressed": True}
    assert detail["occurred_at"] == "2026-11-03T01:00:00+00:00" and detail["partner"] == "cardcentre"
    receipt = detail["receipt"]
    assert (receipt["methodology"], receipt["version"]) == ("estatement-paperless", "2022.1")
    assert (receipt["computed_g"], receipt["credited_g"], receipt["caps"]) == (24, 24, [])
    assert receipt["behaviour"] == st["id"]


def test_behaviour_of_another_account_is_404(client, hub, history, clock):
    other = open_account(client, "cust-other")
    hub.set_consent(other, "metro", True, at=local(1, 0))
    push(client, "szmetro", [ride(other, "O-1", local(20, 8), card="tok_other")], clock)
    (theirs,) = behaviours(client, other)["behaviours"]
    response = client.get(f"/v1/accounts/{history}/behaviours/{theirs['id']}", headers=auth())
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert client.get(f"/v1/accounts/{other}/behaviours/{theirs['id']}", headers=auth()).status_code == 200
    assert client.get(f"/v1/accounts/{history}/behaviours/bhv_nope", headers=auth()).status_code == 404
    assert client.get(f"/v1/accounts/acc_nope/behaviours/{theirs['id']}", headers=auth()).status_code == 404
    assert client.get("/v1/accounts/acc_nope/behaviours", headers=auth()).status_code == 404
