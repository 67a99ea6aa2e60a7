"""Family ``by_city``: one factor set per city, picked by the behaviour's ``city`` attribute.

Programmes publish their figures per city (Shenzhen 46.8 gCO2e per metro
passenger-km, Wuhan 78.4 g per km), so a document may hold several sets:

- ``<name>@<city>`` (``baseline@wuhan``) belongs to that city's set; a city
  that has any ``@<city>`` factor uses only its own set, never a mix;
- a plain ``<name>`` (``baseline``) is the set of every other city (optional);
- each set needs ``baseline``; ``project`` is optional (0 when absent).

The denominator of a factor's unit says what it multiplies:

- the behaviour's own unit (``gCO2e/pkm`` for a behaviour in ``pkm``,
  ``gCO2e/ride`` for one in ``ride``): the behaviour's quantity;
- ``pkm`` for a behaviour counted in another unit (a bus ride counted per
  ride): the attribute ``distance_km``, one passenger's kilometres.

    baseline = amount × baseline@city
    project  = amount × project@city     (0 if the set has none)

Refusals (``hub.records.RecordError``, the act is rejected with the code):
``no_factor_for_city`` (field ``city``) when the document has no set for the
city, ``missing_distance`` (field ``distance_km``) when a per-km factor applies
and the behaviour carries no distance.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor, RecordError

DISTANCE = "distance_km"  # attribute holding one passenger's km when the quantity counts something else
PER_DISTANCE = "pkm"


def city_set(factors: Mapping[str, Factor], city: str) -> dict[str, tuple[str, Factor]]:
    """The factors that apply in ``city``: plain name -> (document name, factor)."""
    own = {name.partition("@")[0]: (name, f) for name, f in factors.items()
           if "@" in name and name.partition("@")[2].lower() == city}
    if own:
        return own
    return {name: (name, f) for name, f in factors.items() if "@" not in name}


def _amount(factor: Factor, behaviour: Behaviour) -> tuple[Decimal, str]:
    """What ``factor`` multiplies for this behaviour, and its unit."""
    per = factor.unit.rpartition("/")[2]
    if per == behaviour.unit:
        return Decimal(behaviour.quantity), behaviour.unit
    if per == PER_DISTANCE:
        raw = behaviour.attributes.get(DISTANCE)
        if raw in (None, ""):
            raise RecordError("missing_distance", f"The {factor.name} factor is per {PER_DISTANCE} and the "
                              f"record gives no {DISTANCE}.", DISTANCE)
        return Decimal(str(raw)), PER_DISTANCE
    # A reviewer's mistake in the document, not the partner's: fails as methodology_failed.
    raise ValueError(f"factor {factor.name} in {factor.unit} cannot apply to a behaviour in {behaviour.unit}")


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    city = str(behaviour.attributes.get("city") or "").strip().lower()
    chosen = city_set(factors, city)
    if "baseline" not in chosen:
        raise RecordError("no_factor_for_city", f"The methodology has no factor for the city {city or '(none)'!r}.",
                          "city")
    base_name, base = chosen["baseline"]
    amount, unit = _amount(base, behaviour)
    baseline = amount * base.value
    where = f" ({base_name.partition('@')[2]})" if "@" in base_name else ""
    text = f"{amount} {unit} × {base.value} {base.unit}{where}"
    used = [base_name]
    project = Decimal(0)
    if "project" in chosen:
        proj_name, proj = chosen["project"]
        p_amount, p_unit = _amount(proj, behaviour)
        project = p_amount * proj.value
        text += f" − {p_amount} {p_unit} × {proj.value} {proj.unit}"
        used.append(proj_name)
    else:
        text += " − 0"
    return Calculation(baseline_g=baseline, project_g=project, factors_used=tuple(used), formula=text)
