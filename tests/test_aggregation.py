"""Aggregation (归集与流转): a month of users' reductions pooled for a carbon exchange.

Numbers, worked by hand: an 18.6 km Shenzhen Metro ride is 870 g, a 5 km ride
234 g, a paperless e-statement 24 g. The test exchange pays 8,000 fen (80 yuan)
per tonne, users get 50 % as points at 1 point per fen, so a user's exact share
is grams × 8000 × 50 / 100 / 1,000,000 = grams × 0.004 points.

October 2026: Alice 870 + 870 = 1740 g (6.96 points), Bob 234 + 24 = 258 g
(1.032), Carol 870 g (3.48): 2868 g, 11.472 points -> the pool awards 11.
Floors 6 + 1 + 3 = 10; the one point left goes to the largest remainder
(Alice, .96): Alice 7, Bob 1, Carol 3.
"""
from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from api_helpers import auth, error_of
from click.testing import CliRunner
from hypothesis import given, settings as hsettings, strategies as st
from plugin_helpers import SHANGHAI, estatement, metro_ride

from hub import aggregation, carbon_uses, db, neutralisation
from hub.aggregation import PeriodOpen, UnknownExchange, split_points
from hub.carbon_uses import InsufficientCarbon, NotReversible
from hub.cli import main
from hub.config import Exchange
from hub.db import Aggregation, Behaviour, CarbonAdjustment, CarbonUse, LedgerTransaction
from hub.ledger import Ledger, user_carbon, user_points, verify
from hub.queries import account_view

CONSENT_AT = datetime(2026, 1, 1, tzinfo=SHANGHAI)
EXCHANGE = {"name": "Test Environment Exchange", "price_fen_per_tonne": 8000, "user_share_percent": 50,
            "points_per_fen": 1}


def local(month: int, day: int, hour: int = 8) -> datetime:
    return datetime(2026, month, day, hour, 1, tzinfo=SHANGHAI)


@pytest.fixture
def reports(tmp_path) -> Path:
    return tmp_path / "reports"


@pytest.fixture
def config_data(config_data, reports):
    config_data["aggregation"] = {"reports_dir": str(reports), "settle_days": 3,
                                  "exchanges": {"cneeex": dict(EXCHANGE),
                                                "free": {"name": "No-reward exchange"}}}
    return config_data


def open_account(hub, bank_ref: str) -> str:
    account, _ = hub.open_account(bank_ref)
    for scenario in ("metro", "estatement"):
        hub.set_consent(account.id, scenario, True, at=CONSENT_AT)
    return account.id


def credit(hub, partner: str, records: list[dict]) -> list[str]:
    result = hub.pipeline.ingest(partner, records)
    assert result.counts["accepted"] == len(records), result.summary()
    return [r.behaviours[0].id for r in result.records]


def ride(account: str, n: int, at: datetime, km: str = "18.6") -> dict:
    return metro_ride(account, f"R-{account}-{n}", at, distance_km=km, card=f"card-{account}")


@pytest.fixture
def people(hub) -> dict[str, str]:
    return {name: open_account(hub, f"cust-{name}") for name in ("alice", "bob", "carol")}


@pytest.fixture
def october(hub, people) -> dict[str, list[str]]:
    """The October behaviours of the module docstring, plus rides in September and November (not October's)."""
    a, b, c = people["alice"], people["bob"], people["carol"]
    ids = {
        "alice": credit(hub, "szmetro", [ride(a, 1, local(10, 1)), ride(a, 2, local(10, 31, 23))]),
        "bob": credit(hub, "szmetro", [ride(b, 1, local(10, 15), km="5")])
        + credit(hub, "cardcentre", [estatement(b, "ST-1", "2026-09", local(10, 9))]),
        "carol": credit(hub, "szmetro", [ride(c, 1, local(10, 20))]),
    }
    # 1 November 00:30 local is still 31 October in UTC: it belongs to November.
    ids["outside"] = credit(hub, "szmetro", [ride(a, 3, datetime(2026, 11, 1, 0, 30, tzinfo=SHANGHAI)),
                                             ride(c, 2, local(9, 30, 23))])
    return ids


