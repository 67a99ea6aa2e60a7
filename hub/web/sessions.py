"""Who is looking at a page: signed sign-in links for users, admin keys for operators.

The bank's app backend asks ``POST /v1/accounts/<id>/sign-in-links`` for a link
that opens the user page signed in as that account (for a web view or an
e-mail). The link carries the account and an expiry, signed with HMAC-SHA256
under the ``[web] secret_key_env`` secret; it is checked against the hub's
clock. Opening it starts a session in Flask's signed cookie, which holds only
the account id, an expiry and a CSRF token. Operators sign in to the console
with an API key holding ``admin``; the session keeps the key's name and a
fingerprint of its secret, so rotating the key ends those sessions.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from flask import abort, request, session

from ..config import ApiKey
from ..core import Hub

CSRF_FIELD = "csrf"


class WebNotConfigured(Exception):
    """The web secret is unset: pages cannot sign sessions."""


def web_secret(hub: Hub) -> bytes:
    value = hub.settings.secret(hub.settings.web.secret_key_env)
    if not value:
        raise WebNotConfigured(f"Set the environment variable {hub.settings.web.secret_key_env} "
                               "(see [web] secret_key_env) to serve the web pages.")
    return value.encode("utf-8")


def _derive(hub: Hub, purpose: str) -> bytes:
    # One configured secret, separate keys per use: a session cookie can never pass as a link.
    return hmac.new(web_secret(hub), purpose.encode(), hashlib.sha256).digest()


def session_key(hub: Hub) -> bytes:
    return _derive(hub, "carbonhub web session")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_sign_in_token(hub: Hub, account_id: str, ttl_s: int | None = None) -> tuple[str, datetime]:
    """A token for ``/sign-in/<token>`` and its expiry (``[web] sign_in_link_ttl_s`` by default)."""
    expires = hub.now() + timedelta(seconds=ttl_s or hub.settings.web.sign_in_link_ttl_s)
    payload = _b64(json.dumps({"a": account_id, "e": int(expires.timestamp()), "n": secrets.token_hex(8)},
                              separators=(",", ":")).encode())
    mac = _b64(hmac.new(_derive(hub, "carbonhub sign-in link"), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}", expires.replace(microsecond=0)


def read_sign_in_token(hub: Hub, token: str) -> str | None:
    """The account id a valid, unexpired token names, else None (a bad token says nothing more)."""
    payload, _, mac = token.partition(".")
    if not payload or not mac or len(token) > 512:
        return None
    good = _b64(hmac.new(_derive(hub, "carbonhub sign-in link"), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(good, mac):
        return None
    try:
        data = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not isinstance(data.get("e"), int):
        return None
    if data["e"] < hub.now().timestamp():
        return None
    return data["a"]


def _expiry(hub: Hub) -> int:
    return int(hub.now().timestamp()) + hub.settings.web.session_ttl_s


def start_user_session(hub: Hub, account_id: str) -> None:
    session.clear()
    session.permanent = True
    session.update({"account": account_id, "exp": _expiry(hub), CSRF_FIELD: secrets.token_urlsafe(16)})


def key_fingerprint(hub: Hub, key: ApiKey) -> str:
    value = hub.settings.secret(key.key_env) or ""
    return hashlib.sha256(b"carbonhub console " + value.encode()).hexdigest()[:16]


def start_operator_session(hub: Hub, key: ApiKey) -> None:
    session.clear()
    session.permanent = True
    session.update({"operator": key.name, "fp": key_fingerprint(hub, key), "exp": _expiry(hub),
                    CSRF_FIELD: secrets.token_urlsafe(16)})


def _live(hub: Hub) -> bool:
    exp = session.get("exp")
    return isinstance(exp, int) and exp >= hub.now().timestamp()


def signed_in_account(hub: Hub) -> str | None:
    account = session.get("account")
    return account if isinstance(account, str) and _live(hub) else None


def signed_in_operator(hub: Hub) -> ApiKey | None:
    name = session.get("operator")
    key = hub.settings.api_keys.get(name) if isinstance(name, str) and _live(hub) else None
    if key is None or "admin" not in key.scopes:
        return None
    if not hmac.compare_digest(session.get("fp", ""), key_fingerprint(hub, key)):
        return None  # the key was rotated since
    return key


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(16)
    return token


def check_csrf() -> None:
    """Every form post carries the session's token: another site cannot post in the user's name."""
    sent = request.form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, session.get(CSRF_FIELD, "")):
        abort(400, description="The form expired or came from elsewhere; reload the page and try again.")
