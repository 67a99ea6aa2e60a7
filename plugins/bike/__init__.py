"""Shared-bike operator plugin: bike rides become avoided motorised travel per km.

Native record (one finished ride, one JSON object as the operator's ride API returns it)::

    {"order_id": "HB-20261120-7730015", "account_id": "acc_…", "bike_id": "8620113577",
     "city": "wuhan", "bike_type": "pedal",
     "unlock_at": "2026-11-20T08:03:12+08:00", "lock_at": "2026-11-20T08:21:40+08:00",
     "unlock_location": {"lat": 30.5801, "lng": 114.2734}, "lock_location": {"lat": 30.5952, "lng": 114.2987},
     "distance_m": 3420}

``distance_m`` is the operator's measured ride distance; when it is absent the
straight-line distance between the two locations is used (a ride is never
shorter). Coordinates are read, never stored. Normalizing only reads the
object, so the same code serves a push today and a pull from the operator's
API later. See ``docs/scenarios/bike.md`` for the methodology and rejection rules.
"""
from __future__ import annotations

import math
from datetime import timezone
from decimal import Decimal
from typing import Any, Mapping

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents

CARBONHUB_API = "1.0"
SCENARIO = "bike"
BIKE_TYPES = ("pedal", "ebike")
MIN_RIDE_M = Decimal(300)  # shorter is an unlock and relock, or a bike moved to the next rack
MIN_RIDE_S = 120  # likewise: under two minutes nobody has travelled anywhere
MAX_SPEED_KMH = Decimal(30)  # a fit cyclist's sprint; a shared pedal bike's average is 10-15 km/h
EARTH_RADIUS_M = 6_371_000  # mean radius (IUGG); the straight line is a lower bound anyway


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Shared-bike rides", methodology="bike-shared-ride", unit="km",
                         description="Rides on a shared pedal bike instead of motorised transport, per km.",
                         partner_kinds=("bike_operator",))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id="bike-shared-ride", documents=documents("bike"))]


def _location(payload: Mapping[str, Any], name: str, *, required: bool) -> tuple[Decimal, Decimal] | None:
    """``{"lat": …, "lng": …}`` in WGS-84 degrees (numbers or numeric strings), or None if absent."""
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, Mapping):
        raise RecordError("invalid_record", f"{name} must be an object with lat and lng.", name)
    try:
        lat, lng = parsing.decimal(value, "lat"), parsing.decimal(value, "lng")
    except RecordError as exc:
        raise RecordError("invalid_record", f"{name}: {exc.problem.message}", name) from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise RecordError("invalid_record", f"{name} is not a position on Earth.", name)
    return lat, lng


def straight_line_m(a: tuple[Decimal, Decimal], b: tuple[Decimal, Decimal]) -> int:
    """Great-circle distance in whole metres (haversine), rounded down."""
    lat1, lng1, lat2, lng2 = (math.radians(float(x)) for x in (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return math.floor(2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))))


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    unlock_at = parsing.timestamp(p, "unlock_at")
    lock_at = parsing.timestamp(p, "lock_at")
    if lock_at <= unlock_at:
        raise RecordError("invalid_record", "lock_at must be after unlock_at.", "lock_at")
    bike_type = parsing.text(p, "bike_type", max_length=16).lower()
    if bike_type not in BIKE_TYPES:
        raise RecordError("invalid_record", f"bike_type must be one of {', '.join(BIKE_TYPES)}.", "bike_type")
    start = _location(p, "unlock_location", required="distance_m" not in p)
    end = _location(p, "lock_location", required="distance_m" not in p)
    if "distance_m" in p:
        metres, source = parsing.decimal(p, "distance_m"), "operator"
    else:
        metres, source = Decimal(straight_line_m(start, end)), "straight_line"
    bike = parsing.text(p, "bike_id")
    return [Behaviour(
        scenario=SCENARIO,
        account_id=parsing.text(p, "account_id", max_length=40),
        event_id=parsing.text(p, "order_id"),
        # The real act: this bike unlocked in this minute, whichever of the operator's
        # systems (or another reporter) sends it. UTC minute, so +08:00 and Z agree.
        fingerprint=fingerprint(SCENARIO, bike, unlock_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")),
        occurred_at=unlock_at,
        quantity=metres / 1000,  # exact: Decimal division by 1000 only moves the point
        unit="km",
        attributes={"city": parsing.text(p, "city", max_length=40).lower(), "bike_id": bike,
                    "bike_type": bike_type, "seconds": int((lock_at - unlock_at).total_seconds()),
                    "distance_source": source},
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    # E-bikes draw grid power and replace walking as often as cars; the Wuhan
    # figure is for pedal bikes. Rejected (replayable) until a methodology covers them.
    if a.get("bike_type") == "ebike":
        return [Problem("ebike_not_covered", "E-bike rides are not covered by the shared-bike methodology.",
                        "bike_type")]
    seconds = a.get("seconds") or 0
    if seconds < MIN_RIDE_S:
        return [Problem("ride_too_brief", f"A {seconds} s ride is an unlock and relock, not a trip "
                                          f"(min {MIN_RIDE_S} s).", "lock_at")]
    if behaviour.quantity * 1000 < MIN_RIDE_M:
        return [Problem("ride_too_short", f"A {behaviour.quantity} km ride is not a trip (min {MIN_RIDE_M} m).",
                        "distance_m")]
    if behaviour.quantity * 3600 / seconds > MAX_SPEED_KMH:
        return [Problem("implausible_speed", f"{behaviour.quantity} km in {seconds} s is faster than "
                                             f"{MAX_SPEED_KMH} km/h on average: not a pedal bike.", "lock_at")]
    return []


from .connectors import *  # noqa: E402,F401,F403  (the pull connector for the ride API, see connectors.py)
