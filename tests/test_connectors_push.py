"""Push as a connector: replay protection, per-partner signature settings, a partner's own body shape."""
from __future__ import annotations

from datetime import timedelta

import pytest
from api_helpers import PARTNER_SECRETS, auth, error_of, open_account, ride
from conftest import NOW

from connectors.base import FAIL, ConnectorFailure
from connectors.webhook import PushConnector
from hub import db, signing
from hub.config import ConfigError, load_settings
from hub.core import Hub
from hub.records import ConnectorSpec
from plugin_helpers import plugin_module


class TransitFeed(PushConnector):
    """A partner that posts ``{"txns": [...], "count": n}`` and cannot change it."""

    custom_body = True

    def split(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("txns"), list):
            raise ConnectorFailure(FAIL, "invalid_body", "Expected {\"txns\": [...]}.")
        if body.get("count") != len(body["txns"]):
            raise ConnectorFailure(FAIL, "count_mismatch", f"count says {body.get('count')}, "
                                                            f"{len(body['txns'])} txns came.")
        return body["txns"]


feed_plugin = plugin_module("feed", carbonhub_register_connectors=lambda ctx: [
    ConnectorSpec(id="txn-feed", mode="push", connector=TransitFeed, partner_kind="metro_operator")])


@pytest.fixture
def extra_plugins():
    return [feed_plugin]


def rides(account_id, clock, n=1):
    start = clock() - timedelta(days=1)
    return [ride(account_id, f"R-{i}", start + timedelta(minutes=50 * i)) for i in range(n)]


@pytest.fixture
def account(client, hub, clock):
    account_id = open_account(client, "cust-push")
    hub.set_consent(account_id, "metro", True, at=clock() - timedelta(days=30))
    return account_id


def send(client, partner: str, payload, ts: int):
    body = signing.encode(payload)
    return client.post(f"/v1/partners/{partner}/events", data=body,
                       headers=signing.signed_headers(partner, PARTNER_SECRETS[partner], body, ts))


def test_the_same_signed_request_is_accepted_once(client, clock, account):
    ts = int(clock().timestamp())
    first = send(client, "szmetro", {"records": rides(account, clock, 1)}, ts)
    assert first.status_code == 200 and first.get_json()["batch"]["accepted"] == 1
    replayed = send(client, "szmetro", {"records": rides(account, clock, 1)}, ts)
    assert replayed.status_code == 409 and error_of(replayed)["code"] == "replayed_request"
    # Signed again (a new timestamp), the same records are welcome and idempotent.
    again = send(client, "szmetro", {"records": rides(account, clock, 1)}, ts - 1)
    assert again.status_code == 200 and again.get_json()["batch"]["duplicate"] == 1


def test_spent_signatures_are_forgotten_once_stale(client, clock, account):
    ts = int(clock().timestamp())
    send(client, "szmetro", {"records": []}, ts)
    assert db.PushNonce.select().count() == 1
    clock.advance(seconds=61)  # past szmetro's 60 s window (this module's config)
    assert send(client, "szmetro", {"records": []}, ts + 61).status_code == 200
    assert [db.from_db(n.expires_at) for n in db.PushNonce.select()] == [clock() + timedelta(seconds=60)]


@pytest.fixture
def config_data(config_data):
    config_data["connectors"] = {
        "szmetro-push": {"connector": "webhook", "partner": "szmetro",
                         "options": {"signature_max_age_s": 60, "reject_replayed": True}},
        "card-feed": {"connector": "webhook", "partner": "cardcentre", "options": {"reject_replayed": False}},
    }
    return config_data


def test_a_partner_may_have_a_stricter_signature_age(client, clock, account):
    old = int(clock().timestamp()) - 90  # fine under the hub's 300 s, stale under szmetro's 60 s
    response = send(client, "szmetro", {"records": []}, old)
    assert response.status_code == 401 and error_of(response)["code"] == "stale_timestamp"
    assert "more than 60 s" in error_of(response)["message"]
    assert send(client, "cardcentre", {"records": []}, old).status_code == 200


def test_replay_protection_can_be_switched_off_per_partner(client, clock):
    ts = int(clock().timestamp())
    assert send(client, "cardcentre", {"records": []}, ts).status_code == 200
    assert send(client, "cardcentre", {"records": []}, ts).status_code == 200


def test_each_push_is_a_run_of_its_connector(client, clock, account, hub):
    send(client, "szmetro", {"records": rides(account, clock, 2) + [{"ride_id": "broken"}]},
         int(clock().timestamp()))
    run = db.ConnectorRun.get(db.ConnectorRun.connector == "szmetro-push")
    assert (run.mode, run.stream, run.fetched) == ("push", "events", 3)
    assert run.counts == {"accepted": 2, "duplicate": 0, "rejected": 1}
    view = {c["name"]: c for c in client.get("/v1/admin/connectors", headers=auth("console")).get_json()}
    assert view["szmetro-push"]["streams"][0]["last_run"]["counts"]["accepted"] == 2


def test_a_partner_push_connector_reads_its_own_body_shape(config_data, clock, tmp_path):
    config_data["connectors"] = {"szmetro-feed": {"connector": "txn-feed", "partner": "szmetro"}}
    from conftest import SECRETS

    from hub.app import create_app

    settings = load_settings(data=config_data, environ=dict(SECRETS))
    hub = Hub(settings, clock=clock, database_url=f"sqlite:///{tmp_path}/feed.db", extra_plugins=[feed_plugin])
    hub.init_db()
    acc, _ = hub.open_account("feed-user")
    hub.set_consent(acc.id, "metro", True, at=NOW - timedelta(days=30))
    client = create_app(hub=hub).test_client()
    ts = int(clock().timestamp())
    txns = rides(acc.id, clock, 2)
    ok = send(client, "szmetro", {"txns": txns, "count": 2}, ts)
    assert ok.status_code == 200 and ok.get_json()["batch"]["accepted"] == 2
    bad = send(client, "szmetro", {"txns": txns, "count": 3}, ts - 1)
    assert bad.status_code == 422 and error_of(bad) == {"code": "count_mismatch", "message": "count says 3, 2 txns came."}
    usual = send(client, "szmetro", {"records": txns}, ts - 2)
    assert usual.status_code == 422 and error_of(usual)["code"] == "invalid_body"
    # The usual shape stays the rule for every other partner.
    assert send(client, "cardcentre", {"txns": []}, ts).status_code == 422


def test_one_push_connector_per_partner(config_data, clock, tmp_path):
    config_data["connectors"]["second"] = {"connector": "webhook", "partner": "szmetro"}
    with pytest.raises(ConfigError) as exc:
        Hub(load_settings(data=config_data, environ={}), clock=clock, database_url=f"sqlite:///{tmp_path}/x.db",
            extra_plugins=[feed_plugin])
    assert "connectors.szmetro-push.partner" in dict(exc.value.errors)


def test_a_connector_for_an_unknown_partner_is_a_config_error(config_data):
    config_data["connectors"]["ghost"] = {"connector": "webhook", "partner": "ghost"}
    with pytest.raises(ConfigError) as exc:
        load_settings(data=config_data, environ={})
    assert dict(exc.value.errors)["connectors.ghost.partner"] == "Partner 'ghost' is not configured under [partners]."
