"""Pull connectors against faked partner APIs (``responses``): paging, cursors, lookback, failures.

Two built-in plugins pull: ``bike`` (the operator's ride API, the hub's default
page shape, sorted by lock time) and ``utility_payments`` (a biller's payments
API: numbered pages, its own parameter names, unsorted). Every request goes
through ``requests`` to a ``responses`` fake; records go through the real
pipeline and database.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
from api_helpers import auth
from click.testing import CliRunner
from conftest import NOW, shipped_config
from scenario_helpers import fixture_loader

from connectors.http_pull import pull, retry_after_s, saved_cursor
from hub import db
from hub.ledger import user_carbon
from hub.scheduler import build_scheduler

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CST = timezone(timedelta(hours=8))
RIDES_URL = "https://rides.hellobike.test/carbon/v1/rides"
PAYMENTS_URL = "https://api.sgcc.test/v2/payments"
load_bike = fixture_loader(ROOT / "tests" / "fixtures" / "bike")
load_bills = fixture_loader(ROOT / "tests" / "fixtures" / "utility_payments")


@pytest.fixture
def config_data(config_data):
    shipped = shipped_config()
    for sid in ("bike", "utility_payments"):
        config_data["scenarios"][sid] = shipped["scenarios"][sid]
    config_data["scenarios"]["bike"]["caps"] = {}  # these tests count rides, not the daily cap
    config_data["partners"]["hellobike"] = shipped["partners"]["hellobike"]
    config_data["partners"]["sgcc"] = shipped["partners"]["sgcc"]
    config_data["connectors"] = {
        "hellobike-rides": {"connector": "bike-ride-api", "partner": "hellobike", "every_s": 300,
                            "options": {"base_url": "https://rides.hellobike.test/carbon/v1",
                                        "api_key_env": "CARBONHUB_TEST_RIDE_KEY", "page_size": 2,
                                        "lookback_s": 3600, "backoff_s": 2, "max_attempts": 3,
                                        "start": "2026-11-01T00:00:00+08:00"}},
        "sgcc-payments": {"connector": "biller-payments-api", "partner": "sgcc", "every_s": 3600,
                          "options": {"base_url": "https://api.sgcc.test/v2", "api_key_env": "CARBONHUB_TEST_BILL_KEY",
                                      "start": "2026-11-01T00:00:00+08:00"}},
    }
    return config_data


@pytest.fixture
def settings(config_data):
    from conftest import SECRETS

    from hub.config import load_settings

    environ = {**SECRETS, "CARBONHUB_TEST_RIDE_KEY": "ride-key-123", "CARBONHUB_TEST_BILL_KEY": "bill-key-456"}
    for pid, partner in config_data["partners"].items():
        environ.setdefault(partner["secret_env"], f"{pid}-secret-0123456789")
    return load_settings(data=config_data, environ=environ)


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("pull-user")
    for sid in ("bike", "utility_payments"):
        hub.set_consent(acc.id, sid, True, at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    return acc.id


def ride(account: str, n: int, lock_at: datetime) -> dict:
    """A valid 3.42 km pedal ride ending at ``lock_at`` (319 g at 93.3 g/km)."""
    unlock = lock_at - timedelta(minutes=18)
    return {"order_id": f"HB-{n:06d}", "account_id": account, "bike_id": f"86201{n:05d}", "city": "wuhan",
            "bike_type": "pedal", "unlock_at": unlock.astimezone(CST).isoformat(),
            "lock_at": lock_at.astimezone(CST).isoformat(), "distance_m": 3420}


class RideApi:
    """A fake of the operator's ride API: filters by since/until, pages by an opaque token."""

    def __init__(self, rides: list[dict]):
        self.rides = sorted(rides, key=lambda r: r["lock_at"])
        self.calls: list[dict] = []
        self.failures: list[tuple[int, dict, str]] = []  # served before the real answers, in order

    def __call__(self, request):
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        self.calls.append({**query, "authorization": request.headers.get("Authorization")})
        if self.failures:
            return self.failures.pop(0)
        since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
        until = datetime.fromisoformat(query["until"].replace("Z", "+00:00"))
        selected = [r for r in self.rides if since <= datetime.fromisoformat(r["lock_at"]) <= until]
        start = int(query.get("page_token", "0"))
        size = int(query["limit"])
        page = selected[start:start + size]
        more = start + size < len(selected)
        body = {"data": page, "next_page_token": str(start + size) if more else None}
        return 200, {}, json.dumps(body)


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


