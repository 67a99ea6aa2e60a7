"""Helpers for plugins that fulfil benefits through a partner's HTTP API.

:func:`partner_json` makes one call with ``ctx.http`` and maps every way it
can go wrong to the typed errors the exchange understands, so each partner
plugin does not write its own (and get timeouts wrong):

========================================  ===========================================
what happened                              raised
========================================  ===========================================
timeout (connect or read)                  ``RetryableFulfilmentError("partner_timeout")``
connection refused, DNS, TLS…              ``RetryableFulfilmentError("partner_unreachable")``
HTTP 429 or 5xx                            ``RetryableFulfilmentError("partner_error")``
other HTTP 4xx                             ``PermanentFulfilmentError(<the partner's code> or "partner_refused")``
2xx whose body is not a JSON object        ``RetryableFulfilmentError("malformed_response")``
========================================  ===========================================

A malformed answer is retried: the partner may have delivered, and asking
again with the same idempotency key is how to find out.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import requests

from .records import PermanentFulfilmentError, RetryableFulfilmentError

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _partner_code(response: requests.Response) -> tuple[str, str]:
    """The partner's own error code and message, when its error body has them."""
    try:
        body = response.json()
    except ValueError:
        return "partner_refused", f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
    else:
        code, message = error, body.get("message") if isinstance(body, dict) else None
    code = code if isinstance(code, str) and _CODE.match(code) else "partner_refused"
    return code, str(message or f"HTTP {response.status_code}")[:300]


def partner_json(ctx: Any, method: str, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None,
                 timeout: float = 5.0) -> dict[str, Any]:
    """Call a partner's API and return its JSON object answer, or raise a typed fulfilment error."""
    try:
        response = ctx.http.request(method, url, json=json, headers=dict(headers or {}), timeout=timeout)
    except requests.Timeout:
        raise RetryableFulfilmentError("partner_timeout", f"The partner did not answer within {timeout} s.") from None
    except requests.RequestException as exc:
        raise RetryableFulfilmentError("partner_unreachable",
                                       f"The partner could not be reached ({type(exc).__name__}).") from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableFulfilmentError("partner_error", f"The partner answered HTTP {status}.")
    if status >= 400:
        code, message = _partner_code(response)
        raise PermanentFulfilmentError(code, f"The partner refused: {message}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RetryableFulfilmentError("malformed_response", f"The partner's answer (HTTP {status}) is not a JSON "
                                                             f"object.")
    return body


def require_text(body: Mapping[str, Any], name: str) -> str:
    """``body[name]`` as non-empty text, else ``RetryableFulfilmentError("malformed_response")``."""
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RetryableFulfilmentError("malformed_response", f"The partner's answer lacks {name!r}.")
    return value
