"""The partners' benefits: airline miles over HTTP, the library's welcome card, metro vouchers, bill coupons.

Partner APIs are real HTTP answered by ``responses``; the hub's code is never
mocked.
"""
from __future__ import annotations

import json
import re
import threading
from datetime import date, timedelta

import pytest
import requests
import responses
from api_helpers import auth, error_of
from conftest import NOW
from exchange_helpers import credit_points, partner_benefits, points_of

from hub import codes, db
from hub.db import LedgerTransaction, Redemption
from hub.exchange import sink
from hub.ledger import verify
from hub.lots import rebuild

AIRLINE = "https://air.example/loyalty"
LIBRARY = "https://library.example/api"
SECRETS = {"CARBONHUB_AIRLINE_API_KEY": "air-key-0123456789", "CARBONHUB_LIBRARY_API_KEY": "lib-key-0123456789",
           "CARBONHUB_COUPON_SECRET_SGCC": "coupon-secret-0123456789"}


@pytest.fixture
def config_data(config_data):
    config_data["benefits"] = {
        "airline-miles": {"partner": "airchina", "cost": 1000, "options": {"miles": 500}},
        "plus-weekly-card": {"partner": "citicpress", "cost": 0, "welcome": True, "limit_per_user": 1,
                             "stock": 1000},
        "metro-ride-voucher": {"partner": "szmetro", "cost": 200, "stock": 5, "options": {"valid_days": 30}},
        "bill-discount": {"partner": "sgcc", "cost": 500, "options": {"discount_fen": 500, "valid_days": 90}},
    }
    config_data["plugin_config"] = {
        "airlines": {"base_url": AIRLINE, "api_key_env": "CARBONHUB_AIRLINE_API_KEY", "timeout_s": 2},
        "reading": {"base_url": LIBRARY, "api_key_env": "CARBONHUB_LIBRARY_API_KEY"},
        "utility_payments": {"coupon_secret_env": "CARBONHUB_COUPON_SECRET_SGCC"},
    }
    config_data["redemptions"] = {"fulfil_attempts": 3, "fulfil_backoff_ms": 0}
    return config_data


@pytest.fixture
def settings(settings):
    settings.environ = {**settings.environ, **SECRETS}
    return settings


@pytest.fixture
def extra_plugins():
    return partner_benefits("airlines", "reading", "metro", "utility_payments")


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def acc(hub, http):
    http.add(responses.POST, f"{LIBRARY}/v1/cards", status=201,
             json={"card_code": "PLUS-OPEN", "valid_until": "2026-11-28"})
    account, _ = hub.open_account("traveller-1")
    credit_points(hub, account.id, 5000, "c")
    return account.id


def redeem(client, account, benefit, key="k-1", details=None):
    return client.post(f"/v1/accounts/{account}/redemptions", json={"benefit": benefit, "details": details or {}},
                       headers={**auth("app"), "Idempotency-Key": key})


def calls_to(http, url):
    return [c for c in http.calls if c.request.url == url]


# --- airline miles -----------------------------------------------------------------------------

CREDITS = f"{AIRLINE}/v1/miles/credits"


def test_miles_are_credited_through_the_airline_api(client, acc, http):
    http.add(responses.POST, CREDITS, status=201, json={"credit_id": "MC-88120", "member_id": "CA1234567890",
                                                         "miles": 500})
    response = redeem(client, acc, "airline-miles", details={"member_id": "CA1234567890"})
    body = response.get_json()
    assert response.status_code == 201 and body["status"] == "fulfilled", body
    assert body["fulfilment"] == {"code": None, "reference": "MC-88120",
                                  "detail": {"miles": 500, "member_id": "CA1234567890"}}
    (call,) = calls_to(http, CREDITS)
    assert call.request.headers["Authorization"] == "Bearer air-key-0123456789"
    assert call.request.headers["Idempotency-Key"] == body["id"]
    assert json.loads(call.request.body) == {"member_id": "CA1234567890", "miles": 500, "reference": body["id"]}
    assert points_of(acc) == 4000
    post = LedgerTransaction.get_by_id(body["transactions"]["resolve"])
    assert {p.account for p in db.Posting.select().where(db.Posting.tx_seq == post.seq)} == {
        "@escrow:redemptions", sink("airchina")}


def test_an_unknown_member_is_refused_at_once(client, acc, http):
    http.add(responses.POST, CREDITS, status=404,
             json={"error": {"code": "unknown_member", "message": "No member CA0000000000."}})
    body = redeem(client, acc, "airline-miles", details={"member_id": "CA0000000000"}).get_json()
    assert body["status"] == "voided" and body["attempts"] == 1
    assert body["failure"] == {"code": "unknown_member", "message": "The partner refused: No member CA0000000000.",
                               "retryable": False}
    assert points_of(acc) == 5000 and len(calls_to(http, CREDITS)) == 1
    assert not calls_to(http, f"{CREDITS}/{body['id']}/reversal")  # refused: nothing to reverse


