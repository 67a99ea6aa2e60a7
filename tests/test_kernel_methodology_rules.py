"""Kernel rules a scenario's methodology can ask for: caps counted per subject
(one bill account, one card) across all users, and a formula refusing an act.

A test plugin registers scenario ``bills`` (89 g per payment) whose methodology
document, written into the test's temp folder, counts caps by the attribute
``bill_account``. Its formula refuses a payment from city ``nowhere`` with its
own reason code and crashes on a payment marked ``crash`` (a formula bug).
"""
from __future__ import annotations

import hashlib
import textwrap
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from conftest import SECRETS
from plugin_helpers import plugin_module

from hub import db
from hub.config import ConfigError, load_settings
from hub.core import Hub
from hub.db import InboxRecord, UsageCounter
from hub.methodology import MethodologyError, MethodologyRegistry
from hub.records import (ACCEPTED, REJECTED, Behaviour, Calculation, MethodologySpec, RecordError, ScenarioSpec,
                         fingerprint)

CST = timezone(timedelta(hours=8))
GRAMS = 89  # per payment, the document's factor below

DOCUMENT = """
id = "bills-test"
version = "2022.1"
title = "Online bill payment (test)"
family = "per_quantity"
reviewer = "test"
reviewed_on = 2022-01-01
effective_from = 2022-01-01
quantity_unit = "payment"
cap_subject = "bill_account"

[factors.baseline]
value = 89
unit = "g/payment"
source = "test figure"

[caps]
per_month_count = 10
per_subject_month_count = 1
"""


def formula(factors, behaviour):
    if behaviour.attributes.get("city") == "nowhere":
        raise RecordError("no_factor_for_city", "No factor for city 'nowhere'.", "city")
    if behaviour.attributes.get("crash") and not bills_plugin.fixed:
        raise ZeroDivisionError("formula bug")
    base = factors["baseline"]
    q = Decimal(behaviour.quantity)
    return Calculation(baseline_g=q * base.value, project_g=Decimal(0), factors_used=("baseline",),
                       formula=f"{q} payment × {base.value} {base.unit}")


def normalize(ctx, record):
    if "bills" not in record.scenarios:
        return None
    p = record.payload
    attributes = {k: p[k] for k in ("bill_account", "city", "crash") if k in p}
    return [Behaviour(scenario="bills", account_id=p["account_id"], event_id=p["payment_id"],
                      fingerprint=fingerprint("bills", p["payment_id"]),
                      occurred_at=datetime.fromisoformat(p["paid_at"]), quantity=Decimal(1), unit="payment",
                      attributes=attributes)]


bills_plugin = plugin_module(
    "bills_test_plugin",
    carbonhub_register_scenarios=lambda ctx: [ScenarioSpec(id="bills", title="Bills", methodology="bills-test",
                                                           unit="payment")],
    carbonhub_normalize_record=normalize)
bills_plugin.fixed = False


@pytest.fixture
def bills(tmp_path):
    path = tmp_path / "bills-2022.1.toml"
    path.write_text(textwrap.dedent(DOCUMENT), encoding="utf-8")
    plugin = plugin_module(
        f"bills_methodology_{abs(hash(str(tmp_path))):x}",
        carbonhub_register_methodologies=lambda ctx: [MethodologySpec(id="bills-test", documents=(path,),
                                                                      formula=formula)])
    bills_plugin.fixed = False
    return plugin


@pytest.fixture
def make_hub(config_data, database_url, clock, bills):
    def build(caps=None) -> Hub:
        config_data["partners"]["biller"] = {"name": "Biller", "secret_env": "CARBONHUB_SECRET_BILLER",
                                             "scenarios": ["bills"]}
        config_data["scenarios"]["bills"] = {"caps": caps or {}, "points": {"bonus": 2}}
        settings = load_settings(data=config_data, environ={**SECRETS, "CARBONHUB_SECRET_BILLER": "b" * 20})
        h = Hub(settings, clock=clock, database_url=database_url, extra_plugins=[bills_plugin, bills])
        h.init_db()
        return h

    yield build
    if not db.database.is_closed():
        db.database.close()


def member(hub: Hub, ref: str) -> str:
    account, _ = hub.open_account(ref)
    hub.set_consent(account.id, "bills", True, at=datetime(2020, 1, 1, tzinfo=CST))
    return account.id


def payment(account: str, pid: str, day: int, bill_account: str = "SG-4401-778", month: int = 11, **extra):
    return {"account_id": account, "payment_id": pid, "bill_account": bill_account,
            "paid_at": datetime(2026, month, day, 9, 30, tzinfo=CST).isoformat(), **extra}


def verdicts(result):
    return [(b.status, b.reason, b.field, b.grams) for r in result.records for b in r.behaviours] or \
        [(r.status, r.reason, r.field, 0) for r in result.records]


