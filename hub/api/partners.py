"""Partner push: signed batches of native records into the ingestion pipeline."""
from __future__ import annotations

from typing import Any

from connectors.base import ConnectorFailure

from .. import db
from .auth import current_hub
from .errors import ApiError
from .routing import PARTNER, ApiBlueprint, _load
from .schemas import PushResultSchema, PushSchema

bp = ApiBlueprint("partners", __name__, tag="partners",
                  description="Partners push their users' low-carbon behaviour, signed with HMAC-SHA256.")


@bp.operation("/partners/<partner>/events", "POST", summary="Push a signed batch of partner records",
              description="Body `{\"records\": [...]}` of the partner's native records, signed with the "
                          "partner's secret: `X-Carbonhub-Signature: sha256=<hex HMAC-SHA256 of "
                          "\"<timestamp>.<body>\">`, `X-Carbonhub-Timestamp` (unix seconds, at most "
                          "`signature_max_age_s` away from the hub's clock) and `X-Carbonhub-Partner` (the "
                          "partner id of the URL). A signature is accepted once: to resend, sign again with a "
                          "new timestamp. Every record gets a result: accepted, duplicate or "
                          "rejected with a reason; pushing the same records again is safe. A partner whose "
                          "push connector reads another body shape sends that shape instead.",
              auth=PARTNER, body=PushSchema, response=PushResultSchema, validate_body=False,
              success={200: "Processed; one result per record, in order."},
              errors={401: "`unknown_partner`, `unauthorized` (missing headers, partner header mismatch), "
                           "`stale_timestamp` or `bad_signature`.",
                      409: "The same signed request was already received (`replayed_request`).",
                      413: "More records than `max_batch_records` (`batch_too_large`)."})
def push_events(partner: str, body: dict[str, Any]) -> Any:
    hub = current_hub()
    connector = hub.connectors.push_for(partner)
    if connector.custom_body:
        try:
            records = connector.split(body)
        except ConnectorFailure as exc:
            raise ApiError(422, exc.code, exc.message) from None
    else:
        records = _load(PushSchema, body)["records"]
    limit = hub.settings.max_batch_records
    if len(records) > limit:
        raise ApiError(413, "batch_too_large", f"{len(records)} records; at most {limit} per request. "
                                               f"Split the batch.")
    started = db.to_db(hub.now())
    result = hub.pipeline.ingest(partner, records, source="push")
    summary = result.summary()
    # One row per push, so the admin view shows a push connector's last run like a pull's.
    db.ConnectorRun.create(connector=connector.name, stream="events", mode="push", started_at=started,
                           finished_at=db.to_db(hub.now()), status="ok", pages=1, fetched=len(records),
                           counts={k: summary[k] for k in ("accepted", "duplicate", "rejected")})
    return {"batch": summary, "results": [r.as_dict() for r in result.records]}
