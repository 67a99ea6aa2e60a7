"""Partner push: HMAC signatures, timestamps, batch limits and body validation."""
from __future__ import annotations

from datetime import timedelta

import pytest
from api_helpers import PARTNER_SECRETS, error_of, metro_grams, open_account, push, ride, signed

from hub import db, signing


# --- hub.signing ------------------------------------------------------------------------

# Computed independently with: printf '%s' '1795233600.{"records":[]}' |
#   openssl dgst -sha256 -hmac 'metro-secret-0123456789'
OPENSSL_VECTOR = "0c304b6f88688b3758eff7de57be0ac5f50e1f182b9bc4d0cbed4248db82c840"


def test_sign_matches_openssl():
    assert signing.sign("metro-secret-0123456789", 1795233600, b'{"records":[]}') == OPENSSL_VECTOR
    assert signing.sign(b"metro-secret-0123456789", "1795233600", '{"records":[]}') == OPENSSL_VECTOR


@pytest.mark.parametrize("given", [OPENSSL_VECTOR, "sha256=" + OPENSSL_VECTOR, OPENSSL_VECTOR.upper(),
                                   "SHA256=" + OPENSSL_VECTOR, f"  {OPENSSL_VECTOR} "])
def test_verify_accepts_prefix_and_case(given):
    assert signing.verify("metro-secret-0123456789", 1795233600, b'{"records":[]}', given)


@pytest.mark.parametrize("secret, ts, body, given", [
    ("other-secret", 1795233600, b'{"records":[]}', OPENSSL_VECTOR),
    ("metro-secret-0123456789", 1795233601, b'{"records":[]}', OPENSSL_VECTOR),
    ("metro-secret-0123456789", 1795233600, b'{"records": []}', OPENSSL_VECTOR),
    ("metro-secret-0123456789", 1795233600, b'{"records":[]}', OPENSSL_VECTOR[:-1]),
    ("metro-secret-0123456789", 1795233600, b'{"records":[]}', "sha1=" + OPENSSL_VECTOR),
    ("metro-secret-0123456789", 1795233600, b'{"records":[]}', "\u00e9" * 64),
    ("metro-secret-0123456789", 1795233600, b'{"records":[]}', ""),
])
def test_verify_refuses_any_change(secret, ts, body, given):
    assert not signing.verify(secret, ts, body, given)


def test_signed_headers_carry_partner_timestamp_and_prefixed_signature():
    headers = signing.signed_headers("szmetro", "metro-secret-0123456789", b'{"records":[]}', 1795233600)
    assert headers == {"Content-Type": "application/json", "X-Carbonhub-Partner": "szmetro",
                       "X-Carbonhub-Timestamp": "1795233600",
                       "X-Carbonhub-Signature": "sha256=" + OPENSSL_VECTOR}


# --- the endpoint -----------------------------------------------------------------------------


@pytest.fixture
def account(client, hub, clock):
    account_id = open_account(client, "cust-push")
    hub.set_consent(account_id, "metro", True, at=clock() - timedelta(days=30))
    return account_id


def rides(account_id, clock, n=1):
    start = clock() - timedelta(days=1)
    return [ride(account_id, f"R-{i}", start + timedelta(minutes=50 * i)) for i in range(n)]


def inbox_count() -> int:
    return db.InboxRecord.select().count()


def test_signed_push_is_processed(client, hub, clock, account):
    response = push(client, "szmetro", rides(account, clock, 2), clock)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["batch"]["records"] == 2 and body["batch"]["accepted"] == 2
    assert body["batch"]["grams"] == 2 * metro_grams("18.6")
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert [r["event_id"] for r in body["results"]] == ["R-0", "R-1"]
    behaviour = body["results"][0]["behaviours"][0]
    assert behaviour["status"] == "accepted" and behaviour["grams"] == metro_grams("18.6")
    assert isinstance(behaviour["transaction"], int)
    assert inbox_count() == 2


def test_unprefixed_signature_is_accepted(client, clock, account):
    body, headers = signed("szmetro", {"records": rides(account, clock)}, clock)
    headers["X-Carbonhub-Signature"] = headers["X-Carbonhub-Signature"].removeprefix("sha256=")
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 200


def test_pushing_the_same_batch_again_credits_nothing_more(client, hub, clock, account):
    records = rides(account, clock, 2)
    first = push(client, "szmetro", records, clock).get_json()
    again = push(client, "szmetro", records, clock).get_json()
    assert first["batch"]["accepted"] == 2
    assert again["batch"]["accepted"] == 0 and again["batch"]["duplicate"] == 2
    assert again["batch"]["reasons"] == {"duplicate_event": 2}
    assert [r["behaviours"][0]["duplicate_of"] for r in again["results"]] == \
        [r["behaviours"][0]["id"] for r in first["results"]]
    assert client.get(f"/v1/accounts/{account}", headers={"Authorization": "Bearer app-key-0123456789"}
                      ).get_json()["balances"]["carbon_g"] == 2 * metro_grams("18.6")


@pytest.mark.parametrize("mutate, code", [
    (lambda h, b: h.update({"X-Carbonhub-Signature": "sha256=" + "0" * 64}), "bad_signature"),
    (lambda h, b: h.update({"X-Carbonhub-Signature": "sha256=" + signing.sign("wrong", h["X-Carbonhub-Timestamp"],
                                                                              b)}), "bad_signature"),
    # Re-stamped without re-signing: the signature covers the timestamp.
    (lambda h, b: h.update({"X-Carbonhub-Timestamp": str(int(h["X-Carbonhub-Timestamp"]) - 1)}), "bad_signature"),
    (lambda h, b: h.update({"X-Carbonhub-Partner": "cardcentre"}), "unauthorized"),
    (lambda h, b: h.pop("X-Carbonhub-Signature"), "unauthorized"),
    (lambda h, b: h.pop("X-Carbonhub-Timestamp"), "unauthorized"),
    (lambda h, b: h.pop("X-Carbonhub-Partner"), "unauthorized"),
    (lambda h, b: h.update({"X-Carbonhub-Timestamp": "2026-11-21T04:00:00Z"}), "unauthorized"),
])
def test_bad_credentials_are_401_and_store_nothing(client, clock, account, mutate, code):
    body, headers = signed("szmetro", {"records": rides(account, clock)}, clock)
    mutate(headers, body)
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert inbox_count() == 0


