"""Family ``great_circle_freight``: a mass no longer carried over a flight's great-circle distance.

    baseline = distance (km) × factor ``payload`` (kg) × factor ``freight`` (kgCO2/tkm)
    project  = 0   (the passenger flies either way; only the mass left at home is avoided)

The units need no conversion factor: kg × kgCO2/(t·km) × km = kg/t × kgCO2
= 1/1000 × 1000 gCO2, i.e. the product is already in grams.

The quantity is the great-circle distance between the two airports, which the
plugin computes with :func:`great_circle_km` (haversine on a 6,371 km sphere)
from the airports' coordinates and rounds down to whole km: the same formula
for every reporter, so two partners reporting one flight get the same figure.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor

EARTH_RADIUS_KM = 6371.0  # mean radius (IUGG); a sphere is within ~0.5% of the ellipsoid for any route
UNITS = {"payload": "kg", "freight": "kgCO2/tkm"}  # the only units the formula's arithmetic is valid for


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    for name, unit in UNITS.items():
        # A document with other units would be off by a power of ten: fail (methodology_failed,
        # replayable) rather than credit a wrong figure.
        if factors[name].unit != unit:
            raise ValueError(f"factor {name!r} must be in {unit}, the document says {factors[name].unit!r}")
    km = Decimal(behaviour.quantity)
    mass, freight = factors["payload"], factors["freight"]
    baseline = km * mass.value * freight.value
    formula = f"{km} {behaviour.unit} × {mass.value} {mass.unit} × {freight.value} {freight.unit} − 0"
    return Calculation(baseline_g=baseline, project_g=Decimal(0), factors_used=("payload", "freight"),
                       formula=formula)
