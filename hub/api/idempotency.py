"""The ``Idempotency-Key`` request header of operations that move value (neutralisations...).

The client sends a key unique to the operation, and the same key when it
retries: the same key with the same body is answered with the original
result, the same key with another body is 409 ``idempotency_conflict``.
Declare the header on the operation (``headers=IDEMPOTENCY_DOC``) so the
OpenAPI document shows it, and read it in the view with :func:`idempotency_key`.
"""
from __future__ import annotations

import re

from flask import request
from marshmallow import ValidationError

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_DOC = {IDEMPOTENCY_HEADER: "A key unique to this operation, 1-100 printable ASCII characters without "
                                       "spaces (e.g. a UUID); the same on retries."}
_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")


def idempotency_key() -> str:
    """The request's ``Idempotency-Key``; missing or malformed is 422 ``validation_error``
    with the messages under ``fields["Idempotency-Key"]``."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not _KEY.match(key):
        message = ("Missing header: send a key unique to this operation (e.g. a UUID), the same on retries."
                   if not key else "Must be 1-100 printable ASCII characters without spaces.")
        raise ValidationError({IDEMPOTENCY_HEADER: [message]})
    return key
