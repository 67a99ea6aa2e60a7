"""The plugin manager: entry-point discovery, API versions, hook names, registration
conflicts, blocking and restricting plugins, isolated lifecycle hooks, and the
normalize subset that keeps one plugin from shadowing another.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points

import pytest
from conftest import SECRETS
from plugin_helpers import (SHANGHAI, estatement, failing_lifecycle_plugin, install_entry_point_plugin, metro_ride,
                            plugin_module, recorder_plugin)

from hub import accounts, db, rewards
from hub.config import ConfigError, load_settings
from hub.core import Hub
from hub.ledger import verify
from hub.plugins import ENTRY_POINT_GROUP, PluginError, describe_plugins
from hub.records import (ACCEPTED, AccountRecord, Behaviour, BenefitSpec, ConnectorSpec, MethodologySpec,
                         RawRecord, ScenarioSpec, TransactionRecord, fingerprint)
from methodologies import documents

RIDE_AT = datetime(2026, 11, 20, 8, 1, tzinfo=SHANGHAI)
CONSENT_AT = datetime(2026, 1, 1, tzinfo=SHANGHAI)

THIRD_PARTY = """
    from hub.hookspecs import hookimpl
    from hub.records import ConnectorSpec, ScenarioSpec

    CARBONHUB_API = "{api}"

    @hookimpl
    def carbonhub_register_scenarios(ctx):
        return [ScenarioSpec(id="ferry", title="Ferry", methodology="metro-avoided-car", unit="pkm")]

    @hookimpl
    def carbonhub_register_connectors(ctx):
        return [ConnectorSpec(id="ferry-batch", mode="batch", scenarios=("ferry",))]