def test_body_changed_after_signing_is_bad_signature(client, clock, account):
    body, headers = signed("szmetro", {"records": rides(account, clock)}, clock)
    tampered = body.replace(b'"18.6"', b'"98.6"')
    assert tampered != body
    response = client.post("/v1/partners/szmetro/events", data=tampered, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


@pytest.mark.parametrize("skew_s, status", [(-301, 401), (301, 401), (-299, 200), (299, 200), (0, 200)])
def test_timestamp_must_be_within_max_age(client, clock, account, skew_s, status):
    response = push(client, "szmetro", rides(account, clock), clock, skew_s=skew_s)
    assert response.status_code == status
    if status == 401:
        assert error_of(response)["code"] == "stale_timestamp"


def test_staleness_follows_the_hub_clock(client, clock, account):
    body, headers = signed("szmetro", {"records": rides(account, clock)}, clock)
    clock.advance(minutes=6)  # the request sat in a queue, or was captured and replayed
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "stale_timestamp"


def test_unknown_partner(client, clock, account):
    body, headers = signed("szmetro", {"records": []}, clock)
    headers["X-Carbonhub-Partner"] = "nobody"
    response = client.post("/v1/partners/nobody/events", data=body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "unknown_partner"


def test_partner_without_secret_is_unknown(client, hub, clock, account):
    hub.settings.environ.pop("CARBONHUB_SECRET_SZMETRO")  # the variable is unset in this process
    response = push(client, "szmetro", rides(account, clock), clock)
    assert response.status_code == 401 and error_of(response)["code"] == "unknown_partner"


class TestDisabledPartner:
    @pytest.fixture
    def config_data(self, config_data):
        config_data["partners"]["szmetro"]["enabled"] = False
        return config_data

    def test_disabled_partner_is_refused(self, client, clock, account):
        response = push(client, "szmetro", rides(account, clock), clock)
        assert response.status_code == 401 and error_of(response)["code"] == "unknown_partner"


def test_a_partner_cannot_sign_for_another(client, clock, account):
    # cardcentre's valid signature, sent to szmetro's endpoint under cardcentre's key id.
    body, headers = signed("cardcentre", {"records": rides(account, clock)}, clock)
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    # ... and under szmetro's key id, the signature does not verify with szmetro's secret.
    headers["X-Carbonhub-Partner"] = "szmetro"
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


def test_max_batch_records(client, hub, clock, account):
    limit = hub.settings.max_batch_records
    assert limit == 50  # the test config
    start = clock() - timedelta(days=20)
    records = [ride(account, f"R-{i}", start + timedelta(hours=9 * i)) for i in range(limit + 1)]
    response = push(client, "szmetro", records, clock)
    assert response.status_code == 413
    assert error_of(response)["code"] == "batch_too_large"
    assert inbox_count() == 0
    response = push(client, "szmetro", records[:limit], clock)
    assert response.status_code == 200 and response.get_json()["batch"]["records"] == limit


@pytest.mark.parametrize("payload, field", [
    ({"records": {"ride_id": "x"}}, "records"),
    ({"records": "R-1"}, "records"),
    ({"records": None}, "records"),
    ({}, "records"),
    ({"records": [], "batch": "b1"}, "batch"),
    ([], "_schema"),
])
def test_body_shape_errors_are_422(client, clock, payload, field):
    body, headers = signed("szmetro", payload, clock)
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    err = error_of(response)
    assert err["code"] == "validation_error" and field in err["fields"]


def test_non_object_record_is_named_by_index(client, clock, account):
    records = rides(account, clock, 2)
    records.insert(1, ["not", "an", "object"])
    body, headers = signed("szmetro", {"records": records}, clock)
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 422
    assert list(error_of(response)["fields"]["records"]) == ["1"]
    assert inbox_count() == 0


def test_malformed_json_is_400_once_signed(client, clock):
    body, headers = signed("szmetro", None, clock, body=b'{"records": [')
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"


def test_authentication_comes_before_body_validation(client, clock):
    body, headers = signed("szmetro", None, clock, body=b'{"records": [')
    headers["X-Carbonhub-Signature"] = "sha256=" + "0" * 64
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


def test_records_that_fail_normalization_are_rejected_not_errors(client, clock, account):
    broken = ride(account, "R-bad", clock() - timedelta(hours=3))
    del broken["distance_km"]
    response = push(client, "szmetro", [broken, {"unexpected": "shape"}], clock)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("rejected", "invalid_record")] * 2
    assert results[0]["field"] == "distance_km"
    assert inbox_count() == 2  # kept for replay


def test_secret_is_read_per_request(client, hub, clock, account):
    """Rotating the secret (new value in the environment) takes effect without a restart."""
    hub.settings.environ["CARBONHUB_SECRET_SZMETRO"] = "rotated-secret-99"
    old = push(client, "szmetro", rides(account, clock), clock, secret=PARTNER_SECRETS["szmetro"])
    assert old.status_code == 401 and error_of(old)["code"] == "bad_signature"
    new = push(client, "szmetro", rides(account, clock), clock, secret="rotated-secret-99")
    assert new.status_code == 200
