"""Airlines plugin: flights flown with no checked bag ("light travel") and e-boarding passes.

An airline's miles programme (partner ``xiamenair``) reports each flight
segment its member flew, one record per segment::

    {"segment_id": "MF-7312045518330-1", "account_id": "acc_…", "ffp_token": "egret_5c81e07a",
     "flight_no": "MF8101", "origin": "XMN", "destination": "PEK",
     "scheduled_departure": "2026-11-18T08:05:00+08:00", "status": "flown",
     "checked_bags": 0, "boarding_pass": "electronic"}

A travel agency (partner ``ctrip``) reports the same segments in its own shape,
recognised by its ``segment`` object::

    {"order_id": "CT-2611180042137", "segment_no": 1, "account_id": "acc_…",
     "passenger": {"ffp_token": "egret_5c81e07a"},
     "segment": {"operating_flight": "MF8101", "marketing_flight": "CZ5101", "from": "XMN", "to": "PEK",
                 "departure_time": "2026-11-18T00:05:00Z"},
     "ticket_status": "used", "baggage_pieces": 0, "e_boarding": true}

Both become one ``light_travel`` behaviour whose quantity is the great-circle
distance between the airports (from ``airports.csv``, shipped with the plugin).
The same flight of the same member is one act whoever reports it. An
e-boarding pass earns bonus points only (no published per-pass figure).
See ``docs/scenarios/airlines.md``.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, MethodologySpec, PointGrant, Problem, RecordError, ScenarioSpec, fingerprint
from methodologies import documents
from methodologies.great_circle_freight import great_circle_km

CARBONHUB_API = "1.0"
PLUGIN = "airlines"
SCENARIO = "light_travel"
METHODOLOGY = "light-travel-avoided-freight"
BOARDING_PASSES = ("electronic", "paper")
# IATA designator (two characters, not both digits) + 1-4 digits + optional operational suffix.
_FLIGHT = re.compile(r"^([A-Z0-9]{2}) ?0*(\d{1,4})([A-Z]?)$")
_IATA = re.compile(r"^[A-Z]{3}$")
# Native field names per record shape, so a rejection names the field the partner sent.
FIELDS = {
    "airline": {"status": "status", "checked_bags": "checked_bags"},
    "agency": {"status": "ticket_status", "checked_bags": "baggage_pieces"},
}
FLOWN = {"airline": "flown", "agency": "used"}  # the coupon status meaning "this segment was flown"


@dataclass(frozen=True)
class Airport:
    iata: str
    name: str
    city: str
    country: str
    latitude: float
    longitude: float
    tz: ZoneInfo


@lru_cache(maxsize=1)
def airports() -> dict[str, Airport]:
    """The shipped airport table, by IATA code (read once; a bad row stops the hub at start-up)."""
    text = resources.files(__package__).joinpath("airports.csv").read_text(encoding="utf-8")
    table: dict[str, Airport] = {}
    for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        code = row["iata"]
        lat, lon = float(row["latitude"]), float(row["longitude"])
        if not _IATA.match(code) or code in table or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"airports.csv line {n}: bad or repeated row {row!r}")
        table[code] = Airport(code, row["name"], row["city"], row["country"], lat, lon, ZoneInfo(row["timezone"]))
    return table


def distance_km(origin: str, destination: str) -> int:
    """Great-circle km between two known airports, rounded down (conservative)."""
    a, b = airports()[origin], airports()[destination]
    return math.floor(great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude))


@hookimpl
def carbonhub_register_scenarios(ctx):
    airports()  # a broken airport table is a start-up error, not a rejection per record
    return [ScenarioSpec(id=SCENARIO, title="Flights without a checked bag", methodology=METHODOLOGY, unit="km",
                         description="A flight flown with no checked bag: the air freight of a typical bag "
                                     "avoided, per great-circle km.",
                         partner_kinds=("airline", "travel_agency"))]


@hookimpl
def carbonhub_register_methodologies(ctx):
    return [MethodologySpec(id=METHODOLOGY, documents=documents("airlines"))]


def _nested(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise RecordError("invalid_record", f"{name} must be an object.", name)
    return value


def _read(prefix: str, reader: Callable[..., Any], obj: Mapping[str, Any], name: str, **kwargs: Any) -> Any:
    """A ``hub.parsing`` reader on a nested object, naming the field ``prefix.name``."""
    try:
        return reader(obj, name, **kwargs)
    except RecordError as exc:
        raise RecordError(exc.problem.code, f"{prefix}.{exc.problem.message}", f"{prefix}.{name}") from None


def _airport(value: str, field: str) -> str:
    code = value.strip().upper()
    if not _IATA.match(code):
        raise RecordError("invalid_record", f"{field} must be a three-letter IATA airport code.", field)
    if code not in airports():
        raise RecordError("unknown_airport", f"Airport {code} is not in the hub's airport table.", field)
    return code


def _flight_no(value: str, field: str) -> str:
    match = _FLIGHT.match(value.strip().upper())
    if not match or match.group(1).isdigit():
        raise RecordError("invalid_record", f"{field} must be an IATA flight number such as MF8101.", field)
    designator, number, suffix = match.groups()
    return f"{designator}{int(number)}{suffix}"  # "MF 08101" and "mf8101" are the same flight


def _pieces(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError("invalid_record", f"{name} must be a whole number of pieces (0 or more).", name)
    return value


def _boarding_pass(p: Mapping[str, Any]) -> str:
    boarding = parsing.text(p, "boarding_pass", max_length=16)
    if boarding not in BOARDING_PASSES:
        raise RecordError("invalid_record", f"boarding_pass must be one of {', '.join(BOARDING_PASSES)}.",
                          "boarding_pass")
    return boarding


def _from_airline(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "source": "airline", "event_id": parsing.text(p, "segment_id"),
        "ffp_token": parsing.text(p, "ffp_token"),
        "flight_no": _flight_no(parsing.text(p, "flight_no", max_length=16), "flight_no"),
        "origin": _airport(parsing.text(p, "origin", max_length=8), "origin"),
        "destination": _airport(parsing.text(p, "destination", max_length=8), "destination"),
        "departure": parsing.timestamp(p, "scheduled_departure"),
        "coupon_status": parsing.text(p, "status", max_length=32).lower(),
        "checked_bags": _pieces(p, "checked_bags"), "e_boarding": _boarding_pass(p) == "electronic",
    }


def _from_agency(p: Mapping[str, Any]) -> dict[str, Any]:
    order = parsing.text(p, "order_id")
    segment_no = parsing.text(p, "segment_no", max_length=4)
    passenger, seg = _nested(p, "passenger"), _nested(p, "segment")
    marketing = _read("segment", parsing.text, seg, "marketing_flight", max_length=16, required=False)
    e_boarding = p.get("e_boarding", False)
    if not isinstance(e_boarding, bool):
        raise RecordError("invalid_record", "e_boarding must be true or false.", "e_boarding")
    return {
        "source": "agency", "event_id": f"{order}#{segment_no}",
        "ffp_token": _read("passenger", parsing.text, passenger, "ffp_token"),
        "flight_no": _flight_no(_read("segment", parsing.text, seg, "operating_flight", max_length=16),
                                "segment.operating_flight"),
        "marketing_flight": _flight_no(marketing, "segment.marketing_flight") if marketing else None,
        "origin": _airport(_read("segment", parsing.text, seg, "from", max_length=8), "segment.from"),
        "destination": _airport(_read("segment", parsing.text, seg, "to", max_length=8), "segment.to"),
        "departure": _read("segment", parsing.timestamp, seg, "departure_time"),
        "coupon_status": parsing.text(p, "ticket_status", max_length=32).lower(),
        "checked_bags": _pieces(p, "baggage_pieces"), "e_boarding": e_boarding,
    }


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None
    p = record.payload
    f = _from_agency(p) if "segment" in p else _from_airline(p)
    account_id = parsing.text(p, "account_id", max_length=40)
    origin, destination = f["origin"], f["destination"]
    if origin == destination:
        field = "segment.to" if f["source"] == "agency" else "destination"
        raise RecordError("same_airport", f"Origin and destination are both {origin}: no flight.", field)
    # The flight date is the scheduled departure's date at the origin airport, as on the ticket,
    # whatever offset the reporter wrote (an agency reporting in UTC may be a day behind).
    flight_date = f["departure"].astimezone(airports()[origin].tz).date().isoformat()
    attributes = {
        "source": f["source"], "ffp_token": f["ffp_token"], "flight_no": f["flight_no"],
        "flight_date": flight_date, "origin": origin, "destination": destination,
        "coupon_status": f["coupon_status"], "flown": f["coupon_status"] == FLOWN[f["source"]],
        "checked_bags": f["checked_bags"], "e_boarding": f["e_boarding"],
    }
    if f.get("marketing_flight"):
        attributes["marketing_flight"] = f["marketing_flight"]
    return [Behaviour(
        scenario=SCENARIO,
        account_id=account_id,
        event_id=f["event_id"],
        # The real act: this member on this operated flight leg, whoever reports it. The origin
        # tells apart the legs of a multi-stop flight that keeps one number.
        fingerprint=fingerprint(SCENARIO, f["ffp_token"], f["flight_no"], flight_date, origin),
        occurred_at=f["departure"],
        quantity=Decimal(distance_km(origin, destination)),
        unit="km",
        attributes=attributes,
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    a = behaviour.attributes
    names = FIELDS[a["source"]]
    if not a["flown"]:
        return [Problem("not_flown", f"Coupon status {a['coupon_status']!r}: the segment was not flown.",
                        names["status"])]
    if a["checked_bags"] > 0:
        return [Problem("checked_bag", f"{a['checked_bags']} bag(s) checked: no light-travel credit.",
                        names["checked_bags"])]
    return []


@hookimpl
def carbonhub_evaluate_rewards(ctx, behaviour, reduction, scenario_config):
    """The bank's e-boarding bonus: ``[plugin_config.airlines] e_boarding_points`` (0 or absent: off)."""
    if behaviour.scenario != SCENARIO or not behaviour.attributes.get("e_boarding"):
        return []
    points = ctx.plugin_config(PLUGIN).get("e_boarding_points", 0)
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        # A config mistake: fail the rule (reward_failed, replayable) rather than guess.
        raise ValueError(f"plugin_config.{PLUGIN}.e_boarding_points must be a whole number >= 0, not {points!r}")
    if not points:
        return []
    return [PointGrant(points=points, rule=f"{PLUGIN}:e-boarding", detail="boarded with an e-boarding pass")]

from .benefits import *  # noqa: E402,F401,F403  (the benefit exchange hooks, see benefits.py)