def carbon(account: str) -> int:
    return Ledger.balance(user_carbon(account), "g")


def points(account: str) -> int:
    return Ledger.balance(user_points(account), "pts")


def assert_books(*accounts: str) -> None:
    """Behaviours hold what balances say; pools hold what aggregations took net of adjustments; verify is ok."""
    for account in accounts:
        assert sum(h.grams for h in carbon_uses.holdings_of(account)) == carbon(account)
    for exchange in ("cneeex", "free"):
        pooled = sum(u.grams for u in CarbonUse.select().where(CarbonUse.ref.startswith(f"agg_{exchange}_")))
        adjusted = sum(a.grams for a in CarbonAdjustment.select().where(CarbonAdjustment.exchange == exchange))
        assert Ledger.balance(f"@pool:{exchange}", "g") == pooled - adjusted
    report = verify()
    assert report.ok, report.problems


# --- the points share ---------------------------------------------------------------------------


def test_points_share_worked_example():
    shares, total = split_points({"alice": 1740, "bob": 258, "carol": 870}, Exchange(id="x", **EXCHANGE))
    assert (shares, total) == ({"alice": 7, "bob": 1, "carol": 3}, 11)


def test_points_share_ties_go_to_the_smaller_account_id():
    # 250 g each = exactly 1.0 point each at 0.004/g... use 125 g: 0.5 each, three users = 1.5 -> 1 point.
    shares, total = split_points({"c": 125, "a": 125, "b": 125}, Exchange(id="x", **EXCHANGE))
    assert (shares, total) == ({"a": 1}, 1)


def test_no_price_or_no_share_awards_nothing():
    assert split_points({"a": 10**6}, Exchange(id="x", name="x")) == ({}, 0)
    assert split_points({"a": 10**6}, Exchange(id="x", name="x", price_fen_per_tonne=8000)) == ({}, 0)


@hsettings(max_examples=300, deadline=None)
@given(grams=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(1, 10**9), max_size=30),
       price=st.integers(0, 10**6), share=st.integers(0, 100), per_fen=st.integers(0, 1000))
def test_points_shares_add_up_exactly_and_stay_within_one_point_of_exact(grams, price, share, per_fen):
    from fractions import Fraction

    exchange = Exchange(id="x", name="x", price_fen_per_tonne=price, user_share_percent=share,
                        points_per_fen=per_fen)
    shares, total = split_points(grams, exchange)
    exact = {a: Fraction(g * price * share * per_fen, 10**8) for a, g in grams.items()}
    assert total == int(sum(exact.values()))  # the pool's floor
    assert sum(shares.values()) == total
    for account, value in exact.items():
        got = shares.get(account, 0)
        assert int(value) <= got <= int(value) + 1
        assert got > 0 or account not in shares


@pytest.mark.parametrize("now, period", [
    (datetime(2026, 12, 5, 2, tzinfo=SHANGHAI), "2026-11"),
    (datetime(2027, 1, 2, tzinfo=SHANGHAI), "2026-12"),
    (datetime(2026, 11, 30, 17, tzinfo=timezone.utc), "2026-11"),  # already 1 December in Shanghai
    (datetime(2026, 11, 30, 15, 59, tzinfo=timezone.utc), "2026-10"),
])
def test_the_default_period_is_last_month_in_the_banks_time_zone(now, period):
    from zoneinfo import ZoneInfo

    assert aggregation.previous_period(now, ZoneInfo("Asia/Shanghai")) == period


@pytest.mark.parametrize("text", ["2026-1", "2026-00", "2026-13", "26-11", "2026-11-01", "2026-11\n", "", "1899-12"])
def test_malformed_periods_are_refused(text):
    with pytest.raises(ValueError):
        aggregation.parse_period(text)


# --- aggregating a month ----------------------------------------------------------------------------


