"""Canonical JSON: the text stored in JSON columns and hashed into the ledger.

It is written by orjson for speed; these properties pin it to the standard
library's output (sorted keys, no spaces, UTF-8 unescaped, Decimals and
datetimes as text), so stored rows and content hashes do not depend on which
encoder wrote them.
"""
from __future__ import annotations

import enum
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hub.db import _CANONICAL, canonical_json

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 80), max_value=2 ** 80) | st.text()
           | st.decimals(allow_nan=False, allow_infinity=False)
           | st.datetimes(timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=8))])))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(values)
def test_same_text_as_the_standard_encoder(value):
    assert canonical_json(value) == _CANONICAL.encode(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value):
    assert json.loads(canonical_json({"x": value})) == {"x": value}


class Colour(str, enum.Enum):
    RED = "red"


def test_what_orjson_refuses_falls_back_to_the_standard_encoder():
    assert canonical_json({1: 2}) == '{"1":2}'  # non-string keys
    assert canonical_json(2 ** 70) == str(2 ** 70)  # beyond 64 bits
    assert canonical_json({"c": Colour.RED}) == '{"c":"red"}'  # str subclass
    assert canonical_json({"b": "雨", "a": "\x01"}) == '{"a":"\\u0001","b":"雨"}'
    assert canonical_json(datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))) == \
        '"2026-01-01T08:00:00+08:00"'
    assert canonical_json(Decimal("18.60")) == '"18.60"'


def test_redacted_replaces_only_the_named_paths():
    from hub.records import redacted

    payload = {"card": {"pan": "6225880137000007", "ref": "c1"}, "items": [{"pan": "1"}, {"pan": "2"}], "n": 1}
    out = redacted(payload, ("card.pan", "items.1.pan", "missing.path"))
    assert out == {"card": {"pan": "[redacted]", "ref": "c1"}, "items": [{"pan": "1"}, {"pan": "[redacted]"}],
                   "n": 1}
    assert payload["card"]["pan"] == "6225880137000007"  # the original is untouched
