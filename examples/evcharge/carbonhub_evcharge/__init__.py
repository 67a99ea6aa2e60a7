"""VoltGrid public chargers: electricity charged into a battery-electric car instead of petrol.

VoltGrid (an imaginary charging operator) reports each finished charging
session of a user who linked a carbon account. Native record::

    {"session_id": "VG-2026-000981", "account_id": "acc_…", "charger_id": "SZ-NS-0042-03",
     "started_at": "2026-11-20T18:05:00+08:00", "ended_at": "2026-11-20T18:47:00+08:00",
     "energy_kwh": "32.4"}

``energy_kwh`` is what the charger's meter delivered. The methodology
(``ev-petrol-displacement``) credits the petrol a car would have burnt to drive
as far as that electricity takes a battery-electric car, minus the grid's
emissions for it. The same sessions can also be pulled from VoltGrid's API
(:mod:`carbonhub_evcharge.connector`).

Reason codes this plugin adds (besides the hub's and ``invalid_record``):

- ``implausible_energy`` (``energy_kwh``): more than ``max_session_kwh`` in one session;
- ``implausible_power`` (``energy_kwh``): energy ÷ duration above ``max_power_kw``.
"""
from datetime import timezone
from decimal import Decimal
from pathlib import Path

from hub import parsing
from hub.hookspecs import hookimpl
from hub.records import Behaviour, ConnectorSpec, MethodologySpec, Problem, RecordError, ScenarioSpec, fingerprint

from .connector import VoltGridSessions
from .formula import compute

__version__ = "0.1.0"
CARBONHUB_API = "1.0"  # the hub API this plugin was written for
SCENARIO = "evcharge"
METHODOLOGY = "ev-petrol-displacement"
UNIT = "kWh"  # must equal quantity_unit in the methodology documents
DOCUMENTS = tuple(sorted((Path(__file__).parent / "methodology").glob("*.toml")))
DEFAULTS = {"max_session_kwh": 150, "max_power_kw": 360}  # [plugin_config.evcharge] overrides


@hookimpl
def carbonhub_register_scenarios(ctx):
    return [ScenarioSpec(id=SCENARIO, title="Public EV charging instead of petrol", methodology=METHODOLOGY,
                         unit=UNIT, partner_kinds=("charging_operator",),
                         description="Electricity charged at a public charger into a battery-electric car, "
                                     "replacing the petrol a car would have burnt for the same distance.")]


@hookimpl
def carbonhub_register_methodologies(ctx):
    # The family formula ships with the plugin: no change to the hub's methodologies package.
    return [MethodologySpec(id=METHODOLOGY, documents=DOCUMENTS, formula=compute)]


@hookimpl
def carbonhub_register_connectors(ctx):
    return [ConnectorSpec(id="voltgrid-sessions", mode="pull", connector=VoltGridSessions,
                          partner_kind="charging_operator", scenarios=(SCENARIO,),
                          description="Finished charging sessions, paged from VoltGrid's API by ended_at.")]


@hookimpl
def carbonhub_normalize_record(ctx, record):
    if SCENARIO not in record.scenarios:
        return None  # another plugin's record
    p = record.payload
    started_at = parsing.timestamp(p, "started_at")  # each helper raises RecordError naming the field
    ended_at = parsing.timestamp(p, "ended_at")
    if ended_at <= started_at:
        raise RecordError("invalid_record", "ended_at must be after started_at.", "ended_at")
    account_id = parsing.text(p, "account_id", max_length=40)
    charger_id = parsing.text(p, "charger_id", max_length=40)
    minutes = Decimal(int((ended_at - started_at).total_seconds())) / 60
    return [Behaviour(
        scenario=SCENARIO,
        account_id=account_id,
        event_id=parsing.text(p, "session_id"),
        # The real act: one plug-in at one charger point, starting in this minute (UTC). A roaming
        # platform reporting the same session knows these too; the kWh it measures may differ.
        fingerprint=fingerprint(SCENARIO, account_id, charger_id.lower(),
                                started_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")),
        occurred_at=ended_at,  # the energy is delivered when the session ends
        quantity=parsing.decimal(p, "energy_kwh"),
        unit=UNIT,
        attributes={"charger_id": charger_id, "minutes": str(minutes.quantize(Decimal("0.1")))},
    )]


@hookimpl
def carbonhub_validate_behaviour(ctx, behaviour):
    if behaviour.scenario != SCENARIO:
        return None
    conf = {**DEFAULTS, **ctx.plugin_config("evcharge")}
    kwh = behaviour.quantity
    if kwh > Decimal(str(conf["max_session_kwh"])):
        return [Problem("implausible_energy", f"{kwh} kWh is more than one car takes in a session "
                                              f"({conf['max_session_kwh']} kWh).", "energy_kwh")]
    hours = Decimal(behaviour.attributes["minutes"]) / 60
    if hours > 0 and kwh / hours > Decimal(str(conf["max_power_kw"])):
        return [Problem("implausible_power", f"{kwh} kWh in {behaviour.attributes['minutes']} min is faster "
                                             f"than any charger ({conf['max_power_kw']} kW).", "energy_kwh")]
    return []
