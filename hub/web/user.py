"""The user page: balance, monthly chart, the detail list with receipts, consents, benefits,
the share card, the quiz and the calculator.

Every action is a plain form post answered with a redirect back to the page (so a
reload never posts twice) and calls the same services as the API: the page is
one more client of the hub, never a second implementation of its rules.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup
from marshmallow import ValidationError

from .. import calculator, content, queries, quiz, shares, summary
from ..api.auth import current_hub
from ..api.footprint_schemas import CalculatorSchema
from ..demo import DEMO_USERS
from ..exchange import ExchangeError
from . import charts
from .sessions import check_csrf, read_sign_in_token, signed_in_account, start_user_session

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assets")
DETAIL_ROWS = 20


def _account() -> str:
    account = signed_in_account(current_hub())
    if account is None or not queries.account_exists(account):
        abort(401, description="Sign in again: open the link your bank's app gives you.")
    return account


def _back(anchor: str) -> Response:
    return redirect(url_for("web.index") + f"#{anchor}", code=303)


def _titles() -> dict[str, str]:
    hub = current_hub()
    return {sid: spec.title for sid, spec in hub.registry.scenarios.items()}


def _demo_accounts() -> list[dict[str, str]]:
    from ..db import Account

    if not current_hub().settings.web.demo_sign_in:
        return []
    rows = Account.select(Account.id, Account.bank_ref).where(Account.bank_ref.in_(DEMO_USERS))
    return sorted(({"id": r.id, "bank_ref": r.bank_ref} for r in rows), key=lambda a: a["bank_ref"])


@bp.get("/")
def index() -> Any:
    hub = current_hub()
    account = signed_in_account(hub)
    if account is None or not queries.account_exists(account):
        return render_template("sign_in.html", demo_accounts=_demo_accounts())
    return render_template("user.html", **_page(account))


def _page(account: str, calculator_state: dict[str, Any] | None = None) -> dict[str, Any]:
    hub = current_hub()
    titles = _titles()
    view = queries.account_view(account)
    totals = summary.summary(hub, account)
    months = totals["by_month"][-12:]
    chart = charts.stacked_bars([m["month"] for m in months], {"grams": [m["grams"] for m in months]},
                                title="Reductions by month, in grams", unit=" g")
    behaviours, _ = queries.behaviours_page(account, limit=DETAIL_ROWS)
    consents = {c["scenario"]: c["granted"] for c in queries.consents_view(account)["consents"]}
    scenarios = [{"id": sid, "title": titles.get(sid, sid), "granted": consents.get(sid, False),
                  "science": content.article_for_scenario(sid)} for sid in hub.enabled_scenarios()]
    benefits = hub.exchange.catalogue(account)
    redemptions, _ = hub.exchange.page(account, limit=5)
    created_share = session.pop("new_share", None)
    return {
        "account": view, "summary": totals, "chart": chart, "titles": titles, "behaviours": behaviours,
        "scenarios": scenarios, "benefits": benefits, "redemptions": redemptions,
        "redeem_key": str(uuid.uuid4()), "quiz": quiz.today(hub, account),
        "shares": shares.list_for(hub, account), "new_share": created_share,
        "calculator": calculator_state, "articles": content.articles(), "cabins": calculator.CABINS,
    }


@bp.get("/sign-in/<token>")
def sign_in(token: str) -> Any:
    hub = current_hub()
    account = read_sign_in_token(hub, token)
    if account is None or not queries.account_exists(account):
        abort(403, description="This sign-in link is invalid or has expired; ask the app for a new one.")
    start_user_session(hub, account)
    return redirect(url_for("web.index"), code=303)


@bp.post("/sign-in/demo")
def sign_in_demo() -> Any:
    check_csrf()
    wanted = request.form.get("account", "")
    if not any(a["id"] == wanted for a in _demo_accounts()):
        abort(403, description="Demo sign-in is off, or that is not a demo account.")
    start_user_session(current_hub(), wanted)
    return redirect(url_for("web.index"), code=303)


@bp.post("/sign-out")
def sign_out() -> Any:
    check_csrf()
    session.clear()
    return redirect(url_for("web.index"), code=303)


@bp.get("/behaviours/<behaviour_id>")
def behaviour(behaviour_id: str) -> Any:
    """One behaviour and its receipt: a page, or the fragment the list opens in place."""
    account = _account()
    found = queries.behaviour_detail(account, behaviour_id)
    if found is None:
        abort(404, description="No such record in your account.")
    template = "receipt_fragment.html" if request.args.get("fragment") else "receipt_page.html"
    return render_template(template, b=found, titles=_titles())


@bp.post("/consents/<scenario>")
def consent(scenario: str) -> Any:
    check_csrf()
    account, hub = _account(), current_hub()
    if scenario not in hub.enabled_scenarios():
        abort(404, description=f"No enabled scenario {scenario!r}.")
    granted = request.form.get("granted") == "1"
    hub.set_consent(account, scenario, granted, source="web")
    title = _titles().get(scenario, scenario)
    flash(f"{title}: automatic collection {'switched on' if granted else 'switched off'}.", "ok")
    return _back("consents")


@bp.post("/quiz/<question_id>")
def quiz_answer(question_id: str) -> Any:
    check_csrf()
    account = _account()
    try:
        choice = int(request.form.get("choice", ""))
    except ValueError:
        flash("Pick an answer first.", "error")
        return _back("quiz")
    try:
        result, _first = quiz.answer(current_hub(), account, question_id, choice)
    except quiz.QuizError as exc:
        flash(exc.message, "error")
        return _back("quiz")
    flash(("Right! " if result["correct"] else "Not quite. ") +
          (f"+{result['points']} points. " if result["points"] else "") + result["explanation"],
          "ok" if result["correct"] else "info")
    return _back("quiz")


@bp.post("/redeem/<benefit_id>")
def redeem(benefit_id: str) -> Any:
    check_csrf()
    account = _account()
    key = request.form.get("key", "")
    if not 8 <= len(key) <= 100:
        abort(400, description="The form lost its key; reload the page.")
    details = {k.removeprefix("details."): v for k, v in request.form.items() if k.startswith("details.")}
    try:
        view, created = current_hub().exchange.redeem(account, benefit_id, f"web:{key}", details)
    except ExchangeError as exc:
        flash(exc.message, "error")
        return _back("benefits")
    if not created:
        flash("That redemption was already made (the form was sent twice); nothing more was spent.", "info")
    elif view["status"] == "fulfilled":
        flash(f"Redeemed {benefit_id} for {view['cost']} points.", "ok")
    else:
        flash(f"Redemption {view['status']}: {(view.get('failure') or {}).get('message', 'see below')}.", "info")
    return _back("benefits")


@bp.post("/shares")
def share_create() -> Any:
    check_csrf()
    account, hub = _account(), current_hub()
    try:
        made = shares.create(hub, account, request.form.get("period") or "all",
                             int(request.form.get("ttl_days") or 30))
    except (ValueError, shares.ShareError) as exc:
        flash(getattr(exc, "message", str(exc)), "error")
        return _back("share")
    # The token is shown once, right after creation; only its digest is stored.
    session["new_share"] = {"id": made["id"], "url": made["url"], "svg_url": made["svg_url"],
                            "png_url": made["png_url"], "expires_at": str(made["expires_at"])}
    return _back("share")


@bp.post("/shares/<share_id>/revoke")
def share_revoke(share_id: str) -> Any:
    check_csrf()
    account, hub = _account(), current_hub()
    try:
        shares.revoke(hub, account, share_id)
    except shares.ShareError as exc:
        flash(exc.message, "error")
        return _back("share")
    flash("The share link was revoked; it no longer opens.", "ok")
    return _back("share")


def _calculator_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("car_km", "metro_km"):
        if form.get(name, "").strip():
            body[name] = form[name].strip()
    for name in ("paper_bills", "counter_payments"):
        raw = form.get(name, "").strip()
        if raw:
            try:
                body[name] = int(raw)
            except ValueError:
                body[name] = raw  # the schema names the field
    if form.get("city"):
        body["city"] = form["city"]
    origin, destination = form.get("origin", "").strip(), form.get("destination", "").strip()
    if origin or destination:
        flight: dict[str, Any] = {"origin": origin, "destination": destination,
                                  "cabin": form.get("cabin") or "economy",
                                  "checked_bag": form.get("checked_bag") == "1"}
        try:
            flight["count"] = int(form.get("flights") or 1)
        except ValueError:
            flight["count"] = form.get("flights")
        body["flights"] = [flight]
    return body


@bp.post("/calculator")
def calculate() -> Any:
    """Answered with the page itself (nothing is stored, so nothing to protect from a second post)."""
    check_csrf()
    account = _account()
    state: dict[str, Any] = {"form": {k: v for k, v in request.form.items() if k != "csrf"}}
    try:
        state["result"] = calculator.calculate(current_hub(), CalculatorSchema().load(_calculator_body(request.form)))
    except ValidationError as exc:
        state["errors"] = _flat(exc.normalized_messages())
    return render_template("user.html", **_page(account, state)), (422 if "errors" in state else 200)


def _flat(messages: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            out += _flat(value, f"{prefix}{key}." if not str(key).isdigit() else prefix)
    elif isinstance(messages, list):
        for m in messages:
            out += _flat(m, prefix) if isinstance(m, (dict, list)) else [f"{prefix.rstrip('.')}: {m}"]
    return out


@bp.get("/science/<slug>")
def science(slug: str) -> Any:
    """An article, public like ``GET /v1/science/<slug>``, rendered from its Markdown."""
    import markdown

    article = content.articles().get(slug)
    if article is None:
        abort(404, description=f"No article {slug!r}.")
    # Articles are the bank's own reviewed files, not user input; raw HTML in them is still escaped.
    html = markdown.markdown(article.body.replace("<", "&lt;"), extensions=["tables"])
    return render_template("science.html", article=article, body=Markup(html))
