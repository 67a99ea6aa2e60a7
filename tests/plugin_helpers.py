"""Small in-test plugins and native partner records for the ingestion and plugin tests.

Plugins are module objects built in memory by :func:`plugin_module`: the plugin
manager names an extra plugin by its ``__name__``, so a test can build several
distinct ones without files on disk. :func:`install_entry_point_plugin` goes the
long way instead and installs a real distribution (a ``.dist-info`` folder with
an ``entry_points.txt``) on a temporary ``sys.path`` entry, the way a partner's
package reaches the hub.
"""
from __future__ import annotations

import textwrap
import types
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from hub.hookspecs import hookimpl
from hub.records import Behaviour, ScenarioSpec, fingerprint

SHANGHAI = timezone(timedelta(hours=8))
LAB_SCENARIO = "labride"
# Evidence the metro methodology asks for; the lab plugin reuses that methodology.
METRO_EVIDENCE = {"city": "shenzhen", "entry_station": "A", "exit_station": "B"}


def plugin_module(name: str, *, api: str | None = "1.0", **hooks: Callable[..., Any]) -> types.ModuleType:
    """A plugin module called ``name`` implementing ``hooks`` (hook name -> function).

    ``api`` is its ``CARBONHUB_API``; ``None`` leaves the declaration out.
    """
    module = types.ModuleType(name)
    if api is not None:
        module.CARBONHUB_API = api
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def lab_plugin(name: str = "lab") -> types.ModuleType:
    """A plugin owning scenario ``labride`` whose records say what to return.

    It counts ``labride`` with the metro methodology (unit ``pkm``). The payload
    steers the plugin, so one partner can produce every outcome of the gate:

    - ``{"raise": true}`` raises an unexpected error, unless ``module.fixed``;
      so does its reward rule for a behaviour with the attribute ``reward_crash``;
    - ``{"skip": true}`` returns None, ``{"empty": true}`` an empty list,
      ``{"garbage": true}`` something that is not a behaviour;
    - otherwise one behaviour: ``scenario`` (default ``labride``), ``account_id``,
      ``event_id``, ``occurred_at`` (ISO text, may be naive), ``quantity``,
      ``unit`` (default ``pkm``), ``attributes`` (default: the metro evidence).
    """

    def register_scenarios(ctx):
        return [ScenarioSpec(id=LAB_SCENARIO, title="Bike rides (test)", methodology="metro-avoided-car",
                             unit="pkm")]

    def normalize(ctx, record):
        if LAB_SCENARIO not in record.scenarios:
            return None
        p = record.payload
        if p.get("raise") and not module.fixed:
            raise RuntimeError("lab plugin bug")
        if p.get("skip"):
            return None
        if p.get("empty"):
            return []
        if p.get("garbage"):
            return [{"not": "a behaviour"}]
        return [Behaviour(
            scenario=p.get("scenario", LAB_SCENARIO), account_id=p["account_id"], event_id=p["event_id"],
            fingerprint=fingerprint(LAB_SCENARIO, p["event_id"]),
            occurred_at=datetime.fromisoformat(p["occurred_at"]), quantity=Decimal(str(p.get("quantity", "5"))),
            unit=p.get("unit", "pkm"), attributes=p.get("attributes", METRO_EVIDENCE))]

    def evaluate_rewards(behaviour):
        if behaviour.attributes.get("reward_crash") and not module.fixed:
            raise RuntimeError("lab reward service is down")
        return []

    module = plugin_module(name, carbonhub_register_scenarios=register_scenarios,
                           carbonhub_normalize_record=normalize, carbonhub_evaluate_rewards=evaluate_rewards)
    module.fixed = False
    return module


def lab_record(account_id: str, event_id: str, occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    """A native record for :func:`lab_plugin`."""
    return {"account_id": account_id, "event_id": event_id, "occurred_at": occurred_at.isoformat(), **fields}


def recorder_plugin(name: str, calls: list[tuple[str, Any]]) -> types.ModuleType:
    """A lifecycle plugin appending ``(hook, argument)`` to ``calls``."""
    return plugin_module(
        name,
        carbonhub_account_opened=lambda ctx, account: calls.append(("account_opened", account)),
        carbonhub_transaction_posted=lambda ctx, transaction: calls.append(("transaction_posted", transaction)),
    )


def failing_lifecycle_plugin(name: str) -> types.ModuleType:
    """A lifecycle plugin whose notifications always raise."""

    def fail(**kwargs: Any) -> None:
        raise RuntimeError(f"{name} notification service is down")

    return plugin_module(name,
                         carbonhub_account_opened=lambda ctx, account: fail(),
                         carbonhub_transaction_posted=lambda ctx, transaction: fail())


def metro_ride(account_id: str, ride_id: str, at: datetime, *, minutes: int = 39,
               distance_km: str = "18.6", card: str = "card-1", entry_station: str = "Luohu",
               exit_station: str = "Shijie Zhichuang", city: str = "Shenzhen", **overrides: Any) -> dict[str, Any]:
    """A Shenzhen Metro ride entering at ``at`` (18.6 km = 870 g with the 2021.1 factor).

    ``overrides`` replace fields of the record (``None`` removes one).
    """
    record = {"ride_id": ride_id, "account_id": account_id, "city": city, "card_token": card, "line": "1",
              "entry_station": entry_station, "exit_station": exit_station, "entry_at": at.isoformat(),
              "exit_at": (at + timedelta(minutes=minutes)).isoformat(), "distance_km": distance_km}
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def estatement(account_id: str, statement_id: str, cycle: str, viewed_at: datetime, *,
               card: str = "card-7c1e", paper_suppressed: Any = True, channel: str = "app") -> dict[str, Any]:
    """A card-centre e-statement record (24 g with the 2022.1 factor)."""
    return {"statement_id": statement_id, "account_id": account_id, "card_ref": card, "cycle": cycle,
            "viewed_at": viewed_at.isoformat(), "channel": channel, "paper_suppressed": paper_suppressed}


def install_entry_point_plugin(root: Path, ep_name: str, source: str, *, version: str = "1.0") -> str:
    """Install a one-module distribution under ``root`` declaring ``ep_name`` in
    the ``carbonhub.plugins`` group; put ``root`` on ``sys.path`` to see it.

    Returns the module name (unique per ``root`` so ``sys.modules`` never
    hands an earlier test's module back).
    """
    module = f"cbh_test_{ep_name}_{abs(hash(str(root))):x}"
    dist = f"cbh-test-{ep_name}"
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[carbonhub.plugins]\n{ep_name} = {module}\n", encoding="utf-8")
    return module
