"""The data behind the bank's console: ingestion per local day, and the recorded ledger verifications."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from api_helpers import auth, error_of, openapi_check, open_account, push, ride, statement
from click.testing import CliRunner

from conftest import NOW
from hub import db
from hub.cli import main
from hub.ingest_stats import ingestion_stats
from hub.ledger_checks import last_check, run_check

TODAY = date(2026, 11, 21)  # NOW is 12:00 in Shanghai


@pytest.fixture
def accounts(client, hub, clock):
    """(consented, newcomer): the first may ride the metro since long ago, the second consented to nothing."""
    clock.current = NOW - timedelta(days=10)
    consented, newcomer = open_account(client, "cust-console"), open_account(client, "cust-newcomer")
    hub.set_consent(consented, "metro", True, at=NOW - timedelta(days=30))
    return consented, newcomer


@pytest.fixture
def history(client, clock, accounts):
    """Pushes on three local days (11-16, 11-19 and today 11-21), through the real pipeline.

    11-16: 2 accepted, 1 invalid_record, 1 no_consent (szmetro)
    11-19: 1 accepted, the same ride again (duplicate), 1 no_consent (cardcentre)
    11-21: 1 accepted, 1 no_consent (szmetro), then 1 no_consent (cardcentre) a minute later
    """
    acc, newcomer = accounts
    clock.current = NOW - timedelta(days=5)
    bad = ride(acc, "R-bad", clock() - timedelta(hours=1), km="5")
    bad["distance_km"] = "far"
    assert push(client, "szmetro", [ride(acc, "R-1", clock() - timedelta(hours=3), km="5"),
                                    ride(acc, "R-2", clock() - timedelta(hours=2), km="6"), bad,
                                    ride(newcomer, "N-1", clock() - timedelta(hours=2), card="tok_n")],
                clock).status_code == 200
    clock.current = NOW - timedelta(days=2)
    r3 = ride(acc, "R-3", clock() - timedelta(hours=2), km="7")
    push(client, "szmetro", [r3], clock)
    clock.advance(minutes=5)
    push(client, "szmetro", [r3], clock)
    push(client, "cardcentre", [statement(newcomer, "ST-1", clock() - timedelta(hours=1))], clock)
    clock.current = NOW - timedelta(minutes=30)
    push(client, "szmetro", [ride(acc, "R-4", clock() - timedelta(hours=2), km="8"),
                             ride(newcomer, "N-2", clock() - timedelta(hours=1), card="tok_n")], clock)
    clock.current = NOW - timedelta(minutes=29)
    push(client, "cardcentre", [statement(newcomer, "ST-2", clock() - timedelta(hours=1))], clock)
    clock.current = NOW


def stats(client, query: str = "") -> dict:
    response = client.get(f"/v1/admin/ingestion?{query}", headers=auth("console"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def counts(entry: dict) -> tuple[int, int, int, int]:
    return entry["total"], entry["accepted"], entry["duplicate"], entry["rejected"]


# --- ingestion over time ------------------------------------------------------------------------------


def test_counts_per_day_match_the_inbox(client, hub, history):
    body = stats(client)
    assert body["timezone"] == "Asia/Shanghai" and body["days"] == 30 and body["partner"] is None
    assert body["from"] == "2026-10-23" and body["to"] == "2026-11-21"
    daily = body["daily"]
    assert [d["date"] for d in daily] == [(TODAY - timedelta(days=29 - i)).isoformat() for i in range(30)]
    by_day = {d["date"]: d for d in daily}
    assert counts(by_day["2026-11-16"]) == (4, 2, 0, 2)
    assert by_day["2026-11-16"]["reasons"] == {"invalid_record": 1, "no_consent": 1}
    assert counts(by_day["2026-11-19"]) == (3, 1, 1, 1) and by_day["2026-11-19"]["reasons"] == {"no_consent": 1}
    assert counts(by_day["2026-11-21"]) == (3, 1, 0, 2) and by_day["2026-11-21"]["reasons"] == {"no_consent": 2}
    # Every other day is there, with zeros: a chart has no gaps.
    empty = [d for d in daily if d["date"] not in ("2026-11-16", "2026-11-19", "2026-11-21")]
    assert len(empty) == 27 and all(counts(d) == (0, 0, 0, 0) and d["reasons"] == {} for d in empty)
    assert counts(body["totals"]) == (10, 4, 1, 5)

    # The same numbers as counting the inbox row by row, in the hub's time zone.
    rows = list(db.InboxRecord.select())
    local = Counter((db.from_db(r.received_at).astimezone(hub.settings.timezone).date().isoformat(), r.status)
                    for r in rows)
    for d in daily:
        for status in ("accepted", "duplicate", "rejected"):
            assert d[status] == local[(d["date"], status)], (d["date"], status)
    assert body["totals"]["total"] == len(rows)


def test_reasons_are_ranked_with_their_latest_example(client, history):
    top = stats(client)["top_reasons"]
    assert [(r["reason"], r["count"], r["share"]) for r in top] == [("no_consent", 4, 0.8),
                                                                     ("invalid_record", 1, 0.2)]
    latest = top[0]["latest"]
    st2 = db.InboxRecord.get(db.InboxRecord.event_id == "ST-2")
    assert latest == {"inbox_id": st2.id, "partner": "cardcentre",
                      "received_at": (NOW - timedelta(minutes=29)).isoformat()}
    bad = db.InboxRecord.get(db.InboxRecord.reason == "invalid_record")
    assert top[1]["latest"]["inbox_id"] == bad.id and top[1]["latest"]["partner"] == "szmetro"


def test_totals_per_partner_and_the_partner_filter(client, history):
    partners = stats(client)["partners"]
    assert [(p["partner"], p["name"], *counts(p)) for p in partners] == [
        ("szmetro", "Shenzhen Metro", 8, 4, 1, 3), ("cardcentre", "Card Centre", 2, 0, 0, 2)]

    card = stats(client, "partner=cardcentre&days=7")
    assert card["partner"] == "cardcentre" and len(card["daily"]) == 7 and card["from"] == "2026-11-15"
    assert counts(card["totals"]) == (2, 0, 0, 2)
    assert [(p["partner"], p["total"]) for p in card["partners"]] == [("cardcentre", 2)]
    assert [(r["reason"], r["count"], r["share"]) for r in card["top_reasons"]] == [("no_consent", 2, 1.0)]
    assert {d["date"]: d["rejected"] for d in card["daily"] if d["total"]} == {"2026-11-19": 1, "2026-11-21": 1}

    nobody = stats(client, "partner=nobody")
    assert counts(nobody["totals"]) == (0, 0, 0, 0) and nobody["partners"] == [] and nobody["top_reasons"] == []


def test_the_window_ends_today_and_starts_days_ago(client, history):
    today = stats(client, "days=1")
    assert [d["date"] for d in today["daily"]] == ["2026-11-21"] and counts(today["totals"]) == (3, 1, 0, 2)
    three = stats(client, "days=3")
    assert [d["date"] for d in three["daily"]] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert counts(three["totals"]) == (6, 2, 1, 3)


def test_a_configured_partner_without_records_shows_with_zeros(client, accounts):
    body = stats(client)
    assert counts(body["totals"]) == (0, 0, 0, 0) and len(body["daily"]) == 30 and body["top_reasons"] == []
    assert {p["partner"]: counts(p) for p in body["partners"]} == {"szmetro": (0, 0, 0, 0),
                                                                    "cardcentre": (0, 0, 0, 0)}


def test_days_are_local_days_of_the_hub(client, hub, clock, accounts):
    """23:30 and 00:30 in Shanghai are two days, though both are 2026-11-20 in UTC."""
    acc, _ = accounts
    for at, ride_id in ((datetime(2026, 11, 20, 15, 30, tzinfo=timezone.utc), "R-late"),
                        (datetime(2026, 11, 20, 16, 30, tzinfo=timezone.utc), "R-early")):
        clock.current = at
        push(client, "szmetro", [ride(acc, ride_id, at - timedelta(minutes=50), km="3", minutes=5)], clock)
    clock.current = datetime(2026, 11, 20, 16, 0, tzinfo=timezone.utc)  # exactly midnight in Shanghai
    push(client, "szmetro", [ride(acc, "R-midnight", clock() - timedelta(minutes=10), km="3", minutes=5)], clock)
    clock.current = NOW
    body = stats(client, "days=3")
    assert {d["date"]: d["accepted"] for d in body["daily"]} == {"2026-11-19": 0, "2026-11-20": 1,
                                                                 "2026-11-21": 2}
    # The service itself, with a hub time zone west of UTC: the same instants fall on other days.
    hub.settings.timezone = ZoneInfo("America/New_York")
    west = ingestion_stats(hub, days=3)
    assert west["to"] == date(2026, 11, 20) and west["timezone"] == "America/New_York"
    assert {d["date"].isoformat(): d["accepted"] for d in west["daily"]} == {"2026-11-18": 0, "2026-11-19": 0,
                                                                            "2026-11-20": 3}


@pytest.mark.parametrize("query", ["days=0", "days=367", "days=-1", "days=lots"])
def test_days_are_validated(client, query):
    response = client.get(f"/v1/admin/ingestion?{query}", headers=auth("console"))
    assert response.status_code == 422
    err = error_of(response)
    assert err["code"] == "validation_error" and "days" in err["fields"]


def test_days_limits_are_accepted(client, hub):
    assert len(stats(client, "days=366")["daily"]) == 366
    with pytest.raises(ValueError):
        ingestion_stats(hub, days=0)


def test_the_window_is_read_through_the_received_at_index(hub, history):
    """The chart reads its days only, never every record ever received (bench/console.py measures it)."""
    if db.is_postgres():
        pytest.skip("PostgreSQL's plan depends on the table's statistics; bench/console.py measures it")
    start = db.to_db(NOW - timedelta(days=7))
    query = (db.InboxRecord.select(db.InboxRecord.partner, db.InboxRecord.status, db.InboxRecord.reason)
             .where(db.InboxRecord.received_at >= start))
    sql, params = query.sql()
    plan = " ".join(str(row[-1]) for row in db.database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "COVERING INDEX inbox_record_received_at_partner_status_reason" in plan, plan


@pytest.mark.parametrize("method, path", [("get", "/v1/admin/ingestion"), ("get", "/v1/admin/ledger/verify/last"),
                                          ("post", "/v1/admin/ledger/verify")])
def test_admin_only(client, method, path):
    assert error_of(getattr(client, method)(path))["code"] == "unauthorized"
    response = getattr(client, method)(path, headers=auth("app"))
    assert response.status_code == 403 and error_of(response)["code"] == "forbidden"
    assert getattr(client, method)(path, headers={"Authorization": "Bearer nope"}).status_code == 401


# --- ledger verification status -----------------------------------------------------------------------


def last(client) -> dict:
    response = client.get("/v1/admin/ledger/verify/last", headers=auth("console"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_no_check_yet_is_null_with_a_hint(client):
    assert last_check() is None
    body = last(client)
    assert body["check"] is None and "POST /v1/admin/ledger/verify" in body["hint"]


def test_a_check_is_recorded_and_shown(client, hub, clock, history):
    response = client.post("/v1/admin/ledger/verify", headers=auth("console"))
    assert response.status_code == 201, response.get_json()
    check = response.get_json()
    head = db.LedgerTransaction.select().order_by(db.LedgerTransaction.seq.desc()).first()
    assert check == {"id": check["id"], "trigger": "api", "started_at": NOW.isoformat(),
                     "finished_at": NOW.isoformat(), "duration_ms": check["duration_ms"], "ok": True,
                     "transactions": db.LedgerTransaction.select().count(), "accounts": check["accounts"],
                     "head_seq": head.seq, "head_hash": head.hash, "first_break": None, "problem_count": 0,
                     "problems": []}
    assert check["transactions"] == 4 and check["accounts"] > 0 and check["duration_ms"] >= 0
    # The live verification reports the same ledger.
    live = client.get("/v1/admin/ledger/verify", headers=auth("console")).get_json()
    assert (live["head_seq"], live["head_hash"], live["accounts"]) == (check["head_seq"], check["head_hash"],
                                                                      check["accounts"])
    assert last(client) == {"check": check, "hint": None}

    clock.advance(days=3)  # the daily job did not run since: the console is told
    stale = last(client)
    assert stale["check"] == check and "3 days old" in stale["hint"]


def test_a_tampered_ledger_is_recorded_as_broken(client, hub, history):
    run_check(hub, "api")
    posting = db.Posting.select().where(db.Posting.unit == "g", db.Posting.amount > 0).order_by(db.Posting.id).first()
    db.Posting.update(amount=posting.amount + 1000).where(db.Posting.id == posting.id).execute()

    response = client.post("/v1/admin/ledger/verify", headers=auth("console"))
    assert response.status_code == 201  # the check ran; what it found is in the body
    broken = response.get_json()
    assert broken["ok"] is False and broken["first_break"] == posting.tx_seq
    assert broken["problem_count"] == len(broken["problems"]) >= 1
    assert any(p.startswith(f"seq {posting.tx_seq}: content altered") for p in broken["problems"])
    assert last(client)["check"] == broken and last_check()["id"] == broken["id"]
    assert db.LedgerCheck.select().count() == 2


def test_only_the_first_problems_are_kept(hub, history):
    db.Posting.update(amount=db.Posting.amount + 1).execute()  # every transaction and balance altered
    check = run_check(hub, "api")
    assert check["problem_count"] > 10 and len(check["problems"]) == 10
    with pytest.raises(ValueError):
        run_check(hub, "cron")


def test_the_daily_job_records_its_check(hub, clock, history):
    from hub.scheduler import build_scheduler

    job = {j.id: j for j in build_scheduler(hub).get_jobs()}["ledger-verify"]
    assert str(job.trigger).startswith("cron[hour='4', minute='0']") and job.max_instances == 1
    done = job.func(*job.args)
    check = last_check()
    assert done == {"id": check["id"], "ok": True, "transactions": 4, "problems": 0}
    assert check["trigger"] == "schedule" and check["ok"]


CLI_CONFIG = """
[hub]
timezone = "Asia/Shanghai"
secrets_file = "{secrets}"
"""


def test_the_command_records_its_run_and_keeps_its_output(tmp_path, hub, database_url, history):
    path = tmp_path / "hub.toml"
    path.write_text(CLI_CONFIG.format(secrets=tmp_path / "secrets.env"))
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(path), *args],
                               env={"CARBONHUB_DATABASE_URL": database_url}, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    out = cli("ledger", "verify")
    head = db.LedgerTransaction.select().order_by(db.LedgerTransaction.seq.desc()).first()
    assert out.startswith("ledger ok: 4 transactions") and f"head {head.seq}:{head.hash}" in out
    check = last_check()
    assert check["trigger"] == "cli" and check["ok"] and check["head_hash"] == head.hash

    cli("ledger", "verify", "--anchor", f"{head.seq}:{'0' * 64}", code=1)  # a wrong anchor: broken, recorded
    anchored = last_check()
    assert anchored["trigger"] == "cli" and not anchored["ok"]
    assert anchored["problems"] == [f"seq {head.seq}: hash differs from the anchor recorded for it"]
    assert db.LedgerCheck.select().count() == 2


# --- the documented shapes ----------------------------------------------------------------------------


def test_answers_match_the_openapi_document(client, history):
    spec = client.get("/openapi.json").get_json()
    check = openapi_check(spec)
    check(client.get("/v1/admin/ledger/verify/last", headers=auth("console")), "/v1/admin/ledger/verify/last",
          "get", "200")
    check(client.post("/v1/admin/ledger/verify", headers=auth("console")), "/v1/admin/ledger/verify", "post", "201")
    check(client.get("/v1/admin/ledger/verify/last", headers=auth("console")), "/v1/admin/ledger/verify/last",
          "get", "200")
    check(client.get("/v1/admin/ingestion", headers=auth("console")), "/v1/admin/ingestion", "get", "200")
    check(client.get("/v1/admin/ingestion?days=0", headers=auth("console")), "/v1/admin/ingestion", "get", "422")
    params = {p["name"]: p for p in spec["paths"]["/v1/admin/ingestion"]["get"]["parameters"]}
    assert params["days"]["schema"] == {"type": "integer", "default": 30, "minimum": 1, "maximum": 366}
