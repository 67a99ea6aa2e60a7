"""The airline's benefit: frequent-flyer miles credited through the airline's HTTP API.

The user gives their membership number (``details.member_id``); the bank
sets how many miles a redemption buys (``[benefits.airline-miles] options =
{ miles = 500 }``). Config of the airline's API::

    [plugin_config.airlines]
    base_url = "https://api.airline.example/loyalty"
    api_key_env = "CARBONHUB_AIRLINE_API_KEY"   # the variable holding the key, never the key
    timeout_s = 5

The airline's API (idempotent on ``Idempotency-Key``, our redemption id)::

    POST {base_url}/v1/miles/credits
      {"member_id": "CA1234567890", "miles": 500, "reference": "rdm_…"}
      -> 201 {"credit_id": "MC-88120", "member_id": "CA1234567890", "miles": 500}
      -> 404 {"error": {"code": "unknown_member", "message": "…"}}
    POST {base_url}/v1/miles/credits/{reference}/reversal    (cancel; 404: nothing to reverse)

A timeout, a 5xx or an answer without ``credit_id`` and the right ``miles`` is
retried with the same key, then refunded and reversed at the airline; a 4xx
is refused at once with the airline's code (e.g. ``unknown_member``).
"""
from __future__ import annotations

from hub.fulfilment import partner_json, require_text
from hub.hookspecs import hookimpl
from hub.records import BenefitSpec, Fulfilment, PermanentFulfilmentError, RetryableFulfilmentError

CARBONHUB_API = "1.0"
# The hooks the package's __init__ re-exports (`from .benefits import *`).
__all__ = ["carbonhub_register_benefits", "carbonhub_fulfil_benefit", "carbonhub_cancel_fulfilment"]
MILES = "airline-miles"
CONFIG = "airlines"


def _api(ctx) -> tuple[str, dict[str, str], float]:
    conf = ctx.plugin_config(CONFIG)
    base = str(conf.get("base_url") or "").rstrip("/")
    key = ctx.secret(conf["api_key_env"]) if conf.get("api_key_env") else None
    if not base or not key:
        raise PermanentFulfilmentError("not_configured", "The airline's API is not configured "
                                                         "(plugin_config.airlines base_url, api_key_env).")
    return base, {"Authorization": f"Bearer {key}"}, float(conf.get("timeout_s", 5))


@hookimpl
def carbonhub_register_benefits(ctx):
    return [BenefitSpec(id=MILES, title="Airline miles", partner_kind="airline", details=("member_id",),
                        description="Frequent-flyer miles credited to the user's airline membership.")]


@hookimpl
def carbonhub_fulfil_benefit(ctx, redemption):
    if redemption.benefit != MILES:
        return None
    miles = redemption.options.get("miles")
    if type(miles) is not int or miles <= 0:
        raise PermanentFulfilmentError("not_configured", "benefits.airline-miles.options.miles must be a "
                                                         "positive integer.")
    base, headers, timeout = _api(ctx)
    body = partner_json(ctx, "POST", f"{base}/v1/miles/credits", timeout=timeout,
                        headers={**headers, "Idempotency-Key": redemption.id},
                        json={"member_id": redemption.details["member_id"], "miles": miles,
                              "reference": redemption.id})
    credit_id = require_text(body, "credit_id")
    if body.get("miles") != miles:
        raise RetryableFulfilmentError("malformed_response", f"The airline credited {body.get('miles')!r} miles, "
                                                             f"not {miles}.")
    return Fulfilment(reference=credit_id, detail={"miles": miles, "member_id": redemption.details["member_id"]})


@hookimpl
def carbonhub_cancel_fulfilment(ctx, redemption):
    if redemption.benefit != MILES:
        return
    base, headers, timeout = _api(ctx)
    response = ctx.http.post(f"{base}/v1/miles/credits/{redemption.id}/reversal", timeout=timeout,
                             headers={**headers, "Idempotency-Key": f"{redemption.id}:reversal"})
    if response.status_code != 404:  # 404: the airline never credited it
        response.raise_for_status()
