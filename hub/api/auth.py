"""Who is calling: API keys with scopes for clients, HMAC signatures for partners.

Clients (the bank's app backend, the console) send ``Authorization: Bearer <key>``.
Keys are configured under ``[api_keys.<name>]`` with the environment variable
holding the key and its scopes; a key whose variable is unset is inactive.
``admin`` implies every other scope.

Partners sign pushes (see :mod:`hub.signing`).
"""
from __future__ import annotations

import functools
import hmac
from typing import Any, Callable, TypeVar

from datetime import datetime, timezone

import peewee as pw
from flask import current_app, g, request

from .. import db, signing
from ..config import SCOPES, ApiKey, Partner
from ..core import Hub
from .errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
ADMIN = "admin"
BEARER = {"WWW-Authenticate": 'Bearer realm="carbonhub"'}


def current_hub() -> Hub:
    return current_app.extensions["carbonhub"]


def authenticate_key(hub: Hub, presented: str) -> ApiKey | None:
    """The configured key whose secret equals ``presented`` (constant-time), or None."""
    found = None
    given = presented.encode("utf-8")
    for key in hub.settings.api_keys.values():
        secret = hub.settings.secret(key.key_env)
        # Compare against every active key so timing does not tell which one nearly matched.
        if secret and hmac.compare_digest(secret.encode("utf-8"), given) and found is None:
            found = key
    return found


def has_scope(key: ApiKey, scope: str) -> bool:
    return scope in key.scopes or ADMIN in key.scopes


def _bearer_key() -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Send an API key as 'Authorization: Bearer <key>'.", headers=BEARER)
    key = authenticate_key(current_hub(), token)
    if key is None:
        raise ApiError(401, "unauthorized", "The API key is unknown or inactive.", headers=BEARER)
    return key


def requires(scope: str) -> Callable[[F], F]:
    """Decorate a view so it needs a valid API key holding ``scope`` (or ``admin``).

    Missing or unknown key: 401 ``unauthorized``; key without the scope: 403 ``forbidden``.
    The key is available to the view as ``flask.g.api_key``.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = _bearer_key()
            if not has_scope(key, scope):
                raise ApiError(403, "forbidden", f"The API key {key.name!r} lacks the scope {scope!r}.")
            g.api_key = key
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def verify_partner_request(hub: Hub, partner_id: str, body: bytes) -> Partner:
    """Check a partner push's headers and signature; raise a 401 ApiError if anything is off.

    Order: known and enabled partner, headers present, key id matches the URL,
    timestamp fresh, signature valid.
    """
    partner = hub.settings.partners.get(partner_id)
    secret = hub.settings.secret(partner.secret_env) if partner else None
    if partner is None or not partner.enabled or not secret:
        raise ApiError(401, "unknown_partner", f"Partner {partner_id!r} is unknown, disabled or has no secret.")
    headers = request.headers
    missing = [h for h in (signing.PARTNER_HEADER, signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER)
               if not headers.get(h)]
    if missing:
        raise ApiError(401, "unauthorized", f"Missing header(s): {', '.join(missing)}.")
    if headers[signing.PARTNER_HEADER] != partner_id:
        raise ApiError(401, "unauthorized",
                       f"{signing.PARTNER_HEADER} {headers[signing.PARTNER_HEADER]!r} does not match the "
                       f"partner in the URL {partner_id!r}.")
    raw_ts = headers[signing.TIMESTAMP_HEADER].strip()
    if not raw_ts.isdigit():
        raise ApiError(401, "unauthorized", f"{signing.TIMESTAMP_HEADER} must be unix seconds.")
    connector = hub.connectors.push_for(partner_id)
    now = hub.now().timestamp()
    max_age = connector.max_age_s(hub.settings.signature_max_age_s)
    if abs(now - int(raw_ts)) > max_age:
        raise ApiError(401, "stale_timestamp", f"{signing.TIMESTAMP_HEADER} {raw_ts} is more than {max_age} s "
                                               f"away from the hub's clock ({int(now)}); sign with the current time.")
    if not signing.verify(secret, raw_ts, body, headers[signing.SIGNATURE_HEADER]):
        raise ApiError(401, "bad_signature", "The signature does not match the body and timestamp "
                                             "(HMAC-SHA256 of '<timestamp>.<body>' in hex).")
    if connector.options.get("reject_replayed", True):
        _spend_signature(hub, partner_id, headers[signing.SIGNATURE_HEADER], int(raw_ts) + max_age)
    return partner


def _spend_signature(hub: Hub, partner_id: str, signature: str, expires: int) -> None:
    """Accept a valid signature once: a captured request replayed inside its freshness window is 409.

    Kept only until the timestamp is stale anyway; expired ones are swept here.
    """
    digest = signature.strip().lower().removeprefix(signing.PREFIX)[:64]
    now = db.to_db(hub.now())
    db.PushNonce.delete().where(db.PushNonce.expires_at < now).execute()
    try:
        with db.database.atomic():
            db.PushNonce.insert(partner=partner_id, signature=digest,
                                expires_at=db.to_db(datetime.fromtimestamp(expires, timezone.utc))).execute()
    except pw.IntegrityError:
        raise ApiError(409, "replayed_request", "This signed request was already received; to send the records "
                                                "again, sign them with a new timestamp (they are idempotent).") \
            from None
