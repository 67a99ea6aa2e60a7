"""Accounts: open one for a bank customer, read it with its balances."""
from __future__ import annotations

from typing import Any

from .. import queries
from .auth import current_hub
from .errors import not_found
from .routing import ApiBlueprint
from .schemas import AccountCreateSchema, AccountSchema

bp = ApiBlueprint("accounts", __name__, tag="accounts",
                  description="Carbon accounts of the bank's customers and their balances.")


def require_account(account_id: str) -> None:
    """404 ``not_found`` unless the account exists."""
    if not queries.account_exists(account_id):
        raise not_found("account", account_id)


@bp.operation("/accounts", "POST", summary="Open a carbon account (idempotent per bank_ref)",
              description="Opens the account of a bank customer. Repeating the call with the same "
                          "`bank_ref` returns the same account with status 200 instead of 201.",
              scope="accounts:write", body=AccountCreateSchema, response=AccountSchema,
              success={201: "Opened.", 200: "Already open: the existing account."})
def open_account(body: dict[str, Any]) -> Any:
    account, created = current_hub().open_account(body["bank_ref"])
    view = queries.account_view(account.id)
    return view, (201 if created else 200), ({"Location": f"/v1/accounts/{account.id}"} if created else {})


@bp.operation("/accounts/<account_id>", "GET", summary="Read an account and its balances",
              scope="accounts:read", response=AccountSchema, errors={404: "No such account (`not_found`)."})
def get_account(account_id: str) -> Any:
    view = queries.account_view(account_id)
    if view is None:
        raise not_found("account", account_id)
    return view
