"""The bank's card centre: e-statements viewed instead of paper statements mailed.

Native record (one statement cycle of one card)::

    {"statement_id": "ST-202610-000451", "account_id": "acc_…", "card_ref": "card_7c1e",
     "cycle": "2026-10", "viewed_at": "2026-11-03T09:12:00+08:00", "channel": "app",
     "paper_suppressed": true}

One statement per card per billing cycle is credited, whoever reports it.
See ``docs/scenarios/estatement.md``.
"""
from __future__ import annotations

import re
from decimal import Decimal

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "estatement"
CHANNELS = ("app", "web", "email")
_CYCLE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="E-statements", methodology="estatement-paperless",
                         unit="statement", description="A credit-card statement viewed online instead of mailed.")]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="estatement-paperless", documents=documents("estatement"))]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    cycle = parsing.text(p, "cycle", max_length=7)
    match = _CYCLE.match(cycle)
    if not match:
        raise RecordError("invalid_record", "cycle must be YYYY-MM.", "cycle")
    viewed_at = parsing.timestamp(p, "viewed_at")
    channel = parsing.text(p, "channel", max_length=16)
    if channel not in CHANNELS:
        raise RecordError("invalid_record", f"channel must be one of {', '.join(CHANNELS)}.", "channel")
    suppressed = p.get("paper_suppressed")
    if not isinstance(suppressed, bool):
        raise RecordError("invalid_record", "paper_suppressed must be true or false.", "paper_suppressed")
    card = parsing.text(p, "card_ref")
    return [Behaviour(
        scenario=SCENARIO,
        account_id=parsing.text(p, "account_id", max_length=40),
        event_id=parsing.text(p, "statement_id"),
        fingerprint=fingerprint(SCENARIO, card, cycle),  # one per card per billing cycle
        occurred_at=viewed_at,
        quantity=Decimal(1),
        unit="statement",
        attributes={"card_ref": card, "cycle": cycle, "channel": channel, "paper_suppressed": suppressed},
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    if not behaviour.attributes.get("paper_suppressed"):
        return [Problem("paper_sent", "A paper statement was also mailed; nothing was avoided.",
                        "paper_suppressed")]
    year, month = (int(x) for x in behaviour.attributes["cycle"].split("-"))
    local = behaviour.occurred_at.astimezone(ctx.tz)
    if (local.year, local.month) < (year, month):
        return [Problem("viewed_before_cycle", "The statement was viewed before its cycle began.", "viewed_at")]
    return []
