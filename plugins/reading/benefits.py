"""The digital library's benefit: a PLUS weekly reading card, given free when a carbon account opens.

When an account opens, the library plugin grants the card through the
exchange (a redemption of 0 points, idempotency key ``welcome:<account>``),
so each user gets it once, however often the opening is announced. The bank
switches it on and stocks it like any benefit, and marks it a welcome gift::

    [benefits.plus-weekly-card]
    partner = "citicpress"
    cost = 0
    stock = 100000
    welcome = true            # not offered for points
    limit_per_user = 1

The library issues the card through its API::

    [plugin_config.reading]
    base_url = "https://library.example/api"
    api_key_env = "CARBONHUB_LIBRARY_API_KEY"

    POST {base_url}/v1/cards {"type": "plus-weekly", "reference": "rdm_…"}
      -> 201 {"card_code": "PLUS-7Q2K-99XD", "valid_until": "2026-11-28"}
"""
from __future__ import annotations

from hub.fulfilment import partner_json, require_text
from hub.hookspecs import hookimpl
from hub.records import BenefitSpec, Fulfilment, PermanentFulfilmentError

CARBONHUB_API = "1.0"
# The hooks the package's __init__ re-exports (`from .benefits import *`).
__all__ = ["carbonhub_register_benefits", "carbonhub_account_opened", "carbonhub_fulfil_benefit"]
PLUS_CARD = "plus-weekly-card"
CONFIG = "reading"


@hookimpl
def carbonhub_register_benefits(ctx):
    return [BenefitSpec(id=PLUS_CARD, title="Digital library PLUS weekly card", partner_kind="library",
                        description="A week of unlimited reading in the digital library's PLUS collection.")]


@hookimpl
def carbonhub_account_opened(ctx, account):
    if ctx.benefits is not None and ctx.benefits.offers(PLUS_CARD):
        ctx.benefits.grant(account.id, PLUS_CARD, key=f"welcome:{account.id}")


@hookimpl
def carbonhub_fulfil_benefit(ctx, redemption):
    if redemption.benefit != PLUS_CARD:
        return None
    conf = ctx.plugin_config(CONFIG)
    base = str(conf.get("base_url") or "").rstrip("/")
    key = ctx.secret(conf["api_key_env"]) if conf.get("api_key_env") else None
    if not base or not key:
        raise PermanentFulfilmentError("not_configured", "The library's API is not configured "
                                                         "(plugin_config.reading base_url, api_key_env).")
    body = partner_json(ctx, "POST", f"{base}/v1/cards", timeout=float(conf.get("timeout_s", 5)),
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": redemption.id},
                        json={"type": "plus-weekly", "reference": redemption.id})
    detail = {"valid_until": body["valid_until"]} if isinstance(body.get("valid_until"), str) else {}
    return Fulfilment(code=require_text(body, "card_code"), detail=detail)