def test_a_5xx_is_retried_with_the_same_key(client, acc, http):
    http.add(responses.POST, CREDITS, status=503, body="busy")
    http.add(responses.POST, CREDITS, status=201, json={"credit_id": "MC-2", "miles": 500})
    body = redeem(client, acc, "airline-miles", details={"member_id": "CA1"}).get_json()
    assert body["status"] == "fulfilled" and body["attempts"] == 2
    keys = {c.request.headers["Idempotency-Key"] for c in calls_to(http, CREDITS)}
    assert keys == {body["id"]}


@pytest.mark.parametrize("failure, code", [
    ({"body": requests.exceptions.ReadTimeout("read timed out")}, "partner_timeout"),
    ({"body": requests.exceptions.ConnectionError("refused")}, "partner_unreachable"),
    ({"status": 502, "body": "<html>bad gateway</html>"}, "partner_error"),
    ({"status": 200, "body": "<html>maintenance</html>", "content_type": "text/html"}, "malformed_response"),
    ({"status": 201, "json": {"status": "ok"}}, "malformed_response"),
    ({"status": 201, "json": {"credit_id": "MC-9", "miles": 50}}, "malformed_response"),
])
def test_a_partner_that_stays_unavailable_voids_refunds_and_reverses(client, acc, http, failure, code):
    for _ in range(3):
        http.add(responses.POST, CREDITS, **failure)
    http.add(responses.POST, re.compile(rf"{re.escape(CREDITS)}/rdm_\w+/reversal"), status=404,
             json={"error": "not_found"})  # the airline never credited it
    body = redeem(client, acc, "airline-miles", details={"member_id": "CA1"}).get_json()
    assert body["status"] == "voided" and body["attempts"] == 3
    assert body["failure"]["code"] == code and body["failure"]["retryable"] is True
    assert points_of(acc) == 5000
    (reversal,) = [c for c in http.calls if c.request.url.endswith("/reversal")]  # after the refund, once
    assert reversal.request.url == f"{CREDITS}/{body['id']}/reversal"
    assert verify().ok and rebuild().ok


def test_a_failing_reversal_is_logged_and_the_refund_stands(client, acc, http, caplog):
    http.add(responses.POST, CREDITS, body=requests.exceptions.ReadTimeout("slow"))
    http.add(responses.POST, CREDITS, body=requests.exceptions.ReadTimeout("slow"))
    http.add(responses.POST, CREDITS, body=requests.exceptions.ReadTimeout("slow"))
    body = redeem(client, acc, "airline-miles", details={"member_id": "CA1"}).get_json()
    assert body["status"] == "voided" and points_of(acc) == 5000
    assert "cancelling the fulfilment" in caplog.text


def test_the_airline_asks_for_a_member_id(client, acc):
    response = redeem(client, acc, "airline-miles")
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"details": {"member_id": ["Missing data for required field."]}}
    assert Redemption.select().where(Redemption.benefit == "airline-miles").count() == 0


# --- the library's welcome card -------------------------------------------------------------------


def test_a_new_account_gets_the_plus_weekly_card_once(hub, http):
    http.add(responses.POST, f"{LIBRARY}/v1/cards", status=201,
             json={"card_code": "PLUS-7Q2K-99XD", "valid_until": "2026-11-28"})
    account, created = hub.open_account("reader-1")
    assert created
    (card,) = Redemption.select().where(Redemption.account == account.id)
    assert (card.benefit, card.cost, card.status, card.idempotency_key) == (
        "plus-weekly-card", 0, "fulfilled", f"welcome:{account.id}")
    assert card.fulfilment["code"] == "PLUS-7Q2K-99XD"
    assert card.hold_seq is None and card.resolve_seq is None  # free: nothing moves on the ledger
    (call,) = calls_to(http, f"{LIBRARY}/v1/cards")
    assert json.loads(call.request.body) == {"type": "plus-weekly", "reference": card.id}
    # announced again (a retried notification): still one card
    hub.notify("carbonhub_account_opened", account=account)
    hub.open_account("reader-1")
    assert Redemption.select().where(Redemption.account == account.id).count() == 1
    assert len(calls_to(http, f"{LIBRARY}/v1/cards")) == 1


