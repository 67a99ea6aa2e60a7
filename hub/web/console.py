"""The bank's console: scenarios and partners, ingestion over time, top rejection reasons,
methodology versions in force, connectors, and the ledger's verify status.

Operators sign in with an API key holding ``admin`` (the key is checked once and
never stored in the cookie). Read-only but for one action: run a ledger check.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from connectors.status import connector_status

from .. import ingest_stats, ledger_checks
from ..api.auth import authenticate_key, current_hub
from ..config import ApiKey
from . import charts
from .sessions import check_csrf, signed_in_operator, start_operator_session

bp = Blueprint("console", __name__, template_folder="templates", url_prefix="/console")
DAYS = (7, 30, 90)


def _operator() -> ApiKey:
    key = signed_in_operator(current_hub())
    if key is None:
        abort(401, description="Sign in to the console with an admin API key.")
    return key


@bp.get("", endpoint="index")
def console() -> Any:
    hub = current_hub()
    key = signed_in_operator(hub)
    if key is None:
        return render_template("console_sign_in.html")
    days = request.args.get("days", type=int) or 30
    if days not in DAYS:
        days = 30
    return render_template("console.html", operator=key.name, days=days, choices=DAYS, **_data(days))


def _data(days: int) -> dict[str, Any]:
    hub = current_hub()
    stats = ingest_stats.ingestion_stats(hub, days=days)
    labels = [d["date"].strftime("%m-%d") for d in stats["daily"]]
    series = {status: [d[status] for d in stats["daily"]] for status in ("accepted", "duplicate", "rejected")}
    chart = charts.stacked_bars(labels, series, title=f"Partner records per day, last {days} days",
                                label_every=max(1, len(labels) // 10))
    scenarios = [hub.scenario_view(sid) for sid in hub.enabled_scenarios()]
    today = hub.now().astimezone(hub.settings.timezone).date()
    methodologies = [{"id": mid, "versions": [{**v.as_dict(), "in_force": v.in_force(today)} for v in versions]}
                     for mid, versions in sorted(hub.methodologies.versions.items())]
    return {"stats": stats, "chart": chart, "scenarios": scenarios, "partners": list(hub.settings.partners.values()),
            "methodologies": methodologies, "check": ledger_checks.last_check(),
            "connectors": connector_status(hub)}


@bp.post("/sign-in")
def sign_in() -> Any:
    check_csrf()
    hub = current_hub()
    key = authenticate_key(hub, request.form.get("api_key", "").strip())
    if key is None or "admin" not in key.scopes:
        # One message for both: the form does not tell which keys exist.
        flash("That key is unknown, inactive or lacks the admin scope.", "error")
        return redirect(url_for("console.index"), code=303)
    start_operator_session(hub, key)
    return redirect(url_for("console.index"), code=303)


@bp.post("/sign-out")
def sign_out() -> Any:
    check_csrf()
    session.clear()
    return redirect(url_for("console.index"), code=303)


@bp.post("/ledger-checks")
def run_check() -> Any:
    check_csrf()
    _operator()
    _report, result = ledger_checks.check_ledger(current_hub(), trigger="console")
    flash("Ledger verified: every balance and the hash chain are intact." if result["ok"]
          else f"Ledger check FAILED: {result['problem_count']} problem(s); see below.",
          "ok" if result["ok"] else "error")
    return redirect(url_for("console.index") + "#ledger", code=303)
