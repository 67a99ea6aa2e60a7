"""Partner push: signed batches of native records into the ingestion pipeline."""
from __future__ import annotations

from typing import Any

from .auth import current_hub
from .errors import ApiError
from .routing import PARTNER, ApiBlueprint
from .schemas import PushResultSchema, PushSchema

bp = ApiBlueprint("partners", __name__, tag="partners",
                  description="Partners push their users' low-carbon behaviour, signed with HMAC-SHA256.")


@bp.operation("/partners/<partner>/events", "POST", summary="Push a signed batch of partner records",
              description="Body `{\"records\": [...]}` of the partner's native records, signed with the "
                          "partner's secret: `X-Carbonhub-Signature: sha256=<hex HMAC-SHA256 of "
                          "\"<timestamp>.<body>\">`, `X-Carbonhub-Timestamp` (unix seconds, at most "
                          "`signature_max_age_s` away from the hub's clock) and `X-Carbonhub-Partner` (the "
                          "partner id of the URL). Every record gets a result: accepted, duplicate or "
                          "rejected with a reason; pushing the same records again is safe.",
              auth=PARTNER, body=PushSchema, response=PushResultSchema,
              success={200: "Processed; one result per record, in order."},
              errors={401: "`unknown_partner`, `unauthorized` (missing headers, partner header mismatch), "
                           "`stale_timestamp` or `bad_signature`.",
                      413: "More records than `max_batch_records` (`batch_too_large`)."})
def push_events(partner: str, body: dict[str, Any]) -> Any:
    hub = current_hub()
    records = body["records"]
    limit = hub.settings.max_batch_records
    if len(records) > limit:
        raise ApiError(413, "batch_too_large", f"{len(records)} records; at most {limit} per request. "
                                               f"Split the batch.")
    result = hub.pipeline.ingest(partner, records, source="push")
    return {"batch": result.summary(), "results": [r.as_dict() for r in result.records]}
