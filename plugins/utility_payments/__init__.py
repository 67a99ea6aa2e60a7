"""Utility billers and payment networks: water, power, gas and phone bills paid online.

Native record (one settled payment, one JSON object as a biller's daily payments API returns it)::

    {"payment_id": "SGCC-HB-20261105-00031877", "account_id": "acc_…",
     "biller": "sgcc-hubei", "bill_type": "power", "bill_account": "3300912877",
     "billing_period": "2026-10", "amount": "236.50", "currency": "CNY",
     "paid_at": "2026-11-05T20:14:09+08:00", "channel": "app"}

Money is a decimal string in yuan (``"236.50"``) or integer fen (``"amount_fen": 23650``),
never a JSON float. A payment network reporting the same payment names the same
biller, bill account and period, so the act is credited once. Normalizing only
reads the object, so a pull from the biller's API can reuse it unchanged.
See ``docs/scenarios/utility_payments.md``.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "utility_payments"
BILL_TYPES = ("water", "power", "gas", "phone")
ONLINE_CHANNELS = ("app", "web", "mini_program", "autopay")
OFFLINE_CHANNELS = ("counter", "agent")  # the biller's hall, a bank counter or a corner shop
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_YUAN = re.compile(r"^[+-]?\d{1,12}(\.\d{1,2})?$")
_FEN = re.compile(r"^[+-]?\d{1,14}$")


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Utility bills paid online", methodology="utility-payment-online",
                         unit="payment",
                         description="A water, power, gas or phone bill paid online instead of at a counter.",
                         partner_kinds=("biller", "payment_network"))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="utility-payment-online", documents=documents("utility_payments"))]


def amount_fen(payload: Mapping[str, Any]) -> int:
    """The amount in integer fen, from ``amount`` (yuan, a string) or ``amount_fen`` (an integer)."""
    yuan, fen = payload.get("amount"), payload.get("amount_fen")
    if yuan is not None and fen is not None:
        raise RecordError("invalid_record", "Send amount or amount_fen, not both.", "amount_fen")
    if fen is not None:
        if isinstance(fen, bool) or not isinstance(fen, (int, str)) or (isinstance(fen, str) and not _FEN.match(fen)):
            raise RecordError("invalid_record", "amount_fen must be a whole number of fen (23650).", "amount_fen")
        return int(fen)
    if yuan is None:
        raise RecordError("invalid_record", "amount (yuan, \"236.50\") or amount_fen is required.", "amount")
    # A JSON number in yuan is refused: 0.1 + 0.2 is not money.
    if not isinstance(yuan, str) or not _YUAN.match(yuan):
        raise RecordError("invalid_record", "amount must be a string of yuan with at most 2 decimals (\"236.50\").",
                          "amount")
    return int(Decimal(yuan) * 100)


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    if "payment_id" not in p and len(record.scenarios) > 1:
        return None  # a partner of several scenarios (a card network): a record without a payment id is a fare
    paid_at = parsing.timestamp(p, "paid_at")
    period = parsing.text(p, "billing_period", max_length=7)
    if not _PERIOD.match(period):
        raise RecordError("invalid_record", "billing_period must be YYYY-MM.", "billing_period")
    fen = amount_fen(p)
    currency = parsing.text(p, "currency", max_length=3, required=False) or "CNY"
    if currency != "CNY":
        raise RecordError("invalid_record", "Only CNY bills are credited.", "currency")
    channel = parsing.text(p, "channel", max_length=16).lower()
    if channel not in ONLINE_CHANNELS + OFFLINE_CHANNELS:
        raise RecordError("invalid_record", f"channel must be one of {', '.join(ONLINE_CHANNELS + OFFLINE_CHANNELS)}.",
                          "channel")
    biller = parsing.text(p, "biller", max_length=64).lower()
    number = parsing.text(p, "bill_account", max_length=64).strip()
    return [Behaviour(
        scenario=SCENARIO,
        account_id=parsing.text(p, "account_id", max_length=40),
        event_id=parsing.text(p, "payment_id"),
        # The real act: this bill of this account settled, whoever reports it (the biller,
        # the payment network) and however many instalments it took.
        fingerprint=fingerprint(SCENARIO, biller, number, period),
        occurred_at=paid_at,
        quantity=Decimal(1),
        unit="payment",
        attributes={
            # The cap subject: the account at its biller (two billers may share numbers),
            # hashed so a phone or household number is not kept in clear.
            "bill_account": fingerprint("bill_account", biller, number),
            "bill_account_tail": number[-4:],  # enough for the user to recognise it on a receipt
            "biller": biller, "bill_type": parsing.text(p, "bill_type", max_length=32).lower(),
            "billing_period": period, "amount_fen": fen, "channel": channel,
        },
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    if a.get("bill_type") not in BILL_TYPES:
        return [Problem("unknown_bill_type", f"Bill type {a.get('bill_type')!r} is not one of "
                                             f"{', '.join(BILL_TYPES)}.", "bill_type")]
    if (a.get("amount_fen") or 0) <= 0:  # refunds and reversals come as negative amounts
        return [Problem("non_positive_amount", "Only a payment of a positive amount settles a bill.", "amount")]
    if a.get("channel") in OFFLINE_CHANNELS:
        return [Problem("offline_payment", f"Paid at a {a['channel']}: no trip or paper bill was avoided.",
                        "channel")]
    year, month = (int(x) for x in a["billing_period"].split("-"))
    local = behaviour.occurred_at.astimezone(ctx.tz)
    if (local.year, local.month) < (year, month):
        return [Problem("paid_before_period", "The bill was paid before its billing period began.", "paid_at")]
    return []

from .benefits import *  # noqa: E402,F401,F403  (the benefit exchange hooks, see benefits.py)
from .connectors import *  # noqa: E402,F401,F403  (the pull connector for the biller API, see connectors.py)