def serve_rides(api, rides: list[dict]) -> RideApi:
    fake = RideApi(rides)
    api.add_callback(responses.GET, RIDES_URL, callback=fake)
    return fake


def credited(hub, account) -> int:
    return hub.ledger.balance(user_carbon(account), "g")


def test_pages_through_every_ride_and_saves_the_cursor_after_each_page(hub, api, account):
    rides = [ride(account, n, NOW - timedelta(days=5 - n)) for n in range(5)]  # a day apart: under the caps
    fake = serve_rides(api, rides)
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "ok" and run.pages == 3 and run.fetched == 5 and run.accepted == 5
    assert [c.get("page_token") for c in fake.calls] == [None, "2", "4"]
    assert fake.calls[0]["authorization"] == "Bearer ride-key-123"
    assert fake.calls[0]["since"] == "2026-10-31T16:00:00Z"  # options.start, the first run
    assert fake.calls[0]["until"] == "2026-11-21T04:00:00Z"  # the signpost: the run's start
    assert saved_cursor("hellobike-rides", "rides") == datetime.fromisoformat(rides[-1]["lock_at"])
    assert db.InboxRecord.select().where(db.InboxRecord.source == "pull").count() == 5
    assert credited(hub, account) == 5 * 319


def test_second_run_reads_from_cursor_minus_lookback_and_counts_nothing_twice(hub, api, account, clock):
    rides = [ride(account, n, NOW - timedelta(minutes=50 - 10 * n)) for n in range(2)]
    fake = serve_rides(api, rides)
    pull(hub, "hellobike-rides", sleep=lambda s: None)
    cursor = saved_cursor("hellobike-rides", "rides")
    # A ride written late, timed before the cursor but inside the lookback window, and a new one.
    late = ride(account, 10, cursor - timedelta(minutes=5))
    new = ride(account, 11, NOW + timedelta(minutes=20))
    fake.rides = sorted(fake.rides + [late, new], key=lambda r: r["lock_at"])
    clock.advance(minutes=30)
    fake.calls.clear()
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert fake.calls[0]["since"] == (cursor - timedelta(hours=1)).astimezone(timezone.utc).isoformat() \
        .replace("+00:00", "Z")
    assert run.fetched == 4 and run.skipped == 2 and run.accepted == 2 and run.duplicate == 0
    assert credited(hub, account) == 4 * 319
    assert db.InboxRecord.select().count() == 4  # nothing stored twice
    assert saved_cursor("hellobike-rides", "rides") == datetime.fromisoformat(new["lock_at"])


def test_the_cursor_never_passes_now(hub, api, account):
    # The operator's clock runs ahead: a ride locked "in 2 minutes" (within the hub's tolerated skew).
    ahead = ride(account, 1, NOW + timedelta(minutes=2))
    fake = serve_rides(api, [])
    fake.rides = [ahead]
    api.replace(responses.GET, RIDES_URL, json={"data": [ahead], "next_page_token": None})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.accepted == 1
    assert saved_cursor("hellobike-rides", "rides") == NOW


def test_429_waits_for_retry_after_then_carries_on(hub, api, account):
    fake = serve_rides(api, [ride(account, n, NOW - timedelta(hours=n + 1)) for n in range(3)])
    fake.failures = [(429, {"Retry-After": "7"}, "slow down"), (503, {}, "maintenance")]
    waits: list[float] = []
    (run,) = pull(hub, "hellobike-rides", sleep=waits.append)
    assert run.status == "ok" and run.accepted == 3
    assert waits == [7.0, 4.0]  # Retry-After, then backoff_s * 2 for the second attempt's 503


