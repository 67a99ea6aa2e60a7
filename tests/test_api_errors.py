"""One error shape everywhere; API keys and scopes; validation of bodies and query strings."""
from __future__ import annotations

import base64
import logging

import pytest
from api_helpers import auth, error_of, open_account, signed

from hub.ledger import TxRequest
from hub.records import PostingRecord


# --- routing errors -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/v1", "/v1/accounts/acc_x/nothing"])
def test_unknown_route_is_404_in_the_error_shape(client, path):
    response = client.get(path, headers=auth())
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/v1/accounts", headers=auth())
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_non_api_paths_keep_html_errors_unless_json_is_asked(client):
    html = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert html.status_code == 404 and html.mimetype == "text/html"
    as_json = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and error_of(as_json)["code"] == "not_found"


# --- API keys and scopes ----------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": "Basic YXBwOmFwcC1rZXk="},
    {"Authorization": "app-key-0123456789"},
    {"Authorization": "Bearer app-key-01234567890"},  # a prefix of the presented key matches nothing
    {"X-Api-Key": "app-key-0123456789"},
])
def test_missing_or_invalid_key_is_401(client, headers):
    response = client.get("/v1/accounts/acc_x", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_bearer_scheme_is_case_insensitive(client):
    response = client.get("/v1/accounts/acc_unknown", headers={"Authorization": "bearer app-key-0123456789"})
    assert response.status_code == 404  # authenticated, then the account is unknown


def test_key_whose_variable_is_unset_is_inactive(client, hub):
    assert client.get("/v1/accounts/acc_x", headers=auth("reader")).status_code == 404
    hub.settings.environ.pop("CARBONHUB_KEY_READER")
    response = client.get("/v1/accounts/acc_x", headers=auth("reader"))
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize("key, method, path, body, status", [
    ("reader", "post", "/v1/accounts", {"bank_ref": "c1"}, 403),
    ("app", "post", "/v1/accounts", {"bank_ref": "c1"}, 201),
    ("console", "post", "/v1/accounts", {"bank_ref": "c1"}, 201),  # admin implies accounts:write
    ("reader", "get", "/v1/admin/inbox", None, 403),
    ("app", "get", "/v1/admin/inbox", None, 403),
    ("console", "get", "/v1/admin/inbox", None, 200),
    ("app", "get", "/v1/admin/ledger/verify", None, 403),
    ("app", "post", "/v1/admin/inbox/replay", {}, 403),
    ("reader", "put", "/v1/accounts/acc_x/consents/metro", None, 403),
    ("reader", "delete", "/v1/accounts/acc_x/consents/metro", None, 403),
])
def test_scopes(client, key, method, path, body, status):
    response = getattr(client, method)(path, json=body, headers=auth(key))
    assert response.status_code == status, response.get_json()
    if status == 403:
        err = error_of(response)
        assert err["code"] == "forbidden" and "scope" in err["message"]


def test_auth_comes_before_validation(client):
    response = client.post("/v1/accounts", data=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    response = client.post("/v1/accounts", data=b"{oops",
                           headers={**auth("reader"), "Content-Type": "application/json"})
    assert response.status_code == 403


# --- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{oops", b'{"bank_ref": "c1",}', b"\xff\xfe\x00", b"'single'",
                                 b'{"bank_ref": NaN}', b'{"bank_ref": -Infinity}'])
def test_malformed_json_is_400(client, raw):
    response = client.post("/v1/accounts", data=raw, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


@pytest.mark.parametrize("body, fields", [
    ({"bank_ref": "c1", "name": "Li"}, {"name": ["Unknown field."]}),
    ({"bank_ref": 5}, {"bank_ref": ["Not a valid string."]}),
    ({"bank_ref": None}, {"bank_ref": ["Field may not be null."]}),
    ({}, {"bank_ref": ["Missing data for required field."]}),
    ({"bank_ref": ""}, None),
    ({"bank_ref": " c1"}, {"bank_ref": ["Must not start or end with whitespace."]}),
    ({"bank_ref": "x" * 129}, None),
    (["c1"], {"_schema": ["Invalid input type."]}),
])
def test_invalid_bodies_are_422_with_fields(client, body, fields):
    response = client.post("/v1/accounts", json=body, headers=auth())
    assert response.status_code == 422, response.get_json()
    err = error_of(response)
    assert err["code"] == "validation_error"
    if fields is None:
        assert list(err["fields"]) == ["bank_ref"]
    else:
        assert err["fields"] == fields


def test_empty_body_counts_as_empty_object(client):
    response = client.post("/v1/accounts", data=b"", headers=auth())
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"bank_ref": ["Missing data for required field."]}


# --- query strings --------------------------------------------------------------------------


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("before=0", "before"),
    ("before=x", "before"), ("from=2026-13-01", "from"), ("from=2026-11-20&to=2026-11-19", "to"),
    ("scenari=metro", "scenari"),
])
def test_invalid_ledger_query_is_422(client, query, field):
    account = open_account(client, "cust-q")
    response = client.get(f"/v1/accounts/{account}/ledger?{query}", headers=auth())
    assert response.status_code == 422, response.get_json()
    assert field in error_of(response)["fields"]


