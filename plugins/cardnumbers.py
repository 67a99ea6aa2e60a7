"""Refuse partner records that carry a full card number (PAN).

The bank's card plugins (``ecard``, ``estatement``) identify cards by a token or
an internal reference, never by the number printed on the card. A record in
which any field looks like a full card number is refused with its own reason,
``pan_not_allowed``, before anything of it is read, so it is never credited
nor copied into a behaviour, a receipt or the ledger.

"Looks like a card number" (ISO/IEC 7812): 13 to 19 digits, written together
or in the printed groups (``4-4-4-4``, ``4-4-4-4-3``, ``4-6-5``, ``4-6-4``,
separated by one space or one dash), not glued to other letters or digits
(so a hex token is not read as one), starting with a major industry
identifier used by card issuers (2–6, or 9 for national schemes) and passing
the Luhn check. Ids such as ``ECA-20261115-000731`` or ``2026-11-03`` do not
match.
"""
from __future__ import annotations

import re
from typing import Any, Collection, Mapping

from hub.records import RecordError

_PAN = re.compile(
    r"(?<![0-9A-Za-z])"
    r"(\d{13,19}"
    r"|\d{4}([ -])\d{4}\2\d{4}\2\d{4}(?:\2\d{3})?"
    r"|\d{4}([ -])\d{6}\3\d{4,5})"
    r"(?![0-9A-Za-z])")
_ISSUER_MII = frozenset("234569")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_pan(value: Any) -> bool:
    """Whether a text or integer value contains something that looks like a full card number."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    for match in _PAN.finditer(str(value)):
        digits = re.sub(r"[ -]", "", match.group(1))
        if digits[0] in _ISSUER_MII and luhn_ok(digits):
            return True
    return False


def _walk(value: Any, path: str):
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _walk(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}.{i}")
    else:
        yield path, value


def refuse_card_numbers(payload: Mapping[str, Any], *, skip: Collection[str] = ()) -> None:
    """Raise ``pan_not_allowed`` naming the first field (dotted path) that looks like a card number.

    Every field is checked, also the ones the plugin otherwise ignores; ``skip``
    names fields the format defines as numbers that are not identifiers (an
    epoch time in milliseconds).
    """
    found = [path for path, value in _walk(payload, "") if path not in skip and looks_like_pan(value)]
    if found:  # the hub keeps the rejected record for the operator, without the numbers
        raise RecordError("pan_not_allowed", f"{found[0]} looks like a full card number; send the card's token "
                                             "or reference, never its number.", found[0], redact=tuple(found))