def test_retry_after_as_an_http_date():
    assert retry_after_s("Sat, 21 Nov 2026 04:00:30 GMT", NOW) == 30.0
    assert retry_after_s("soon", NOW) is None and retry_after_s(None, NOW) is None


def test_server_errors_past_max_attempts_fail_the_run_and_keep_the_cursor(hub, api, account):
    rides = [ride(account, n, NOW - timedelta(hours=5 - n)) for n in range(4)]
    fake = serve_rides(api, rides)
    (first,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    cursor = saved_cursor("hellobike-rides", "rides")
    fake.failures = [(500, {}, "boom")] * 3
    waits: list[float] = []
    (run,) = pull(hub, "hellobike-rides", sleep=waits.append)
    assert run.status == "failed" and run.error["kind"] == "retry" and run.error["code"] == "server_error"
    assert "gave up after 3 attempts" in run.error["message"]
    assert waits == [2, 4]
    assert saved_cursor("hellobike-rides", "rides") == cursor
    stored = db.ConnectorRun.get_by_id(run.run_id)
    assert stored.status == "failed" and stored.error["code"] == "server_error" and stored.finished_at


def test_a_failure_on_page_two_keeps_page_one_and_the_next_run_finishes(hub, api, account, clock):
    rides = [ride(account, n, NOW - timedelta(hours=5 - n)) for n in range(4)]
    fake = serve_rides(api, rides)
    original = fake.__call__

    def fail_second_page(request):
        if "page_token=2" in request.url:
            return 500, {}, "boom"
        return original(request)

    api.replace(responses.GET, RIDES_URL)
    api.add_callback(responses.GET, RIDES_URL, callback=fail_second_page)
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "failed" and run.accepted == 2
    assert saved_cursor("hellobike-rides", "rides") == datetime.fromisoformat(rides[1]["lock_at"])
    api.replace(responses.GET, RIDES_URL)
    api.add_callback(responses.GET, RIDES_URL, callback=fake)
    clock.advance(minutes=5)
    (again,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert again.status == "ok" and again.accepted == 2 and again.skipped == 2
    assert credited(hub, account) == 4 * 319


def test_timeouts_are_retried(hub, api, account):
    calls = []

    def slow_then_ok(request):
        calls.append(1)
        if len(calls) == 1:
            raise requests.ReadTimeout("read timed out")
        return 200, {}, json.dumps({"data": [ride(account, 1, NOW - timedelta(hours=1))], "next_page_token": None})

    api.add_callback(responses.GET, RIDES_URL, callback=slow_then_ok)
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "ok" and run.accepted == 1 and len(calls) == 2


def test_malformed_json_is_retried_then_fails_as_retryable(hub, api, account):
    api.add(responses.GET, RIDES_URL, body="<html>gateway</html>", status=200)
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "failed" and run.error["code"] == "malformed_json" and run.error["kind"] == "retry"
    assert len(api.calls) == 3
    assert saved_cursor("hellobike-rides", "rides") is None


def test_a_page_without_its_list_is_malformed(hub, api, account):
    api.add(responses.GET, RIDES_URL, json={"rides": []})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.error["code"] == "malformed_page"


def test_an_empty_page_ends_the_run_cleanly(hub, api, account):
    api.add(responses.GET, RIDES_URL, json={"data": [], "next_page_token": None})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "ok" and run.pages == 1 and run.fetched == 0
    assert saved_cursor("hellobike-rides", "rides") is None  # nothing seen: the cursor does not move


def test_an_empty_page_in_the_middle_is_followed(hub, api, account):
    first = ride(account, 1, NOW - timedelta(hours=2))
    api.add(responses.GET, RIDES_URL, json={"data": [], "next_page_token": "b"})
    api.add(responses.GET, RIDES_URL, json={"data": [first], "next_page_token": None})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "ok" and run.pages == 2 and run.accepted == 1


def test_a_repeated_page_token_stops_the_run(hub, api, account):
    api.add(responses.GET, RIDES_URL, json={"data": [ride(account, 1, NOW - timedelta(hours=2))],
                                            "next_page_token": "same"})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert run.status == "failed" and run.error == {"kind": "fail", "code": "pagination_loop",
                                                    "message": "The partner sent page token 'same' twice."}
    assert run.accepted == 1  # the pages read before the loop are kept


@pytest.mark.parametrize("status, kind, code", [(401, "config", "unauthorized"), (403, "config", "unauthorized"),
                                                (404, "config", "not_found"), (400, "fail", "bad_request")])
def test_client_errors_are_classified_and_not_retried(hub, api, account, status, kind, code):
    api.add(responses.GET, RIDES_URL, json={"error": "no"}, status=status)
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: pytest.fail("must not wait"))
    assert (run.error["kind"], run.error["code"]) == (kind, code) and len(api.calls) == 1


def test_bad_records_in_a_page_are_rejected_and_kept_not_lost(hub, api, account):
    good = ride(account, 1, NOW - timedelta(hours=2))
    bad = {**ride(account, 2, NOW - timedelta(hours=1)), "bike_type": "ebike"}
    api.add(responses.GET, RIDES_URL, json={"data": [good, bad], "next_page_token": None})
    (run,) = pull(hub, "hellobike-rides", sleep=lambda s: None)
    assert (run.accepted, run.rejected) == (1, 1)
    row = db.InboxRecord.get(db.InboxRecord.reason == "ebike_not_covered")
    assert row.source == "pull" and row.payload["order_id"] == "HB-000002"


def test_since_reads_again_without_moving_the_cursor_back(hub, api, account):
    rides = [ride(account, n, NOW - timedelta(hours=3 - n)) for n in range(3)]
    fake = serve_rides(api, rides)
    pull(hub, "hellobike-rides", sleep=lambda s: None)
    cursor = saved_cursor("hellobike-rides", "rides")
    fake.calls.clear()
    (run,) = pull(hub, "hellobike-rides", since=NOW - timedelta(days=3), sleep=lambda s: None)
    assert fake.calls[0]["since"] == "2026-11-18T04:00:00Z"
    assert run.skipped == 3 and run.accepted == 0
    assert saved_cursor("hellobike-rides", "rides") == cursor


# --- the biller: numbered pages, its own names, unsorted -----------------------------------------


def payment(account: str, n: int, paid_at: datetime) -> dict:
    return {"payment_id": f"SGCC-{n:06d}", "account_id": account, "biller": "sgcc-hubei", "bill_type": "power",
            "bill_account": f"33009{n:05d}", "billing_period": "2026-10", "amount": "236.50", "currency": "CNY",
            "paid_at": paid_at.astimezone(CST).isoformat(), "channel": "app"}


def test_biller_pages_by_number_and_saves_the_cursor_only_after_the_last_page(hub, api, account):
    pays = [payment(account, n, NOW - timedelta(hours=n + 1)) for n in range(3)]  # newest first: unsorted
    down = {"page2": True}

    def biller(request):
        page = parse_qs(urlparse(request.url).query)["page"][0]
        if page == "2" and down["page2"]:
            return 502, {}, "busy"
        chunk = pays[:2] if page == "1" else pays[2:]
        return 200, {}, json.dumps({"payments": chunk, "page": int(page), "pages": 2})

    api.add_callback(responses.GET, PAYMENTS_URL, callback=biller)
    (run,) = pull(hub, "sgcc-payments", sleep=lambda s: None)
    assert run.status == "failed" and run.accepted == 2
    assert saved_cursor("sgcc-payments", "payments") is None  # unsorted: no cursor until the whole run is read
    assert api.calls[0].request.headers["X-Api-Key"] == "bill-key-456"
    assert parse_qs(urlparse(api.calls[0].request.url).query)["from"] == ["2026-10-31T16:00:00Z"]

    down["page2"] = False
    (again,) = pull(hub, "sgcc-payments", sleep=lambda s: None)
    assert again.status == "ok" and again.skipped == 2 and again.accepted == 1
    assert saved_cursor("sgcc-payments", "payments") == datetime.fromisoformat(pays[0]["paid_at"])
    assert credited(hub, account) == 3 * 89


def test_biller_page_without_page_numbers_is_malformed(hub, api, account):
    api.add(responses.GET, PAYMENTS_URL, json={"payments": []})
    (run,) = pull(hub, "sgcc-payments", sleep=lambda s: None)
    assert run.error["code"] == "malformed_page"


# --- check, scheduling, admin view, CLI ----------------------------------------------------------


def test_check_answers_ok_or_a_typed_failure(hub, api):
    api.add(responses.GET, RIDES_URL, json={"data": [], "next_page_token": None})
    assert hub.connectors["hellobike-rides"].check().ok
    api.replace(responses.GET, RIDES_URL, json={}, status=401)
    result = hub.connectors["hellobike-rides"].check()
    assert not result.ok and result.failure.kind == "config" and result.failure.code == "unauthorized"


def test_check_names_an_unset_secret(hub, settings):
    settings.environ.pop("CARBONHUB_TEST_BILL_KEY")  # type: ignore[attr-defined]
    result = hub.connectors["sgcc-payments"].check()
    assert not result.ok and result.failure.code == "secret_unset"
    assert "CARBONHUB_TEST_BILL_KEY" in result.failure.message


def test_each_stream_is_a_coalesced_single_instance_job(hub):
    jobs = {job.id: job for job in build_scheduler(hub).get_jobs()}
    job = jobs["pull:hellobike-rides:rides"]
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=300)
    assert jobs["pull:sgcc-payments:payments"].trigger.interval == timedelta(hours=1)


