"""The user page and the console through Flask's test client: sign-in, sessions, CSRF and each form."""
from __future__ import annotations

import re

import pytest

from conftest import SECRETS
from hub import db, queries
from hub.app import create_app
from hub.web.sessions import make_sign_in_token, read_sign_in_token
from web_helpers import accepted_in_window, demo_hub

APP_KEY = {"Authorization": f"Bearer {SECRETS['CARBONHUB_KEY_APP']}"}


@pytest.fixture
def hub(tmp_path, database_url, clock):
    h = demo_hub(tmp_path, database_url, clock)
    yield h
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def alice(hub):
    return db.Account.get(db.Account.bank_ref == "demo-alice").id


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def signed_in(client, hub, account) -> str:
    token, _ = make_sign_in_token(hub, account)
    response = client.get(f"/sign-in/{token}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/")
    page = client.get("/")
    assert page.status_code == 200
    return page.get_data(as_text=True)


# --- signing in --------------------------------------------------------------------------------

def test_sign_in_link_from_the_api_opens_the_users_page(client, hub, alice):
    made = client.post(f"/v1/accounts/{alice}/sign-in-links", json={}, headers=APP_KEY)
    assert made.status_code == 201
    body = made.get_json()
    assert body["account"] == alice and body["url"].startswith("/sign-in/")
    assert client.get(body["url"]).status_code == 303
    html = client.get("/").get_data(as_text=True)
    view = queries.account_view(alice)
    assert f'data-testid="carbon-g">{view["balances"]["carbon_g"]:,}<' in html
    assert "demo-alice" in html


def test_sign_in_link_errors(client, hub, alice):
    assert client.post("/v1/accounts/acc_nope/sign-in-links", json={}, headers=APP_KEY).status_code == 404
    bad = client.post(f"/v1/accounts/{alice}/sign-in-links", json={"ttl_s": 5}, headers=APP_KEY)
    assert bad.status_code == 422 and "ttl_s" in bad.get_json()["error"]["fields"]
    assert client.post(f"/v1/accounts/{alice}/sign-in-links", json={}).status_code == 401
    reader = {"Authorization": f"Bearer {SECRETS['CARBONHUB_KEY_READER']}"}
    assert client.post(f"/v1/accounts/{alice}/sign-in-links", json={}, headers=reader).status_code == 403


def test_a_tampered_or_expired_link_is_refused(client, hub, alice, clock):
    token, expires = make_sign_in_token(hub, alice, ttl_s=60)
    payload, mac = token.split(".")
    other = db.Account.get(db.Account.bank_ref == "demo-bob").id
    forged = make_sign_in_token(hub, other)[0].split(".")[0] + "." + mac
    altered = payload + "." + ("y" if mac[0] == "x" else "x") + mac[1:]  # never the mac itself (1 in 64 began "x")
    for bad in (forged, altered, payload, "nonsense"):
        response = client.get(f"/sign-in/{bad}")
        assert response.status_code == 403, bad
        assert "invalid or has expired" in response.get_data(as_text=True)
    assert read_sign_in_token(hub, token) == alice
    clock.advance(seconds=61)
    assert read_sign_in_token(hub, token) is None
    assert client.get(f"/sign-in/{token}").status_code == 403


def test_the_session_expires_on_the_hubs_clock(client, hub, alice, clock):
    signed_in(client, hub, alice)
    clock.advance(seconds=hub.settings.web.session_ttl_s + 1)
    html = client.get("/").get_data(as_text=True)
    assert "Sign in as demo-alice" in html and 'data-testid="carbon-g"' not in html


def test_demo_sign_in_offers_only_demo_accounts_and_only_when_on(client, hub, alice):
    stranger, _ = hub.open_account("real-customer-1")
    page = client.get("/").get_data(as_text=True)
    assert "Sign in as demo-alice" in page and "real-customer-1" not in page
    token = csrf(page)
    refused = client.post("/sign-in/demo", data={"account": stranger.id, "csrf": token})
    assert refused.status_code == 403
    assert client.post("/sign-in/demo", data={"account": alice}).status_code == 400  # no CSRF token
    assert client.post("/sign-in/demo", data={"account": alice, "csrf": token}).status_code == 303
    assert 'data-testid="carbon-g"' in client.get("/").get_data(as_text=True)


def test_demo_sign_in_off(tmp_path, database_url, clock):
    h = demo_hub(tmp_path, database_url, clock, demo_sign_in=False)
    client = create_app(hub=h).test_client()
    page = client.get("/").get_data(as_text=True)
    assert "Sign in as" not in page and "sign-in link" in page
    alice = db.Account.get(db.Account.bank_ref == "demo-alice").id
    assert client.post("/sign-in/demo", data={"account": alice, "csrf": csrf_of_session(client)}).status_code == 403