def test_aggregation_pools_the_month_awards_shares_and_writes_the_report(hub, people, october, reports):
    a, b, c = people["alice"], people["bob"], people["carol"]
    points_before = {p: points(p) for p in (a, b, c)}
    result, created = aggregation.aggregate(hub, "cneeex", "2026-10")
    assert created and result["id"] == "agg_cneeex_2026-10"
    assert (result["grams"], result["behaviours"], result["accounts"], result["points"]) == (2868, 5, 3, 11)
    # Only November's and September's grams stay with the users.
    assert (carbon(a), carbon(b), carbon(c)) == (870, 0, 870)
    assert Ledger.balance("@pool:cneeex", "g") == 2868
    assert {p: points(p) - points_before[p] for p in (a, b, c)} == {a: 7, b: 1, c: 3}
    assert Ledger.balance("@issuer:aggregation:cneeex", "pts") == -11
    txs = list(LedgerTransaction.select().where(LedgerTransaction.kind == "aggregation")
               .order_by(LedgerTransaction.seq))
    assert sorted(t.key for t in txs) == sorted(f"aggregation:cneeex:2026-10:{p}" for p in (a, b, c))
    alice_tx = next(t for t in txs if t.memo["account"] == a)
    assert alice_tx.memo["points"] == 7
    assert sorted(x["behaviour"] for x in alice_tx.memo["behaviours"]) == sorted(october["alice"])

    report = result["report"]
    assert report["format"] == "carbonhub-aggregation/1" and report["period"] == "2026-10"
    assert report["period_start"] == "2026-10-01T00:00:00+08:00"
    assert report["period_end"] == "2026-11-01T00:00:00+08:00"
    assert report["totals"] == {"behaviours": 5, "grams": 2868, "tonnes": "0.002868", "adjustment_grams": 0,
                                "net_grams": 2868, "net_tonnes": "0.002868"}
    lines = {(ln["scenario"], ln["methodology"], ln["version"]): ln for ln in report["lines"]}
    assert sorted(lines) == [("estatement", "estatement-paperless", "2022.1"),
                             ("metro", "metro-avoided-car", "2021.1")]
    metro = lines[("metro", "metro-avoided-car", "2021.1")]
    assert (metro["grams"], metro["tonnes"], metro["behaviours"]) == (2844, "0.002844", 4)
    assert metro["behaviour_ids"] == sorted([*october["alice"], october["bob"][0], *october["carol"]])
    assert lines[("estatement", "estatement-paperless", "2022.1")]["behaviour_ids"] == [october["bob"][1]]
    assert report["value"] == {"price_fen_per_tonne": 8000, "gross_value_fen": "22.944000",
                               "user_share_percent": 50, "points_per_fen": 1, "user_points": 11,
                               "users_rewarded": 3}
    assert report["adjustments"] == []
    assert a not in json.dumps(report)  # the exchange's report names behaviours, never users

    json_path, csv_path = reports / "cneeex" / "cneeex-2026-10.json", reports / "cneeex" / "cneeex-2026-10.csv"
    assert result["files"] == {"json": str(json_path), "csv": str(csv_path)}
    assert json.loads(json_path.read_text(encoding="utf-8")) == report
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert [(r["line"], r["scenario"], r["grams"], r["tonnes"]) for r in rows] == [
        ("reduction", "estatement", "24", "0.000024"), ("reduction", "metro", "2844", "0.002844"),
        ("total", "", "2868", "0.002868")]
    assert rows[1]["behaviour_ids"].split() == metro["behaviour_ids"]
    assert_books(a, b, c)


