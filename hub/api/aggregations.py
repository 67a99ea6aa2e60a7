"""Aggregations (归集与流转): a month of users' reductions pooled for a carbon exchange (scope admin)."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from .. import aggregation
from .auth import current_hub
from .carbon_schemas import AggregateSchema, AggregationPageSchema, AggregationQuerySchema, AggregationSchema
from .errors import not_found
from .routing import ApiBlueprint
from .schemas import encode_cursor

bp = ApiBlueprint("aggregations", __name__, tag="aggregations",
                  description="Users' reductions pooled per month for a carbon exchange, with reports (scope admin).")


@bp.operation("/admin/aggregations", "POST", summary="Aggregate a month for an exchange", scope="admin",
              body=AggregateSchema, response=AggregationSchema,
              success={201: "Aggregated: the report.", 200: "Already aggregated: the same report, nothing new."},
              errors={409: "The month has not ended plus `aggregation.settle_days` (`period_open`)."},
              description="Moves every gram still held by credited behaviours of that month (not reversed, "
                          "retired or aggregated) to `@pool:<exchange>`, awards each contributing user their "
                          "share in points, and writes the report (JSON and CSV) under "
                          "`aggregation.reports_dir`. Repeating it for the same exchange and month changes "
                          "nothing and returns the same report. An unknown exchange is 422 with `fields`.")
def create(body: dict[str, Any]) -> Any:
    hub = current_hub()
    if body["exchange"] not in hub.settings.aggregation.exchanges:
        known = ", ".join(sorted(hub.settings.aggregation.exchanges)) or "none"
        raise ValidationError({"exchange": [f"Unknown exchange (configured: {known})."]})
    result, created = aggregation.aggregate(hub, body["exchange"], body["period"])
    location = {"Location": f"/v1/admin/aggregations/{result['id']}"} if created else {}
    return result, (201 if created else 200), location


@bp.operation("/admin/aggregations", "GET", summary="Aggregations, newest first", scope="admin",
              query=AggregationQuerySchema, response=AggregationPageSchema,
              description="Summaries without the reports; keyset pagination with the opaque `next` cursor.")
def list_aggregations(query: dict[str, Any]) -> Any:
    rows, cursor = aggregation.page(current_hub().settings, limit=query["limit"], before=query.get("before"),
                                    exchange=query.get("exchange"))
    return {"aggregations": rows, "next": encode_cursor(*cursor) if cursor else None}


@bp.operation("/admin/aggregations/<aggregation_id>", "GET", summary="One aggregation with its report",
              scope="admin", response=AggregationSchema, errors={404: "No such aggregation (`not_found`)."})
def get_aggregation(aggregation_id: str) -> Any:
    found = aggregation.get(current_hub().settings, aggregation_id)
    if found is None:
        raise not_found("aggregation", aggregation_id)
    return found
