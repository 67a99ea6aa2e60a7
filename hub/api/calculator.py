"""The footprint calculator: what a month of a person's acts emits, and what would save most."""
from __future__ import annotations

from typing import Any

from .. import calculator
from .auth import current_hub
from .footprint_schemas import CalculatorResultSchema, CalculatorSchema
from .routing import PUBLIC, ApiBlueprint

bp = ApiBlueprint("calculator", __name__, tag="calculator",
                  description="Estimate a person's monthly footprint from sourced factors (docs/calculator.md).")


@bp.operation("/calculator", "POST", summary="Estimate a monthly footprint and the best ways to reduce it",
              description="Each line carries its quantity, factor, unit, grams (rounded down) and source, from "
                          "the versioned document `personal-footprint` (see docs/calculator.md). Flights are "
                          "priced on the great-circle distance between two airports of the hub's table; a flight "
                          "line carries `neutralise` (grams and footprint to post to "
                          "`/v1/accounts/<id>/neutralisations`). `suggestions` lists the enabled scenarios that "
                          "would reduce the footprint, at their methodologies' factors, most grams a month "
                          "first. Nothing is stored.",
              auth=PUBLIC, body=CalculatorSchema, response=CalculatorResultSchema,
              errors={400: "The body is not JSON (`malformed_json`).",
                      422: "Invalid input (`validation_error`): a negative or missing quantity, an unknown "
                           "airport, a cabin class with no sourced multiplier; `fields` names the field."})
def calculate(body: dict[str, Any]) -> Any:
    return calculator.calculate(current_hub(), body)
