"""Family ``reuse_by_kind``: an item handed over for reuse, with a factor set per item kind.

One behaviour is one item line of a second-hand / recycling platform, unit
``item``. Its ``item_kind`` attribute picks the factors, because the kinds are
measured differently (a phone per device, clothes by weight, books per copy):

    phone, flat       baseline = quantity × phone_reuse
    phone, by grade   baseline = quantity × phone_production × phone_replacement_<g>
                      (<g>: the highest grade threshold ≤ the attribute condition_pct)
    clothes           baseline = weight_kg × clothes_reuse       (quantity is the one bag)
    book              baseline = quantity × book_print × book_replacement
    project           0 (collection and resale logistics are not in the published figures)

A document with ``phone_production`` uses the grade formula, otherwise
``phone_reuse``. Only items that go to reuse (attribute ``route`` = ``reuse``)
have factors; anything else, a kind without factors, or a phone below the
lowest grade raises :class:`hub.records.RecordError`, so the behaviour is
rejected with that code and can be replayed once a version adds a factor.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor, RecordError

_GRADE = "phone_replacement_"


def _factor(factors: Mapping[str, Factor], name: str, kind: str) -> Factor:
    factor = factors.get(name)
    if factor is None:
        raise RecordError("no_factor", f"This methodology version has no factor {name!r} for {kind}.", "item_kind")
    return factor


def _phone(factors: Mapping[str, Factor], b: Behaviour, q: Decimal) -> Calculation:
    if "phone_production" not in factors:
        flat = _factor(factors, "phone_reuse", "phone")
        return Calculation(baseline_g=q * flat.value, project_g=Decimal(0), factors_used=("phone_reuse",),
                           formula=f"phone: {q} {b.unit} × {flat.value} {flat.unit} − 0")
    production = factors["phone_production"]
    condition = int(b.attributes.get("condition_pct") or 0)
    grades = sorted((int(name[len(_GRADE):]), name) for name in factors
                    if name.startswith(_GRADE) and name[len(_GRADE):].isdigit())
    eligible = [(g, name) for g, name in grades if g <= condition]
    if not eligible:
        lowest = grades[0][0] if grades else 100
        raise RecordError("below_reuse_grade", f"A phone {condition}% new is under the lowest grade ({lowest}%) "
                                               "with a replacement rate: it is resold for parts.", "condition_pct")
    grade, name = eligible[-1]  # rounded down to its grade: never a higher rate than the condition
    rate = factors[name]
    return Calculation(baseline_g=q * production.value * rate.value, project_g=Decimal(0),
                       factors_used=("phone_production", name),
                       formula=f"phone ({condition}% new, grade {grade}): {q} {b.unit} × {production.value} "
                               f"{production.unit} × {rate.value} {rate.unit} − 0")


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    b = behaviour
    q = Decimal(b.quantity)
    kind = b.attributes.get("item_kind")
    route = b.attributes.get("route")
    if route != "reuse":
        raise RecordError("no_factor", f"Only reuse is credited; this version has no factor for {kind} sent to "
                                       f"{route or 'an unknown route'}.", "outcome")
    if kind == "phone":
        return _phone(factors, b, q)
    if kind == "clothes":
        per_kg = _factor(factors, "clothes_reuse", kind)
        kg = Decimal(str(b.attributes.get("weight_kg") or 0))
        return Calculation(baseline_g=kg * per_kg.value, project_g=Decimal(0), factors_used=("clothes_reuse",),
                           formula=f"clothes: {kg} kg × {per_kg.value} {per_kg.unit} − 0")
    if kind == "book":
        book = _factor(factors, "book_print", kind)
        rate = _factor(factors, "book_replacement", kind)
        return Calculation(baseline_g=q * book.value * rate.value, project_g=Decimal(0),
                           factors_used=("book_print", "book_replacement"),
                           formula=f"book: {q} {b.unit} × {book.value} {book.unit} × {rate.value} {rate.unit} − 0")
    raise RecordError("no_factor", f"This methodology version has no factors for item kind {kind!r}.", "item_kind")
