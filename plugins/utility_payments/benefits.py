"""The utility biller's benefit: a bill-discount coupon the biller checks offline.

The coupon is ``UB-<discount in fen>-<valid until YYYYMMDD>-<redemption>-<signature>``;
the signature is HMAC-SHA256 under a secret the bank shares with the biller,
so the biller accepts a coupon at payment time without calling the hub
(:func:`verify_coupon` is what its cashier runs). The bank sets the discount
and validity (``[benefits.bill-discount] options = { discount_fen = 500,
valid_days = 90 }``) and names the secret::

    [plugin_config.utility_payments]
    coupon_secret_env = "CARBONHUB_COUPON_SECRET_SGCC"

A voided redemption's coupon is never shown to the user; the biller keeps the
list of coupons it has honoured, so one coupon pays one bill.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta

from hub.hookspecs import hookimpl
from hub.records import BenefitSpec, Fulfilment, PermanentFulfilmentError

CARBONHUB_API = "1.0"
# The hooks the package's __init__ re-exports (`from .benefits import *`).
__all__ = ["carbonhub_register_benefits", "carbonhub_fulfil_benefit"]
BILL_DISCOUNT = "bill-discount"
CONFIG = "utility_payments"


def _signature(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:20].upper()


def make_coupon(secret: str, discount_fen: int, valid_until: date, reference: str) -> str:
    body = f"UB-{discount_fen}-{valid_until:%Y%m%d}-{reference}"
    return f"{body}-{_signature(secret, body)}"


def verify_coupon(secret: str, coupon: str, today: date) -> int | None:
    """The discount in fen of a genuine, unexpired coupon; None otherwise."""
    body, _, signature = coupon.rpartition("-")
    parts = body.split("-")
    if len(parts) != 4 or parts[0] != "UB" or not hmac.compare_digest(_signature(secret, body), signature):
        return None
    try:
        discount, until = int(parts[1]), datetime.strptime(parts[2], "%Y%m%d").date()
    except ValueError:
        return None
    return discount if today <= until else None


@hookimpl
def carbonhub_register_benefits(ctx):
    return [BenefitSpec(id=BILL_DISCOUNT, title="Utility bill discount", partner_kind="biller",
                        description="A coupon taking a fixed amount off the next power bill paid online.")]


@hookimpl
def carbonhub_fulfil_benefit(ctx, redemption):
    if redemption.benefit != BILL_DISCOUNT:
        return None
    env = ctx.plugin_config(CONFIG).get("coupon_secret_env")
    secret = ctx.secret(env) if env else None
    discount, days = redemption.options.get("discount_fen"), redemption.options.get("valid_days", 90)
    if not secret or type(discount) is not int or discount <= 0 or type(days) is not int or days <= 0:
        raise PermanentFulfilmentError("not_configured", "The bill coupon needs plugin_config.utility_payments."
                                                         "coupon_secret_env and options.discount_fen.")
    until = ctx.now().astimezone(ctx.tz).date() + timedelta(days=days)
    return Fulfilment(code=make_coupon(secret, discount, until, redemption.id),
                      detail={"discount_fen": discount, "valid_until": until.isoformat()})
