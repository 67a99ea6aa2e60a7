"""Ids: unguessable, yet ordered by time so new rows append to their indexes."""
from __future__ import annotations

import time

from hub.accounts import new_id, new_ids


def test_ids_are_prefixed_unique_and_time_ordered():
    first = new_ids("bhv", 500)
    time.sleep(0.002)
    later = new_id("bhv")
    assert len(set(first)) == 500
    assert all(i.startswith("bhv_") and len(i) == 4 + 28 for i in first)
    assert all(i < later for i in first)  # a later millisecond sorts after every earlier id
    # 64 random bits after the time: ids of the same millisecond still differ everywhere there
    assert len({i[-16:] for i in first}) == 500
    assert int(later[4:16], 16) >= int(first[0][4:16], 16) + 1
