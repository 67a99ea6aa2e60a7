"""The personal footprint calculator behind ``POST /v1/calculator``.

Factors come from versioned, sourced TOML documents under
``methodologies/footprint/`` (id, version, reviewer, review date, effective
dates, factors with unit and source), never from code. Every line of an
estimate carries its quantity, factor, unit, grams (rounded down per line) and
source; the suggestions price the same acts at the factors of the methodologies
the bank's ENABLED scenarios credit. See ``docs/calculator.md``.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from methodologies import documents

if TYPE_CHECKING:
    from .core import Hub

FOLDER = "footprint"
REQUIRED = ("id", "version", "title", "reviewer", "reviewed_on", "effective_from", "factors")
CABINS = ("economy", "business")  # the only classes with a sourced multiplier


@dataclass(frozen=True)
class FootprintFactor:
    name: str
    value: Decimal
    unit: str
    source: str


@dataclass(frozen=True)
class FootprintDocument:
    id: str
    version: str
    title: str
    reviewer: str
    reviewed_on: date
    effective_from: date
    effective_to: date | None
    factors: Mapping[str, FootprintFactor]

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    def header(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "reviewer": self.reviewer,
                "reviewed_on": self.reviewed_on.isoformat(), "effective_from": self.effective_from.isoformat(),
                "effective_to": self.effective_to.isoformat() if self.effective_to else None}


def _load(path: Any) -> FootprintDocument:
    with open(path, "rb") as fh:
        data = tomllib.load(fh, parse_float=Decimal)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    factors = {}
    for name, f in data["factors"].items():
        if not (isinstance(f, dict) and {"value", "unit", "source"} <= set(f) and str(f["source"]).strip()):
            raise ValueError(f"{path}: factor {name!r} needs value, unit and source")
        factors[name] = FootprintFactor(name, Decimal(str(f["value"])), str(f["unit"]), str(f["source"]))
    return FootprintDocument(id=data["id"], version=str(data["version"]), title=data["title"],
                             reviewer=data["reviewer"], reviewed_on=data["reviewed_on"],
                             effective_from=data["effective_from"], effective_to=data.get("effective_to"),
                             factors=factors)


def document(doc_id: str, day: date) -> FootprintDocument:
    """The version of footprint document ``doc_id`` in force on ``day`` (the latest one starting)."""
    versions = [d for d in (_load(p) for p in documents(FOLDER)) if d.id == doc_id and d.in_force(day)]
    if not versions:
        raise LookupError(f"no footprint document {doc_id!r} in force on {day}")
    return max(versions, key=lambda d: d.effective_from)


def floor_g(value: Decimal) -> int:
    return int(math.floor(value))


def _line(activity: str, quantity: Decimal | int, unit: str, factor: FootprintFactor, grams: int,
          **extra: Any) -> dict[str, Any]:
    return {"activity": activity, "quantity": str(quantity), "unit": unit, "factor": str(factor.value),
            "factor_unit": factor.unit, "grams": grams, "source": factor.source, **extra}


def _airports() -> Mapping[str, Any]:
    from plugins.airlines import airports  # the airlines plugin's table (read only)

    return airports()


def flight_distance_km(origin: str, destination: str) -> int:
    from plugins.airlines import distance_km

    return distance_km(origin, destination)


def known_airport(code: str) -> bool:
    return code in _airports()


def estimate(doc: FootprintDocument, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines of a monthly footprint (already validated input)."""
    f = doc.factors
    lines = []
    for name, activity in (("car_km", "car"), ("metro_km", "metro")):
        km = body.get(name)
        if km:
            lines.append(_line(activity, km, "km", f[activity], floor_g(km * f[activity].value)))
    airports = _airports()
    for flight in body.get("flights", ()):
        origin, destination, cabin, count = flight["origin"], flight["destination"], flight["cabin"], flight["count"]
        domestic = airports[origin].country == airports[destination].country
        factor = f["flight_domestic" if domestic else "flight_international"]
        multiplier = f[f"cabin_{cabin}"]
        km = flight_distance_km(origin, destination)
        grams = floor_g(km * factor.value * multiplier.value * count)
        lines.append(_line(
            "flight", km * count, "pkm", factor, grams, origin=origin, destination=destination, cabin=cabin,
            count=count, distance_km=km, multiplier=str(multiplier.value), multiplier_source=multiplier.source,
            neutralise={"grams": grams,
                        "footprint": {"kind": "flight", "from": origin, "to": destination, "cabin": cabin},
                        "hint": "POST these grams and footprint to /v1/accounts/<account_id>/neutralisations "
                                "(with an Idempotency-Key) to retire carbon against this flight."}))
    for name, activity, unit in (("paper_bills", "paper_bill", "statement"),
                                 ("counter_payments", "counter_payment", "payment")):
        n = body.get(name)
        if n:
            lines.append(_line(activity, n, unit, f[activity], floor_g(n * f[activity].value)))
    return lines


