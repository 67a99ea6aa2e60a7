"""The benefit catalogue: what users can redeem their points for now."""
from __future__ import annotations

from typing import Any

from .accounts import require_account
from .auth import current_hub
from .exchange_schemas import BenefitSchema, BenefitsQuerySchema
from .routing import ApiBlueprint

bp = ApiBlueprint("benefits", __name__, tag="benefits",
                  description="Partners' benefits the bank offers for points (the benefit exchange).")


@bp.operation("/benefits", "GET", summary="Benefits open for redemption now",
              description="Every benefit the bank has switched on and priced whose window is open today (bank "
                          "time zone), with its cost, stock left and per-user limit. With `?account=`, each "
                          "says whether that user can redeem it now and, if not, the error code a redemption "
                          "would get.",
              scope="accounts:read", query=BenefitsQuerySchema, response=BenefitSchema, many=True,
              errors={404: "`?account=` names no account (`not_found`)."})
def list_benefits(query: dict[str, Any]) -> Any:
    account = query.get("account")
    if account is not None:
        require_account(account)
    return current_hub().exchange.catalogue(account)
