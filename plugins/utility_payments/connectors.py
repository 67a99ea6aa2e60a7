"""Pulling a biller's settled payments from its daily payments API (``connectors.http_pull``).

The biller's API pages by number, not by token, and names things its own way::

    GET {base_url}/payments?from=<ISO>&to=<ISO>&page=1&page_size=100
    X-Api-Key: <key>
    200 {"payments": [<payment, the native record of this plugin>, …], "page": 1, "pages": 4}

Payments within a page are in no particular order (the biller's settlement
batches), so the cursor (``paid_at``) is saved only once a run has read every
page; a run cut short is read again from the old cursor, and the payments
already received are skipped by ``payment_id``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from connectors.base import RETRY, ConnectorFailure, Stream
from connectors.http_pull import HttpPullConnector, Page, iso
from hub.hookspecs import hookimpl
from hub.records import ConnectorSpec

__all__ = ["PaymentsApi", "carbonhub_register_connectors"]


class PaymentsApi(HttpPullConnector):
    """A biller's settled online payments."""

    def streams(self) -> list[Stream]:
        return [Stream(name="payments", scenario="utility_payments", primary_key=("payment_id",),
                       cursor_field="paid_at", is_sorted=False, options={"path": "/payments"})]

    def auth_headers(self) -> dict[str, str]:
        key = self.secret("api_key_env")
        return {"X-Api-Key": key} if key else {}

    def request_params(self, stream: Stream, since: datetime, until: datetime, token: str | None) -> dict[str, Any]:
        return {"from": iso(since), "to": iso(until), "page": token or "1", "page_size": self.options["page_size"]}

    def parse_page(self, stream: Stream, body: Any) -> Page:
        if not isinstance(body, Mapping) or not isinstance(body.get("payments"), list):
            raise ConnectorFailure(RETRY, "malformed_page", "The page has no 'payments' list.")
        page, pages = body.get("page"), body.get("pages")
        if not isinstance(page, int) or not isinstance(pages, int):
            raise ConnectorFailure(RETRY, "malformed_page", "The page lacks integer 'page' and 'pages'.")
        return Page(records=body["payments"], next_token=str(page + 1) if page < pages else None)


@hookimpl
def carbonhub_register_connectors(ctx):
    return [ConnectorSpec(id="biller-payments-api", mode="pull", partner_kind="biller",
                          scenarios=("utility_payments",), connector=PaymentsApi,
                          description="Settled online bill payments from a biller's daily payments API.")]
