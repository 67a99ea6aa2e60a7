"""Accounts, consents, scenarios and methodologies over HTTP."""
from __future__ import annotations

import types
from datetime import datetime, timedelta, timezone

import pytest
from api_helpers import auth, error_of, metro_grams, metro_points, open_account, push, ride

from conftest import NOW
from hub.hookspecs import hookimpl


# --- accounts ------------------------------------------------------------------------------


def test_open_account_then_repeat_returns_the_same(client, hub):
    first = client.post("/v1/accounts", json={"bank_ref": "cust-1"}, headers=auth())
    assert first.status_code == 201
    account = first.get_json()
    assert account["id"].startswith("acc_") and account["bank_ref"] == "cust-1"
    assert account["opened_at"] == "2026-11-21T04:00:00+00:00"
    assert account["balances"] == {"carbon_g": 0, "points": 0}
    assert first.headers["Location"] == f"/v1/accounts/{account['id']}"

    again = client.post("/v1/accounts", json={"bank_ref": "cust-1"}, headers=auth())
    assert again.status_code == 200 and again.get_json() == account
    other = client.post("/v1/accounts", json={"bank_ref": "cust-2"}, headers=auth())
    assert other.status_code == 201 and other.get_json()["id"] != account["id"]


class TestAccountOpenedHook:
    opened: list[str] = []

    @pytest.fixture
    def extra_plugins(self):
        welcome = types.ModuleType("welcome")
        welcome.CARBONHUB_API = "1.0"
        welcome.carbonhub_account_opened = hookimpl(lambda ctx, account: self.opened.append(account.bank_ref))
        self.opened.clear()
        return [welcome]

    def test_hook_runs_once_per_account(self, client):
        client.post("/v1/accounts", json={"bank_ref": "cust-w"}, headers=auth())
        client.post("/v1/accounts", json={"bank_ref": "cust-w"}, headers=auth())
        assert self.opened == ["cust-w"]


def test_get_account_with_balances_from_the_ledger(client, hub, clock):
    account = open_account(client, "cust-b")
    hub.set_consent(account, "metro", True, at=NOW - timedelta(days=2))
    push(client, "szmetro", [ride(account, "R-1", NOW - timedelta(days=1), km="10"),
                             ride(account, "R-2", NOW - timedelta(hours=5), km="7.3")], clock)
    response = client.get(f"/v1/accounts/{account}", headers=auth("reader"))
    assert response.status_code == 200
    grams = metro_grams("10") + metro_grams("7.3")
    assert response.get_json()["balances"] == {
        "carbon_g": grams, "points": metro_points(metro_grams("10")) + metro_points(metro_grams("7.3"))}
    assert grams == 468 + 341


def test_unknown_account_is_404(client):
    response = client.get("/v1/accounts/acc_0000", headers=auth())
    assert response.status_code == 404
    err = error_of(response)
    assert err["code"] == "not_found" and "acc_0000" in err["message"]


# --- consents --------------------------------------------------------------------------------


def test_grant_and_revoke_are_idempotent_and_logged(client, clock):
    account = open_account(client, "cust-c")
    url = f"/v1/accounts/{account}/consents/metro"

    granted = client.put(url, headers=auth())
    assert granted.status_code == 200
    assert granted.get_json() == {"account": account, "scenario": "metro", "granted": True, "changed": True,
                                  "updated_at": "2026-11-21T04:00:00+00:00"}
    clock.advance(minutes=5)
    again = client.put(url, headers=auth()).get_json()
    assert again["changed"] is False and again["updated_at"] == "2026-11-21T04:00:00+00:00"

    clock.advance(hours=1)
    revoked = client.delete(url, headers=auth())
    assert revoked.status_code == 200
    assert revoked.get_json()["granted"] is False and revoked.get_json()["changed"] is True
    assert client.delete(url, headers=auth()).get_json()["changed"] is False

    listed = client.get(f"/v1/accounts/{account}/consents", headers=auth("reader"))
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["consents"] == [{"scenario": "metro", "granted": False, "updated_at": "2026-11-21T05:05:00+00:00"}]
    assert [(e["scenario"], e["action"], e["at"], e["source"]) for e in body["log"]] == [
        ("metro", "grant", "2026-11-21T04:00:00+00:00", "api"),
        ("metro", "revoke", "2026-11-21T05:05:00+00:00", "api"),
    ]


