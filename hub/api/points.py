"""A user's points: balance, lots and what expires next."""
from __future__ import annotations

from typing import Any

from .. import lots
from .accounts import require_account
from .auth import current_hub
from .exchange_schemas import PointsSchema
from .routing import ApiBlueprint

bp = ApiBlueprint("points", __name__, tag="points",
                  description="Points earned in lots that expire; spending takes the first-expiring lots.")


@bp.operation("/accounts/<account_id>/points", "GET", summary="The user's points, lots and next expiry",
              description="The balance from the ledger, the lots still holding points in the order spending "
                          "takes them (first-expiring first, never-expiring last), what expires next, and "
                          "the points held in escrow by redemptions being fulfilled.",
              scope="accounts:read", response=PointsSchema, errors={404: "No such account (`not_found`)."})
def get_points(account_id: str) -> Any:
    require_account(account_id)
    return lots.points_view(account_id, current_hub().now())
