"""Request and response schemas of the carbon-asset endpoints: neutralisations and aggregations."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..aggregation import parse_period
from ..neutralisation import footprint_problem
from .schemas import Cursor, Strict, _limit

FOOTPRINT_DOC = {
    "oneOf": [{"type": "string", "minLength": 1, "maxLength": 500},
              {"type": "object", "minProperties": 1, "maxProperties": 20,
               "additionalProperties": {"oneOf": [{"type": "string", "maxLength": 200}, {"type": "number"},
                                                  {"type": "boolean"}]}}],
    "description": "What was neutralised: free text, or an object of text, number and boolean values.",
    "example": {"kind": "flight", "from": "PEK", "to": "SZX"},
}


class Footprint(fields.Raw):
    """Free text or a flat object (see :func:`hub.neutralisation.footprint_problem`)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        problem = footprint_problem(value)
        if problem:
            raise ValidationError(problem)
        return value


# --- neutralisations --------------------------------------------------------------------------------


class NeutraliseSchema(Strict):
    grams = fields.Integer(required=True, strict=True, validate=validate.Range(1, 10**12),
                           metadata={"description": "Grams CO2e to retire (a whole number).", "example": 1200})
    footprint = Footprint(required=True, metadata=FOOTPRINT_DOC)


class CertificateReceiptSchema(Schema):
    behaviour = fields.String(required=True, metadata={"description": "The credited behaviour drawn on."})
    grams = fields.Integer(required=True, metadata={"description": "Its grams this certificate retired."})
    scenario = fields.String(required=True)
    occurred_at = fields.DateTime(allow_none=True, required=True)
    methodology = fields.String(required=True)
    version = fields.String(required=True)


class CertificateSchema(Schema):
    id = fields.String(required=True, metadata={"example": "cert_019a4c…"})
    account = fields.String(required=True)
    grams = fields.Integer(required=True)
    footprint = fields.Raw(required=True, metadata={k: v for k, v in FOOTPRINT_DOC.items() if k != "example"})
    created_at = fields.DateTime(required=True)
    transaction = fields.Integer(required=True, metadata={"description": "Ledger seq of the retirement."})
    receipts = fields.List(fields.Nested(CertificateReceiptSchema), required=True,
                           metadata={"description": "The behaviours whose grams it retired, oldest act first."})


class CertificateQuerySchema(Strict):
    limit = _limit()
    before = Cursor(metadata={"description": "The previous page's `next`."})


class CertificatePageSchema(Schema):
    account = fields.String(required=True)
    certificates = fields.List(fields.Nested(CertificateSchema), required=True)
    next = fields.String(allow_none=True, required=True)


# --- aggregations --------------------------------------------------------------------------------


def _period(value: str) -> None:
    try:
        parse_period(value)
    except ValueError:
        raise ValidationError("Must be a month: YYYY-MM (1900-01 to 9998-12).") from None


class AggregateSchema(Strict):
    exchange = fields.String(required=True, validate=validate.Length(1, 64),
                             metadata={"description": "An exchange under `[aggregation.exchanges]`.",
                                       "example": "cneeex"})
    period = fields.String(required=True, validate=_period,
                           metadata={"description": "The month of the acts, in the bank's time zone.",
                                     "example": "2026-11"})


class ReportFilesSchema(Schema):
    json = fields.String(required=True)
    csv = fields.String(required=True)


class AggregationSummarySchema(Schema):
    id = fields.String(required=True, metadata={"example": "agg_cneeex_2026-11"})
    exchange = fields.String(required=True)
    period = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    behaviours = fields.Integer(required=True, metadata={"description": "Behaviours whose grams were pooled."})
    accounts = fields.Integer(required=True, metadata={"description": "Users who contributed."})
    grams = fields.Integer(required=True, metadata={"description": "Grams moved into the pool."})
    adjustment_grams = fields.Integer(required=True, metadata={
        "description": "Grams of earlier pools taken out because their credits were reversed (≤ 0)."})
    net_grams = fields.Integer(required=True)
    net_tonnes = fields.String(required=True, metadata={"description": "Exact decimal text, six places."})
    points = fields.Integer(required=True, metadata={"description": "Points awarded to users in total."})
    files = fields.Nested(ReportFilesSchema, required=True,
                          metadata={"description": "Where the report was written on the hub's host."})


class AggregationSchema(AggregationSummarySchema):
    report = fields.Dict(required=True, metadata={"description": "The report as written to the JSON file "
                                                                 "(docs/carbon-assets.md)."})


class AggregationQuerySchema(Strict):
    limit = _limit()
    before = Cursor(metadata={"description": "The previous page's `next`."})
    exchange = fields.String(metadata={"description": "Only this exchange's aggregations."})


class AggregationPageSchema(Schema):
    aggregations = fields.List(fields.Nested(AggregationSummarySchema), required=True)
    next = fields.String(allow_none=True, required=True)
