"""The account summary: credited grams by scenario and month, rank, equivalents."""
from __future__ import annotations

from typing import Any

from .. import summary as summaries
from .accounts import require_account
from .auth import current_hub
from .footprint_schemas import SummarySchema
from .routing import ApiBlueprint

bp = ApiBlueprint("summary", __name__, tag="summary",
                  description="What an account's credited grams add up to: by scenario and month, rank, "
                              "equivalents.")


@bp.operation("/accounts/<account_id>/summary", "GET", summary="The account's credited grams at a glance",
              description="Credited grams (not reversed) by scenario and by month (hub time zone), the "
                          "account's `percentile` among all accounts (share of the other accounts that "
                          "credited fewer grams, rounded down; null when there is no other account; no other "
                          "account's data is returned) and everyday equivalents from the sourced document "
                          "`footprint-equivalents` (see docs/calculator.md).",
              scope="accounts:read", response=SummarySchema, errors={404: "No such account (`not_found`)."})
def get_summary(account_id: str) -> Any:
    require_account(account_id)
    return summaries.summary(current_hub(), account_id)