def test_the_share_is_a_lot_of_points_that_expires_like_any_other(hub, config_data, database_url, clock, people,
                                                                  october):
    from hub.config import load_settings
    from hub.core import Hub
    from hub.db import PointLot

    from conftest import SECRETS

    config_data["rewards"] = {"points_expire_after_months": 12}
    expiring = Hub(load_settings(data=config_data, environ=dict(SECRETS)), clock=clock, database_url=database_url)
    result, _ = aggregation.aggregate(expiring, "cneeex", "2026-10")
    txs = {t.memo["account"]: t for t in LedgerTransaction.select().where(LedgerTransaction.kind == "aggregation")}
    lot = PointLot.get((PointLot.account == people["alice"]) & (PointLot.seq == txs[people["alice"]].seq))
    assert (lot.account, lot.amount, lot.remaining) == (people["alice"], 7, 7)
    # Earned on 21 November 2026 (local): usable through 21 November 2027 in Shanghai.
    assert db.from_db(lot.expires_at) == datetime(2027, 11, 22, tzinfo=SHANGHAI)
    assert sum(x.amount for x in PointLot.select().where(PointLot.seq.in_([t.seq for t in txs.values()]))) == 11


def test_running_it_again_changes_nothing_and_gives_the_same_report(hub, clock, people, october, reports):
    first, _ = aggregation.aggregate(hub, "cneeex", "2026-10")
    count = LedgerTransaction.select().count()
    csv_path = Path(first["files"]["csv"])
    csv_text = csv_path.read_text(encoding="utf-8")
    csv_path.unlink()
    Path(first["files"]["json"]).write_text("{}", encoding="utf-8")  # damaged: written again
    # A late October ride arriving after the aggregation stays with its user.
    clock.advance(days=2)
    late = credit(hub, "szmetro", [ride(people["bob"], 9, local(10, 30), km="5")])
    again, created = aggregation.aggregate(hub, "cneeex", "2026-10")
    assert not created and again == first
    assert LedgerTransaction.select().count() == count + 1  # the late ride's credit only
    assert csv_path.read_text(encoding="utf-8") == csv_text
    assert json.loads(Path(first["files"]["json"]).read_text(encoding="utf-8")) == first["report"]
    assert carbon(people["bob"]) == 234 and late[0] not in json.dumps(again["report"])
    assert Aggregation.select().count() == 1


def test_aggregation_skips_retired_grams_and_neutralisation_skips_aggregated_ones(hub, people, october):
    a, c = people["alice"], people["carol"]
    # Alice retires 1000 g first: all of her 1 October ride and 130 g of her 31 October ride.
    cert, _ = neutralisation.neutralise(hub, a, 1000, {"kind": "flight", "from": "PEK", "to": "SZX"}, "k")
    assert [(r["behaviour"], r["grams"]) for r in cert["receipts"]] == [(october["alice"][0], 870),
                                                                        (october["alice"][1], 130)]
    result, _ = aggregation.aggregate(hub, "cneeex", "2026-10")
    assert result["grams"] == 2868 - 1000
    uses = {u.behaviour: u.grams for u in CarbonUse.select().where(CarbonUse.kind == "aggregated")}
    assert october["alice"][0] not in uses and uses[october["alice"][1]] == 740
    assert carbon(a) == 870  # November's ride
    # Carol's October grams are in the pool: she can retire only her September ride.
    with pytest.raises(InsufficientCarbon):
        neutralisation.neutralise(hub, c, 871, "bus", "k")
    cert, _ = neutralisation.neutralise(hub, c, 870, "bus", "k")
    assert [r["behaviour"] for r in cert["receipts"]] == [october["outside"][1]]
    assert_books(a, c, people["bob"])


def test_two_exchanges_never_pool_the_same_gram(hub, people, october):
    aggregation.aggregate(hub, "cneeex", "2026-10")
    other, created = aggregation.aggregate(hub, "free", "2026-10")
    assert created and other["grams"] == 0 and other["report"]["lines"] == [] and other["points"] == 0
    september, _ = aggregation.aggregate(hub, "free", "2026-09")
    assert september["grams"] == 870 and september["points"] == 0  # no price: no points
    assert_books(*people.values())


