"""The metro operator's benefit: a ride voucher, a code from a pool the bank loads.

The operator hands the bank a file of voucher codes; the bank loads it with
``carbonhub benefits load-codes metro-ride-voucher codes.txt`` and prices the
voucher under ``[benefits.metro-ride-voucher]``. Each redemption takes one
code from the pool (never the same code twice, also under concurrency). A
code given to a redemption that was then voided is not reused. The bank keeps
the configured ``stock`` at or below the codes loaded; an empty pool voids
and refunds (``codes_exhausted``).

Options (``[benefits.metro-ride-voucher] options``): ``valid_days`` — how
long the operator honours a code, shown to the user.
"""
from __future__ import annotations

from hub.hookspecs import hookimpl
from hub.records import BenefitSpec, Fulfilment, PermanentFulfilmentError

CARBONHUB_API = "1.0"
# The hooks the package's __init__ re-exports (`from .benefits import *`).
__all__ = ["carbonhub_register_benefits", "carbonhub_fulfil_benefit", "carbonhub_cancel_fulfilment"]
RIDE_VOUCHER = "metro-ride-voucher"


@hookimpl
def carbonhub_register_benefits(ctx):
    return [BenefitSpec(id=RIDE_VOUCHER, title="Metro ride voucher", partner_kind="metro_operator",
                        description="One free metro ride: a code to show at the gate or add in the metro app.")]


@hookimpl
def carbonhub_fulfil_benefit(ctx, redemption):
    if redemption.benefit != RIDE_VOUCHER:
        return None
    code = ctx.benefits.take_code(RIDE_VOUCHER, redemption.id)
    if code is None:
        raise PermanentFulfilmentError("codes_exhausted", "No metro voucher code is left; the bank must load more.")
    detail = {"valid_days": redemption.options["valid_days"]} if "valid_days" in redemption.options else {}
    return Fulfilment(code=code, detail=detail)


@hookimpl
def carbonhub_cancel_fulfilment(ctx, redemption):
    # A code is burnt once taken: nothing to undo at the operator, and it is never handed out again.
    if redemption.benefit == RIDE_VOUCHER:
        ctx.log.info("metro voucher of voided redemption %s is not reused", redemption.id)