@pytest.mark.parametrize("query, field", [("before=not-a-cursor", "before"), ("status=lost", "status"),
                                          ("limit=-1", "limit")])
def test_invalid_behaviour_query_is_422(client, query, field):
    account = open_account(client, "cust-q")
    response = client.get(f"/v1/accounts/{account}/behaviours?{query}", headers=auth())
    assert response.status_code == 422
    assert field in error_of(response)["fields"]


# --- errors raised inside the hub ---------------------------------------------------------------


def _credit(hub, key: str, grams: int):
    return hub.ledger.post(TxRequest(key=key, kind="test", postings=(PostingRecord("@issuer:metro", "g", -grams),
                                                                     PostingRecord("@retired", "g", grams))))


def _idempotency_conflict(hub):
    _credit(hub, "test:k", 5)
    _credit(hub, "test:k", 6)


def _reverse_twice(hub):
    tx, _ = _credit(hub, "test:r", 5)
    hub.ledger.reverse(tx.seq, "first")
    hub.ledger.reverse(tx.seq, "second", key="other-key")


@pytest.mark.parametrize("action, code", [(_idempotency_conflict, "idempotency_conflict"),
                                          (_reverse_twice, "already_reversed")])
def test_ledger_errors_map_to_their_status_and_code(app, client, hub, action, code):
    """A LedgerError raised in a view keeps the ledger's status and code (real conflicts, no fakes)."""
    app.add_url_rule("/v1/_test/ledger", "test_ledger", lambda: action(hub), methods=["POST"])
    response = client.post("/v1/_test/ledger")
    assert response.status_code == 409
    err = error_of(response)
    assert err["code"] == code and "fields" not in err


def test_unexpected_exception_is_logged_500_in_the_shape(app, client, caplog):
    def broken():
        raise RuntimeError("boom")

    app.add_url_rule("/v1/_test/broken", "test_broken", broken)
    with caplog.at_level(logging.ERROR, logger="carbonhub.api"):
        response = client.get("/v1/_test/broken")
    assert response.status_code == 500
    err = error_of(response)
    assert err["code"] == "internal_error" and "boom" not in err["message"]
    assert any("boom" in (r.exc_text or "") or "boom" in str(r.exc_info) for r in caplog.records)


def test_oversized_body_is_413_in_the_shape(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 100
    response = client.post("/v1/accounts", data=b"{" + b" " * 200 + b"}", headers=auth())
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


# --- hostile input: never a 500 --------------------------------------------------------------


def test_nul_characters_are_refused_at_the_door(client, clock):
    """PostgreSQL cannot store NUL in text; the API refuses it instead of failing in the store."""
    account = open_account(client, "cust-nul")
    response = client.post("/v1/accounts", json={"bank_ref": "a\u0000b"}, headers=auth())
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"bank_ref": ["Must not contain NUL characters."]}
    assert client.get("/v1/accounts/acc%00x", headers=auth()).status_code == 404
    assert client.put(f"/v1/accounts/{account}/consents/me%00tro", headers=auth()).status_code == 404
    cursor = base64.urlsafe_b64encode(b"2026-11-21T04:00:00|bhv_\x00").decode()  # well formed but for the NUL
    for query in ("scenario=a%00b", f"before={cursor}"):
        response = client.get(f"/v1/accounts/{account}/behaviours?{query}", headers=auth())
        assert response.status_code == 422, query
    body, headers = signed("szmetro", {"records": [{"ride_id": "R\u00001"}]}, clock)
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"records": {"0": {"ride_id": ["Must not contain NUL characters."]}}}


@pytest.mark.parametrize("query", ["before=9223372036854775808", "from=0001-01-01", "to=9999-12-31",
                                   "before=-5", "limit=1e3"])
def test_out_of_range_query_values_are_422(client, query):
    account = open_account(client, "cust-range")
    response = client.get(f"/v1/accounts/{account}/ledger?{query}", headers=auth())
    assert response.status_code == 422 and error_of(response)["code"] == "validation_error"


@pytest.mark.parametrize("depth", [33, 5000, 200_000])
def test_deeply_nested_json_is_400(client, clock, depth):
    nested = b"[" * depth + b"]" * depth
    response = client.post("/v1/accounts", data=b'{"bank_ref": ' + nested + b"}", headers=auth())
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"
    body, headers = signed("szmetro", None, clock, body=b'{"records": [{"x": ' + nested + b"}]}")
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"


def test_reasonable_nesting_is_fine(client, clock):
    nested = b"[" * 28 + b"]" * 28
    body, headers = signed("szmetro", None, clock, body=b'{"records": [{"x": ' + nested + b"}]}")
    response = client.post("/v1/partners/szmetro/events", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["reason"] == "invalid_record"