def test_a_scheduled_job_runs_the_stream(hub, api, account):
    serve_rides(api, [ride(account, 1, NOW - timedelta(hours=1))])
    job = {j.id: j for j in build_scheduler(hub).get_jobs()}["pull:hellobike-rides:rides"]
    result = job.func(*job.args)
    assert result["status"] == "ok" and result["accepted"] == 1


def test_admin_view_shows_cursor_lag_counts_and_last_error(hub, api, account, client, clock):
    serve_rides(api, [ride(account, n, NOW - timedelta(hours=2 - n)) for n in range(2)])
    pull(hub, "hellobike-rides", sleep=lambda s: None)
    api.add(responses.GET, PAYMENTS_URL, json={}, status=403)
    pull(hub, "sgcc-payments", sleep=lambda s: None)
    clock.advance(minutes=10)
    response = client.get("/v1/admin/connectors", headers=auth("console"))
    assert response.status_code == 200
    view = {c["name"]: c for c in response.get_json()}
    (rides,) = view["hellobike-rides"]["streams"]
    assert view["hellobike-rides"]["mode"] == "pull" and view["hellobike-rides"]["every_s"] == 300
    assert rides["cursor"] == "2026-11-21T03:00:00Z" and rides["lag_s"] == 70 * 60
    assert rides["last_run"]["status"] == "ok" and rides["last_run"]["counts"]["accepted"] == 2
    assert rides["last_error"] is None
    (pays,) = view["sgcc-payments"]["streams"]
    assert pays["last_run"]["status"] == "failed" and pays["last_error"]["code"] == "unauthorized"
    assert client.get("/v1/admin/connectors", headers=auth("app")).status_code == 403


