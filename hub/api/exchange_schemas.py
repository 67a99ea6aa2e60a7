"""Request and response schemas of points and the benefit exchange: lots, benefits, redemptions."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from .schemas import Cursor, Strict, _limit

REDEMPTION_STATUSES = ("held", "fulfilled", "voided")


# --- points ---------------------------------------------------------------------------------


class LotSchema(Schema):
    id = fields.Integer(required=True, metadata={"description": "The lot: seq of the ledger transaction that "
                                                                "credited its points."})
    points = fields.Integer(required=True, metadata={"description": "Points credited in this lot."})
    remaining = fields.Integer(required=True, metadata={"description": "Points of it not yet spent or expired."})
    earned_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True, required=True, metadata={"description": "Null: never."})


class NextExpirySchema(Schema):
    expires_at = fields.DateTime(required=True)
    points = fields.Integer(required=True, metadata={"description": "Points that expire then."})


class PointsSchema(Schema):
    account = fields.String(required=True)
    balance = fields.Integer(required=True, metadata={"description": "The ledger balance of the user's points."})
    spendable = fields.Integer(required=True, metadata={
        "description": "What a redemption can use now: the balance less lots past their expiry date that the "
                       "expiry job has not posted yet."})
    held = fields.Integer(required=True, metadata={
        "description": "Points in escrow for redemptions being fulfilled (not in the balance)."})
    expired_pending = fields.Integer(required=True, metadata={
        "description": "Points past their expiry date, about to be posted to @expired."})
    next_expiry = fields.Nested(NextExpirySchema, allow_none=True, required=True,
                                metadata={"description": "The next expiry date and how many points it takes; "
                                                         "null when nothing is due to expire."})
    lots = fields.List(fields.Nested(LotSchema), required=True,
                       metadata={"description": "Lots still holding points, first-expiring first "
                                                "(the order spending takes them), never-expiring last."})


# --- benefits -------------------------------------------------------------------------------


class BenefitsQuerySchema(Strict):
    account = fields.String(validate=validate.Length(1, 40),
                            metadata={"description": "A carbon account: say for each benefit whether this user "
                                                     "can redeem it now, and why not."})


class StockSchema(Schema):
    total = fields.Integer(required=True)
    left = fields.Integer(required=True, metadata={"description": "Not held nor fulfilled yet."})


class EligibilitySchema(Schema):
    can_redeem = fields.Boolean(required=True)
    code = fields.String(allow_none=True, required=True, metadata={
        "description": "Why not, when not: the error code a redemption would get now (`benefit_closed`, "
                       "`not_eligible`, `limit_reached`, `out_of_stock`, `insufficient_points`)."})
    message = fields.String(allow_none=True, required=True)


class BenefitSchema(Schema):
    id = fields.String(required=True, metadata={"example": "metro-ride-voucher"})
    title = fields.String(required=True)
    description = fields.String(required=True)
    partner = fields.String(required=True, metadata={"description": "The partner that delivers it."})
    cost = fields.Integer(required=True, metadata={"description": "Points."})
    details = fields.List(fields.String(), required=True, metadata={
        "description": "Fields the user must give in the redemption's `details` (e.g. `member_id`)."})
    stock = fields.Nested(StockSchema, allow_none=True, required=True, metadata={"description": "Null: unlimited."})
    limit_per_user = fields.Integer(allow_none=True, required=True)
    limit_period = fields.String(required=True, metadata={"enum": ["day", "week", "month", "ever"]})
    from_ = fields.Date(data_key="from", attribute="from", allow_none=True, required=True)
    to = fields.Date(allow_none=True, required=True)
    requires_green_record = fields.Boolean(required=True)
    eligibility = fields.Nested(EligibilitySchema, metadata={"description": "With `?account=` only."})


# --- redemptions ----------------------------------------------------------------------------


class RedemptionCreateSchema(Strict):
    benefit = fields.String(required=True, validate=validate.Length(1, 64), metadata={"example": "airmiles-500"})
    details = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict, metadata={
        "description": "What the benefit asks for (its `details`), e.g. `{\"member_id\": \"CA1234567890\"}`.",
        "additionalProperties": {"type": "string"}})


class FulfilmentSchema(Schema):
    code = fields.String(allow_none=True, required=True, metadata={"description": "What the user uses: a voucher "
                                                                                  "or card code, a coupon."})
    reference = fields.String(allow_none=True, required=True, metadata={"description": "The partner's own id."})
    detail = fields.Dict(required=True)


class FailureSchema(Schema):
    code = fields.String(required=True, metadata={"description": "`hold_timeout`, or the partner's reason "
                                                                 "(`partner_timeout`, `unknown_member`…)."})
    message = fields.String(required=True)
    retryable = fields.Boolean(required=True, metadata={"description": "Whether the partner's last error was one "
                                                                      "that was retried."})


class RedemptionTransactionsSchema(Schema):
    hold = fields.Integer(allow_none=True, required=True, metadata={"description": "Seq of the hold (points to "
                                                                                  "escrow); null for 0 points."})
    resolve = fields.Integer(allow_none=True, required=True, metadata={"description": "Seq of the post or void."})


class RedemptionSchema(Schema):
    id = fields.String(required=True, metadata={"example": "rdm_019a2b3c4d5e6f708192a3b4c5d6"})
    account = fields.String(required=True)
    benefit = fields.String(required=True)
    partner = fields.String(required=True)
    cost = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": list(REDEMPTION_STATUSES)})
    created_at = fields.DateTime(required=True)
    deadline_at = fields.DateTime(required=True, metadata={"description": "A hold still open then is voided."})
    resolved_at = fields.DateTime(allow_none=True, required=True)
    attempts = fields.Integer(required=True, metadata={"description": "Calls made to the partner."})
    details = fields.Dict(required=True)
    fulfilment = fields.Nested(FulfilmentSchema, allow_none=True, required=True,
                               metadata={"description": "What was delivered (fulfilled only)."})
    failure = fields.Nested(FailureSchema, allow_none=True, required=True,
                            metadata={"description": "Why it was voided and refunded (voided only)."})
    transactions = fields.Nested(RedemptionTransactionsSchema, required=True)


class RedemptionQuerySchema(Strict):
    limit = _limit()
    before = Cursor(metadata={"description": "The previous page's `next`."})
    status = fields.String(validate=validate.OneOf(REDEMPTION_STATUSES))


class RedemptionPageSchema(Schema):
    account = fields.String(required=True)
    redemptions = fields.List(fields.Nested(RedemptionSchema), required=True)
    next = fields.String(allow_none=True, required=True)
