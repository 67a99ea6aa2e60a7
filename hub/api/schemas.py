"""Request and response schemas (marshmallow 4) of the HTTP API.

Request schemas validate bodies and query strings: unknown fields, wrong types
and missing fields are answered 422 ``validation_error`` with ``fields``.
Response schemas shape every answer and feed the OpenAPI document, so the
document and the answers cannot drift apart.
"""
from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

STATUSES = ("accepted", "duplicate", "rejected")
MAX_SEQ = 2**63 - 1  # BIGINT
# Days whose bounds exist as datetimes in every time zone.
DAYS = validate.Range(date(1900, 1, 1), date(9999, 12, 30))
MAX_PAGE = 200
DEFAULT_PAGE = 50


class Strict(Schema):
    """Unknown fields are an error (a typo must not be silently ignored)."""

    class Meta:
        unknown = RAISE


# --- errors -------------------------------------------------------------------


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable, machine-readable code."})
    message = fields.String(required=True, metadata={"description": "Human-readable explanation."})
    fields_ = fields.Dict(data_key="fields", metadata={
        "description": "Per-field messages (422 only): field name -> messages; nested objects and list "
                       "indexes nest."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


# --- shared query fields ------------------------------------------------------------


def encode_cursor(at: datetime, ident: str) -> str:
    """An opaque keyset cursor for rows ordered by ``(time desc, id desc)``."""
    raw = f"{at.replace(tzinfo=None).isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Cursor(fields.String):
    """The opaque ``next`` value of a previous page; loads to ``(naive UTC datetime, id)``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[datetime, str]:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, ident = raw.split("|", 1)
            if "\x00" in ident:
                raise ValueError("NUL")
            return datetime.fromisoformat(at).replace(tzinfo=None), ident
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationError("Not a cursor from a previous page's 'next'.") from None


def _limit() -> fields.Integer:
    return fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(1, MAX_PAGE),
                          metadata={"description": f"Page size, 1-{MAX_PAGE} (default {DEFAULT_PAGE})."})


# --- accounts -----------------------------------------------------------------------


class AccountCreateSchema(Strict):
    bank_ref = fields.String(required=True, validate=[
        validate.Length(1, 128),
        validate.Regexp(r"^\S(.*\S)?$", error="Must not start or end with whitespace.")],
        metadata={"description": "The bank's own reference for the customer (opaque to the hub).",
                  "example": "cust-000123"})


class BalancesSchema(Schema):
    carbon_g = fields.Integer(required=True, metadata={"description": "Carbon the user holds, grams CO2e: "
                                                                      "credited, not retired nor aggregated."})
    points = fields.Integer(required=True, metadata={"description": "Points balance."})


class CarbonSummarySchema(Schema):
    held_g = fields.Integer(required=True, metadata={"description": "Grams the user holds (= balances.carbon_g)."})
    retired_g = fields.Integer(required=True, metadata={"description": "Grams the user retired (neutralisations)."})
    aggregated_g = fields.Integer(required=True, metadata={"description": "Grams pooled for a carbon exchange "
                                                                         "(aggregations), net of corrections."})
    lifetime_g = fields.Integer(required=True, metadata={
        "description": "Every gram credited and not reversed: held_g + retired_g + aggregated_g."})


class AccountSchema(Schema):
    id = fields.String(required=True, metadata={"example": "acc_3f9a0c1d2e4b5a6978ab"})
    bank_ref = fields.String(required=True)
    opened_at = fields.DateTime(required=True)
    status = fields.String(required=True, metadata={"example": "open"})
    balances = fields.Nested(BalancesSchema, required=True)
    carbon = fields.Nested(CarbonSummarySchema, required=True,
                           metadata={"description": "The user's carbon over its life: held, retired, aggregated."})


# --- consents -----------------------------------------------------------------------


class ConsentSchema(Schema):
    scenario = fields.String(required=True)
    granted = fields.Boolean(required=True)
    updated_at = fields.DateTime(required=True)


class ConsentEventSchema(Schema):
    scenario = fields.String(required=True)
    action = fields.String(required=True, metadata={"enum": ["grant", "revoke"]})
    at = fields.DateTime(required=True)
    source = fields.String(required=True)


class ConsentsSchema(Schema):
    account = fields.String(required=True)
    consents = fields.List(fields.Nested(ConsentSchema), required=True,
                           metadata={"description": "Current state per scenario ever granted or revoked."})
    log = fields.List(fields.Nested(ConsentEventSchema), required=True,
                      metadata={"description": "Every grant and revocation, oldest first."})


class ConsentChangeSchema(Schema):
    account = fields.String(required=True)
    scenario = fields.String(required=True)
    granted = fields.Boolean(required=True)
    changed = fields.Boolean(required=True, metadata={"description": "False when it already was so."})
    updated_at = fields.DateTime(allow_none=True)


# --- partner push -------------------------------------------------------------------


class PushSchema(Strict):
    records = fields.List(fields.Dict(), required=True,
                          metadata={"description": "The partner's native records (one JSON object each); "
                                                   "their format is the partner plugin's."})


class BatchSummarySchema(Schema):
    batch_id = fields.String(required=True)
    records = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    grams = fields.Integer(required=True, metadata={"description": "Grams CO2e credited by this batch."})
    points = fields.Integer(required=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                          metadata={"description": "Count of records per rejection/duplicate reason."})


class BehaviourOutcomeSchema(Schema):
    id = fields.String(required=True)
    scenario = fields.String(required=True)
    account = fields.String(allow_none=True)
    event_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    grams = fields.Integer(required=True)
    points = fields.Integer(required=True)
    reason = fields.String()
    message = fields.String()
    field = fields.String()
    duplicate_of = fields.String(metadata={"description": "The behaviour first credited for this act."})
    transaction = fields.Integer(metadata={"description": "Ledger transaction seq of the credit."})
    capped = fields.Boolean()


class RecordOutcomeSchema(Schema):
    index = fields.Integer(required=True, metadata={"description": "Position in the pushed records."})
    inbox_id = fields.String(required=True)
    event_id = fields.Raw(allow_none=True, metadata={"description": "The partner's event id, when readable."})
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    reason = fields.String()
    message = fields.String()
    field = fields.String()
    behaviours = fields.List(fields.Nested(BehaviourOutcomeSchema), required=True)


class PushResultSchema(Schema):
    batch = fields.Nested(BatchSummarySchema, required=True)
    results = fields.List(fields.Nested(RecordOutcomeSchema), required=True)


# --- ledger -------------------------------------------------------------------------


class LedgerQuerySchema(Strict):
    limit = _limit()
    before = fields.Integer(validate=validate.Range(1, MAX_SEQ),
                            metadata={"description": "Cursor: only transactions with seq below this "
                                                     "(the previous page's `next`)."})
    scenario = fields.String(metadata={"description": "Only transactions of this scenario."})
    from_date = fields.Date(data_key="from", validate=DAYS,
                            metadata={"description": "First day (bank time zone), inclusive."})
    to_date = fields.Date(data_key="to", validate=DAYS,
                          metadata={"description": "Last day (bank time zone), inclusive."})

    @validates_schema
    def _range(self, data: dict, **_: Any) -> None:
        if data.get("from_date") and data.get("to_date") and data["from_date"] > data["to_date"]:
            raise ValidationError("Must not be before 'from'.", "to")


class LedgerEntrySchema(Schema):
    seq = fields.Integer(required=True, metadata={"description": "Ledger transaction sequence number."})
    created_at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"description": "credit, reversal, ..."})
    account = fields.String(required=True, metadata={"enum": ["carbon", "points"]})
    unit = fields.String(required=True, metadata={"enum": ["g", "pts"]})
    amount = fields.Integer(required=True, metadata={"description": "Signed: positive credits the user."})
    scenario = fields.String(allow_none=True)
    behaviour = fields.String(allow_none=True, metadata={"description": "Behaviour id behind a credit."})
    partner = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    methodology = fields.String(allow_none=True, metadata={"description": "id@version used."})
    reverses = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "Why, for reversals."})


class LedgerPageSchema(Schema):
    account = fields.String(required=True)
    entries = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    next = fields.Integer(allow_none=True, required=True,
                          metadata={"description": "Pass as `before` for the next page; null on the last."})


# --- behaviours ---------------------------------------------------------------------


class BehaviourQuerySchema(Strict):
    limit = _limit()
    before = Cursor(metadata={"description": "The previous page's `next`."})
    status = fields.String(validate=validate.OneOf(STATUSES))
    scenario = fields.String()


class FactorSchema(Schema):
    name = fields.String(required=True)
    value = fields.String(required=True, metadata={"description": "Exact decimal, as text."})
    unit = fields.String(required=True)
    source = fields.String(required=True)


class CapAppliedSchema(Schema):
    cap = fields.String(required=True)
    limit = fields.Integer(required=True)
    used_before = fields.Integer(required=True)
    computed_g = fields.Integer(required=True)
    credited_g = fields.Integer(required=True)


class PointGrantSchema(Schema):
    points = fields.Integer(required=True)
    rule = fields.String(required=True)
    detail = fields.String()


class ReceiptSchema(Schema):
    behaviour = fields.String(required=True, metadata={"description": "The credited behaviour (for a "
                                                                      "duplicate: the first report)."})
    methodology = fields.String(required=True)
    version = fields.String(required=True)
    quantity = fields.String(required=True)
    unit = fields.String(required=True)
    factors = fields.List(fields.Nested(FactorSchema), required=True)
    baseline_g = fields.String(required=True, metadata={"description": "Exact, before rounding."})
    project_g = fields.String(required=True)
    computed_g = fields.Integer(required=True, metadata={"description": "baseline − project, rounded down."})
    credited_g = fields.Integer(required=True, metadata={"description": "After caps."})
    formula = fields.String(required=True, metadata={"example": "18.6 pkm × 46.8 gCO2e/pkm − 0"})
    explanation = fields.String(required=True, metadata={
        "example": "18.6 pkm × 46.8 gCO2e/pkm − 0 = 870.48 g, rounded down to 870 g; credited 870 g"})
    caps = fields.List(fields.Nested(CapAppliedSchema), required=True)
    points = fields.List(fields.Nested(PointGrantSchema), required=True)
    created_at = fields.DateTime(required=True)


class BehaviourSchema(Schema):
    id = fields.String(required=True)
    scenario = fields.String(required=True)
    partner = fields.String(required=True)
    event_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    reason = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    occurred_at = fields.DateTime(allow_none=True)
    quantity = fields.String(allow_none=True, metadata={"description": "Exact decimal, as text."})
    unit = fields.String(allow_none=True)
    grams = fields.Integer(required=True)
    points = fields.Integer(required=True)
    transaction = fields.Integer(allow_none=True, metadata={"description": "Ledger seq of the credit."})
    duplicate_of = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True, metadata={"description": "When the hub processed it."})


class BehaviourDetailSchema(BehaviourSchema):
    attributes = fields.Dict(allow_none=True, metadata={"description": "Evidence carried by the behaviour."})
    field = fields.String(allow_none=True, metadata={"description": "The field a rejection is about."})
    receipt = fields.Nested(ReceiptSchema, allow_none=True,
                            metadata={"description": "How the grams were computed (credited behaviours and "
                                                     "duplicates of them); null otherwise."})
    reversed_by = fields.Integer(allow_none=True,
                                 metadata={"description": "The ledger transaction that reversed this credit "
                                                          "(a correction), or null."})


class BehaviourPageSchema(Schema):
    account = fields.String(required=True)
    behaviours = fields.List(fields.Nested(BehaviourSchema), required=True)
    next = fields.String(allow_none=True, required=True)


# --- scenarios and methodologies ----------------------------------------------------


class ScenarioMethodologySchema(Schema):
    id = fields.String(required=True)
    version_in_force = fields.String(allow_none=True)
    approved_versions = fields.List(fields.String(), required=True)


class ScenarioCampaignSchema(Schema):
    id = fields.String(required=True)
    multiplier_pct = fields.Integer(required=True, metadata={"description": "200 doubles the rule's points."})
    from_ = fields.Date(data_key="from", required=True, attribute="from")
    to = fields.Date(required=True)


class ScenarioSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    unit = fields.String(required=True)
    plugin = fields.String(required=True)
    partners = fields.List(fields.String(), required=True)
    methodology = fields.Nested(ScenarioMethodologySchema, required=True)
    caps = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    cap_subject = fields.String(allow_none=True, metadata={
        "description": "What per_subject caps count by (an attribute such as bill_account), or null."})
    points = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    campaigns = fields.List(fields.Nested(ScenarioCampaignSchema), required=True,
                            metadata={"description": "Campaigns multiplying the points rule, by local day of the act."})
    point_caps = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                             metadata={"description": "Most points a user earns here per day, ISO week, month "
                                                      "(max_per_day, max_per_week, max_per_month)."})
    science = fields.String(allow_none=True, metadata={
        "description": "Slug of the article explaining the methodology (GET /v1/science/<slug>), or null."})


class FactorValueSchema(Schema):
    value = fields.String(required=True)
    unit = fields.String(required=True)
    source = fields.String(required=True)


def _date_text(**kwargs: Any) -> fields.String:
    return fields.String(metadata={"format": "date"}, **kwargs)


class MethodologyVersionSchema(Schema):
    id = fields.String(required=True)
    version = fields.String(required=True)
    title = fields.String(required=True)
    family = fields.String(required=True)
    reviewer = fields.String(required=True)
    reviewed_on = _date_text(required=True)
    effective_from = _date_text(required=True)
    effective_to = _date_text(allow_none=True, required=True)
    superseded_on = fields.String(allow_none=True, required=True, metadata={
        "format": "date", "description": "The next version's effective_from, which ends an open-ended version."})
    in_force_today = fields.Boolean(required=True, metadata={"description": "In force on today's date in the "
                                                                            "bank's time zone."})
    quantity_unit = fields.String(required=True)
    evidence = fields.List(fields.String(), required=True)
    description = fields.String(required=True)
    caps = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    cap_subject = fields.String(allow_none=True, metadata={
        "description": "The attribute per_subject caps count by (e.g. bill_account), or null."})
    factors = fields.Dict(keys=fields.String(), values=fields.Nested(FactorValueSchema), required=True)


class MethodologySchema(Schema):
    id = fields.String(required=True)
    scenarios = fields.List(fields.String(), required=True,
                            metadata={"description": "Enabled scenarios that use it."})
    versions = fields.List(fields.Nested(MethodologyVersionSchema), required=True)


# --- admin --------------------------------------------------------------------------


class InboxQuerySchema(Strict):
    limit = _limit()
    before = Cursor(metadata={"description": "The previous page's `next`."})
    status = fields.String(validate=validate.OneOf(STATUSES))
    reason = fields.String()
    partner = fields.String()


class InboxRecordSchema(Schema):
    id = fields.String(required=True)
    partner = fields.String(required=True)
    batch_id = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": ["push", "pull", "batch", "demo"]})
    received_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    event_id = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    reason = fields.String(allow_none=True)
    detail = fields.Dict(allow_none=True)
    attempts = fields.Integer(required=True)
    payload = fields.Raw(required=True, metadata={"type": "object", "description": "The record as received."})


class InboxPageSchema(Schema):
    records = fields.List(fields.Nested(InboxRecordSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class ReplaySchema(Strict):
    partner = fields.String(metadata={"description": "Only this partner's records."})
    reason = fields.String(metadata={"description": "Only records rejected for this reason."})
    ids = fields.List(fields.String(), validate=validate.Length(1, 10_000),
                      metadata={"description": "Only these inbox ids."})
    limit = fields.Integer(validate=validate.Range(1, 1_000_000), metadata={"description": "At most this many."})


class ReplayResultSchema(Schema):
    batch = fields.Nested(BatchSummarySchema, required=True)


class VerifySchema(Schema):
    ok = fields.Boolean(required=True)
    transactions = fields.Integer(required=True)
    accounts = fields.Integer(required=True)
    first_break = fields.Integer(allow_none=True, required=True)
    problems = fields.List(fields.String(), required=True)
    head_seq = fields.Integer(required=True, metadata={"description": "Last transaction verified."})
    head_hash = fields.String(required=True, metadata={"description": "Its hash: record it outside the hub "
                                                                      "and pass it to later verifications."})


class ReversalSchema(Strict):
    reason = fields.String(required=True, validate=validate.Length(3, 500),
                           metadata={"description": "Why the transaction is corrected; kept in the memo."})


class PostingSchema(Schema):
    account = fields.String(required=True)
    unit = fields.String(required=True)
    amount = fields.Integer(required=True)


class TransactionSchema(Schema):
    seq = fields.Integer(required=True)
    key = fields.String(required=True)
    kind = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    reverses = fields.Integer(allow_none=True, required=True)
    memo = fields.Dict(required=True)
    postings = fields.List(fields.Nested(PostingSchema), required=True)


class ConnectorRunSchema(Schema):
    id = fields.Integer(required=True)
    started_at = fields.AwareDateTime(required=True)
    finished_at = fields.AwareDateTime(allow_none=True)
    status = fields.String(required=True, metadata={"enum": ["running", "ok", "failed"]})
    pages = fields.Integer(required=True)
    fetched = fields.Integer(required=True, metadata={"description": "Records read from the partner."})
    skipped = fields.Integer(required=True, metadata={"description": "Records already received (lookback)."})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "accepted / duplicate / rejected."})
    error = fields.Dict(allow_none=True, metadata={"description": "{kind: retry|fail|config, code, message}"})


class ConnectorStreamStatusSchema(Schema):
    name = fields.String(required=True)
    scenario = fields.String()
    primary_key = fields.List(fields.String())
    cursor_field = fields.String(allow_none=True)
    is_sorted = fields.Boolean()
    cursor = fields.String(allow_none=True, metadata={"description": "ISO-8601; never past the last run's start."})
    lag_s = fields.Integer(allow_none=True, metadata={"description": "Seconds between the cursor and now."})
    last_run = fields.Nested(ConnectorRunSchema, allow_none=True)
    last_error = fields.Dict(allow_none=True, metadata={"description": "{at, kind, code, message}"})


class ConnectorStatusSchema(Schema):
    name = fields.String(required=True)
    connector = fields.String(required=True)
    mode = fields.String(required=True, metadata={"enum": ["push", "pull", "batch"]})
    partner = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    every_s = fields.Integer(allow_none=True)
    streams = fields.List(fields.Nested(ConnectorStreamStatusSchema), required=True)