def test_cli_pull_and_connectors(hub, api, account, settings, tmp_path, monkeypatch):
    serve_rides(api, [ride(account, 1, NOW - timedelta(hours=1))])
    runner = CliRunner()
    obj = {"hub": hub}
    result = runner.invoke(__import__("hub.cli", fromlist=["main"]).main, ["pull", "hellobike-rides"], obj=obj)
    assert result.exit_code == 0, result.output
    assert "hellobike-rides/rides: ok: 1 page(s), 1 fetched, 0 already received, 1 accepted" in result.output
    listing = runner.invoke(__import__("hub.cli", fromlist=["main"]).main, ["connectors"], obj=obj)
    assert "hellobike-rides: pull bike-ride-api for hellobike, every 300 s" in listing.output
    assert "cursor 2026-11-21T03:00:00Z, lag 3600 s" in listing.output
    unknown = runner.invoke(__import__("hub.cli", fromlist=["main"]).main, ["pull", "nope"], obj=obj)
    assert unknown.exit_code == 2 and "'nope' is not a configured pull connector" in unknown.output


def test_unknown_connector_and_bad_options_stop_the_hub(config_data, clock, tmp_path):
    from hub.config import ConfigError, load_settings
    from hub.core import Hub

    config_data["connectors"]["hellobike-rides"]["options"]["page_size"] = 0
    config_data["connectors"]["typo"] = {"connector": "bike-rides-api", "partner": "hellobike"}
    config_data["connectors"]["wrong-kind"] = {"connector": "biller-payments-api", "partner": "hellobike",
                                               "options": {"base_url": "https://x.test"}}
    with pytest.raises(ConfigError) as exc:
        Hub(load_settings(data=config_data, environ={}), clock=clock, database_url=f"sqlite:///{tmp_path}/h.db")
    keys = dict(exc.value.errors)
    assert "connectors.hellobike-rides.options.page_size" in keys
    assert "No plugin registers connector 'bike-rides-api'" in keys["connectors.typo.connector"]
    assert "kind 'biller'" in keys["connectors.wrong-kind.partner"]


