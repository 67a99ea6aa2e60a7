"""Redemptions: a user spends points on a benefit; two-phase on the ledger, idempotent per key."""
from __future__ import annotations

from typing import Any

from ..exchange import ExchangeError
from .accounts import require_account
from .auth import current_hub
from .errors import ApiError, not_found
from .exchange_schemas import RedemptionCreateSchema, RedemptionPageSchema, RedemptionQuerySchema, RedemptionSchema
from .idempotency import IDEMPOTENCY_HEADER, idempotency_key
from .routing import ApiBlueprint
from .schemas import encode_cursor

bp = ApiBlueprint("redemptions", __name__, tag="redemptions",
                  description="Points spent on benefits: held in escrow, fulfilled by the partner, or refunded.")


def as_api_error(exc: ExchangeError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.fields if exc.status == 422 else None)


@bp.operation("/accounts/<account_id>/redemptions", "POST", summary="Redeem points for a benefit",
              description="Holds the benefit's cost in points (first-expiring lots first) and one from its "
                          "stock, asks the partner to deliver, then posts the points to the partner or, if "
                          "the partner refuses or stays unreachable after retries, refunds them into the "
                          "same lots. The answer carries the final `status`: `fulfilled` (see `fulfilment`) "
                          "or `voided` (see `failure`); `held` only if the partner is still being asked. "
                          "Repeating the call with the same `Idempotency-Key` and body returns the same "
                          "redemption (200) and never spends twice.",
              scope="accounts:write", body=RedemptionCreateSchema, response=RedemptionSchema,
              headers={IDEMPOTENCY_HEADER: "A key unique to this redemption, 1-100 printable ASCII characters "
                                           "without spaces (e.g. a UUID), the same on retries: a retry with the "
                                           "same key and body is answered with the first result; with another "
                                           "body, 409 `idempotency_conflict`."},
              success={201: "Redeemed (fulfilled or voided: see `status`).",
                       200: "The same key was used before with the same body: that redemption."},
              errors={404: "No such account (`not_found`) or benefit (`unknown_benefit`).",
                      409: "`insufficient_points`, `out_of_stock`, `limit_reached`, `benefit_closed`, "
                           "`not_eligible`, or `idempotency_conflict` (the key was used with another body).",
                      422: "Invalid body, `details` or `Idempotency-Key` (`validation_error`)."})
def redeem(account_id: str, body: dict[str, Any]) -> Any:
    key = idempotency_key()
    require_account(account_id)
    try:
        view, created = current_hub().exchange.redeem(account_id, body["benefit"], key, body["details"])
    except ExchangeError as exc:
        raise as_api_error(exc) from None
    headers = {"Location": f"/v1/accounts/{account_id}/redemptions/{view['id']}"} if created else {}
    return view, (201 if created else 200), headers


@bp.operation("/accounts/<account_id>/redemptions", "GET", summary="The user's redemptions, newest first",
              description="Keyset pagination with the opaque `next` cursor; filter by `status`.",
              scope="accounts:read", query=RedemptionQuerySchema, response=RedemptionPageSchema,
              errors={404: "No such account (`not_found`)."})
def list_redemptions(account_id: str, query: dict[str, Any]) -> Any:
    require_account(account_id)
    rows, cursor = current_hub().exchange.page(account_id, limit=query["limit"], before=query.get("before"),
                                               status=query.get("status"))
    return {"account": account_id, "redemptions": rows,
            "next": encode_cursor(*cursor) if cursor else None}


@bp.operation("/accounts/<account_id>/redemptions/<redemption_id>", "GET", summary="One redemption",
              description="Its status (`held`, `fulfilled`, `voided`), what was delivered or why it was "
                          "refunded, and the ledger transactions of the hold and its resolution.",
              scope="accounts:read", response=RedemptionSchema,
              errors={404: "No such account, or no such redemption of this account (`not_found`)."})
def get_redemption(account_id: str, redemption_id: str) -> Any:
    require_account(account_id)
    found = current_hub().exchange.get(account_id, redemption_id)
    if found is None:
        raise not_found("redemption", redemption_id)
    return found
