"""Schemas of the user's side: the footprint calculator and the account summary."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from .. import calculator
from .schemas import Strict

MAX_KM = 1_000_000  # a month of anything stays far below


def _non_negative_km(value: Any) -> None:
    # A plain function, not validate.Range: apispec would write Decimal bounds as strings.
    if not 0 <= value <= MAX_KM:
        raise ValidationError(f"Must be between 0 and {MAX_KM} km.")


def _km(description: str) -> fields.Decimal:
    return fields.Decimal(load_default=None, allow_nan=False, validate=_non_negative_km,
                          metadata={"description": f"{description} 0 to {MAX_KM}.", "example": 120.5,
                                    "minimum": 0, "maximum": MAX_KM})


def _count(description: str) -> fields.Integer:
    return fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 10_000),
                          metadata={"description": description})


class Airport(fields.String):
    """A three-letter IATA code from the hub's airport table (plugins/airlines/airports.csv)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        code = str(super()._deserialize(value, attr, data, **kwargs)).strip().upper()
        if not calculator.known_airport(code):
            raise ValidationError(f"Unknown airport {code!r}: not in the hub's airport table.")
        return code


class FlightSchema(Strict):
    origin = Airport(required=True, metadata={"description": "IATA code of the departure airport.",
                                              "example": "PEK"})
    destination = Airport(required=True, metadata={"description": "IATA code of the arrival airport.",
                                                   "example": "SZX"})
    cabin = fields.String(load_default="economy", validate=validate.OneOf(calculator.CABINS),
                          metadata={"description": "Cabin class: only classes with a sourced multiplier."})
    count = fields.Integer(load_default=1, strict=True, validate=validate.Range(1, 100),
                           metadata={"description": "How many such one-way flights a month."})
    checked_bag = fields.Boolean(load_default=False, metadata={
        "description": "Whether a bag is checked (the light-travel scenario suggests flying without)."})

    @validates_schema
    def _not_same(self, data: dict[str, Any], **_: Any) -> None:
        if data["origin"] == data["destination"]:
            raise ValidationError({"destination": ["Origin and destination are the same airport: no flight."]})


class CalculatorSchema(Strict):
    car_km = _km("Kilometres driven by car a month.")
    metro_km = _km("Kilometres by metro a month.")
    flights = fields.List(fields.Nested(FlightSchema), load_default=list, validate=validate.Length(max=50),
                          metadata={"description": "Flights a month (one-way legs)."})
    paper_bills = _count("Paper statements and bills received by post a month.")
    counter_payments = _count("Utility bills paid at a counter a month.")
    city = fields.String(load_default="shenzhen", validate=validate.Length(1, 64), metadata={
        "description": "City whose methodology factor prices the travel suggestions (lower case)."})


class FactorDocSchema(Strict):
    id = fields.String(required=True)
    version = fields.String(required=True)
    reviewer = fields.String(required=True)
    reviewed_on = fields.String(required=True)
    effective_from = fields.String(required=True)
    effective_to = fields.String(allow_none=True, required=True)


class NeutraliseHintSchema(Strict):
    grams = fields.Integer(required=True)
    footprint = fields.Dict(required=True)
    hint = fields.String(required=True)


class CalculatorLineSchema(Strict):
    activity = fields.String(required=True, metadata={"description": "car, metro, flight, paper_bill, "
                                                                     "counter_payment."})
    quantity = fields.String(required=True, metadata={"description": "Decimal as text."})
    unit = fields.String(required=True)
    factor = fields.String(required=True, metadata={"description": "Decimal as text."})
    factor_unit = fields.String(required=True)
    grams = fields.Integer(required=True, metadata={"description": "quantity × factor, rounded down."})
    source = fields.String(required=True)
    origin = fields.String()
    destination = fields.String()
    cabin = fields.String()
    count = fields.Integer()
    distance_km = fields.Integer(metadata={"description": "Great-circle km, rounded down."})
    multiplier = fields.String(metadata={"description": "Cabin-class multiplier."})
    multiplier_source = fields.String()
    neutralise = fields.Nested(NeutraliseHintSchema, metadata={
        "description": "What to post to the neutralisation endpoint to retire carbon against this flight."})


class SuggestionSchema(Strict):
    scenario = fields.String(required=True)
    title = fields.String(required=True)
    action = fields.String(required=True)
    quantity = fields.String(required=True)
    unit = fields.String(required=True)
    factor = fields.String(required=True)
    factor_unit = fields.String(required=True)
    grams_per_month = fields.Integer(required=True)
    methodology = fields.String(required=True)
    version = fields.String(required=True)
    source = fields.String(required=True)


class CalculatorResultSchema(Strict):
    methodology = fields.Nested(FactorDocSchema, required=True)
    period = fields.String(required=True, metadata={"example": "month"})
    lines = fields.List(fields.Nested(CalculatorLineSchema), required=True)
    total_g = fields.Integer(required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema), required=True, metadata={
        "description": "Enabled scenarios that would reduce the footprint, most grams a month first."})


# --- the account summary ----------------------------------------------------------------------------


class ScenarioTotalSchema(Strict):
    scenario = fields.String(required=True)
    grams = fields.Integer(required=True)


class MonthTotalSchema(Strict):
    month = fields.String(required=True, metadata={"example": "2026-11"})
    grams = fields.Integer(required=True)


class EquivalentSchema(Strict):
    name = fields.String(required=True, metadata={"example": "km_not_driven"})
    amount = fields.Integer(required=True, metadata={"description": "total_g / factor, rounded down."})
    factor = fields.String(required=True)
    factor_unit = fields.String(required=True)
    source = fields.String(required=True)


class EquivalentsSchema(Strict):
    methodology = fields.Nested(FactorDocSchema, required=True)
    items = fields.List(fields.Nested(EquivalentSchema), required=True)


class SummarySchema(Strict):
    account = fields.String(required=True)
    total_g = fields.Integer(required=True, metadata={"description": "Credited grams, reversals excluded."})
    by_scenario = fields.List(fields.Nested(ScenarioTotalSchema), required=True)
    by_month = fields.List(fields.Nested(MonthTotalSchema), required=True)
    percentile = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Share (0-100) of the other accounts that credited fewer grams; null when alone."})
    equivalents = fields.Nested(EquivalentsSchema, required=True)
