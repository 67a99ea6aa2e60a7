"""The hub's conformance suite run against the VoltGrid plugin, plus the methodology's worked example."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import carbonhub_evcharge
from hub.testing import ACCOUNT, PluginConformance, load_samples

SAMPLES = load_samples(Path(__file__).resolve().parents[1] / "samples" / "samples.json")
CONFIG = {
    "partners": {"voltgrid": {"name": "VoltGrid public chargers", "secret_env": "CARBONHUB_SECRET_VOLTGRID",
                              "scenarios": ["evcharge"], "kind": "charging_operator"}},
    "scenarios": {"evcharge": {"points": {"per_kg": 10, "bonus": 0}}},
    "plugin_config": {"evcharge": {"max_session_kwh": 150, "max_power_kw": 360}},
}


def session(number: int, ended_at: str, kwh: str = "20") -> dict:
    """A session of VoltGrid's API, 30 minutes long, ending at ``ended_at`` (UTC)."""
    end = datetime.fromisoformat(ended_at.replace("Z", "+00:00"))
    start = end - timedelta(minutes=30)
    return {"session_id": f"VG-2026-{number:06d}", "account_id": ACCOUNT, "charger_id": f"SZ-NS-{number:04d}-01",
            "started_at": start.isoformat(), "ended_at": end.isoformat(), "energy_kwh": kwh}


class TestVoltGridConformance(PluginConformance):
    plugin = carbonhub_evcharge
    config = CONFIG
    now = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
    good_records = SAMPLES.good
    bad_records = SAMPLES.bad
    # Two recorded pages of GET /sessions (sorted by ended_at), as VoltGrid's API answers them.
    pull_pages = [
        {"data": [session(1, "2026-11-20T08:00:00Z"), session(2, "2026-11-20T09:00:00Z")],
         "next_page_token": "p2"},
        {"data": [session(3, "2026-11-20T10:00:00Z", kwh="11.5")], "next_page_token": None},
    ]


def test_worked_example_matches_the_methodology(tmp_path, monkeypatch):
    """32.4 kWh: 32.4 ÷ 0.337 × 400 − 32.4 × 585.6 = 38456.97… − 18973.44 = 19483 g (rounded down)."""
    from hub.config import load_settings
    from hub.context import FixedClock
    from hub.core import Hub

    monkeypatch.setenv("CARBONHUB_LOAD_PLUGINS", "")
    hub = Hub(load_settings(data={**CONFIG, "hub": {"secrets_file": str(tmp_path / "none.env")}}, environ={}),
              clock=FixedClock(TestVoltGridConformance.now), database_url=f"sqlite:///{tmp_path}/hub.db",
              extra_plugins=[carbonhub_evcharge])
    version = hub.methodologies.get("ev-petrol-displacement", "2025.1")
    (behaviour,) = hub.pm.hook.carbonhub_normalize_record(ctx=hub.ctx, record=_raw(SAMPLES.good[0][0]))
    reduction = version.compute(behaviour)
    assert reduction.grams == 19483 == SAMPLES.good[0][2]
    assert reduction.project_g == Decimal("18973.440")
    assert [f.name for f in reduction.factors] == ["ev_use", "petrol_car", "grid"]
    assert all(f.source for f in reduction.factors)


def _raw(payload):
    from hub.records import RawRecord

    return RawRecord(inbox_id="inb_1", partner="voltgrid", payload={**payload, "account_id": "acc_1"},
                     received_at=TestVoltGridConformance.now, scenarios=("evcharge",))
