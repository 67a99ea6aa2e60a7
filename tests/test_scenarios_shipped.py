"""The nine scenario plugins as the bank ships them (config/hub.toml).

Every partner's good samples (``tests/fixtures/<plugin>/``, the files each
scenario's own tests use) go through one hub; then each scenario in turn is
switched off in config, and exactly its records change: they answer
``scenario_disabled``, and every other record ends as before.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from conftest import shipped_config

from bench.mix import copy, samples
from hub import db
from hub.cli import main
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub

SCENARIOS = {"metro": "metro", "bus": "bus", "bike": "bike", "airlines": "light_travel", "recycling": "recycling",
             "reading": "reading", "utility_payments": "utility_payments", "estatement": "estatement",
             "ecard": "ecard"}
LATER = datetime(2027, 1, 1, 4, tzinfo=timezone.utc)  # after every sample's date
CST = timezone(timedelta(hours=8))


def test_plugins_lists_the_nine_scenario_plugins(monkeypatch):
    monkeypatch.setenv("CARBONHUB_DATABASE_URL", "sqlite:///:memory:")
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    owned = {row["name"]: row["scenarios"] for row in json.loads(result.output) if row["scenarios"]}
    assert owned == {plugin: [scenario] for plugin, scenario in SCENARIOS.items()}


def outcomes(database_url: str, disabled: str | None = None) -> list[tuple]:
    """(partner, record, scenarios, status, reason, grams) of every good sample, in order."""
    data = shipped_config()
    if disabled:
        data["scenarios"][disabled]["enabled"] = False
    environ = {p["secret_env"]: "s" * 20 for p in data["partners"].values()}
    hub = Hub(load_settings(data=data, environ=environ), clock=FixedClock(LATER), database_url=database_url)
    if database_url.startswith("postgresql"):
        db.drop_schema()
    hub.init_db()
    account, _ = hub.open_account("sampler")
    for scenario in SCENARIOS.values():
        hub.set_consent(account.id, scenario, True, at=datetime(2020, 1, 1, tzinfo=CST))
    out = []
    for partner, (good, _) in sorted(samples().items()):
        result = hub.pipeline.ingest(partner, [copy(r, 0, account.id) for r in good])
        for i, r in enumerate(result.records):
            out.append((partner, i, tuple(b.scenario for b in r.behaviours), r.status, r.reason,
                        sum(b.grams for b in r.behaviours)))
    db.database.close()
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    from conftest import PG_URL

    return outcomes(PG_URL or f"sqlite:///{tmp_path_factory.mktemp('baseline')}/hub.db")


def test_every_scenario_credits_some_of_its_samples(baseline):
    credited = {s for *_, scenarios, status, _, grams in baseline if status == "accepted" and grams > 0
                for s in scenarios}
    assert credited == set(SCENARIOS.values())


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.values()))
def test_switching_a_scenario_off_changes_only_its_records(baseline, database_url, scenario):
    after = outcomes(database_url, disabled=scenario)
    assert len(after) == len(baseline)
    changed = 0
    for before, now in zip(baseline, after):
        if scenario in before[2]:
            assert now[3:] == ("rejected", "scenario_disabled", 0), (before, now)
            changed += 1
        else:
            assert now == before
    assert changed > 0
