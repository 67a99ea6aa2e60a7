"""Aihuishou's monthly file: the completed resale and donation orders of a month, one CSV line per item.

The recycler settles with the bank once a month with a CSV export of its order
system (UTF-8, comma-separated, a header row), imported with
``carbonhub import aihuishou aihuishou-2026-11.csv``. Its columns are the
recycler's own, not the native record's; :meth:`AihuishouMonthly.to_record`
reshapes each line::

    order_no,line_no,member_id,category,disposition,handover_time,device.imei_token,device.model,device.grade,weight_g,qty
    AHS-20261118-000731,1,acc_…,PHONE,RESOLD,2026-11-18 15:20:00,imei_5c1f09ab,iPhone 14 Pro Max,90,,
    AHS-20261117-000288,1,acc_…,APPAREL,DONATED,2026-11-17 10:05:00,,,,2350,
    AHS-20261116-000102,1,acc_…,BOOK,RESOLD,2026-11-16 19:30:00,,,,,3

- ``item_id`` is ``<order_no>-<line_no as two digits>`` (``AHS-20261118-000731-01``),
  the id the recycler's pushes use, so an item both pushed and in the monthly
  file is ``duplicate_event``, never credited twice;
- ``category`` PHONE / APPAREL / BOOK → ``item_kind`` phone / clothes / book
  (another value is passed on lower-cased: the plugin answers ``unknown_item_kind``);
- ``disposition`` → ``outcome`` (lower-cased);
- ``handover_time`` is Beijing time without an offset (``YYYY-MM-DD HH:MM:SS``)
  → ``handed_over_at`` with ``+08:00``;
- the dotted ``device.*`` columns (phones only) → ``device_token``, ``model``,
  ``condition_pct``;
- ``weight_g`` (whole grams on the courier's scale) → ``weight_kg``; ``qty`` → ``copies``.

A line whose own columns cannot be read (no ``order_no``, a ``line_no`` or
``weight_g`` that is not a whole number, a ``handover_time`` in another form)
is refused as ``invalid_record`` naming the CSV column; it is kept in the inbox
and written to the rejects file. Everything else is checked by the plugin as
for a push (docs/scenarios/recycling.md).
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping

from connectors.batch import BatchConnector, RowError
from hub.hookspecs import hookimpl
from hub.records import ConnectorSpec

CARBONHUB_API = "1.0"
# The hooks the package's __init__ re-exports (`from .connectors import *`).
__all__ = ["carbonhub_register_connectors"]
MONTHLY = "aihuishou-monthly"
CATEGORIES = {"PHONE": "phone", "APPAREL": "clothes", "BOOK": "book"}
COLUMNS = ("order_no", "line_no", "member_id", "category", "disposition", "handover_time", "device.imei_token",
           "device.model", "device.grade", "weight_g", "qty")
LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?")
BEIJING = "+08:00"  # the recycler's export writes Beijing time without an offset


def _whole(row: Mapping[str, Any], column: str) -> int | None:
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise RowError("invalid_record", f"{column} must be a whole number, not {value!r}.", field=column)
    return int(value)


class AihuishouMonthly(BatchConnector):
    """The recycler's monthly CSV of completed orders, reshaped into native recycling records."""

    scenario = "recycling"

    def to_record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        order_no = (row.get("order_no") or "").strip()
        if not order_no:
            raise RowError("invalid_record", "order_no is empty.", field="order_no")
        line_no = _whole(row, "line_no")
        if line_no is None:
            raise RowError("invalid_record", "line_no is empty.", field="line_no")
        when = (row.get("handover_time") or "").strip()
        if not LOCAL_TIME.fullmatch(when):
            raise RowError("invalid_record", f"handover_time must be 'YYYY-MM-DD HH:MM:SS' in Beijing time, "
                                             f"not {when!r}.", field="handover_time")
        category = (row.get("category") or "").strip()
        record: dict[str, Any] = {
            "item_id": f"{order_no}-{line_no:02d}", "order_id": order_no, "account_id": row.get("member_id"),
            "item_kind": CATEGORIES.get(category.upper(), category.lower()),
            "outcome": (row.get("disposition") or "").strip().lower(),
            "handed_over_at": when.replace(" ", "T") + BEIJING,
        }
        device = row.get("device")
        if isinstance(device, dict):
            for column, key in (("imei_token", "device_token"), ("model", "model"), ("grade", "condition_pct")):
                if column in device:
                    record[key] = device[column]
        grams = _whole(row, "weight_g")
        if grams is not None:
            record["weight_kg"] = str(Decimal(grams) / 1000)
        if row.get("qty") is not None:
            record["copies"] = row["qty"]
        return record


@hookimpl
def carbonhub_register_connectors(ctx):
    return [ConnectorSpec(id=MONTHLY, mode="batch", partner_kind="recycler", scenarios=("recycling",),
                          connector=AihuishouMonthly,
                          description="Aihuishou's monthly CSV of completed orders: "
                                      "carbonhub import aihuishou <file>.")]
