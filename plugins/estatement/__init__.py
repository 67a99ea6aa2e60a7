"""The bank's e-statements viewed instead of paper statements mailed, from two of its systems.

The card centre's statement system (one statement cycle of one card)::

    {"statement_id": "ST-202610-000451", "account_id": "acc_…", "card_ref": "card_7c1e",
     "cycle": "2026-10", "viewed_at": "2026-11-03T09:12:00+08:00", "channel": "app",
     "paper_suppressed": true}

The mobile-banking app's view log (one view; told apart by its ``event`` field,
``ts`` in epoch milliseconds, ``bill_month`` as ``YYYYMM``)::

    {"log_id": "MBL-20261103-0091273", "event": "estatement_view", "carbon_account": "acc_…",
     "card": {"ref": "card_7c1e"}, "bill_month": "202610", "ts": 1793668320000,
     "platform": "ios", "delivery": "electronic"}

One statement per card per billing cycle is credited, whoever reports it: both
shapes give the same fingerprint (card reference, cycle). A card number (PAN)
is refused (``pan_not_allowed``). See ``docs/scenarios/estatement.md``.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents
from plugins.cardnumbers import refuse_card_numbers

CARBONHUB_API = "1.0"
SCENARIO = "estatement"
CHANNELS = ("app", "web", "email")
_CYCLE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# The mobile-banking app's view log
VIEW_EVENT = "estatement_view"
PLATFORMS = ("ios", "android", "harmony")
DELIVERIES = {"electronic": True, "paper_and_electronic": False}
_BILL_MONTH = re.compile(r"^(\d{4})(0[1-9]|1[0-2])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_TS_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="E-statements", methodology="estatement-paperless",
                         unit="statement", description="A credit-card statement viewed online instead of mailed.",
                         partner_kinds=("bank",))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="estatement-paperless", documents=documents("estatement"))]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    # A record with a type is the card centre's e-card record (plugins/ecard), not a statement.
    if SCENARIO not in record.scenarios or "type" in record.payload:
        return None
    p = record.payload
    refuse_card_numbers(p, skip=("ts",))  # first: nothing of a record carrying a PAN is read
    if "event" in p:
        return [_view_log(p)]
    return [_card_centre(p)]


def _behaviour(*, account_id: str, event_id: str, card: str, cycle: str, viewed_at: datetime,
               attributes: Mapping[str, Any]) -> Behaviour:
    return Behaviour(
        scenario=SCENARIO,
        account_id=account_id,
        event_id=event_id,
        # One per card per billing cycle, whichever system reports it. Unchanged since
        # the first credits: existing credits keep deduplicating new reports.
        fingerprint=fingerprint(SCENARIO, card, cycle),
        occurred_at=viewed_at,
        quantity=Decimal(1),
        unit="statement",
        attributes={"card_ref": card, "cycle": cycle, **attributes},
    )


def _card_centre(p: Mapping[str, Any]) -> Behaviour:
    cycle = parsing.text(p, "cycle", max_length=7)
    if not _CYCLE.match(cycle):
        raise RecordError("invalid_record", "cycle must be YYYY-MM.", "cycle")
    viewed_at = parsing.timestamp(p, "viewed_at")
    channel = parsing.text(p, "channel", max_length=16)
    if channel not in CHANNELS:
        raise RecordError("invalid_record", f"channel must be one of {', '.join(CHANNELS)}.", "channel")
    suppressed = p.get("paper_suppressed")
    if not isinstance(suppressed, bool):
        raise RecordError("invalid_record", "paper_suppressed must be true or false.", "paper_suppressed")
    card = parsing.text(p, "card_ref")
    return _behaviour(account_id=parsing.text(p, "account_id", max_length=40),
                      event_id=parsing.text(p, "statement_id"), card=card, cycle=cycle,
                      viewed_at=viewed_at, attributes={"channel": channel, "paper_suppressed": suppressed})


def _view_log(p: Mapping[str, Any]) -> Behaviour:
    if p.get("event") != VIEW_EVENT:
        raise RecordError("invalid_record", f"event must be {VIEW_EVENT}.", "event")
    month = parsing.text(p, "bill_month", max_length=6)
    match = _BILL_MONTH.match(month)
    if not match:
        raise RecordError("invalid_record", "bill_month must be YYYYMM.", "bill_month")
    ts = p.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 < ts <= _MAX_TS_MS:
        raise RecordError("invalid_record", "ts must be a positive integer of epoch milliseconds.", "ts")
    platform = parsing.text(p, "platform", max_length=16)
    if platform not in PLATFORMS:
        raise RecordError("invalid_record", f"platform must be one of {', '.join(PLATFORMS)}.", "platform")
    delivery = parsing.text(p, "delivery", max_length=32)
    if delivery not in DELIVERIES:
        raise RecordError("invalid_record", f"delivery must be one of {', '.join(DELIVERIES)}.", "delivery")
    card = p.get("card")
    if not isinstance(card, Mapping):
        raise RecordError("invalid_record", "card must be an object with ref.", "card")
    card_ref = parsing.text({"card.ref": card.get("ref")}, "card.ref")  # errors name the nested field
    return _behaviour(account_id=parsing.text(p, "carbon_account", max_length=40),
                      event_id=parsing.text(p, "log_id"), card=card_ref, cycle=f"{match[1]}-{match[2]}",
                      viewed_at=_EPOCH + timedelta(milliseconds=ts),
                      attributes={"channel": "app", "platform": platform,
                                  "paper_suppressed": DELIVERIES[delivery]})


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    # Problems name the field as the reporter wrote it; only the view log gives a platform.
    view_log = "platform" in behaviour.attributes
    if not behaviour.attributes.get("paper_suppressed"):
        return [Problem("paper_sent", "A paper statement was also mailed; nothing was avoided.",
                        "delivery" if view_log else "paper_suppressed")]
    year, month = (int(x) for x in behaviour.attributes["cycle"].split("-"))
    local = behaviour.occurred_at.astimezone(ctx.tz)
    if (local.year, local.month) < (year, month):
        return [Problem("viewed_before_cycle", "The statement was viewed before its cycle began.",
                        "ts" if view_log else "viewed_at")]
    return []
