"""Share cards: a frozen snapshot of the credited grams behind an unguessable, revocable, expiring public link.

Figures are the summary's (tests/test_summary.py): metro 46.8 g per km, e-statement 24 g each.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from api_helpers import at, auth, consent, error_of, open_account, openapi_check, push, rides, statement
from conftest import NOW
from PIL import Image

from hub import shares
from hub.db import Behaviour, ShareCard

SVG = "{http://www.w3.org/2000/svg}"


def build(client, clock) -> str:
    """A user who rides twice and reads a statement in November 2026, and rides again on 2 December."""
    account = open_account(client, "cust-share")
    consent(client, account, "metro", "estatement")
    clock.advance(hours=6)
    rides(client, clock, account, ("S-1", "10", at(1)), ("S-2", "5", at(2)))  # 468 + 234 g
    response = push(client, "cardcentre", [statement(account, "ST-S", at(3))], clock)  # 24 g
    assert response.get_json()["results"][0]["status"] == "accepted", response.get_json()
    clock.advance(days=11)  # 2 December
    rides(client, clock, account, ("S-3", "20", at(24 * 11 + 1)))  # 936 g
    return account


def share(client, account: str, key: str = "app", **body):
    return client.post(f"/v1/accounts/{account}/shares", json=body, headers=auth(key))


def made(client, account: str, **body) -> dict:
    response = share(client, account, **body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def listed(client, account: str, key: str = "reader") -> list[dict]:
    response = client.get(f"/v1/accounts/{account}/shares", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["shares"]


def revoke(client, account: str, share_id: str, key: str = "app"):
    return client.delete(f"/v1/accounts/{account}/shares/{share_id}", headers=auth(key))


# --- creating --------------------------------------------------------------------------------------------


def test_card_holds_the_summary_figures(client, clock):
    account = build(client, clock)
    summary = client.get(f"/v1/accounts/{account}/summary", headers=auth()).get_json()
    out = made(client, account)
    card = out["card"]
    assert card["total_g"] == summary["total_g"] == 1662
    assert card["period"] == "all" and card["period_label"] == "all time" and card["behaviours"] == 4
    metro = next(s["grams"] for s in summary["by_scenario"] if s["scenario"] == "metro")
    assert metro == 1638 and card["top_scenario"] == {"id": "metro", "title": "Metro rides", "grams": metro}
    assert card["as_of"] == "2026-12-02" and card["hub_name"] is None
    assert out["status"] == "active" and out["revoked_at"] is None and out["period"] == "all"
    assert out["url"] == f"/s/{out['token']}"
    assert (out["svg_url"], out["png_url"]) == (f"/s/{out['token']}.svg", f"/s/{out['token']}.png")
    assert out["expires_at"] == (clock() + timedelta(days=30)).isoformat()


@pytest.mark.parametrize("period, total, behaviours, top, label", [
    ("2026-11", 726, 3, ("metro", 702), "November 2026"),
    ("2026-12", 936, 1, ("metro", 936), "December 2026"),
    ("2026", 1662, 4, ("metro", 1638), "2026"),
    ("2025", 0, 0, None, "2025"),
])
def test_period_of_the_local_calendar(client, clock, period, total, behaviours, top, label):
    account = build(client, clock)
    summary = client.get(f"/v1/accounts/{account}/summary", headers=auth()).get_json()
    card = made(client, account, period=period)["card"]
    months = sum(m["grams"] for m in summary["by_month"] if m["month"].startswith(period))
    assert card["total_g"] == total == months
    assert (card["period"], card["period_label"], card["behaviours"]) == (period, label, behaviours)
    if top is None:
        assert card["top_scenario"] is None
    else:
        assert (card["top_scenario"]["id"], card["top_scenario"]["grams"]) == top


def test_local_month_decides_the_period(client, clock):
    # 30 November 17:00 UTC is 1 December 01:00 in Shanghai: a December act.
    account = open_account(client, "cust-share-tz")
    consent(client, account, "metro")
    clock.advance(days=10)
    rides(client, clock, account, ("TZ-1", "10", NOW + timedelta(days=9, hours=13)))
    assert made(client, account, period="2026-11")["card"]["total_g"] == 0
    assert made(client, account, period="2026-12")["card"]["total_g"] == 468


def test_card_has_nothing_private(client, clock):
    account = build(client, clock)
    out = made(client, account)
    text = json.dumps(out["card"])
    assert set(out["card"]) == {"period", "period_label", "total_g", "behaviours", "top_scenario", "hub_name",
                                "as_of"}
    assert account not in text and "cust-share" not in text and "tok_" not in text
    page = client.get(out["url"]).get_data(as_text=True)
    svg = client.get(out["svg_url"]).get_data(as_text=True)
    for body in (page, svg):
        assert account not in body and "cust-share" not in body and "shr_" not in body


def test_reversed_credits_do_not_count(client, clock, hub):
    account = build(client, clock)
    seq = Behaviour.get((Behaviour.account == account) & (Behaviour.grams == 936)).tx_seq
    hub.reverse(seq, "ride cancelled by the operator")
    card = made(client, account)["card"]
    assert card["total_g"] == 726 and card["behaviours"] == 3 and card["top_scenario"]["grams"] == 702


def test_snapshot_is_frozen(client, clock):
    account = build(client, clock)
    out = made(client, account)
    rides(client, clock, account, ("S-4", "30", at(24 * 11 + 2)))
    assert made(client, account)["card"]["total_g"] == 1662 + 1404
    assert listed(client, account)[-1]["card"] == out["card"]
    assert f"{1662 // 1000}.{1662 % 1000 // 100} kg" in client.get(out["url"]).get_data(as_text=True)


def test_nothing_to_share_still_makes_a_card(client):
    account = open_account(client, "cust-share-empty")
    out = made(client, account)
    assert out["card"]["total_g"] == 0 and out["card"]["behaviours"] == 0 and out["card"]["top_scenario"] is None
    page = client.get(out["url"])
    assert page.status_code == 200 and "0 g" in page.get_data(as_text=True)
    assert "No credited reductions yet" in client.get(out["svg_url"]).get_data(as_text=True)
    assert Image.open(io.BytesIO(client.get(out["png_url"]).data)).size == (1200, 630)


# --- the token ---------------------------------------------------------------------------------------------


def test_token_is_unguessable_and_only_its_digest_is_stored(client):
    account = open_account(client, "cust-share-token")
    tokens = [made(client, account)["token"] for _ in range(5)]
    assert len(set(tokens)) == 5
    for token in tokens:
        assert len(token) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # 24 random bytes, base64url
    assert len(set("".join(tokens))) > 30  # not a counter nor a timestamp
    rows = list(ShareCard.select().where(ShareCard.account == account))
    assert {r.token_sha256 for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    stored = json.dumps([{k: str(v) for k, v in r.__data__.items()} for r in rows])
    assert not any(t in stored for t in tokens)
    listing = json.dumps(listed(client, account))
    assert not any(t in listing for t in tokens) and "token" not in listing


def test_unknown_token_is_404(client):
    page = client.get("/s/" + "A" * 32)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "No such share" in page.get_data(as_text=True)
    for suffix in (".svg", ".png"):
        response = client.get("/s/" + "A" * 32 + suffix)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert client.get("/s/" + "x" * 5000).status_code == 404


# --- public page and images --------------------------------------------------------------------------------


def test_public_page_shows_the_figures(client, clock):
    account = build(client, clock)
    out = made(client, account, period="2026-11")
    page = client.get(out["url"])  # no key
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "726 g" in html and "November 2026" in html and "Metro rides" in html and "702 g" in html
    assert f'<meta property="og:image" content="http://localhost{out["png_url"]}">' in html
    assert "<svg" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer" and "noindex" in page.headers["X-Robots-Tag"]


def test_svg_is_an_open_graph_sized_xml_document(client, clock):
    account = build(client, clock)
    out = made(client, account)
    response = client.get(out["svg_url"])
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "no-store"
    root = ET.fromstring(response.data)
    assert root.tag == f"{SVG}svg" and (root.get("width"), root.get("height")) == ("1200", "630")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "1.6 kg" in texts and "carbonhub" in texts
    assert any("all time" in t for t in texts) and any("Metro rides" in t and "1.6 kg" in t for t in texts)


def test_svg_escapes_text():
    card = {"period": "all", "period_label": "all time", "total_g": 1500, "behaviours": 1,
            "top_scenario": {"id": "x", "title": 'Bikes <&> "quoted"', "grams": 1500},
            "hub_name": "Bank & <Co>", "as_of": "2026-11-21"}
    root = ET.fromstring(shares.render_svg(card))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert 'Top: Bikes <&> "quoted" · 1.5 kg' in texts and "carbonhub · Bank & <Co>" in texts
    assert 'Bikes <&> "quoted"' in root.get("aria-label")


def test_png_is_an_open_graph_sized_picture(client, clock):
    account = build(client, clock)
    response = client.get(made(client, account)["png_url"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "no-store"
    image = Image.open(io.BytesIO(response.data))
    assert image.format == "PNG" and image.size == (1200, 630)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 10  # background, accent, anti-aliased text


@pytest.mark.parametrize("grams, text", [(0, "0 g"), (999, "999 g"), (1000, "1.0 kg"), (1999, "1.9 kg"),
                                         (1_234_567, "1,234.5 kg")])
def test_grams_are_shown_rounded_down(grams, text):
    assert shares.format_grams(grams) == text


# --- revocation and expiry ---------------------------------------------------------------------------------


def test_revoked_share_is_410(client, clock):
    account = build(client, clock)
    out = made(client, account)
    response = revoke(client, account, out["id"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "revoked" and body["revoked_at"] == clock().isoformat() and "token" not in body
    clock.advance(minutes=5)
    again = revoke(client, account, out["id"])
    assert again.status_code == 200 and again.get_json() == body  # idempotent: the first revocation stands
    page = client.get(out["url"])
    assert page.status_code == 410 and "withdrawn" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    for url in (out["svg_url"], out["png_url"]):
        response = client.get(url)
        assert response.status_code == 410 and error_of(response)["code"] == "share_revoked"
    assert [s["status"] for s in listed(client, account)] == ["revoked"]


def test_expired_share_is_410(client, clock):
    account = open_account(client, "cust-share-expiry")
    out = made(client, account, ttl_days=1)
    clock.advance(hours=23, minutes=59)
    assert client.get(out["url"]).status_code == 200
    clock.advance(minutes=1)
    page = client.get(out["url"])
    assert page.status_code == 410 and "expired" in page.get_data(as_text=True)
    response = client.get(out["png_url"])
    assert response.status_code == 410 and error_of(response)["code"] == "share_expired"
    assert [s["status"] for s in listed(client, account)] == ["expired"]
    assert revoke(client, account, out["id"]).get_json()["status"] == "revoked"  # revoking it still works
    assert error_of(client.get(out["svg_url"]))["code"] == "share_revoked"


def test_list_is_newest_first_with_status(client, clock):
    account = open_account(client, "cust-share-list")
    first = made(client, account, ttl_days=1)
    clock.advance(hours=1)
    second = made(client, account, period="2026")
    clock.advance(hours=1)
    third = made(client, account, period="2026-11")
    revoke(client, account, second["id"])
    clock.advance(days=1)
    items = listed(client, account)
    assert [(s["id"], s["status"], s["period"]) for s in items] == [
        (third["id"], "active", "2026-11"), (second["id"], "revoked", "2026"), (first["id"], "expired", "all")]
    assert all(set(s) == {"id", "period", "status", "created_at", "expires_at", "revoked_at", "card"}
               for s in items)


def test_too_many_active_shares_is_409(client, clock):
    account = open_account(client, "cust-share-many")
    ids = [made(client, account, ttl_days=2 if i == 0 else 30)["id"] for i in range(shares.MAX_ACTIVE)]
    response = share(client, account)
    assert response.status_code == 409 and error_of(response)["code"] == "too_many_shares"
    assert revoke(client, account, ids[1]).status_code == 200
    made(client, account)  # a revoked share frees a place
    assert error_of(share(client, account))["code"] == "too_many_shares"
    clock.advance(days=2)
    made(client, account)  # so does an expired one
    assert ShareCard.select().where(ShareCard.account == account).count() == shares.MAX_ACTIVE + 2


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"period": "2026-13"}, "period"), ({"period": "26"}, "period"), ({"period": "2026-1"}, "period"),
    ({"period": "2027-01"}, "period"), ({"period": "2027"}, "period"), ({"period": "1999"}, "period"),
    ({"period": "ALL"}, "period"), ({"period": 2026}, "period"), ({"period": None}, "period"),
    ({"ttl_days": 0}, "ttl_days"), ({"ttl_days": 366}, "ttl_days"), ({"ttl_days": "3"}, "ttl_days"),
    ({"ttl_days": 1.5}, "ttl_days"), ({"ttl_days": True}, "ttl_days"), ({"token": "mine"}, "token"),
])
def test_bad_body_is_422_with_the_field(client, body, field):
    account = open_account(client, "cust-share-bad")
    response = share(client, account, **body)
    assert response.status_code == 422, response.get_json()
    err = error_of(response)
    assert err["code"] == "validation_error" and field in err["fields"], err
    assert ShareCard.select().count() == 0


def test_limits_are_accepted(client):
    account = open_account(client, "cust-share-edges")
    assert made(client, account, period="2000", ttl_days=1)["period"] == "2000"
    assert made(client, account, period="2026-11", ttl_days=365)["period"] == "2026-11"
    assert made(client, account, period="all")["card"]["period_label"] == "all time"


def test_unknown_account_is_404(client):
    for response in (share(client, "acc_nope"), client.get("/v1/accounts/acc_nope/shares", headers=auth()),
                     revoke(client, "acc_nope", "shr_x")):
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_another_accounts_share_is_404_and_stays_active(client):
    owner, other = open_account(client, "cust-share-owner"), open_account(client, "cust-share-other")
    out = made(client, owner)
    response = revoke(client, other, out["id"])
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert revoke(client, owner, "shr_unknown").status_code == 404
    assert client.get(out["url"]).status_code == 200
    assert listed(client, other) == [] and listed(client, owner)[0]["status"] == "active"


def test_keys_and_scopes(client):
    account = open_account(client, "cust-share-auth")
    out = made(client, account)
    path = f"/v1/accounts/{account}/shares"
    for response in (client.post(path, json={}), client.get(path), client.delete(f"{path}/{out['id']}")):
        assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    for response in (share(client, account, key="reader"), revoke(client, account, out["id"], key="reader")):
        assert response.status_code == 403 and error_of(response)["code"] == "forbidden"
    assert client.get(path, headers=auth("reader")).status_code == 200
    assert client.get(out["url"]).status_code == 200  # the public page needs no key
    assert share(client, account, key="console").status_code == 201  # admin implies accounts:write


def test_answers_match_the_documented_schemas(client, clock):
    spec = client.get("/openapi.json").get_json()
    documented = openapi_check(spec)
    account = build(client, clock)

    def check(response, method, status, path="/v1/accounts/{account_id}/shares"):
        documented(response, path, method, status)

    created = share(client, account, period="2026-11")
    check(created, "post", "201")
    check(share(client, account, period="2026-13"), "post", "422")
    check(client.get(f"/v1/accounts/{account}/shares", headers=auth()), "get", "200")
    check(revoke(client, account, created.get_json()["id"]), "delete", "200",
          "/v1/accounts/{account_id}/shares/{share_id}")
    check(revoke(client, account, "shr_x"), "delete", "404", "/v1/accounts/{account_id}/shares/{share_id}")
    ops = spec["paths"]["/v1/accounts/{account_id}/shares"]
    assert ops["post"]["x-required-scope"] == "accounts:write" and ops["get"]["x-required-scope"] == "accounts:read"
    assert "too_many_shares" in ops["post"]["responses"]["409"]["description"]
