"""Bus operator plugin: bus rides become avoided car travel, per passenger-km or per ride.

Native record (one boarding, as the operator's card system reports it)::

    {"tap_id": "SZB-20261120-M220-004417", "account_id": "acc_…", "card_token": "tok_9f2c…",
     "city": "shenzhen", "line": "M220", "boarding_stop": "Shenzhen University",
     "tap_at": "2026-11-20T07:48:00+08:00",
     "alighting_stop": "Window of the World", "alight_at": "2026-11-20T08:16:00+08:00",
     "distance_km": "7.4",
     "prev_tap_at": "2026-11-19T18:30:00+08:00", "prev_tap_line": "M220"}

``alighting_stop``, ``alight_at`` and ``distance_km`` come from the tap-off of
distance-fare buses; flat-fare buses (Wuhan) record only the boarding.
``prev_tap_*`` is the card's previous tap, which the reader reads from the
card anyway to grant transfer discounts. A card network that paid the fare
sends the same trip data with ``txn_id`` and ``"mode": "bus"`` instead of
``tap_id`` (see plugins/metro). The city picks the factor: Shenzhen per
passenger-km, Wuhan per ride (methodology ``bus-avoided-car``, family
``by_city``). See ``docs/scenarios/bus.md``.
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
SCENARIO = "bus"
PAYMENT_MODE = "bus"  # ``mode`` of a card network's transit transaction that paid a bus fare
MAX_RIDE_KM = Decimal(80)  # longer than any city bus line; coaches are not city buses
MAX_SPEED_KMH = Decimal(60)  # a city bus averages 15-25 km/h; even express lines stay well below this
DOUBLE_TAP_S = 60  # a second tap on the same line within a minute is the same boarding


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Bus rides", methodology="bus-avoided-car", unit="ride",
                         description="Rides on a city bus instead of by car, per ride or per passenger-km "
                                     "as the city's programme publishes it.",
                         partner_kinds=("bus_operator", "payment_network"))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="bus-avoided-car", documents=documents("bus"))]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    field = transit.id_field(record, "tap_id", PAYMENT_MODE)  # a card network's fares of every mode
    return [_ride(record.payload, field)] if field else None


def _ride(p: Mapping[str, Any], id_field: str) -> Behaviour:
    """A ride from the operator's record (``tap_id``) or a card network's (``txn_id``)."""
    tap_at = parsing.timestamp(p, "tap_at")
    city = parsing.text(p, "city", max_length=40).lower()
    card = parsing.text(p, "card_token")
    line = parsing.text(p, "line", max_length=40)
    attributes: dict[str, Any] = {"city": city, "line": line,
                                  "boarding_stop": parsing.text(p, "boarding_stop")}
    alighting_stop = parsing.text(p, "alighting_stop", required=False)
    if alighting_stop is not None:
        attributes["alighting_stop"] = alighting_stop
    if p.get("alight_at") not in (None, ""):
        alight_at = parsing.timestamp(p, "alight_at")
        if alight_at <= tap_at:
            raise RecordError("invalid_record", "alight_at must be after tap_at.", "alight_at")
        attributes["seconds"] = int((alight_at - tap_at).total_seconds())
    if p.get("distance_km") not in (None, ""):
        distance = parsing.decimal(p, "distance_km")
        if distance <= 0:
            raise RecordError("invalid_record", "distance_km must be positive.", "distance_km")
        attributes["distance_km"] = str(distance)  # JSON-safe; the family reads it back as a Decimal
    if p.get("prev_tap_at") not in (None, ""):
        prev_at = parsing.timestamp(p, "prev_tap_at")
        if prev_at > tap_at:
            raise RecordError("invalid_record", "prev_tap_at must not be after tap_at.", "prev_tap_at")
        attributes["since_prev_tap_s"] = int((tap_at - prev_at).total_seconds())
        attributes["prev_tap_line"] = parsing.text(p, "prev_tap_line", max_length=40)
    return Behaviour(
        scenario=SCENARIO,
        account_id=parsing.text(p, "account_id", max_length=40),
        event_id=parsing.text(p, id_field),
        # The real act: this card boarding this line in this minute, whoever reports it. The stop
        # is left out: a card network may not know it, and one card cannot board two buses of a
        # line in the same minute. UTC minute, so +08:00 and Z reports agree.
        fingerprint=fingerprint(SCENARIO, city, card, line.lower(),
                                tap_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")),
        occurred_at=tap_at,
        quantity=Decimal(1),
        unit="ride",
        attributes=attributes,
    )


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    problems = []
    since = a.get("since_prev_tap_s")
    if since is not None and since < DOUBLE_TAP_S and a.get("prev_tap_line", "").lower() == a["line"].lower():
        problems.append(Problem("double_tap", f"The card tapped on line {a['line']} {since} s earlier: "
                                              "the same boarding, not a new ride.", "tap_at"))
    distance = Decimal(a["distance_km"]) if a.get("distance_km") else None
    if distance is not None and distance > MAX_RIDE_KM:
        problems.append(Problem("implausible_distance",
                                f"A {distance} km bus ride is implausible (max {MAX_RIDE_KM}).", "distance_km"))
    seconds = a.get("seconds") or 0
    if distance is not None and seconds > 0 and distance * 3600 / seconds > MAX_SPEED_KMH:
        problems.append(Problem("implausible_speed", f"{distance} km in {seconds} s is faster than any city bus.",
                                "alight_at"))
    if a.get("alighting_stop") is not None and a["alighting_stop"] == a["boarding_stop"]:
        problems.append(Problem("same_stop", "Boarding and alighting at the same stop is not a trip.",
                                "alighting_stop"))
    return problems