"""


@pytest.fixture
def build_hub(config_data, database_url, clock):
    """``build(*extra_plugins)``: a hub from the (possibly edited) ``config_data``."""

    def build(*plugins, init: bool = True) -> Hub:
        settings = load_settings(data=config_data, environ=dict(SECRETS))
        h = Hub(settings, clock=clock, database_url=database_url, extra_plugins=plugins)
        if init:
            h.init_db()
        return h

    yield build
    if not db.database.is_closed():
        db.database.close()


def without_estatement(config_data: dict) -> dict:
    del config_data["scenarios"]["estatement"]
    del config_data["partners"]["cardcentre"]
    return config_data


def scenario_plugin(name: str, *scenario_ids: str):
    return plugin_module(name, carbonhub_register_scenarios=lambda ctx: [
        ScenarioSpec(id=s, title=s, methodology="metro-avoided-car", unit="pkm") for s in scenario_ids])


# --- discovery --------------------------------------------------------------------------------


def test_builtin_plugins_load_through_the_entry_point_group(hub):
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"metro", "estatement"} <= set(eps)
    for name in ("metro", "estatement"):
        assert hub.pm.get_plugin(name) is eps[name].load()  # registered under the entry-point name
        assert hub.pm.carbonhub_versions[name] == eps[name].dist.version
        assert hub.registry.owner[("scenario", name)] == name
    assert hub.pm.get_plugin("plugins.metro") is None
    assert hub.pm.get_plugin("hub.rewards") is rewards  # the hub's own rule, registered first


def test_a_third_party_distribution_is_discovered_by_entry_point(tmp_path, monkeypatch, build_hub):
    install_entry_point_plugin(tmp_path, "ferry", THIRD_PARTY.format(api="1.0"), version="2.3.1")
    monkeypatch.syspath_prepend(str(tmp_path))
    h = build_hub(init=False)
    assert h.pm.get_plugin("ferry") is not None
    assert h.registry.owner[("scenario", "ferry")] == "ferry"
    assert h.registry.connectors["ferry-batch"].mode == "batch"
    (entry,) = [p for p in describe_plugins(h.pm, h.registry) if p["name"] == "ferry"]
    assert (entry["version"], entry["api"], entry["scenarios"]) == ("2.3.1", "1.0", ["ferry"])


def test_describe_plugins_lists_name_version_hooks_and_what_they_registered(hub):
    described = {p["name"]: p for p in describe_plugins(hub.pm, hub.registry)}
    assert set(described) >= {"hub.rewards", "metro", "estatement"}
    metro = described["metro"]
    assert metro["version"] == entry_points(group=ENTRY_POINT_GROUP)["metro"].dist.version
    assert metro["api"] == "1.0"
    assert metro["hooks"] == ["carbonhub_cancel_fulfilment", "carbonhub_fulfil_benefit", "carbonhub_normalize_record",
                              "carbonhub_register_benefits", "carbonhub_register_methodologies",
                              "carbonhub_register_scenarios", "carbonhub_validate_behaviour"]
    assert (metro["scenarios"], metro["methodologies"]) == (["metro"], ["metro-avoided-car"])
    assert described["estatement"]["scenarios"] == ["estatement"]
    rewards = described["hub.rewards"]
    assert (rewards["version"], rewards["api"], rewards["hooks"], rewards["scenarios"]) == (
        "built-in", "(hub)", ["carbonhub_evaluate_rewards"], [])


# --- API version and hook names ------------------------------------------------------------------------


@pytest.mark.parametrize("api", [None, "2.0", "0.9", "1.1", "1.x", "one"])
def test_plugin_with_missing_or_incompatible_api_version_is_refused(build_hub, api):
    with pytest.raises(PluginError, match="plugin 'oldtimer'") as exc:
        build_hub(plugin_module("oldtimer", api=api), init=False)
    assert ("declares no hub API version" if api is None else api) in str(exc.value)


@pytest.mark.parametrize("api", ["1.0", "1"])
def test_plugin_with_compatible_api_version_loads(build_hub, api):
    modern = plugin_module("modern", api=api, carbonhub_register_scenarios=lambda ctx: [
        ScenarioSpec(id="ferry", title="Ferry", methodology="metro-avoided-car", unit="pkm")])
    h = build_hub(modern, init=False)
    assert h.registry.owner[("scenario", "ferry")] == "modern"


def test_entry_point_plugin_with_incompatible_api_is_refused_by_name(tmp_path, monkeypatch, build_hub):
    install_entry_point_plugin(tmp_path, "ferry", THIRD_PARTY.format(api="2.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'ferry' needs hub API 2\.0, this hub provides 1\.0"):
        build_hub(init=False)


def test_entry_point_plugin_that_fails_to_import_names_itself(tmp_path, monkeypatch, build_hub):
    install_entry_point_plugin(tmp_path, "ferry", "import carbonhub_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin 'ferry' failed to import"):
        build_hub(init=False)


def test_misspelt_hook_fails_at_start_up(build_hub):
    typo = plugin_module("typo", carbonhub_normalise_record=lambda ctx, record: None)
    with pytest.raises(PluginError, match="unknown hook") as exc:
        build_hub(typo, init=False)
    assert "carbonhub_normalise_record" in str(exc.value) and "typo" in str(exc.value)


# --- registration conflicts --------------------------------------------------------------------------


def test_duplicate_scenario_id_names_both_plugins(build_hub):
    with pytest.raises(PluginError, match="duplicate scenario id 'metro'") as exc:
        build_hub(scenario_plugin("copycat", "metro"), init=False)
    assert "'metro'" in str(exc.value).split(":", 1)[1] and "'copycat'" in str(exc.value)


def test_duplicate_scenario_id_between_two_extra_plugins(build_hub):
    with pytest.raises(PluginError, match="duplicate scenario id 'ferry'") as exc:
        build_hub(scenario_plugin("first", "ferry"), scenario_plugin("second", "ferry"), init=False)
    assert "'first'" in str(exc.value) and "'second'" in str(exc.value)


def test_duplicate_methodology_id_names_both_plugins(build_hub):
    copycat = plugin_module("copycat", carbonhub_register_methodologies=lambda ctx: [
        MethodologySpec(id="metro-avoided-car", documents=documents("metro"))])
    with pytest.raises(PluginError, match="duplicate methodology id 'metro-avoided-car'") as exc:
        build_hub(copycat, init=False)
    assert "'metro'" in str(exc.value) and "'copycat'" in str(exc.value)


def test_connectors_and_benefits_are_collected_into_the_registry(build_hub):
    library = plugin_module(
        "library",
        carbonhub_register_connectors=lambda ctx: [ConnectorSpec(id="library-pull", mode="pull",
                                                                 partner_kind="library")],
        carbonhub_register_benefits=lambda ctx: [BenefitSpec(id="reading-card", title="30-day reading card"),
                                                 BenefitSpec(id="audiobook", title="One audiobook")],
    )
    h = build_hub(library, init=False)
    assert set(h.registry.connectors) >= {"library-pull", "webhook", "file"}  # beside the hub's own
    assert h.registry.owner[("connector", "webhook")] == "connectors.builtin"
    assert h.registry.connectors["library-pull"].partner_kind == "library"
    assert set(h.registry.benefits) >= {"reading-card", "audiobook"}  # beside the built-in partners' own
    assert h.registry.owner[("benefit", "metro-ride-voucher")] == "metro"
    assert h.registry.owner[("benefit", "audiobook")] == h.registry.owner[("connector", "library-pull")] == "library"


@pytest.mark.parametrize("hook,kind,make", [
    ("carbonhub_register_connectors", "connector", lambda: ConnectorSpec(id="shared", mode="push")),
    ("carbonhub_register_benefits", "benefit", lambda: BenefitSpec(id="shared", title="Shared")),
])
def test_duplicate_connector_or_benefit_id_names_both_plugins(build_hub, hook, kind, make):
    one = plugin_module("one", **{hook: lambda ctx: [make()]})
    two = plugin_module("two", **{hook: lambda ctx: [make()]})
    with pytest.raises(PluginError, match=f"duplicate {kind} id 'shared'") as exc:
        build_hub(one, two, init=False)
    assert "'one'" in str(exc.value) and "'two'" in str(exc.value)


def test_registration_of_the_wrong_record_type_is_refused(build_hub):
    wrong = plugin_module("wrong", carbonhub_register_connectors=lambda ctx: [
        BenefitSpec(id="oops", title="Not a connector")])
    with pytest.raises(PluginError, match="plugin 'wrong': carbonhub_register_connectors .* expected ConnectorSpec"):
        build_hub(wrong, init=False)


def test_failing_registration_hook_stops_start_up_naming_the_plugin(build_hub):
    def register(ctx):
        raise KeyError("settings")

    with pytest.raises(PluginError, match="plugin 'fragile' failed in carbonhub_register_benefits"):
        build_hub(plugin_module("fragile", carbonhub_register_benefits=register), init=False)


# --- blocking and restricting ---------------------------------------------------------------------------


def test_blocked_plugin_is_not_loaded(build_hub, config_data):
    config_data["plugins"] = {"block": ["estatement"]}
    without_estatement(config_data)
    h = build_hub()
    assert h.pm.get_plugin("estatement") is None and h.pm.is_blocked("estatement")
    assert "estatement" not in h.registry.scenarios and "estatement-paperless" not in h.methodologies.versions
    assert h.pm.get_plugin("metro") is not None


def test_config_enabling_a_blocked_plugins_scenario_is_a_config_error(build_hub, config_data):
    config_data["plugins"] = {"block": ["estatement"]}
    with pytest.raises(ConfigError) as exc:
        build_hub(init=False)
    assert exc.value.errors == [("scenarios.estatement",
                                 "No plugin registers scenario 'estatement' (its plugin is blocked).")]
    assert str(exc.value).startswith("<dict>: scenarios.estatement: ")


def test_load_plugins_env_var_restricts_entry_points(build_hub, config_data, monkeypatch, tmp_path):
    install_entry_point_plugin(tmp_path, "ferry", THIRD_PARTY.format(api="1.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CARBONHUB_LOAD_PLUGINS", "metro")
    with pytest.raises(ConfigError) as exc:  # estatement is still configured
        build_hub(init=False)
    assert [key for key, _ in exc.value.errors] == ["scenarios.estatement"]

    without_estatement(config_data)
    h = build_hub(init=False)
    loaded = {name for name, plugin in h.pm.list_name_plugin() if plugin is not None}
    assert loaded == {"hub.rewards", "connectors.builtin", "metro"}  # the hub's own plugins are not entry points

    monkeypatch.setenv("CARBONHUB_LOAD_PLUGINS", " metro , ferry ")
    h = build_hub(init=False)
    assert {name for name, plugin in h.pm.list_name_plugin() if plugin} == {"hub.rewards", "connectors.builtin", "metro", "ferry"}


# --- lifecycle hooks are isolated ---------------------------------------------------------------------


@pytest.mark.parametrize("broken_first", [True, False], ids=["broken-registered-first", "broken-registered-last"])
def test_failing_lifecycle_hooks_are_logged_and_isolated(build_hub, caplog, broken_first):
    calls = []
    broken, recorder = failing_lifecycle_plugin("broken"), recorder_plugin("recorder", calls)
    h = build_hub(*((broken, recorder) if broken_first else (recorder, broken)))
    caplog.set_level(logging.ERROR, logger="carbonhub.plugins")

    account, created = h.open_account("bank-1")
    assert created and accounts.get_account(account.id) == account
    assert calls == [("account_opened", account)] and isinstance(calls[0][1], AccountRecord)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "broken" in failures[0].getMessage() and "carbonhub_account_opened" in failures[0].getMessage()

    caplog.clear()
    h.set_consent(account.id, "metro", True, at=CONSENT_AT)
    result = h.pipeline.ingest("szmetro", [metro_ride(account.id, "R1", RIDE_AT)])
    (record,) = result.records
    assert record.status == ACCEPTED
    seq = record.behaviours[0].tx_seq
    assert h.ledger.get(seq).postings  # committed despite the failing notification
    assert [(hook, tx.seq) for hook, tx in calls[1:]] == [("transaction_posted", seq)]
    assert isinstance(calls[1][1], TransactionRecord)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 1 and "broken" in messages[0] and "carbonhub_transaction_posted" in messages[0]
    assert h.notify("carbonhub_transaction_posted", transaction=h.ledger.get(seq)) == 1  # one plugin failed
    assert verify().ok


# --- the normalize subset -------------------------------------------------------------------------------


def test_a_plugin_that_answers_every_record_does_not_shadow_the_owner(build_hub):
    seen = []

    def normalize(ctx, record):
        seen.append(record.partner)
        return [Behaviour(scenario="metro", account_id=record.payload.get("account_id", "x"), event_id="greedy",
                          fingerprint=fingerprint("greedy", len(seen)), occurred_at=RIDE_AT,
                          quantity=Decimal(99), unit="pkm", attributes={})]

    h = build_hub(plugin_module("greedy", carbonhub_normalize_record=normalize))
    account, _ = h.open_account("bank-1")
    for scenario in ("metro", "estatement"):
        h.set_consent(account.id, scenario, True, at=CONSENT_AT)

    # Unrestricted, the greedy plugin (registered last, called first) would win.
    raw = RawRecord(inbox_id="in_x", partner="szmetro", payload=metro_ride(account.id, "R1", RIDE_AT),
                    received_at=RIDE_AT, scenarios=("metro",))
    assert h.pm.hook.carbonhub_normalize_record(ctx=h.ctx, record=raw)[0].event_id == "greedy"
    seen.clear()

    metro = h.pipeline.ingest("szmetro", [metro_ride(account.id, "R1", RIDE_AT)]).records[0]
    card = h.pipeline.ingest("cardcentre", [estatement(account.id, "ST-1", "2026-10", RIDE_AT - timedelta(days=17))])
    (card,) = card.records
    assert (metro.status, metro.behaviours[0].event_id, metro.behaviours[0].grams) == (ACCEPTED, "R1", 870)
    assert (card.status, card.behaviours[0].event_id, card.behaviours[0].scenario) == (ACCEPTED, "ST-1", "estatement")
    assert seen == []  # the greedy plugin owns no scenario, so it is never asked