def test_revoking_what_was_never_granted_changes_nothing(client):
    account = open_account(client, "cust-n")
    response = client.delete(f"/v1/accounts/{account}/consents/estatement", headers=auth())
    assert response.status_code == 200 and response.get_json()["changed"] is False
    assert client.get(f"/v1/accounts/{account}/consents", headers=auth()).get_json() == {
        "account": account, "consents": [], "log": []}


@pytest.mark.parametrize("method", ["put", "delete"])
def test_unknown_scenario_is_404(client, method):
    account = open_account(client, "cust-s")
    response = getattr(client, method)(f"/v1/accounts/{account}/consents/teleport", headers=auth())
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_scenario"


@pytest.mark.parametrize("method, path", [("put", "/consents/metro"), ("delete", "/consents/metro"),
                                          ("get", "/consents")])
def test_consents_of_unknown_account_are_404(client, method, path):
    response = getattr(client, method)(f"/v1/accounts/acc_missing{path}", headers=auth())
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


class TestDisabledScenario:
    @pytest.fixture
    def config_data(self, config_data):
        config_data["scenarios"]["estatement"]["enabled"] = False
        return config_data

    def test_consent_to_a_disabled_scenario_is_404(self, client):
        account = open_account(client, "cust-d")
        response = client.put(f"/v1/accounts/{account}/consents/estatement", headers=auth())
        assert response.status_code == 404 and error_of(response)["code"] == "unknown_scenario"

    def test_disabled_scenario_is_not_listed(self, client):
        assert [s["id"] for s in client.get("/v1/scenarios").get_json()] == ["metro"]


# --- scenarios and methodologies -------------------------------------------------------------------


def test_scenarios_are_public_and_show_effective_caps(client, hub):
    response = client.get("/v1/scenarios")
    assert response.status_code == 200
    scenarios = response.get_json()
    assert [s["id"] for s in scenarios] == hub.enabled_scenarios() == ["estatement", "metro"]
    metro = scenarios[1]
    assert metro["unit"] == "pkm" and metro["partners"] == ["szmetro"]
    assert metro["methodology"]["id"] == "metro-avoided-car"
    assert metro["methodology"]["version_in_force"] == "2021.1"
    # The methodology allows 10 rides a day, the bank's config 5: the lower one is shown.
    assert metro["caps"] == {"per_day_count": 5, "per_day_g": 3000, "per_month_g": 60000}
    assert metro["points"] == {"per_kg": 100, "bonus": 1}


def test_methodologies_list_every_version_with_sources(client):
    response = client.get("/v1/methodologies")
    assert response.status_code == 200
    by_id = {m["id"]: m for m in response.get_json()}
    # Every installed plugin's methodologies are listed, enabled or not; "scenarios" says which are in use.
    assert {"metro-avoided-car", "estatement-paperless", "bus-avoided-car"} <= set(by_id)
    assert by_id["bus-avoided-car"]["scenarios"] == []  # the test config does not enable bus
    metro = by_id["metro-avoided-car"]
    assert metro["scenarios"] == ["metro"]
    versions = {v["version"]: v for v in metro["versions"]}
    version = versions["2021.1"]
    assert version["in_force_today"] is True
    assert version["effective_from"] == "2021-01-01" and version["effective_to"] is None
    # A later document ends the open-ended one without editing it.
    later = [v for v in metro["versions"] if v["effective_from"] > "2021-01-01"]
    assert version["superseded_on"] == min((v["effective_from"] for v in later), default=None)
    assert sum(v["in_force_today"] for v in metro["versions"]) == 1
    assert version["factors"]["baseline"]["value"] == "46.8"
    assert version["factors"]["baseline"]["unit"] == "gCO2e/pkm"
    assert "Shenzhen" in version["factors"]["baseline"]["source"]

    one = client.get("/v1/methodologies/metro-avoided-car")
    assert one.status_code == 200 and one.get_json() == metro


def test_in_force_today_follows_the_clock(client, clock):
    clock.current = datetime(2020, 6, 1, tzinfo=timezone.utc)  # before the 2021 document took effect
    versions = client.get("/v1/methodologies/metro-avoided-car").get_json()["versions"]
    assert versions and not any(v["in_force_today"] for v in versions)


def test_unknown_methodology_is_404(client):
    response = client.get("/v1/methodologies/nope")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
