"""Helpers for plugins reading native partner records.

Each raises :class:`hub.records.RecordError` with the field's name, so a bad
record is rejected with a precise reason instead of a stack trace.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .records import RecordError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text(payload: Mapping[str, Any], name: str, *, max_length: int = 128, required: bool = True) -> str | None:
    value = payload.get(name)
    if type(value) is str and value and len(value) <= max_length and value.isprintable():
        return value  # the common case; isprintable() is False for every control character
    if value is None or value == "":
        if required:
            raise RecordError("invalid_record", f"{name} is required.", name)
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise RecordError("invalid_record", f"{name} must be a string.", name)
    value = str(value)
    if _CONTROL.search(value):  # NUL and friends: PostgreSQL refuses them, logs mangle them
        raise RecordError("invalid_record", f"{name} contains control characters.", name)
    if len(value) > max_length:
        raise RecordError("invalid_record", f"{name} is longer than {max_length} characters.", name)
    return value


def timestamp(payload: Mapping[str, Any], name: str) -> datetime:
    """An ISO 8601 timestamp with an offset (``2026-11-20T08:01:00+08:00``)."""
    raw = text(payload, name, max_length=40)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError("invalid_record", f"{name} is not an ISO 8601 timestamp.", name) from None
    if value.tzinfo is None:
        raise RecordError("invalid_record", f"{name} needs a UTC offset, e.g. +08:00.", name)
    return value


def decimal(payload: Mapping[str, Any], name: str) -> Decimal:
    """A number given as a JSON number or a string; floats are read via their text."""
    value = payload.get(name)
    if value is None or isinstance(value, bool):
        raise RecordError("invalid_record", f"{name} is required and must be a number.", name)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RecordError("invalid_record", f"{name} must be a number.", name) from None
    if not number.is_finite():
        raise RecordError("invalid_record", f"{name} must be a finite number.", name)
    return number
