"""Whatever a client or partner sends, the answer is a 2xx or 4xx in the error shape, never a 500."""
from __future__ import annotations

from urllib.parse import urlencode

from api_helpers import auth, open_account, signed
from hypothesis import HealthCheck, given, settings, strategies as st

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
metro_keys = st.sampled_from(["ride_id", "account_id", "card_token", "city", "line", "entry_station", "exit_station",
                              "entry_at", "exit_at", "distance_km"])
# Records shaped like metro rides, with any values (and some stray keys).
rides = st.dictionaries(metro_keys | st.text(max_size=8), json_scalars | st.sampled_from(
    ["2026-11-20T08:01:00+08:00", "2026-11-20T08:40:00", "18.6", "-3", "NaN", "1e999", "acc_x"]), max_size=12)


def assert_handled(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        body = response.get_json()
        assert set(body) == {"error"} and body["error"]["code"]


@FUZZ
@given(body=json_values)
def test_any_account_body(client, body):
    assert_handled(client.post("/v1/accounts", json=body, headers=auth()))


@FUZZ
@given(raw=st.binary(max_size=64))
def test_any_raw_bytes(client, raw):
    assert_handled(client.post("/v1/accounts", data=raw, headers={**auth(), "Content-Type": "application/json"}))


@FUZZ
@given(records=st.lists(rides | json_values, max_size=5))
def test_any_signed_push(client, clock, records):
    body, headers = signed("szmetro", {"records": records}, clock)
    assert_handled(client.post("/v1/partners/szmetro/events", data=body, headers=headers))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["limit", "before", "scenario", "from", "to", "status", "x"]),
                              st.text(max_size=24), max_size=4),
       path=st.sampled_from(["ledger", "behaviours"]))
def test_any_query_string(client, params, path):
    account = open_account(client, "cust-fuzz") if not hasattr(client, "_fuzz_account") else client._fuzz_account
    client._fuzz_account = account
    assert_handled(client.get(f"/v1/accounts/{account}/{path}?{urlencode(params)}", headers=auth()))
    assert_handled(client.get(f"/v1/admin/inbox?{urlencode(params)}", headers=auth("console")))