def csrf_of_session(client) -> str:
    with client.session_transaction() as s:
        s["csrf"] = "fixed-token-for-test"
    return "fixed-token-for-test"


def test_without_the_web_secret_pages_say_what_to_set(tmp_path, database_url, clock):
    from hub.config import load_settings
    from hub.core import Hub
    from web_helpers import demo_settings

    settings = demo_settings(tmp_path)
    environ = {k: v for k, v in settings.environ.items() if k != "CARBONHUB_WEB_SECRET"}
    h = Hub(load_settings(data=settings_data(tmp_path), environ=environ), clock=clock, database_url=database_url)
    h.init_db()
    client = create_app(hub=h).test_client()
    response = client.get("/")
    assert response.status_code == 503 and "CARBONHUB_WEB_SECRET" in response.get_data(as_text=True)
    assert client.get("/v1/scenarios").status_code == 200  # the API is unaffected
    account, _ = h.open_account("someone")
    made = client.post(f"/v1/accounts/{account.id}/sign-in-links", json={}, headers=APP_KEY)
    assert made.status_code == 503 and made.get_json()["error"]["code"] == "web_not_configured"


def settings_data(tmp_path):
    import copy

    from conftest import shipped_config

    data = copy.deepcopy(shipped_config())
    data["hub"]["secrets_file"] = str(tmp_path / "none.env")
    return data


# --- the user's actions ------------------------------------------------------------------------

def test_every_form_needs_the_csrf_token(client, hub, alice):
    signed_in(client, hub, alice)
    for path, data in (("/consents/metro", {"granted": "0"}), ("/quiz/x", {"choice": "0"}),
                       ("/shares", {"period": "all"}), ("/calculator", {"car_km": "1"}), ("/sign-out", {})):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "reload the page" in response.get_data(as_text=True)
    assert queries.consent_state(alice, "metro")["granted"] is True


def test_actions_need_a_session(client, hub, alice):
    token = csrf_of_session(client)
    response = client.post("/consents/metro", data={"granted": "0", "csrf": token})
    assert response.status_code == 401
    assert client.get("/behaviours/anything").status_code == 401


def test_consent_switch(client, hub, alice):
    token = csrf(signed_in(client, hub, alice))
    assert client.post("/consents/metro", data={"granted": "0", "csrf": token}).status_code == 303
    state = queries.consents_view(alice)
    assert queries.consent_state(alice, "metro")["granted"] is False
    assert state["log"][-1]["source"] == "web" or any(e["source"] == "web" for e in state["log"])
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'aria-checked="false"\s+class="switch off" data-scenario="metro"', page)
    assert client.post("/consents/metro", data={"granted": "1", "csrf": token}).status_code == 303
    assert queries.consent_state(alice, "metro")["granted"] is True
    assert client.post("/consents/nonsense", data={"granted": "1", "csrf": token}).status_code == 404


def test_receipt_page_and_fragment(client, hub, alice):
    signed_in(client, hub, alice)
    credited = db.Behaviour.get((db.Behaviour.account == alice) & (db.Behaviour.status == "accepted"))
    fragment = client.get(f"/behaviours/{credited.id}?fragment=1").get_data(as_text=True)
    assert "<html" not in fragment and 'data-testid="formula"' in fragment
    detail = queries.behaviour_detail(alice, credited.id)
    assert detail["receipt"]["explanation"] in fragment.replace("&#39;", "'")
    page = client.get(f"/behaviours/{credited.id}")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    bob_row = db.Behaviour.get((db.Behaviour.account != alice) & (db.Behaviour.status == "accepted"))
    assert client.get(f"/behaviours/{bob_row.id}").status_code == 404  # another user's record


def test_quiz_answer_awards_once(client, hub, alice):
    from hub import quiz

    token = csrf(signed_in(client, hub, alice))
    today = quiz.today(hub, alice)["questions"]
    q = quiz.questions()[today[0]["id"]]
    right = {"choice": str(q.answer), "csrf": token}
    before = queries.account_view(alice)["balances"]["points"]
    assert client.post(f"/quiz/{q.id}", data=right).status_code == 303
    after = queries.account_view(alice)["balances"]["points"]
    assert after == before + hub.settings.quiz.points_per_correct
    client.post(f"/quiz/{q.id}", data=right)
    assert queries.account_view(alice)["balances"]["points"] == after
    page = client.get("/").get_data(as_text=True)
    assert q.explanation.split(".")[0].replace("'", "&#39;") in page
    unknown = client.post("/quiz/no-such-question", data={"choice": "0", "csrf": token}, follow_redirects=True)
    assert "No question" in unknown.get_data(as_text=True) or "not" in unknown.get_data(as_text=True)


