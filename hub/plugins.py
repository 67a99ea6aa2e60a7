"""Plugin manager: the hub's default plugins, then entry points, then config.

Built inside :func:`hub.app.create_app` (never at import time), so every app and
every test has its own manager.
"""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable, Iterator

import pluggy

from . import HUB_API_VERSION, hookspecs
from .records import BenefitSpec, ConnectorSpec, MethodologySpec, ScenarioSpec

ENTRY_POINT_GROUP = "carbonhub.plugins"
# The hub's own hook implementations (not partners): registered first, by name.
DEFAULT_PLUGINS = ("hub.rewards", "connectors.builtin")
log = logging.getLogger("carbonhub.plugins")


class PluginError(Exception):
    """A plugin cannot be loaded or conflicts with another; the hub will not start."""


def parse_api_version(value: Any) -> tuple[int, int]:
    major, _, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def check_api_version(name: str, plugin: Any) -> None:
    declared = getattr(plugin, "CARBONHUB_API", None)
    if declared is None:
        raise PluginError(f"plugin {name!r} declares no hub API version (set CARBONHUB_API = \"1.0\")")
    try:
        major, minor = parse_api_version(declared)
    except ValueError:
        raise PluginError(f"plugin {name!r}: CARBONHUB_API {declared!r} is not MAJOR.MINOR") from None
    hub_major, hub_minor = HUB_API_VERSION
    if major != hub_major or minor > hub_minor:
        raise PluginError(
            f"plugin {name!r} needs hub API {declared}, this hub provides {hub_major}.{hub_minor}"
        )


def build_plugin_manager(blocked: Iterable[str] = (), extra: Iterable[Any] = ()) -> pluggy.PluginManager:
    """Create the manager: defaults, ``carbonhub.plugins`` entry points, then ``extra``.

    ``blocked`` names (entry-point names) are never loaded. The environment
    variable ``CARBONHUB_LOAD_PLUGINS`` (comma-separated names) restricts which
    entry points load, e.g. to debug one plugin.
    """
    pm = pluggy.PluginManager("carbonhub")
    pm.add_hookspecs(hookspecs)
    versions: dict[str, str] = {}
    pm.carbonhub_versions = versions  # plugin name -> distribution version
    for name in blocked:
        pm.set_blocked(name)
    for path in DEFAULT_PLUGINS:
        if not pm.is_blocked(path):
            pm.register(importlib.import_module(path), name=path)

    only = os.environ.get("CARBONHUB_LOAD_PLUGINS")
    allowed = {n.strip() for n in only.split(",") if n.strip()} if only is not None else None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must name itself
            raise PluginError(f"plugin {ep.name!r} failed to import: {exc}") from exc
        check_api_version(ep.name, plugin)
        pm.register(plugin, name=ep.name)
        versions[ep.name] = ep.dist.version if ep.dist else ""

    for plugin in extra:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.is_blocked(name):
            continue
        check_api_version(name, plugin)
        pm.register(plugin, name=name)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"unknown hook: {exc} (hooks are listed in hub/hookspecs.py)") from exc
    return pm


def plugin_version(pm: pluggy.PluginManager, name: str, plugin: Any) -> str:
    return (getattr(pm, "carbonhub_versions", {}).get(name) or getattr(plugin, "__version__", "")
            or ("built-in" if name in DEFAULT_PLUGINS else "unversioned"))


Impl = tuple[str, Callable[..., Any], tuple[str, ...]]  # (plugin name, function, argument names)


def hookimpls(hook: pluggy.HookCaller) -> list[Impl]:
    """A hook's implementations in call order, for :func:`call_each`.

    Hot paths take this once per chunk of records rather than once per record.
    """
    return [(impl.plugin_name, impl.function, tuple(impl.argnames)) for impl in reversed(hook.get_hookimpls())]


