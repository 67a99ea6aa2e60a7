"""A user's ledger entries and behaviours, with the receipt behind every gram."""
from __future__ import annotations

from typing import Any

from .. import queries
from .accounts import require_account
from .auth import current_hub
from .errors import not_found
from .routing import ApiBlueprint
from .schemas import (BehaviourDetailSchema, BehaviourPageSchema, BehaviourQuerySchema, LedgerPageSchema,
                      LedgerQuerySchema, encode_cursor)

bp = ApiBlueprint("ledger", __name__, tag="ledger",
                  description="What was credited to a user and why: ledger entries, behaviours, receipts.")
NO_ACCOUNT = {404: "No such account (`not_found`)."}


@bp.operation("/accounts/<account_id>/ledger", "GET", summary="The user's ledger entries, newest first",
              description="One entry per posting to the user's carbon (`g`) or points (`pts`) account, with "
                          "its transaction. Keyset pagination: pass the page's `next` as `before`; a page "
                          "never splits a transaction. `from`/`to` are days in the bank's time zone "
                          "(inclusive) on the transaction time.",
              scope="accounts:read", query=LedgerQuerySchema, response=LedgerPageSchema, errors=NO_ACCOUNT)
def ledger(account_id: str, query: dict[str, Any]) -> Any:
    require_account(account_id)
    start, end = queries.local_day_bounds(query.get("from_date"), query.get("to_date"),
                                          current_hub().settings.timezone)
    entries, nxt = queries.ledger_page(account_id, limit=query["limit"], before=query.get("before"),
                                       scenario=query.get("scenario"), start=start, end=end)
    return {"account": account_id, "entries": entries, "next": nxt}


@bp.operation("/accounts/<account_id>/behaviours", "GET", summary="The user's behaviours, newest first",
              description="Every behaviour partners reported for the user, one per processing attempt "
                          "(a rejected record replayed later appears twice), newest processed first. "
                          "Keyset pagination with the opaque `next` cursor.",
              scope="accounts:read", query=BehaviourQuerySchema, response=BehaviourPageSchema,
              errors=NO_ACCOUNT)
def behaviours(account_id: str, query: dict[str, Any]) -> Any:
    require_account(account_id)
    rows, cursor = queries.behaviours_page(account_id, limit=query["limit"], before=query.get("before"),
                                           status=query.get("status"), scenario=query.get("scenario"))
    return {"account": account_id, "behaviours": rows, "next": encode_cursor(*cursor) if cursor else None}


@bp.operation("/accounts/<account_id>/behaviours/<behaviour_id>", "GET",
              summary="One behaviour with its receipt",
              description="The outcome of one behaviour and, when credited (or a duplicate of a credit), "
                          "the receipt: methodology version, factors with sources, the formula with the "
                          "numbers, caps applied and points granted.",
              scope="accounts:read", response=BehaviourDetailSchema,
              errors={404: "No such account, or no such behaviour of this account (`not_found`)."})
def behaviour(account_id: str, behaviour_id: str) -> Any:
    require_account(account_id)
    found = queries.behaviour_detail(account_id, behaviour_id)
    if found is None:
        raise not_found("behaviour", behaviour_id)
    return found
