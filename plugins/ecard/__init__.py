"""The bank's card centre: e-credit-cards issued with no plastic card.

Native records (the card centre's issuing system). An issued card::

    {"application_id": "ECA-20261115-000731", "type": "issued", "account_id": "acc_…",
     "card_token": "ctk_5b0e9a27c4d1", "product": "e-card UnionPay", "issue": "new",
     "applied_at": "2026-11-15T09:48:00+08:00", "issued_at": "2026-11-15T10:22:00+08:00",
     "plastic_card": false}

and, later, the notice that the customer ordered a plastic card for it after all::

    {"notice_id": "ECN-20261118-000052", "type": "plastic_ordered", "application_id": "ECA-20261115-000731",
     "account_id": "acc_…", "card_token": "ctk_5b0e9a27c4d1", "ordered_at": "2026-11-18T16:03:00+08:00"}

One credit per card, whoever reports it; a card number (PAN) is refused
(``pan_not_allowed``). A plastic-card notice is not credited: it is kept in
the inbox as ``plastic_card_ordered`` for the bank's operator, who reverses the
card's credit. See ``docs/scenarios/ecard.md``.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents
from plugins.cardnumbers import refuse_card_numbers

CARBONHUB_API = "1.0"
SCENARIO = "ecard"
TYPES = ("issued", "plastic_ordered")
ISSUES = ("new", "replacement", "renewal")


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="E-credit-cards", methodology="ecard-no-plastic", unit="application",
                         description="A credit card issued as an e-card only: no plastic card made or mailed.",
                         partner_kinds=("bank",))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    # The bank's reviewed figure (default) and the bottom-up card footprint a bank may pick instead.
    return [MethodologySpec(id="ecard-no-plastic", documents=documents("ecard")),
            MethodologySpec(id="ecard-pvc-card", documents=documents("ecard_pvc"))]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    # The card centre's feed also carries e-statements: e-card records are the ones with a type.
    if SCENARIO not in record.scenarios or "type" not in record.payload:
        return None
    p = record.payload
    refuse_card_numbers(p)  # first: nothing of a record carrying a PAN is read
    kind = parsing.text(p, "type", max_length=32)
    if kind not in TYPES:
        raise RecordError("invalid_record", f"type must be one of {', '.join(TYPES)}.", "type")
    account_id = parsing.text(p, "account_id", max_length=40)
    card = parsing.text(p, "card_token")
    application = parsing.text(p, "application_id")
    if kind == "plastic_ordered":
        parsing.text(p, "notice_id")
        ordered_at = parsing.timestamp(p, "ordered_at")
        # Not an act to credit but a correction for the operator (docs/scenarios/ecard.md).
        raise RecordError("plastic_card_ordered",
                          f"A plastic card was ordered at {ordered_at.isoformat()} for card {card} "
                          f"(application {application}, account {account_id}); reverse that card's e-card "
                          f"credit.", "type")
    applied_at = parsing.timestamp(p, "applied_at")
    issued_at = parsing.timestamp(p, "issued_at")
    issue = parsing.text(p, "issue", max_length=16)
    if issue not in ISSUES:
        raise RecordError("invalid_record", f"issue must be one of {', '.join(ISSUES)}.", "issue")
    plastic = p.get("plastic_card")
    if not isinstance(plastic, bool):
        raise RecordError("invalid_record", "plastic_card must be true or false.", "plastic_card")
    return [Behaviour(
        scenario=SCENARIO,
        account_id=account_id,
        event_id=application,
        # The real act is the card: the same card reported by two systems, or twice, earns once.
        fingerprint=fingerprint(SCENARIO, card),
        occurred_at=issued_at,
        quantity=Decimal(1),
        unit="application",
        attributes={"card_token": card, "product": parsing.text(p, "product", max_length=64), "issue": issue,
                    "applied_at": applied_at.isoformat(), "plastic_card": plastic},
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    if a.get("plastic_card"):
        return [Problem("plastic_card_issued", "A plastic card was issued with the e-card; nothing was avoided.",
                        "plastic_card")]
    if a.get("issue") != "new":
        # The reviewed figure is per application; a re-issued e-card of an existing account is not one.
        return [Problem("reissued_card", f"A {a.get('issue')} of an existing card is not a new application.",
                        "issue")]
    # applied_at was written by normalize from an aware timestamp, so this comparison is exact.
    applied_at = a.get("applied_at")
    if applied_at and behaviour.occurred_at < datetime.fromisoformat(applied_at):
        return [Problem("issued_before_applied", "The card was issued before it was applied for.", "issued_at")]
    return []