def test_a_month_is_aggregated_only_once_it_has_settled(hub, clock, people, october):
    with pytest.raises(PeriodOpen) as exc:
        aggregation.aggregate(hub, "cneeex", "2026-11")
    assert exc.value.status == 409 and "2026-12-04T00:00:00+08:00" in str(exc.value)
    clock.current = datetime(2026, 12, 3, 15, 59, tzinfo=timezone.utc)  # 23:59 on 3 December in Shanghai
    with pytest.raises(PeriodOpen):
        aggregation.aggregate(hub, "cneeex", "2026-11")
    clock.advance(minutes=1)
    result, created = aggregation.aggregate(hub, "cneeex", "2026-11")
    assert created and result["grams"] == 870
    with pytest.raises(UnknownExchange):
        aggregation.aggregate(hub, "nope", "2026-10")
    with pytest.raises(ValueError):
        aggregation.aggregate(hub, "cneeex", "2026-13")


def test_aggregate_due_runs_last_month_for_every_exchange_once_settled(hub, clock, people, october):
    clock.current = datetime(2026, 11, 3, 12, tzinfo=SHANGHAI)  # October has not settled yet
    assert aggregation.aggregate_due(hub) == []
    clock.current = datetime(2026, 11, 4, 0, 5, tzinfo=SHANGHAI)
    first = aggregation.aggregate_due(hub)
    assert [(r["id"], r["created"], r["grams"]) for r in first] == [("agg_cneeex_2026-10", True, 2868),
                                                                    ("agg_free_2026-10", True, 0)]
    clock.advance(days=1)
    again = aggregation.aggregate_due(hub)
    assert [(r["id"], r["created"]) for r in again] == [("agg_cneeex_2026-10", False), ("agg_free_2026-10", False)]
    assert_books(*people.values())


def test_racing_neutralisation_and_aggregation_never_share_a_gram(hub, people, october):
    a = people["alice"]
    results, errors = [None, None], []
    barrier = threading.Barrier(2)

    def run(slot: int) -> None:
        try:
            barrier.wait(timeout=10)
            if slot == 0:
                results[0] = aggregation.aggregate(hub, "cneeex", "2026-10")
            else:
                results[1] = neutralisation.neutralise(hub, a, 2000, "everything", "k")
        except InsufficientCarbon as exc:
            results[slot] = exc
        except BaseException as exc:
            errors.append(exc)
        finally:
            if not db.database.is_closed():
                db.database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    retired = Ledger.balance("@retired", "g")
    pooled = Ledger.balance("@pool:cneeex", "g")
    # Alice holds 2610 g. Either the aggregation ran first (then she held 870 g and the neutralisation of
    # 2000 g was refused), or the neutralisation did: it retired her two October rides and 260 g of her
    # November one, so none of her grams were pooled and 610 g stay with her.
    if isinstance(results[1], InsufficientCarbon):
        assert (retired, pooled, carbon(a)) == (0, 2868, 870)
    else:
        assert (retired, pooled, carbon(a)) == (2000, 2868 - 1740, 610)
    per_behaviour: dict[str, int] = {}
    for use in CarbonUse.select():
        per_behaviour[use.behaviour] = per_behaviour.get(use.behaviour, 0) + use.grams
    credited = {b.id: b.grams for b in Behaviour.select().where(Behaviour.status == "accepted")}
    assert all(per_behaviour[b] <= credited[b] for b in per_behaviour)
    assert_books(*people.values())


# --- corrections after aggregation ------------------------------------------------------------------


