"""The bank's operations: inspect the inbox, replay rejected records, correct and verify the ledger."""
from __future__ import annotations

from typing import Any

from .. import queries
from ..ledger import verify
from .auth import current_hub
from .routing import ApiBlueprint
from .schemas import (ConnectorStatusSchema, InboxPageSchema, InboxQuerySchema, ReplayResultSchema, ReplaySchema, ReversalSchema,
                      TransactionSchema, VerifySchema, encode_cursor)

bp = ApiBlueprint("admin", __name__, tag="admin", description="Operations for the bank's console (scope admin).")


@bp.operation("/admin/inbox", "GET", summary="Inbox records, newest first", scope="admin",
              query=InboxQuerySchema, response=InboxPageSchema,
              description="Every partner record as received, with its status and reason; filter by "
                          "`status`, `reason`, `partner`. Keyset pagination with the opaque `next` cursor.")
def inbox(query: dict[str, Any]) -> Any:
    rows, cursor = queries.inbox_page(limit=query["limit"], before=query.get("before"), status=query.get("status"),
                                      reason=query.get("reason"), partner=query.get("partner"))
    return {"records": rows, "next": encode_cursor(*cursor) if cursor else None}


@bp.operation("/admin/inbox/replay", "POST", summary="Replay rejected inbox records", scope="admin",
              body=ReplaySchema, response=ReplayResultSchema,
              description="Re-runs rejected records (all, or those matching `partner`, `reason`, `ids`) "
                          "through the pipeline, e.g. after a consent or config fix. Never credits an act "
                          "twice. An empty body replays every rejected record.")
def replay(body: dict[str, Any]) -> Any:
    result = current_hub().pipeline.replay(partner=body.get("partner"), reason=body.get("reason"),
                                           ids=body.get("ids"), limit=body.get("limit"))
    return {"batch": result.summary()}


@bp.operation("/admin/ledger/verify", "GET", summary="Verify the ledger's hash chain and balances",
              scope="admin", response=VerifySchema,
              description="Recomputes the hash chain and every balance from the postings; `ok` is false "
                          "with the problems and the first broken seq when anything was altered.")
def verify_ledger() -> Any:
    return verify().as_dict()


@bp.operation("/admin/transactions/<int:seq>/reversal", "POST", summary="Correct a transaction by its reversal",
              scope="admin", body=ReversalSchema, response=TransactionSchema,
              success={201: "Reversal posted.", 200: "The same reversal was already posted (a retry)."},
              errors={404: "No such transaction (`transaction_not_found`).",
                      409: "Already reversed by another correction (`already_reversed`)."},
              description="The ledger is append-only: a correction posts the opposite postings as a new "
                          "transaction pointing at the original. At most one reversal per transaction; "
                          "retrying with the same reason returns the same reversal. A reversal itself "
                          "cannot be reversed (422).")
def reverse_transaction(seq: int, body: dict[str, Any]) -> Any:
    tx, created = current_hub().reverse(seq, body["reason"])
    return tx, 201 if created else 200


@bp.operation("/admin/connectors", "GET", summary="Connectors: last run, cursor, lag, counts and last error",
              scope="admin", response=ConnectorStatusSchema, many=True,
              description="Every connector the bank configured (`[connectors.<name>]`), per stream: the saved "
                          "cursor, the lag behind the hub's clock, the last run with its counts and the last "
                          "failure. Pushes appear as runs of stream `events`; a partner's pushes and file imports "
                          "without a binding appear as `<partner>.webhook` and `<partner>.file` once they ran.")
def connectors() -> Any:
    from connectors.status import connector_status

    return connector_status(current_hub())
