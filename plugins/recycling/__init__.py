"""Second-hand and recycling platform: phones, clothes and books handed over for reuse.

Native record (one item of a pickup order, as the platform reports it once the
item's fate is known)::

    {"item_id": "AHS-20261118-000731-01", "order_id": "AHS-20261118-000731", "account_id": "acc_…",
     "item_kind": "phone", "outcome": "resold", "handed_over_at": "2026-11-18T15:20:00+08:00",
     "device_token": "imei_5c1f09ab", "model": "iPhone 14 Pro Max", "condition_pct": 90}
    {"item_id": "AHS-20261118-000731-02", …, "item_kind": "clothes", "outcome": "donated", "weight_kg": "2.35"}
    {"item_id": "AHS-20261118-000731-03", …, "item_kind": "book", "outcome": "resold", "copies": 3}

Every kind is one behaviour of unit ``item`` (one phone, one bag of clothes, n
copies of books); the family ``reuse_by_kind`` reads ``item_kind`` and the
kind's own measure (``condition_pct``, ``weight_kg``) from the attributes.
See ``docs/scenarios/recycling.md``.
"""
from __future__ import annotations

from datetime import timezone
from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "recycling"
KINDS = ("phone", "clothes", "book")
# What happened to the item: resold or donated goes to a new user as it is (reuse);
# recycled is broken down for materials.
OUTCOMES = {"resold": "reuse", "donated": "reuse", "recycled": "material"}
MAX_CLOTHES_KG = Decimal(50)  # more than a household hands over in one pickup: a warehouse lot
MAX_BOOK_COPIES = 50  # one pickup of a bookshelf; more is a trader, not a household


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Second-hand and recycling", methodology="recycling-reuse",
                         unit="item", description="Phones, clothes and books handed to a second-hand platform "
                                                  "and reused instead of bought new.",
                         partner_kinds=("recycler",))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="recycling-reuse", documents=documents("recycling"))]


def _whole_number(p: Mapping[str, Any], name: str, *, maximum: int) -> int:
    value = p.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise RecordError("invalid_record", f"{name} must be a whole number from 0 to {maximum}.", name)
    return value


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    kind = parsing.text(p, "item_kind", max_length=32).lower()
    if kind not in KINDS:
        raise RecordError("unknown_item_kind", f"item_kind must be one of {', '.join(KINDS)}.", "item_kind")
    outcome = parsing.text(p, "outcome", max_length=16).lower()
    if outcome not in OUTCOMES:
        raise RecordError("invalid_record", f"outcome must be one of {', '.join(OUTCOMES)}.", "outcome")
    item_id = parsing.text(p, "item_id")
    account_id = parsing.text(p, "account_id", max_length=40)
    handed_over_at = parsing.timestamp(p, "handed_over_at")
    attributes = {"item_kind": kind, "outcome": outcome, "route": OUTCOMES[outcome],
                  "order_id": parsing.text(p, "order_id", required=False)}
    quantity = Decimal(1)
    if kind == "phone":
        device = parsing.text(p, "device_token")
        attributes.update(item_ref=device, model=parsing.text(p, "model", required=False),
                          condition_pct=_whole_number(p, "condition_pct", maximum=100))
        # One device is resold at most once a local day: whoever reports it and for
        # whichever account, a second sale of the same device that day is the same act.
        local_day = handed_over_at.astimezone(ctx.tz).date().isoformat()
        act = fingerprint(SCENARIO, kind, device, local_day)
    else:
        if kind == "clothes":
            kg = parsing.decimal(p, "weight_kg")
            if kg <= 0:
                raise RecordError("invalid_record", "weight_kg must be more than 0.", "weight_kg")
            attributes["weight_kg"] = str(kg)
        else:
            copies = _whole_number(p, "copies", maximum=10_000)
            if copies == 0:
                raise RecordError("invalid_record", "copies must be at least 1.", "copies")
            quantity = Decimal(copies)
        # A bag or a pile of books has no serial number: each item line is its own
        # subject, and the real act is this account's handover of this kind in this minute.
        attributes["item_ref"] = item_id
        act = fingerprint(SCENARIO, kind, account_id,
                             handed_over_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"))
    return [Behaviour(scenario=SCENARIO, account_id=account_id, event_id=item_id, fingerprint=act,
                      occurred_at=handed_over_at, quantity=quantity, unit="item", attributes=attributes)]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    kind = behaviour.attributes.get("item_kind")
    if kind == "clothes" and Decimal(behaviour.attributes["weight_kg"]) > MAX_CLOTHES_KG:
        return [Problem("implausible_weight", f"{behaviour.attributes['weight_kg']} kg of clothes in one pickup is "
                                              f"implausible (max {MAX_CLOTHES_KG} kg).", "weight_kg")]
    if kind == "book" and behaviour.quantity > MAX_BOOK_COPIES:
        return [Problem("implausible_copies", f"{behaviour.quantity} books in one pickup is implausible "
                                              f"(max {MAX_BOOK_COPIES}).", "copies")]
    return []


from .connectors import *  # noqa: E402,F401,F403  (the monthly file's batch connector, see connectors.py)