def test_reversing_an_aggregated_credit_takes_it_out_of_the_pool_and_the_next_report(hub, clock, people, october):
    a = people["alice"]
    aggregation.aggregate(hub, "cneeex", "2026-10")
    points_after = points(a)
    fraud = october["alice"][0]
    credit_seq = Behaviour.get_by_id(fraud).tx_seq
    reversal, created = hub.reverse(credit_seq, "test card, not a passenger")
    assert created and reversal.reverses == credit_seq
    adjustment = LedgerTransaction.get(LedgerTransaction.key == f"aggregation-adjustment:{credit_seq}")
    assert adjustment.kind == "aggregation_adjustment" and adjustment.seq == reversal.seq - 1
    assert sorted((p.account, p.amount) for p in hub.ledger.postings_of(adjustment.seq)) == [
        ("@pool:cneeex", -870), (user_carbon(a), 870)]
    assert carbon(a) == 870  # what she still holds did not move: the pool gave the reversed grams back
    assert Ledger.balance("@pool:cneeex", "g") == 2868 - 870
    # The reversal takes back the ride's own 88 points (870 g × 100 / 1000 + 1); the share of the pool
    # already paid is not clawed back (docs/carbon-assets.md).
    assert points(a) == points_after - 88
    # Retrying the same correction changes nothing.
    again, created_again = hub.reverse(credit_seq, "test card, not a passenger")
    assert not created_again and again.seq == reversal.seq
    assert CarbonAdjustment.select().count() == 1
    assert_books(*people.values())

    # November's report carries the correction as a negative line.
    clock.current = datetime(2026, 12, 5, tzinfo=timezone.utc)
    november, _ = aggregation.aggregate(hub, "cneeex", "2026-11")
    assert november["grams"] == 870 and november["adjustment_grams"] == -870 and november["net_grams"] == 0
    assert november["report"]["adjustments"] == [{
        "behaviour": fraud, "scenario": "metro", "methodology": "metro-avoided-car", "version": "2021.1",
        "grams": -870, "tonnes": "-0.000870", "aggregation": "agg_cneeex_2026-10", "reversal_of": credit_seq,
        "reason": "test card, not a passenger"}]
    assert november["report"]["totals"]["net_tonnes"] == "0.000000"
    rows = list(csv.DictReader(io.StringIO(Path(november["files"]["csv"]).read_text(encoding="utf-8"))))
    assert [(r["line"], r["grams"], r["behaviour_ids"]) for r in rows] == [
        ("reduction", "870", october["outside"][0]), ("adjustment", "-870", fraud), ("total", "0", "")]
    assert CarbonAdjustment.get().reported_in == "agg_cneeex_2026-11"
    account = account_view(a)
    assert account["carbon"] == {"held_g": 0, "retired_g": 0, "aggregated_g": 870 + 870, "lifetime_g": 1740}
    # It is reported once: December's report and a rerun of November's do not repeat it.
    clock.current = datetime(2027, 1, 5, tzinfo=timezone.utc)
    december, _ = aggregation.aggregate(hub, "cneeex", "2026-12")
    assert december["report"]["adjustments"] == []
    assert aggregation.aggregate(hub, "cneeex", "2026-11")[0] == november
    assert_books(*people.values())


def test_aggregation_transactions_are_never_reversed(hub, people, october):
    result, _ = aggregation.aggregate(hub, "cneeex", "2026-10")
    seq = result["report"]["ledger"]["first_seq"]
    with pytest.raises(NotReversible):
        hub.reverse(seq, "undo")
    credit_seq = Behaviour.get_by_id(october["carol"][0]).tx_seq
    hub.reverse(credit_seq, "fraud")
    adjustment = LedgerTransaction.get(LedgerTransaction.kind == "aggregation_adjustment")
    with pytest.raises(NotReversible):
        hub.reverse(adjustment.seq, "undo the correction")
    assert_books(*people.values())


def test_plugins_hear_of_each_new_transaction_once(config_data, database_url, clock, people, october):
    from plugin_helpers import recorder_plugin

    from conftest import SECRETS
    from hub.config import load_settings
    from hub.core import Hub

    calls: list = []
    heard = Hub(load_settings(data=config_data, environ=dict(SECRETS)), clock=clock, database_url=database_url,
                extra_plugins=[recorder_plugin("recorder", calls)])
    cert, _ = neutralisation.neutralise(heard, people["bob"], 100, "bus", "k")
    neutralisation.neutralise(heard, people["bob"], 100, "bus", "k")  # a retry: nothing new to announce
    aggregation.aggregate(heard, "cneeex", "2026-10")
    aggregation.aggregate(heard, "cneeex", "2026-10")
    heard.reverse(Behaviour.get_by_id(october["carol"][0]).tx_seq, "fraud")
    kinds = [(tx.kind, tx.memo.get("account")) for name, tx in calls if name == "transaction_posted"]
    assert kinds[0] == ("neutralisation", people["bob"])
    assert sorted(kinds[1:4]) == sorted(("aggregation", p) for p in people.values())
    assert kinds[4:] == [("aggregation_adjustment", people["carol"]), ("reversal", None)]


