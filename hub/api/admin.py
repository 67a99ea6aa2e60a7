"""The bank's operations: inspect the inbox and its history, replay rejected records, correct and verify the ledger."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from .. import queries
from ..ingest_stats import MAX_DAYS, STATUSES, ingestion_stats
from ..ledger import verify
from ..ledger_checks import TRIGGERS, last_check, run_check
from .auth import current_hub
from .routing import ApiBlueprint
from .schemas import (ConnectorStatusSchema, InboxPageSchema, InboxQuerySchema, ReplayResultSchema, ReplaySchema, ReversalSchema,
                      Strict, TransactionSchema, VerifySchema, encode_cursor)

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


class LedgerCheckSchema(Schema):
    id = fields.Integer(required=True)
    trigger = fields.String(required=True, metadata={"enum": list(TRIGGERS)})
    started_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(required=True)
    duration_ms = fields.Integer(required=True)
    ok = fields.Boolean(required=True)
    transactions = fields.Integer(required=True)
    accounts = fields.Integer(required=True)
    head_seq = fields.Integer(required=True, metadata={"description": "Last transaction verified."})
    head_hash = fields.String(required=True)
    first_break = fields.Integer(required=True, allow_none=True)
    problem_count = fields.Integer(required=True)
    problems = fields.List(fields.String(), required=True, metadata={
        "description": "The first problems found (at most 10; `problem_count` says how many there were)."})


class LedgerCheckStatusSchema(Schema):
    check = fields.Nested(LedgerCheckSchema, required=True, allow_none=True,
                          metadata={"description": "The last recorded verification; null before the first."})
    hint = fields.String(required=True, allow_none=True, metadata={
        "description": "What to do when there is no check yet or the last one is older than two days."})


STALE_CHECK = timedelta(days=2)  # the worker verifies daily: older than this, it is not running


@bp.operation("/admin/ledger/verify", "POST", summary="Verify the ledger now and record the check",
              scope="admin", response=LedgerCheckSchema, success={201: "The check ran and was recorded."},
              description="Runs the verification of `GET /v1/admin/ledger/verify` and records it, as the "
                          "worker's daily `ledger-verify` job and `carbonhub ledger verify` do. A broken "
                          "ledger is still 201: see `ok` and `problems`. Reads the whole ledger.")
def verify_and_record() -> Any:
    return run_check(current_hub(), "api"), 201


@bp.operation("/admin/ledger/verify/last", "GET", summary="The last recorded ledger verification",
              scope="admin", response=LedgerCheckStatusSchema,
              description="The last verification recorded by the daily job, the command or "
                          "`POST /v1/admin/ledger/verify`, without reading the ledger again; `check` is "
                          "null (with a `hint`) before the first.")
def last_verification() -> Any:
    hub = current_hub()
    check, hint = last_check(), None
    if check is None:
        hint = ("No verification recorded yet: POST /v1/admin/ledger/verify runs one now; "
                "`carbonhub worker` runs one daily at 04:00 (hub time zone).")
    elif hub.now() - check["started_at"] > STALE_CHECK:
        hint = (f"The last verification is {(hub.now() - check['started_at']).days} days old: "
                "is `carbonhub worker` running? POST /v1/admin/ledger/verify runs one now.")
    return {"check": check, "hint": hint}


class IngestionQuerySchema(Strict):
    days = fields.Integer(load_default=30, validate=validate.Range(1, MAX_DAYS), metadata={
        "description": f"Local days to cover, today included: 1-{MAX_DAYS} (default 30)."})
    partner = fields.String(metadata={"description": "Only this partner's records."})


class StatusCountsSchema(Schema):
    total = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    rejected = fields.Integer(required=True)


class IngestionDaySchema(Schema):
    date = fields.Date(required=True, metadata={"description": "Local calendar day (hub time zone)."})
    total = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True, metadata={
        "description": "Rejected records of the day by reason code (non-zero only), most frequent first."})


class RejectionExampleSchema(Schema):
    inbox_id = fields.String(required=True)
    partner = fields.String(required=True)
    received_at = fields.DateTime(required=True)


class RejectionReasonSchema(Schema):
    reason = fields.String(required=True)
    count = fields.Integer(required=True)
    share = fields.Float(required=True, metadata={"description": "Of the window's rejected records, 0-1."})
    latest = fields.Nested(RejectionExampleSchema, required=True, metadata={
        "description": "The most recently received record rejected for this reason (see `GET /v1/admin/inbox`)."})


class PartnerCountsSchema(Schema):
    partner = fields.String(required=True)
    name = fields.String(required=True, allow_none=True, metadata={
        "description": "From the bank's config; null for a partner no longer configured."})
    total = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    rejected = fields.Integer(required=True)


class IngestionStatsSchema(Schema):
    timezone = fields.String(required=True)
    days = fields.Integer(required=True)
    from_ = fields.Date(required=True, data_key="from", attribute="from",
                        metadata={"description": "First local day covered."})
    to = fields.Date(required=True, metadata={"description": "Last local day covered (today)."})
    partner = fields.String(required=True, allow_none=True)
    totals = fields.Nested(StatusCountsSchema, required=True)
    daily = fields.List(fields.Nested(IngestionDaySchema), required=True, metadata={
        "description": "Every day of the window, oldest first, days without records included."})
    top_reasons = fields.List(fields.Nested(RejectionReasonSchema), required=True, metadata={
        "description": "Every rejection reason of the window, most frequent first."})
    partners = fields.List(fields.Nested(PartnerCountsSchema), required=True, metadata={
        "description": "Per partner, most records first; configured partners without records included."})


@bp.operation("/admin/ingestion", "GET", summary="Inbox records per local day, by status and rejection reason",
              scope="admin", query=IngestionQuerySchema, response=IngestionStatsSchema,
              description="What reached the inbox over the last `days` local days (hub time zone, today "
                          "included): per day the records by status (" + ", ".join(STATUSES) + ") and the "
                          "rejected ones by reason, the rejection reasons ranked with their latest example, "
                          "and totals per partner. A record counts on the day it was received, with its "
                          "current status (a replayed record that was accepted counts as accepted).")
def ingestion(query: dict[str, Any]) -> Any:
    return ingestion_stats(current_hub(), days=query["days"], partner=query.get("partner"))


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