def test_redeem_twice_with_one_form_spends_once(client, hub, alice):
    page = signed_in(client, hub, alice)
    token = csrf(page)
    open_ = [b for b in hub.exchange.catalogue(alice) if b["eligibility"]["can_redeem"] and not b["details"]]
    assert open_, "the demo leaves demo-alice a benefit she can redeem"
    benefit = open_[0]
    key = re.search(rf'name="key" value="([^"]+-{re.escape(benefit["id"])})"', page).group(1)
    before = queries.account_view(alice)["balances"]["points"]
    for _ in range(2):
        assert client.post(f"/redeem/{benefit['id']}", data={"key": key, "csrf": token}).status_code == 303
    rows = list(db.Redemption.select().where(db.Redemption.account == alice))
    assert len(rows) == 1 and rows[0].benefit == benefit["id"]
    spent = before - queries.account_view(alice)["balances"]["points"]
    assert spent == (benefit["cost"] if rows[0].status == "fulfilled" else 0)


def test_calculator_form_errors_and_result(client, hub, alice):
    token = csrf(signed_in(client, hub, alice))
    bad = client.post("/calculator", data={"car_km": "-5", "origin": "XXX", "destination": "SZX", "csrf": token})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "car_km" in text and "Unknown airport" in text
    good = client.post("/calculator", data={"car_km": "100", "paper_bills": "2", "csrf": token})
    assert good.status_code == 200
    html = good.get_data(as_text=True)
    from hub import calculator

    expected = calculator.calculate(hub, {"car_km": __import__("decimal").Decimal(100), "paper_bills": 2,
                                          "flights": [], "counter_payments": 0, "city": "shenzhen"})
    assert f'data-testid="footprint-total">{expected["total_g"]:,} g<' in html


def test_science_page_renders_markdown_and_escapes_html(client, hub):
    from hub import content

    slug = next(iter(content.articles()))
    html = client.get(f"/science/{slug}").get_data(as_text=True)
    assert "<h1>" in html and content.articles()[slug].title.replace("'", "&#39;") in html
    assert client.get("/science/no-such-article").status_code == 404


# --- the console -------------------------------------------------------------------------------

def console_signed_in(client, key: str = SECRETS["CARBONHUB_KEY_CONSOLE"]) -> str:
    token = csrf(client.get("/console").get_data(as_text=True))
    client.post("/console/sign-in", data={"api_key": key, "csrf": token})
    return client.get("/console").get_data(as_text=True)


def test_console_needs_an_admin_key(client, hub):
    for key in ("wrong", SECRETS["CARBONHUB_KEY_APP"]):
        html = console_signed_in(client, key)
        assert 'name="api_key"' in html and 'id="ingestion"' not in html
    html = console_signed_in(client)
    assert 'id="ingestion"' in html and "Bank console · console" in html
    assert client.post("/console/ledger-checks", data={}).status_code == 400  # CSRF


def test_console_figures_match_the_store(client, hub):
    console_signed_in(client)
    html = client.get("/console?days=7").get_data(as_text=True)
    accepted = accepted_in_window(hub, 7)
    everything = db.InboxRecord.select().where(db.InboxRecord.status == "accepted").count()
    assert 0 < accepted < everything  # the demo's traffic spans months: the window matters
    assert f'data-testid="total-accepted">{accepted:,}<' in html
    html = client.get("/console?days=90").get_data(as_text=True)
    for scenario in hub.enabled_scenarios():
        assert f'data-scenario="{scenario}"' in html
    reasons = {r.reason for r in db.InboxRecord.select(db.InboxRecord.reason)
               .where(db.InboxRecord.status == "rejected")}
    for reason in reasons:
        assert f'data-reason="{reason}"' in html
    for mid in hub.methodologies.versions:
        assert f'data-methodology="{mid}"' in html


def test_console_verify_now_and_a_rotated_key_signs_out(client, hub):
    html = console_signed_in(client)
    assert "Never verified" in html
    client.post("/console/ledger-checks", data={"csrf": csrf(html)})
    assert "Verified" in client.get("/console").get_data(as_text=True)
    hub.settings.environ["CARBONHUB_KEY_CONSOLE"] = "a-new-console-key-987654"
    assert 'name="api_key"' in client.get("/console").get_data(as_text=True)
