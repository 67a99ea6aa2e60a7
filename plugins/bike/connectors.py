"""Pulling finished rides from the bike operator's ride API (``connectors.http_pull``).

The operator's API has the hub's default pull shape::

    GET {base_url}/rides?since=<ISO>&until=<ISO>&limit=100[&page_token=…]
    Authorization: Bearer <key>
    200 {"data": [<ride, the native record of this plugin>, …], "next_page_token": "…" | null}

Rides come sorted by ``lock_at`` (the moment a ride ends and is billed), so the
cursor is saved after every page.
"""
from __future__ import annotations

from connectors.base import Stream
from connectors.http_pull import HttpPullConnector
from hub.hookspecs import hookimpl
from hub.records import ConnectorSpec

__all__ = ["RideApi", "carbonhub_register_connectors"]


class RideApi(HttpPullConnector):
    """The operator's finished rides, oldest first."""

    def streams(self) -> list[Stream]:
        return [Stream(name="rides", scenario="bike", primary_key=("order_id",), cursor_field="lock_at",
                       is_sorted=True, options={"path": "/rides"})]


@hookimpl
def carbonhub_register_connectors(ctx):
    return [ConnectorSpec(id="bike-ride-api", mode="pull", partner_kind="bike_operator", scenarios=("bike",),
                          connector=RideApi,
                          description="Finished rides from a bike operator's ride API, by lock time.")]
