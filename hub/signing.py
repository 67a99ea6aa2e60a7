"""Signing partner pushes: HMAC-SHA256 over ``timestamp + "." + body``.

A partner signs each ``POST /v1/partners/<partner>/events`` request with the
shared secret the bank gave it and sends three headers::

    X-Carbonhub-Partner:   szmetro                      (the key id: the partner id)
    X-Carbonhub-Timestamp: 1795233600                   (unix seconds, now)
    X-Carbonhub-Signature: sha256=5d41402abc4b2a76...   (hex; the "sha256=" prefix is optional)

The signature is ``hex(HMAC_SHA256(secret, f"{timestamp}.".encode() + body))``
over the exact bytes sent as the body. The hub refuses a timestamp more than
``hub.signature_max_age_s`` seconds (default 300) away from its clock, so a
captured request cannot be replayed later.

Example (Python)::

    import json, requests, time
    from hub.signing import signed_headers

    body = json.dumps({"records": rides}).encode()
    headers = signed_headers("szmetro", secret, body, int(time.time()))
    requests.post(f"{hub_url}/v1/partners/szmetro/events", data=body, headers=headers)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

PARTNER_HEADER = "X-Carbonhub-Partner"
TIMESTAMP_HEADER = "X-Carbonhub-Timestamp"
SIGNATURE_HEADER = "X-Carbonhub-Signature"
PREFIX = "sha256="


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int | str, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}." + body`` under ``secret`` (no prefix)."""
    message = str(timestamp).encode("ascii") + b"." + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, timestamp: int | str, body: bytes | str, signature: str) -> bool:
    """Whether ``signature`` (hex, optionally ``sha256=``-prefixed) signs this timestamp and body.

    Compared in constant time; case of the hex digits does not matter.
    """
    given = signature.strip()
    if given[:len(PREFIX)].lower() == PREFIX:
        given = given[len(PREFIX):]
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace"))


def encode(payload: Any) -> bytes:
    """Compact UTF-8 JSON for a request body (any JSON encoding works; sign the bytes you send)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_headers(partner: str, secret: str | bytes, body: bytes | str,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of a signed push of ``body`` (plus ``Content-Type``).

    ``timestamp`` defaults to the current unix time; pass the hub's clock in tests.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        PARTNER_HEADER: partner,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: PREFIX + sign(secret, ts, body),
    }