# --- the HTTP API and the command -------------------------------------------------------------------


def test_api_aggregate_list_and_read(client, people, october):
    body = {"exchange": "cneeex", "period": "2026-10"}
    created = client.post("/v1/admin/aggregations", json=body, headers=auth("console"))
    assert created.status_code == 201, created.get_json()
    result = created.get_json()
    assert created.headers["Location"] == "/v1/admin/aggregations/agg_cneeex_2026-10"
    assert (result["grams"], result["points"], result["net_tonnes"]) == (2868, 11, "0.002868")
    repeat = client.post("/v1/admin/aggregations", json=body, headers=auth("console"))
    assert repeat.status_code == 200 and repeat.get_json() == result
    client.post("/v1/admin/aggregations", json={"exchange": "free", "period": "2026-09"}, headers=auth("console"))
    listed = client.get("/v1/admin/aggregations?limit=1", headers=auth("console")).get_json()
    assert len(listed["aggregations"]) == 1 and listed["next"] and "report" not in listed["aggregations"][0]
    rest = client.get(f"/v1/admin/aggregations?limit=1&before={listed['next']}", headers=auth("console")).get_json()
    assert {listed["aggregations"][0]["id"], rest["aggregations"][0]["id"]} == {"agg_cneeex_2026-10",
                                                                              "agg_free_2026-09"}
    only = client.get("/v1/admin/aggregations?exchange=free", headers=auth("console")).get_json()
    assert [x["id"] for x in only["aggregations"]] == ["agg_free_2026-09"]
    one = client.get("/v1/admin/aggregations/agg_cneeex_2026-10", headers=auth("console"))
    assert one.status_code == 200 and one.get_json() == result
    missing = client.get("/v1/admin/aggregations/agg_cneeex_2020-01", headers=auth("console"))
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    account = client.get(f"/v1/accounts/{people['alice']}", headers=auth()).get_json()
    assert account["carbon"] == {"held_g": 870, "retired_g": 0, "aggregated_g": 1740, "lifetime_g": 2610}


