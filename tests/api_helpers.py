"""Helpers for the HTTP API tests: keys, native metro/e-statement records, signed pushes."""
from __future__ import annotations

import itertools

from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from conftest import NOW, SECRETS

from hub import signing

SHANGHAI = timezone(timedelta(hours=8))
METRO_FACTOR = Decimal("46.8")  # gCO2e/pkm of methodologies/metro/shenzhen-2021.toml

KEYS = {
    "app": SECRETS["CARBONHUB_KEY_APP"],  # accounts:read, accounts:write
    "console": SECRETS["CARBONHUB_KEY_CONSOLE"],  # accounts:read, admin
    "reader": SECRETS["CARBONHUB_KEY_READER"],  # accounts:read
}
PARTNER_SECRETS = {"szmetro": SECRETS["CARBONHUB_SECRET_SZMETRO"],
                   "cardcentre": SECRETS["CARBONHUB_SECRET_CARDCENTRE"]}


def auth(key: str = "app") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[key]}"}


def metro_grams(km: str) -> int:
    """What the methodology must credit for ``km``: 46.8 g/pkm × distance, rounded down."""
    return int((METRO_FACTOR * Decimal(km)).to_integral_value(rounding=ROUND_FLOOR))


def metro_points(grams: int) -> int:
    """The test config's metro rule: 100 pts per whole kg (rounded down) + 1 per ride."""
    return grams * 100 // 1000 + 1


def ride(account_id: str, ride_id: str, entry_at: datetime, *, km: str = "18.6", minutes: int = 39,
         card: str = "tok_9f2c", entry_station: str = "Luohu", exit_station: str = "Shijie Zhichuang",
         line: str = "1") -> dict[str, Any]:
    """A native metro record (the operator's format, see plugins/metro)."""
    entry = entry_at.astimezone(SHANGHAI)
    return {"ride_id": ride_id, "account_id": account_id, "card_token": card, "city": "shenzhen", "line": line,
            "entry_station": entry_station, "exit_station": exit_station, "entry_at": entry.isoformat(),
            "exit_at": (entry + timedelta(minutes=minutes)).isoformat(), "distance_km": km}


def statement(account_id: str, statement_id: str, viewed_at: datetime, *, cycle: str = "2026-10",
              card: str = "card_7c1e") -> dict[str, Any]:
    """A native e-statement record (the card centre's format, see plugins/estatement)."""
    return {"statement_id": statement_id, "account_id": account_id, "card_ref": card, "cycle": cycle,
            "viewed_at": viewed_at.astimezone(SHANGHAI).isoformat(), "channel": "app", "paper_suppressed": True}


_PUSHES = itertools.count()


def signed(partner: str, payload: Any, clock, *, secret: str | None = None, skew_s: int = 0,
           body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers of a push signed at the hub's clock time (+ ``skew_s``).

    Without a skew, each call signs a few seconds further in the past (within the
    freshness window), as a partner pushing again later would: the hub accepts a
    signature once (``replayed_request``), and tests push the same body twice.
    """
    raw = signing.encode(payload) if body is None else body
    ts = int(clock().timestamp()) + skew_s - (next(_PUSHES) % 120 if skew_s == 0 else 0)
    return raw, signing.signed_headers(partner, secret or PARTNER_SECRETS[partner], raw, ts)


def push(client, partner: str, records: list[dict[str, Any]], clock, **kwargs: Any):
    body, headers = signed(partner, {"records": records}, clock, **kwargs)
    return client.post(f"/v1/partners/{partner}/events", data=body, headers=headers)


def open_account(client, bank_ref: str) -> str:
    response = client.post("/v1/accounts", json={"bank_ref": bank_ref}, headers=auth("app"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def error_of(response) -> dict[str, Any]:
    """The ``error`` object, after checking the shape every error must have."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) <= {"code", "message", "fields"} and isinstance(err["code"], str) and err["message"], err
    return err


def at(h: float = 0, **kw) -> datetime:
    """The test clock's now, moved by ``h`` hours (and any other ``timedelta`` fields)."""
    return NOW + timedelta(hours=h, **kw)


def consent(client, account: str, *scenarios: str) -> None:
    """Grant ``scenarios`` to ``account`` through the API."""
    for s in scenarios:
        assert client.put(f"/v1/accounts/{account}/consents/{s}", headers=auth()).status_code == 200


def rides(client, clock, account: str, *items: tuple[str, str, datetime]) -> None:
    """Push metro rides ``(ride_id, km, entry_at)`` for ``account`` and require every one accepted."""
    response = push(client, "szmetro", [ride(account, rid, when, km=km, card=f"tok_{account[-6:]}")
                                         for rid, km, when in items], clock)
    assert response.status_code == 200, response.get_json()
    assert all(r["status"] == "accepted" for r in response.get_json()["results"]), response.get_json()


def openapi_check(spec: dict[str, Any]):
    """``check(response, path, method, status="200")``: the answer has that status and its body
    validates against the schema ``spec`` (``/openapi.json``) documents for it."""
    import openapi_schema_validator as schema_validator  # installed with openapi-spec-validator

    def check(response, path: str, method: str, status: str = "200") -> None:
        assert response.status_code == int(status), response.get_json()
        schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        schema_validator.validate(response.get_json(), {**schema, "components": spec["components"]},
                                  cls=schema_validator.OAS30Validator)

    return check
