"""The user page and the console in a real Chromium, driven by Playwright.

Uses the system's Chromium (``apt-get install -y chromium``; ``CARBONHUB_CHROMIUM``
points elsewhere), never a browser Playwright downloads. Without one the tests
skip and say so; CI installs it.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import SECRETS
from hub import db, queries
from hub.app import create_app
from web_helpers import LiveServer, accepted_in_window, demo_hub

VIEWPORT = {"width": 1280, "height": 900}


def _chromium() -> str | None:
    for candidate in (os.environ.get("CARBONHUB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (shutil.which(candidate) or Path(candidate).is_file()):
            return shutil.which(candidate) or candidate
    return None


CHROMIUM = _chromium()
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

if os.environ.get("CARBONHUB_REQUIRE_BROWSER") and (sync_playwright is None or CHROMIUM is None):
    raise RuntimeError("CARBONHUB_REQUIRE_BROWSER is set but Playwright or Chromium is missing")

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Playwright's Python package is not installed "
                                                       "(pip install -e '.[test]')"),
    pytest.mark.skipif(CHROMIUM is None, reason="No Chromium on this machine: the browser tests need the "
                                                "system's (apt-get install -y chromium) or CARBONHUB_CHROMIUM"),
]


@pytest.fixture
def server(tmp_path, database_url, clock):
    hub = demo_hub(tmp_path, database_url, clock)
    with LiveServer(create_app(hub=hub)) as live:
        live.hub = hub
        yield live
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update"])
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


def shot(page, tmp_path: Path, name: str) -> Path:
    """A screenshot checked to be a real picture of the viewport, not an empty or blank file."""
    from PIL import Image

    path = tmp_path / f"{name}.png"
    page.wait_for_load_state("load")  # a page just navigated to: its stylesheet and images in, not a blank frame
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{name}: suspiciously small screenshot"
    with Image.open(path) as img:
        assert img.size == (VIEWPORT["width"], VIEWPORT["height"])
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is None or len(colours) > 50, f"{name}: the screenshot is nearly blank"
    return path


def account_of(bank_ref: str) -> str:
    return db.Account.get(db.Account.bank_ref == bank_ref).id


def test_a_users_path_through_the_page(server, page, tmp_path):
    hub = server.hub
    alice = account_of("demo-alice")
    before = queries.account_view(alice)

    # A new user after `carbonhub demo`: the page offers the demo accounts.
    page.goto(server.url + "/")
    page.get_by_role("button", name="Sign in as demo-alice").click()
    expect(page.get_by_test_id("carbon-g")).to_have_text(f"{before['balances']['carbon_g']:,}")
    expect(page.get_by_test_id("points")).to_have_text(f"{before['balances']['points']:,}")
    assert before["balances"]["carbon_g"] > 0
    # The chart has one bar per month with credited grams, each with its figure.
    bars = page.locator("#chart svg g.bar")
    assert bars.count() >= 1
    months = {m["month"]: m["grams"] for m in queries_summary(hub, alice)["by_month"]}
    assert {bars.nth(i).get_attribute("data-label"): int(bars.nth(i).get_attribute("data-total"))
            for i in range(bars.count())} == dict(list(months.items())[-12:])
    shot(page, tmp_path, "user-page")

    # A receipt opens in place: the formula with its numbers.
    credited = page.locator("tr.behaviour.status-accepted").first
    credited.get_by_role("link", name="Receipt").click()
    formula = page.get_by_test_id("formula").first
    expect(formula).to_contain_text("credited")
    expect(formula).to_contain_text(re.compile(r"\d+ g"))
    expect(page.locator(".receipt-row table.factors td.source").first).not_to_be_empty()

    # Switch a consent off: the switch and the store say so.
    switch = page.locator("button.switch[data-scenario='metro']")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(page.locator("button.switch[data-scenario='metro']")).to_have_attribute("aria-checked", "false")
    expect(page.locator(".flash.ok")).to_contain_text("switched off")
    assert queries.consent_state(alice, "metro")["granted"] is False

    # Answer a quiz question: the explanation appears, the points are in the ledger.
    question = page.locator("#quiz .question").first
    qid = question.get_attribute("data-question")
    question.locator("input[type=radio]").first.check()
    question.get_by_role("button", name="Answer").click()
    answered = page.locator(f"#quiz .question[data-question='{qid}'] .explanation")
    expect(answered).to_contain_text("Source:")
    row = db.QuizAnswer.get((db.QuizAnswer.account == alice) & (db.QuizAnswer.question == qid))
    assert row is not None

    # Redeem the first benefit the user can afford.
    points_before = queries.account_view(alice)["balances"]["points"]
    open_benefit = page.locator("#benefits form.benefit:has(button[type=submit]:not([disabled]))").first
    if open_benefit.count():
        benefit = open_benefit.get_attribute("data-benefit")
        for field in open_benefit.locator("input[name^='details.']").all():
            field.fill("EG12345678")
        cost = next(b["cost"] for b in hub.exchange.catalogue(alice) if b["id"] == benefit)
        open_benefit.get_by_role("button", name="Redeem").click()
        expect(page.locator(".redemptions li").first).to_contain_text(benefit)
        views, _ = hub.exchange.page(alice, limit=5)
        assert views[0]["benefit"] == benefit
        if views[0]["status"] == "fulfilled":
            assert queries.account_view(alice)["balances"]["points"] <= points_before - cost + 10
    else:  # pragma: no cover - the demo gives alice enough points; say so if that changes
        pytest.fail("the demo left demo-alice no benefit she can redeem")

    # Make a share card: the image loads, the public link shows the figures and nothing private.
    page.locator("#share select[name=period]").select_option("all")
    page.get_by_role("button", name="Make a share card").click()
    image = page.locator("[data-testid=new-share] img")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete", arg=image.element_handle())  # loaded (or failed), not loading
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) == 1200
    share_url = page.locator("input.share-url").input_value()
    shot(page, tmp_path, "user-page-shared")
    page.goto(share_url)
    body = page.content()
    assert alice not in body and "demo-alice" not in body
    total = queries_summary(hub, alice)["total_g"]
    assert f"{total // 100 / 10:,.1f} kg" in page.inner_text("body")  # kg rounded down, like every gram
    shot(page, tmp_path, "share-page")

    # The calculator: a bad airport is named, a good request priced line by line.
    page.goto(server.url + "/#calculator")
    page.fill("input[name=car_km]", "-5")
    page.get_by_role("button", name="Estimate").click()
    expect(page.locator("#calculator .errors")).to_contain_text("car_km")
    page.fill("input[name=car_km]", "300")
    page.fill("input[name=origin]", "PEK")
    page.fill("input[name=destination]", "SZX")
    page.get_by_role("button", name="Estimate").click()
    expect(page.get_by_test_id("footprint-total")).to_contain_text(" g")
    expect(page.locator(".suggestions li").first).to_be_visible()


def test_an_operator_reads_the_console(server, page, tmp_path):
    page.goto(server.url + "/console")
    page.fill("input[name=api_key]", "not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".flash.error")).to_contain_text("admin")
    page.fill("input[name=api_key]", SECRETS["CARBONHUB_KEY_CONSOLE"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#ingestion svg.chart")).to_be_visible()
    expect(page.get_by_test_id("total-accepted")).to_have_text(f"{accepted_in_window(server.hub, 30):,}")
    bars = page.locator("#ingestion svg g.bar")
    assert bars.count() == 30
    page.get_by_role("link", name="90 days").click()
    expect(page.locator("#ingestion svg g.bar")).to_have_count(90)
    days_with_traffic = sum(int(bars.nth(i).get_attribute("data-total")) > 0 for i in range(90))
    assert days_with_traffic > 20  # the demo's traffic arrives day by day over three months
    assert page.locator("#rejections tr[data-reason]").count() >= 3
    expect(page.locator("#methodologies tr.in-force").first).to_be_visible()
    expect(page.get_by_test_id("verify-status")).to_contain_text("Never verified")
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_test_id("verify-status")).to_contain_text("Verified")
    shot(page, tmp_path, "console")


def queries_summary(hub, account):
    from hub import summary

    return summary.summary(hub, account)
