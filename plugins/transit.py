"""What the transit plugins (``metro``, ``bus``) share: telling their records apart
when a card network reports fares of several modes through one partner.
"""
from __future__ import annotations

from typing import Any

NETWORK_ID = "txn_id"  # a card network's transaction; its "mode" says which fare it paid


def id_field(record: Any, own_id: str, mode: str) -> str | None:
    """The field holding this plugin's event id in ``record``, or None when the record is another plugin's.

    A card network's transaction (``txn_id``) is ours only when its ``mode`` is
    ``mode``; a record without ``own_id`` from a partner of several scenarios
    belongs to another plugin. Anything else is ours (and checked as such).
    """
    p = record.payload
    if NETWORK_ID in p:
        paid = p.get("mode")
        return NETWORK_ID if isinstance(paid, str) and paid.lower() == mode else None
    if own_id not in p and len(record.scenarios) > 1:
        return None
    return own_id