# --- suggestions: the enabled scenarios' methodologies -----------------------------------------------


def _factor(version: Any, names: Iterable[str], unit_prefix: str = "") -> Any:
    for name in names:
        factor = version.factors.get(name)
        if factor is not None and factor.unit.startswith(unit_prefix):
            return factor
    return None


def suggestions(hub: Hub, body: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """What each enabled scenario would save a month, at its methodology in force; best first."""
    city = body.get("city", "shenzhen")
    car_km: Decimal = body.get("car_km") or Decimal(0)
    out = []
    for sid in hub.enabled_scenarios():
        spec, conf = hub.registry.scenarios[sid], hub.settings.scenarios[sid]
        version = hub.methodologies.in_force(conf.methodology or spec.methodology, now, hub.settings.timezone,
                                             conf.versions)
        if version is None:
            continue
        found = _suggest(version, body, city, car_km)
        if found is None:
            continue
        action, quantity, unit, factor, grams = found
        if grams <= 0:
            continue
        out.append({"scenario": sid, "title": spec.title, "action": action, "quantity": str(quantity),
                    "unit": unit, "factor": str(factor.value), "factor_unit": factor.unit,
                    "grams_per_month": grams, "methodology": version.id, "version": version.version,
                    "source": factor.source})
    out.sort(key=lambda s: (-s["grams_per_month"], s["scenario"]))
    return out


def _suggest(version: Any, body: Mapping[str, Any], city: str, car_km: Decimal) -> tuple | None:
    """(action, quantity, unit, factor, grams) for one methodology, or None when it does not apply."""
    family = version.family
    if version.id in ("metro-avoided-car", "bus-avoided-car", "bike-shared-ride") and car_km:
        factor = _factor(version, (f"baseline@{city}", "baseline"))
        if factor is None or factor.unit not in ("gCO2e/km", "gCO2e/pkm"):
            return None  # e.g. a per-ride bus figure: the calculator knows no ride count
        mode = {"metro-avoided-car": "the metro", "bus-avoided-car": "the bus",
                "bike-shared-ride": "a shared bike"}[version.id]
        return (f"Travel your {car_km} car km by {mode} instead", car_km, "km", factor,
                floor_g(car_km * factor.value))
    if family == "per_quantity" and version.id == "estatement-paperless" and body.get("paper_bills"):
        n, factor = body["paper_bills"], version.factors["baseline"]
        return ("Switch your paper statements to e-statements", n, "statement", factor, floor_g(n * factor.value))
    if family == "per_quantity" and version.id == "utility-payment-online" and body.get("counter_payments"):
        n, factor = body["counter_payments"], version.factors["baseline"]
        return ("Pay your bills online instead of at a counter", n, "payment", factor, floor_g(n * factor.value))
    if family == "great_circle_freight":
        flights = [fl for fl in body.get("flights", ()) if fl["checked_bag"]]
        if not flights:
            return None
        payload, freight = version.factors["payload"], version.factors["freight"]
        per_km = payload.value * freight.value  # kg × kgCO2/tkm = g per km
        km = sum(flight_distance_km(fl["origin"], fl["destination"]) * fl["count"] for fl in flights)
        grams = sum(floor_g(flight_distance_km(fl["origin"], fl["destination"]) * per_km) * fl["count"]
                    for fl in flights)
        factor = FootprintFactor("bag_freight", per_km, "gCO2/km", f"{payload.value} {payload.unit} bag: "
                                 f"{payload.source}; × {freight.value} {freight.unit}: {freight.source}")
        return ("Fly without a checked bag", km, "km", factor, grams)
    return None


def calculate(hub: Hub, body: Mapping[str, Any]) -> dict[str, Any]:
    now = hub.now()
    doc = document("personal-footprint", now.astimezone(hub.settings.timezone).date())
    lines = estimate(doc, body)
    return {"methodology": doc.header(), "period": "month", "lines": lines,
            "total_g": sum(line["grams"] for line in lines), "suggestions": suggestions(hub, body, now)}
