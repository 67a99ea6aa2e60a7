"""Metro operator plugin: metro rides become avoided car travel per passenger-km.

Native record (one ride, as the operator's gate system reports it)::

    {"ride_id": "SZM-20261120-000123", "account_id": "acc_…", "card_token": "tok_9f2c…",
     "city": "shenzhen", "line": "1", "entry_station": "Luohu", "exit_station": "Shijie Zhichuang",
     "entry_at": "2026-11-20T08:01:00+08:00", "exit_at": "2026-11-20T08:40:00+08:00",
     "distance_km": "18.6"}

A card network that paid the fare (a bank card tapped at the gate) reports the
same ride as a transit transaction, with its own id and the trip data the
operator passed along; ``mode`` tells metro from bus::

    {"txn_id": "UPT-20261120-88410023", "account_id": "acc_…", "card_token": "tok_9f2c…",
     "mode": "metro", "merchant": "Shenzhen Metro", "amount": "6.00",
     "city": "shenzhen", "line": "1", "entry_station": "Luohu", "exit_station": "Shijie Zhichuang",
     "entry_at": "2026-11-20T00:01:05Z", "exit_at": "2026-11-20T00:40:12Z", "distance_km": "18.6"}

Both give the same fingerprint, so the ride is credited once. The city picks
the factor set (methodology ``metro-avoided-car`` 2026.1, family ``by_city``).
See ``docs/scenarios/metro.md`` for the methodology and rejection rules.
"""
from __future__ import annotations

from datetime import timezone
from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from plugins import transit
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "metro"
MAX_RIDE_KM = Decimal(100)  # longer than any single metro ride in China
MAX_SPEED_KMH = Decimal(120)  # faster than any metro line, including airport express
PAYMENT_MODE = "metro"  # ``mode`` of a card network's transit transaction that paid a metro fare


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Metro rides", methodology="metro-avoided-car", unit="pkm",
                         description="Rides on the metro instead of by car, per passenger-km.",
                         partner_kinds=("metro_operator", "payment_network"))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="metro-avoided-car", documents=documents("metro"))]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    field = transit.id_field(record, "ride_id", PAYMENT_MODE)  # a card network's fares of every mode
    return [_ride(record.payload, field)] if field else None


def _ride(p: Mapping[str, Any], id_field: str) -> Behaviour:
    """A ride from the operator's record (``ride_id``) or a card network's (``txn_id``)."""
    entry_at = parsing.timestamp(p, "entry_at")
    exit_at = parsing.timestamp(p, "exit_at")
    if exit_at <= entry_at:
        raise RecordError("invalid_record", "exit_at must be after entry_at.", "exit_at")
    city = parsing.text(p, "city", max_length=40).lower()
    card = parsing.text(p, "card_token")
    entry_station = parsing.text(p, "entry_station")
    return Behaviour(
        scenario=SCENARIO,
        account_id=parsing.text(p, "account_id", max_length=40),
        event_id=parsing.text(p, id_field),
        # The real act: this card entering this station at this minute, whoever reports it.
        # UTC minute, so an operator reporting +08:00 and a card network reporting Z agree.
        fingerprint=fingerprint(SCENARIO, city, card, entry_station,
                                entry_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")),
        occurred_at=entry_at,
        quantity=parsing.decimal(p, "distance_km"),
        unit="pkm",
        attributes={"city": city, "line": parsing.text(p, "line", required=False),
                    "entry_station": entry_station, "exit_station": parsing.text(p, "exit_station"),
                    "seconds": int((exit_at - entry_at).total_seconds())},
    )


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    problems = []
    if behaviour.quantity > MAX_RIDE_KM:
        problems.append(Problem("implausible_distance",
                                f"A {behaviour.quantity} km metro ride is implausible (max {MAX_RIDE_KM}).",
                                "distance_km"))
    seconds = behaviour.attributes.get("seconds") or 0
    if seconds > 0 and behaviour.quantity * 3600 / seconds > MAX_SPEED_KMH:
        problems.append(Problem("implausible_speed",
                                f"{behaviour.quantity} km in {seconds} s is faster than any metro.",
                                "exit_at"))
    if behaviour.attributes.get("entry_station") == behaviour.attributes.get("exit_station"):
        problems.append(Problem("same_station", "Entry and exit at the same station is not a trip.",
                                "exit_station"))
    return problems

from .benefits import *  # noqa: E402,F401,F403  (the benefit exchange hooks, see benefits.py)