@pytest.mark.parametrize("body, status, code, field", [
    ({"exchange": "nope", "period": "2026-10"}, 422, "validation_error", "exchange"),
    ({"exchange": "cneeex", "period": "2026-13"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex", "period": "10/2026"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex", "period": "0000-01"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex", "period": "9999-12"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex", "period": "2026-10\n"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex"}, 422, "validation_error", "period"),
    ({"exchange": "cneeex", "period": "2026-11"}, 409, "period_open", None),
])
def test_api_aggregate_errors(client, body, status, code, field):
    response = client.post("/v1/admin/aggregations", json=body, headers=auth("console"))
    assert response.status_code == status
    err = error_of(response)
    assert err["code"] == code
    if field:
        assert field in err["fields"]


def test_api_aggregations_need_the_admin_scope(client):
    assert client.post("/v1/admin/aggregations", json={"exchange": "cneeex", "period": "2026-10"},
                       headers=auth("app")).status_code == 403
    assert client.get("/v1/admin/aggregations", headers=auth("reader")).status_code == 403


def test_api_reversal_of_an_aggregation_is_409(client, people, october):
    result = client.post("/v1/admin/aggregations", json={"exchange": "cneeex", "period": "2026-10"},
                         headers=auth("console")).get_json()
    seq = result["report"]["ledger"]["last_seq"]
    response = client.post(f"/v1/admin/transactions/{seq}/reversal", json={"reason": "undo"},
                           headers=auth("console"))
    assert response.status_code == 409 and error_of(response)["code"] == "not_reversible"


def test_api_answers_match_the_openapi_document(client, people, october):
    import openapi_schema_validator as schema_validator

    spec = client.get("/openapi.json").get_json()

    def check(response, path, method, status="200"):
        schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        schema_validator.validate(response.get_json(), {**schema, "components": spec["components"]},
                                  cls=schema_validator.OAS30Validator)

    body = {"exchange": "cneeex", "period": "2026-10"}
    check(client.post("/v1/admin/aggregations", json=body, headers=auth("console")), "/v1/admin/aggregations",
          "post", "201")
    check(client.post("/v1/admin/aggregations", json=body, headers=auth("console")), "/v1/admin/aggregations",
          "post", "200")
    check(client.get("/v1/admin/aggregations", headers=auth("console")), "/v1/admin/aggregations", "get")
    check(client.get("/v1/admin/aggregations/agg_cneeex_2026-10", headers=auth("console")),
          "/v1/admin/aggregations/{aggregation_id}", "get")


CLI_CONFIG = """
[hub]
timezone = "Asia/Shanghai"
secrets_file = "{secrets}"

[partners.szmetro]
name = "Shenzhen Metro"
secret_env = "CARBONHUB_SECRET_SZMETRO"
scenarios = ["metro"]

[scenarios.metro]
points = {{ per_kg = 100, bonus = 1 }}

[aggregation]
reports_dir = "{reports}"

[aggregation.exchanges.cneeex]
name = "Test Environment Exchange"
price_fen_per_tonne = 8000
user_share_percent = 50
"""


def test_cli_aggregate(tmp_path, database_url, hub, people, october):
    """The command on the same database (the real clock: October 2026 has settled by now)."""
    path = tmp_path / "cli.toml"
    path.write_text(CLI_CONFIG.format(secrets=tmp_path / "secrets.env", reports=tmp_path / "cli-reports"))
    env = {"CARBONHUB_DATABASE_URL": database_url, "CARBONHUB_SECRET_SZMETRO": "metro-secret-value-123"}
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--config", str(path), *args], env=env, catch_exceptions=False)
        return result.exit_code, result.output

    code, out = run("aggregate", "--exchange", "cneeex", "--period", "2026-10")
    assert code == 0, out
    assert "aggregated: agg_cneeex_2026-10" in out and "5 behaviours of 3 users, 2868 g" in out
    assert "11 points awarded" in out
    assert (tmp_path / "cli-reports" / "cneeex" / "cneeex-2026-10.csv").exists()
    code, out = run("aggregate", "--exchange", "cneeex", "--period", "2026-10", "--json")
    assert code == 0 and json.loads(out)["report"]["totals"]["grams"] == 2868
    code, out = run("aggregate", "--exchange", "cneeex", "--period", "2026-10")
    assert code == 0 and "already aggregated (nothing new)" in out
    code, out = run("aggregate", "--exchange", "nope", "--period", "2026-10")
    assert code == 1 and "unknown_exchange" in out
    code, out = run("aggregate", "--exchange", "cneeex", "--period", "2026-1")
    assert code == 2 and "--period" in out
    code, out = run("ledger", "verify")
    assert code == 0 and "ledger ok" in out


def test_the_scheduler_aggregates_settled_months_daily(hub, clock, people, october):
    from hub.scheduler import build_scheduler

    job = {j.id: j for j in build_scheduler(hub).get_jobs()}["aggregation"]
    assert str(job.trigger).startswith("cron[hour='3', minute='0']")
    clock.current = datetime(2026, 11, 4, 3, 0, tzinfo=SHANGHAI)
    assert job.func(*job.args) == {"aggregations": 2, "created": 2}
    assert job.func(*job.args) == {"aggregations": 2, "created": 0}  # the next night: nothing new