def test_no_card_when_the_bank_does_not_offer_it(settings, database_url, clock, http):
    from dataclasses import replace

    from hub.core import Hub

    settings.benefits = {**settings.benefits,
                         "plus-weekly-card": replace(settings.benefits["plus-weekly-card"], enabled=False)}
    hub = Hub(settings, clock=clock, database_url=database_url,
              extra_plugins=partner_benefits("airlines", "reading", "metro", "utility_payments"))
    hub.init_db()
    account, _ = hub.open_account("reader-2")
    assert Redemption.select().count() == 0 and not http.calls


def test_the_welcome_card_is_not_for_sale(client, acc):
    response = redeem(client, acc, "plus-weekly-card")
    assert response.status_code == 409 and error_of(response)["code"] == "benefit_closed"
    listed = [b["id"] for b in client.get("/v1/benefits", headers=auth("reader")).get_json()]
    assert "plus-weekly-card" not in listed and "airline-miles" in listed


# --- metro ride vouchers from a code pool ---------------------------------------------------------


def test_vouchers_come_from_the_pool_each_code_once(client, hub, acc):
    codes.load_codes("metro-ride-voucher", ["SZM-A", "SZM-B"], NOW)
    first = redeem(client, acc, "metro-ride-voucher", key="v1").get_json()
    second = redeem(client, acc, "metro-ride-voucher", key="v2").get_json()
    assert (first["fulfilment"]["code"], second["fulfilment"]["code"]) == ("SZM-A", "SZM-B")
    assert first["fulfilment"]["detail"] == {"valid_days": 30}
    third = redeem(client, acc, "metro-ride-voucher", key="v3").get_json()
    assert third["status"] == "voided" and third["failure"]["code"] == "codes_exhausted"
    assert points_of(acc) == 5000 - 400
    assert codes.take_code("metro-ride-voucher", first["id"], NOW) == "SZM-A"  # asked again: the same code


def test_a_bad_code_file_is_refused():
    with pytest.raises(codes.CodeError, match="line 2"):
        codes.read_codes(["OK-1", "bad\x07code"])


def test_concurrent_takers_never_get_the_same_code(hub, database_url):
    codes.load_codes("metro-ride-voucher", [f"C-{i:03d}" for i in range(40)], NOW)
    got: dict[str, str | None] = {}
    errors = []

    def take(n):
        try:
            for i in range(10):
                rid = f"rdm_t{n}_{i}"
                got[rid] = codes.take_code("metro-ride-voucher", rid, NOW)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.database.close()

    threads = [threading.Thread(target=take, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    handed = [c for c in got.values() if c is not None]
    assert len(handed) == 40 and len(set(handed)) == 40  # 60 asked, 40 codes, none twice
    assert sum(c is None for c in got.values()) == 20


# --- the biller's coupon -------------------------------------------------------------------------


def test_a_bill_coupon_the_biller_can_verify_offline(client, acc):
    from plugins.utility_payments.benefits import verify_coupon

    body = redeem(client, acc, "bill-discount").get_json()
    assert body["status"] == "fulfilled"
    coupon = body["fulfilment"]["code"]
    until = date(2026, 11, 21) + timedelta(days=90)
    assert body["fulfilment"]["detail"] == {"discount_fen": 500, "valid_until": until.isoformat()}
    assert coupon.startswith(f"UB-500-{until:%Y%m%d}-{body['id']}-")
    secret = SECRETS["CARBONHUB_COUPON_SECRET_SGCC"]
    assert verify_coupon(secret, coupon, date(2026, 12, 1)) == 500
    assert verify_coupon(secret, coupon, until + timedelta(days=1)) is None  # expired
    assert verify_coupon("another-secret", coupon, date(2026, 12, 1)) is None
    forged = coupon.replace("UB-500-", "UB-5000-")
    assert verify_coupon(secret, forged, date(2026, 12, 1)) is None


def test_a_coupon_without_its_secret_is_refused_and_refunded(settings, database_url, clock):
    from hub.app import create_app
    from hub.core import Hub

    settings.environ = {k: v for k, v in settings.environ.items() if k != "CARBONHUB_COUPON_SECRET_SGCC"}
    hub = Hub(settings, clock=clock, database_url=database_url,
              extra_plugins=partner_benefits("airlines", "reading", "metro", "utility_payments"))
    hub.init_db()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, f"{LIBRARY}/v1/cards", status=201, json={"card_code": "X"})
        account = hub.open_account("payer")[0].id
    credit_points(hub, account, 600, "c")
    body = redeem(create_app(hub=hub).test_client(), account, "bill-discount").get_json()
    assert body["status"] == "voided" and body["failure"]["code"] == "not_configured"
    assert points_of(account) == 600
