"""Share cards: a picture of the user's carbon value behind a public, revocable, expiring link."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from .. import shares
from .auth import current_hub
from .errors import ApiError
from .routing import ApiBlueprint
from .schemas import Strict

bp = ApiBlueprint("shares", __name__, tag="shares",
                  description="Share cards of an account's carbon value (SVG and PNG) behind public links "
                              "`/s/<token>` that can be revoked and expire.")


class ShareTopScenarioSchema(Schema):
    id = fields.String(required=True, metadata={"example": "metro"})
    title = fields.String(required=True, metadata={"example": "Metro rides"})
    grams = fields.Integer(required=True, metadata={"description": "Credited grams CO2e of it in the period."})


class ShareCardSchema(Schema):
    period = fields.String(required=True, metadata={"example": "2026-11"})
    period_label = fields.String(required=True, metadata={
        "description": "The period in words: `all time`, `2026`, `November 2026`.", "example": "November 2026"})
    total_g = fields.Integer(required=True, metadata={"description": "Credited grams CO2e in the period."})
    behaviours = fields.Integer(required=True, metadata={"description": "Credited behaviours in the period."})
    top_scenario = fields.Nested(ShareTopScenarioSchema, allow_none=True, required=True,
                                 metadata={"description": "The scenario with the most grams; null when none."})
    hub_name = fields.String(allow_none=True, required=True, metadata={
        "description": "The hub's display name, or null."})
    as_of = fields.String(required=True, metadata={"description": "Local day the figures were taken (YYYY-MM-DD)."})


class ShareSchema(Schema):
    id = fields.String(required=True, metadata={"example": "shr_019a8f3c2b1d4e5f6a7b8c9d0e1f"})
    period = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": [shares.ACTIVE, shares.REVOKED, shares.EXPIRED]})
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True, required=True)
    card = fields.Nested(ShareCardSchema, required=True, metadata={
        "description": "The frozen snapshot the public link shows: figures only, nothing about the user."})


class ShareCreatedSchema(ShareSchema):
    token = fields.String(required=True, metadata={
        "description": "The secret part of the public link, shown this once (the hub keeps only its hash)."})
    url = fields.String(required=True, metadata={"description": "The public page, `/s/<token>` (relative to "
                                                                "the hub's public base URL)."})
    svg_url = fields.String(required=True, metadata={"description": "The card as SVG, `/s/<token>.svg`."})
    png_url = fields.String(required=True, metadata={"description": "The card as PNG, `/s/<token>.png`."})


class ShareListSchema(Schema):
    shares = fields.List(fields.Nested(ShareSchema), required=True)


class ShareCreateBodySchema(Strict):
    period = fields.String(load_default="all", validate=validate.Regexp(
        shares.PERIOD, error="Must be 'all', a year (YYYY) or a month (YYYY-MM)."),
        metadata={"description": "`all`, a year `YYYY` or a month `YYYY-MM` of the hub's local calendar; "
                                 "not in the future.", "example": "2026-11"})
    ttl_days = fields.Integer(load_default=shares.DEFAULT_TTL_DAYS, strict=True,
                              validate=validate.Range(1, shares.MAX_TTL_DAYS),
                              metadata={"description": "Days until the link expires."})


def _api_error(exc: shares.ShareError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.fields)


@bp.operation("/accounts/<account_id>/shares", "POST", summary="Make a share card and its public link",
              scope="accounts:write", body=ShareCreateBodySchema, response=ShareCreatedSchema,
              success={201: "Made: the token, shown this once, and the public links."},
              errors={404: "No such account (`not_found`).",
                      409: f"The account already has {shares.MAX_ACTIVE} active shares (`too_many_shares`).",
                      422: "Invalid body: `period` malformed or in the future, `ttl_days` not 1 to "
                           f"{shares.MAX_TTL_DAYS} (`validation_error`, see `fields`)."},
              description="Freezes the account's credited grams for `period` (total, number of credited "
                          "behaviours, top scenario) into a card, drawn as SVG and PNG (1200x630), behind the "
                          "public page `/s/<token>`, which shows the figures and nothing private. The token is "
                          "returned once; the hub stores only its hash. A period without credited grams is "
                          "allowed (the card says so).")
def create_share(account_id: str, body: dict[str, Any]) -> Any:
    try:
        return shares.create(current_hub(), account_id, body["period"], body["ttl_days"]), 201
    except shares.ShareError as exc:
        raise _api_error(exc) from None


@bp.operation("/accounts/<account_id>/shares", "GET", summary="The account's share cards",
              scope="accounts:read", response=ShareListSchema, errors={404: "No such account (`not_found`)."},
              description="Every share of the account, newest first, with its status (`active`, `revoked`, "
                          "`expired`) and card; never the tokens.")
def list_shares(account_id: str) -> Any:
    try:
        return {"shares": shares.list_for(current_hub(), account_id)}
    except shares.ShareError as exc:
        raise _api_error(exc) from None


@bp.operation("/accounts/<account_id>/shares/<share_id>", "DELETE", summary="Revoke a share card",
              scope="accounts:write", response=ShareSchema,
              errors={404: "No such account, or no such share of this account (`not_found`)."},
              description="Revokes the share: its public page and images answer 410 `share_revoked` from now "
                          "on. Revoking it again changes nothing and answers the share again.")
def revoke_share(account_id: str, share_id: str) -> Any:
    try:
        return shares.revoke(current_hub(), account_id, share_id)
    except shares.ShareError as exc:
        raise _api_error(exc) from None