def call_each(hook: pluggy.HookCaller | list[Impl], **kwargs: Any) -> Iterator[tuple[str, Any, BaseException | None]]:
    """Call every implementation separately: ``(plugin name, result, error)``.

    Used where one plugin's failure must not stop the others (notifications,
    validators, reward rules) or where the hub needs to know which plugin
    returned what (registration). ``hook`` may be a :func:`hookimpls` list.
    """
    for name, function, argnames in (hook if isinstance(hook, list) else hookimpls(hook)):
        try:
            yield name, function(*[kwargs[arg] for arg in argnames]), None  # positionally, as pluggy calls
        except Exception as exc:
            yield name, None, exc


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> int:
    """Run a lifecycle hook with each plugin isolated; returns how many failed."""
    failed = 0
    for name, _, exc in call_each(getattr(pm.hook, hook_name), **kwargs):
        if exc is not None:
            failed += 1
            log.error("plugin %s failed in %s: %r", name, hook_name, exc, exc_info=exc)
    return failed


@dataclass
class Registry:
    """What the plugins registered at start-up, with the plugin behind each id."""

    scenarios: dict[str, ScenarioSpec]
    methodologies: dict[str, MethodologySpec]
    connectors: dict[str, ConnectorSpec]
    benefits: dict[str, BenefitSpec]
    owner: dict[tuple[str, str], str]  # (kind, id) -> plugin name

    def plugins_for_scenarios(self, scenario_ids: Iterable[str]) -> set[str]:
        return {self.owner[("scenario", s)] for s in scenario_ids if ("scenario", s) in self.owner}


_REGISTRATIONS = (
    ("scenario", "carbonhub_register_scenarios", ScenarioSpec),
    ("methodology", "carbonhub_register_methodologies", MethodologySpec),
    ("connector", "carbonhub_register_connectors", ConnectorSpec),
    ("benefit", "carbonhub_register_benefits", BenefitSpec),
)


def collect_registrations(pm: pluggy.PluginManager, ctx: Any) -> Registry:
    """Run the registration hooks; a duplicate id or a wrong type is a PluginError."""
    found: dict[str, dict[str, Any]] = {kind: {} for kind, _, _ in _REGISTRATIONS}
    owner: dict[tuple[str, str], str] = {}
    for kind, hook_name, record_type in _REGISTRATIONS:
        for plugin_name, result, exc in call_each(getattr(pm.hook, hook_name), ctx=ctx):
            if exc is not None:
                raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {exc!r}") from exc
            for item in result or ():
                if not isinstance(item, record_type):
                    raise PluginError(f"plugin {plugin_name!r}: {hook_name} returned {item!r}, "
                                      f"expected {record_type.__name__}")
                if item.id in found[kind]:
                    raise PluginError(f"duplicate {kind} id {item.id!r}: registered by "
                                      f"{owner[(kind, item.id)]!r} and {plugin_name!r}")
                found[kind][item.id] = item
                owner[(kind, item.id)] = plugin_name
    return Registry(found["scenario"], found["methodology"], found["connector"], found["benefit"], owner)


def describe_plugins(pm: pluggy.PluginManager, registry: Registry) -> list[dict[str, Any]]:
    """One entry per plugin: name, version, hooks and what it registered."""
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        if plugin is None:
            continue
        hooks = sorted(h.name for h in (pm.get_hookcallers(plugin) or []))
        out.append({
            "name": name,
            "version": plugin_version(pm, name, plugin),
            "api": getattr(plugin, "CARBONHUB_API", "(hub)"),
            "hooks": hooks,
            "scenarios": sorted(i for (k, i), o in registry.owner.items() if k == "scenario" and o == name),
            "methodologies": sorted(i for (k, i), o in registry.owner.items()
                                    if k == "methodology" and o == name),
            "connectors": sorted(f"{i} ({registry.connectors[i].mode})" for (k, i), o in registry.owner.items()
                                 if k == "connector" and o == name),
        })
    return out
