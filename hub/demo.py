"""Demo data so a newcomer sees accounts, partners and credited behaviours at once.

Running it again is safe: records keep their ids, so a second run answers
them ``duplicate`` and credits nothing twice.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .config import Settings, read_env_file
from .core import Hub
from .ingest import BatchResult

DEMO_USERS = ("demo-alice", "demo-bob", "demo-chen")
STATIONS = [("Luohu", "Shijie Zhichuang", "1", "18.6"), ("Futian", "Shenzhen North", "4", "9.2"),
            ("Chegongmiao", "Airport", "11", "23.7"), ("Window of the World", "Shekou Port", "2", "7.4")]


def ensure_secrets(settings: Settings) -> dict[str, str]:
    """Write random values for every configured secret that has none yet.

    Only for local development: the values go to ``hub.secrets_file`` (under
    ``var/``, git-ignored); production sets real environment variables.
    """
    path: Path = settings.secrets_file
    existing = read_env_file(path)
    names = [p.secret_env for p in settings.partners.values()] + [k.key_env for k in settings.api_keys.values()]
    # Plugins name their secrets with *_env keys (e.g. plugin_config.utility_payments.coupon_secret_env).
    names += [v for conf in settings.plugin_config.values() for k, v in conf.items()
              if k.endswith("_env") and isinstance(v, str)]
    missing = [n for n in names if settings.secret(n) is None]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            if not existing:
                fh.write("# Local development secrets written by `carbonhub demo`. Never commit.\n")
            for name in missing:
                value = secrets.token_urlsafe(24)
                fh.write(f"{name}={value}\n")
                existing[name] = value
        path.chmod(0o600)
        settings._file_secrets = None  # reread on next lookup
    return {n: settings.secret(n) or "" for n in names}


def _metro_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    cst = timezone(timedelta(hours=8))
    records = []
    for day in range(1, 11):
        date = (now - timedelta(days=day)).astimezone(cst).replace(hour=8, minute=5, second=0, microsecond=0)
        for n, (user, account) in enumerate(accounts.items()):
            if user == "demo-bob" and day > 5:
                continue
            entry, exit_, line, km = STATIONS[(day + n) % len(STATIONS)]
            start = date + timedelta(minutes=7 * n)
            records.append({
                "ride_id": f"SZM-{start:%Y%m%d}-{user}", "account_id": account, "card_token": f"tok-{user}",
                "city": "shenzhen", "line": line, "entry_station": entry, "exit_station": exit_,
                "entry_at": start.isoformat(), "exit_at": (start + timedelta(minutes=35)).isoformat(),
                "distance_km": km,
            })
    first = records[0]
    records.append(dict(first))  # the operator resends a ride: answered duplicate
    records.append({**first, "ride_id": first["ride_id"] + "-X", "distance_km": "310",
                    "exit_at": first["exit_at"]})  # a 310 km ride: rejected as implausible
    return records


def _statement_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Statements of the last two billing cycles, viewed early the next month."""
    cst = timezone(timedelta(hours=8))
    records = []
    first_of_month = now.astimezone(cst).replace(day=1, hour=9, minute=0, second=0, microsecond=0)
    for back in (2, 1):
        cycle_start = first_of_month
        for _ in range(back):
            cycle_start = (cycle_start - timedelta(days=1)).replace(day=1)
        viewed = min(now - timedelta(hours=1), (cycle_start + timedelta(days=32)).replace(day=3))
        cycle = f"{cycle_start:%Y-%m}"
        for user, account in accounts.items():
            records.append({"statement_id": f"ST-{cycle}-{user}", "account_id": account,
                            "card_ref": f"card-{user}", "cycle": cycle, "viewed_at": viewed.isoformat(),
                            "channel": "app", "paper_suppressed": True})
    return records


def run_demo(hub: Hub) -> dict[str, Any]:
    """Open demo accounts, grant consents, push demo records; returns a summary."""
    hub.init_db()
    keys = ensure_secrets(hub.settings)
    now = hub.now()
    accounts = {}
    for user in DEMO_USERS:
        account, _ = hub.open_account(user)
        accounts[user] = account.id
    enabled = hub.enabled_scenarios()
    since = now - timedelta(days=90)
    for user, account in accounts.items():
        for scenario in enabled:
            if user == "demo-bob" and scenario == "estatement":
                continue  # bob never authorised e-statements: his records are rejected no_consent
            hub.set_consent(account, scenario, True, at=since, source="demo")
    results: dict[str, BatchResult] = {}
    # Shenzhen rides from the operator and again from the card network (credited once), statements
    # from the card centre and again from the app's log. Other partners send nothing in the demo.
    feeds = {("szmetro", "metro"): _metro_records, ("unionpay", "metro"): _metro_records,
             ("cardcentre", "estatement"): _statement_records, ("mbank", "estatement"): _statement_records}
    for partner in hub.settings.partners.values():
        for scenario in partner.scenarios:
            feed = feeds.get((partner.id, scenario))
            if feed is not None and scenario in enabled:
                results[f"{partner.id}/{scenario}"] = hub.pipeline.ingest(partner.id, feed(accounts, now),
                                                                          source="demo")
    return {"accounts": accounts, "results": {k: r.summary() for k, r in results.items()}, "keys": keys}
