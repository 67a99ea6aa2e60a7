"""/openapi.json documents every route, and real answers match the documented schemas."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from api_helpers import auth, open_account, openapi_check, push, ride

from conftest import NOW
from hub.api.errors import ERROR_CODES


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")  # no key needed
    assert response.status_code == 200
    return response.get_json()


def api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower()


def test_every_registered_route_is_documented(app, spec):
    registered = set(api_rules(app))
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert registered == documented
    assert CONTRACT <= registered


# The public contract (DESIGN.md, docs/api.md): these may only change with a note saying why.
CONTRACT = {
    ("/v1/accounts", "post"), ("/v1/accounts/{account_id}", "get"),
    ("/v1/accounts/{account_id}/consents", "get"), ("/v1/accounts/{account_id}/consents/{scenario}", "put"),
    ("/v1/accounts/{account_id}/consents/{scenario}", "delete"), ("/v1/partners/{partner}/events", "post"),
    ("/v1/accounts/{account_id}/ledger", "get"), ("/v1/accounts/{account_id}/behaviours", "get"),
    ("/v1/accounts/{account_id}/behaviours/{behaviour_id}", "get"), ("/v1/scenarios", "get"),
    ("/v1/methodologies", "get"), ("/v1/methodologies/{methodology_id}", "get"), ("/v1/admin/inbox", "get"),
    ("/v1/admin/inbox/replay", "post"), ("/v1/admin/ledger/verify", "get"),
}


def test_every_operation_is_complete(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and op["tags"] and op["operationId"], where
            assert "security" in op, where
            assert any(code.startswith("2") for code in op["responses"]), where
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), where
            if op["security"] == [{"apiKey": []}]:
                assert {"401", "403"} <= set(op["responses"]), where
                assert op["x-required-scope"] in ("accounts:read", "accounts:write", "admin"), where
            if "requestBody" in op:
                assert {"400", "422"} <= set(op["responses"]), where
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, where


def test_security_choices(spec):
    paths = spec["paths"]
    assert paths["/v1/scenarios"]["get"]["security"] == []
    assert paths["/v1/methodologies/{methodology_id}"]["get"]["security"] == []
    assert paths["/v1/partners/{partner}/events"]["post"]["security"] == [{"partnerSignature": []}]
    headers = {p["name"] for p in paths["/v1/partners/{partner}/events"]["post"]["parameters"] if p["in"] == "header"}
    assert headers == {"X-Carbonhub-Partner", "X-Carbonhub-Timestamp"}
    assert paths["/v1/admin/inbox"]["get"]["x-required-scope"] == "admin"
    assert paths["/v1/accounts"]["post"]["x-required-scope"] == "accounts:write"
    assert set(spec["components"]["securitySchemes"]) == {"apiKey", "partnerSignature"}


def test_query_parameters_come_from_the_schemas(spec):
    ledger = {p["name"]: p for p in spec["paths"]["/v1/accounts/{account_id}/ledger"]["get"]["parameters"]}
    assert set(ledger) == {"account_id", "limit", "before", "scenario", "from", "to"}
    assert ledger["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 200}
    assert ledger["from"]["schema"]["format"] == "date"


def test_document_is_valid_openapi(spec):
    import openapi_spec_validator  # a test dependency (setup.cfg), never skipped

    openapi_spec_validator.validate(spec)


def test_error_codes_are_documented(spec):
    """Every code the API can answer appears in docs/api.md."""
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    for codes in ERROR_CODES.values():
        for code in codes:
            assert f"`{code}`" in guide, code


def test_answers_match_the_documented_schemas(client, hub, clock, spec):
    account = open_account(client, "cust-doc")
    hub.set_consent(account, "metro", True, at=NOW - timedelta(days=1))
    pushed = push(client, "szmetro", [ride(account, "R-1", NOW - timedelta(hours=2)),
                                      ride(account, "R-1", NOW - timedelta(hours=2))], clock)
    behaviour = pushed.get_json()["results"][0]["behaviours"][0]["id"]

    check = openapi_check(spec)
    check(pushed, "/v1/partners/{partner}/events", "post")
    check(client.get(f"/v1/accounts/{account}", headers=auth()), "/v1/accounts/{account_id}", "get")
    check(client.get(f"/v1/accounts/{account}/ledger", headers=auth()), "/v1/accounts/{account_id}/ledger", "get")
    check(client.get(f"/v1/accounts/{account}/behaviours", headers=auth()),
          "/v1/accounts/{account_id}/behaviours", "get")
    check(client.get(f"/v1/accounts/{account}/behaviours/{behaviour}", headers=auth()),
          "/v1/accounts/{account_id}/behaviours/{behaviour_id}", "get")
    check(client.put(f"/v1/accounts/{account}/consents/estatement", headers=auth()),
          "/v1/accounts/{account_id}/consents/{scenario}", "put")
    check(client.get(f"/v1/accounts/{account}/consents", headers=auth()),
          "/v1/accounts/{account_id}/consents", "get")
    check(client.get("/v1/scenarios"), "/v1/scenarios", "get")
    check(client.get("/v1/methodologies"), "/v1/methodologies", "get")
    check(client.get("/v1/admin/inbox", headers=auth("console")), "/v1/admin/inbox", "get")
    check(client.post("/v1/admin/inbox/replay", json={}, headers=auth("console")), "/v1/admin/inbox/replay", "post")
    check(client.get("/v1/admin/ledger/verify", headers=auth("console")), "/v1/admin/ledger/verify", "get")
    check(client.get("/v1/accounts/acc_x", headers=auth()), "/v1/accounts/{account_id}", "get", "404")