def test_one_credit_per_bill_account_a_month_whoever_pays(make_hub):
    hub = make_hub()
    mother, son = member(hub, "mother"), member(hub, "son")
    first = hub.pipeline.ingest("biller", [payment(mother, "P1", 3), payment(son, "P2", 5),
                                           payment(son, "P3", 6, bill_account="SG-4401-999")])
    assert verdicts(first) == [(ACCEPTED, None, None, GRAMS),
                               (REJECTED, "cap_reached", "attributes.bill_account", 0),
                               (ACCEPTED, None, None, GRAMS)]
    assert "bill_account" in first.records[1].behaviours[0].message
    # A later batch sees the committed counter; the next month starts afresh.
    later = hub.pipeline.ingest("biller", [payment(mother, "P4", 20), payment(son, "P5", 2, month=10),
                                           payment(son, "P6", 1, month=12)])
    assert verdicts(later) == [(REJECTED, "cap_reached", "attributes.bill_account", 0),
                               (ACCEPTED, None, None, GRAMS), (REJECTED, "future_date", "occurred_at", 0)]
    assert hub.ledger.balance(f"user:{mother}:carbon", "g") == GRAMS
    assert hub.ledger.balance(f"user:{son}:carbon", "g") == 2 * GRAMS


def test_subject_counters_never_hold_the_bill_account_in_clear(make_hub):
    hub = make_hub()
    acc = member(hub, "u")
    hub.pipeline.ingest("biller", [payment(acc, "P1", 3)])
    subject_rows = [r for r in UsageCounter.select() if r.account.startswith("s:")]
    expected = "s:" + hashlib.sha256("bills\x1fSG-4401-778".encode()).hexdigest()[:32]
    assert {(r.account, r.period, r.count, r.grams) for r in subject_rows} == {
        (expected, "d:2026-11-03", 1, GRAMS), (expected, "m:2026-11", 1, GRAMS)}
    assert not any("4401" in r.account for r in UsageCounter.select())


def test_missing_subject_attribute_is_missing_evidence(make_hub):
    hub = make_hub()
    acc = member(hub, "u")
    record = payment(acc, "P1", 3)
    del record["bill_account"]
    assert verdicts(hub.pipeline.ingest("biller", [record])) == [
        (REJECTED, "missing_evidence", "attributes.bill_account", 0)]


def test_bank_config_can_add_a_daily_subject_cap_but_not_loosen_the_monthly_one(make_hub):
    with pytest.raises(ConfigError, match="per_subject_month_count: 5 is looser than bills-test 2022.1's cap of 1"):
        make_hub(caps={"per_subject_month_count": 5})
    hub = make_hub(caps={"per_subject_day_count": 1})
    a, b = member(hub, "a"), member(hub, "b")
    result = hub.pipeline.ingest("biller", [payment(a, "P1", 3), payment(b, "P2", 4)])
    assert [v[1] for v in verdicts(result)] == [None, "cap_reached"]
    view = hub.scenario_view("bills")
    assert view["caps"] == {"per_month_count": 10, "per_subject_month_count": 1, "per_subject_day_count": 1}
    assert view["cap_subject"] == "bill_account"


def test_a_formula_refusing_an_act_gives_its_own_reason(make_hub):
    hub = make_hub()
    acc = member(hub, "u")
    result = hub.pipeline.ingest("biller", [payment(acc, "P1", 3, city="nowhere"), payment(acc, "P2", 4,
                                                                                           bill_account="X2")])
    assert verdicts(result) == [(REJECTED, "no_factor_for_city", "city", 0), (ACCEPTED, None, None, GRAMS)]


def test_a_crashing_formula_rejects_the_act_not_the_batch_and_replays_after_the_fix(make_hub, caplog):
    hub = make_hub()
    acc = member(hub, "u")
    result = hub.pipeline.ingest("biller", [payment(acc, "P1", 3, crash=True),
                                            payment(acc, "P2", 4, bill_account="X2")])
    assert [v[:2] for v in verdicts(result)] == [(REJECTED, "methodology_failed"), (ACCEPTED, None)]
    assert "ZeroDivisionError" in result.records[0].behaviours[0].message
    assert "methodology bills-test 2022.1 failed" in caplog.text
    inbox = InboxRecord.get_by_id(result.records[0].inbox_id)
    assert (inbox.status, inbox.reason) == (REJECTED, "methodology_failed")

    bills_plugin.fixed = True
    replay = hub.pipeline.replay(reason="methodology_failed")
    assert [v[:2] for v in verdicts(replay)] == [(ACCEPTED, None)]
    assert hub.ledger.balance(f"user:{acc}:carbon", "g") == 2 * GRAMS


def test_subject_caps_without_cap_subject_do_not_load(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(DOCUMENT).replace('cap_subject = "bill_account"\n', ""), encoding="utf-8")
    with pytest.raises(MethodologyError, match="cap_subject"):
        MethodologyRegistry([MethodologySpec(id="bills-test", documents=(path,), formula=formula)])