def test_a_disabled_connector_is_not_pulled_nor_scheduled(config_data, clock, tmp_path):
    from hub.config import load_settings
    from hub.core import Hub

    config_data["connectors"]["hellobike-rides"]["enabled"] = False
    h = Hub(load_settings(data=config_data, environ={}), clock=clock, database_url=f"sqlite:///{tmp_path}/h.db")
    with pytest.raises(KeyError, match="disabled"):
        pull(h, "hellobike-rides")
    assert not any(j.id.startswith("pull:hellobike-rides") for j in build_scheduler(h).get_jobs())


def test_shipped_config_binds_both_pull_connectors(tmp_path, clock):
    from hub.config import load_settings
    from hub.core import Hub

    h = Hub(load_settings(data=shipped_config(), environ={}), clock=clock,
            database_url=f"sqlite:///{tmp_path}/h.db")
    pulls = {c.binding.connector for c in h.connectors.of_mode("pull", enabled_only=False)}
    assert {"bike-ride-api", "biller-payments-api"} <= pulls


def test_plugins_list_their_connectors(hub):
    from click.testing import CliRunner

    from hub.cli import main

    out = CliRunner().invoke(main, ["plugins"], obj={"hub": hub}).output
    assert "  connectors: bike-ride-api (pull)" in out and "  connectors: file (batch), webhook (push)" in out


def test_unbound_file_imports_appear_in_the_admin_view(hub, account, tmp_path, clock):
    from connectors.importer import import_file
    from connectors.status import connector_status

    path = tmp_path / "rides.jsonl"
    path.write_text(json.dumps(ride(account, 1, NOW - timedelta(hours=1))) + "\n", encoding="utf-8")
    import_file(hub, "hellobike", path)
    view = {c["name"]: c for c in connector_status(hub)}
    (stream,) = view["hellobike.file"]["streams"]
    assert view["hellobike.file"]["mode"] == "batch" and stream["last_run"]["counts"]["accepted"] == 1
