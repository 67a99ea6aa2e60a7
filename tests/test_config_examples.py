"""Every config the repository ships (config/*.toml and config/examples/*.toml) loads and
builds a working hub with the installed plugins, and the launch example enables exactly
the three financial scenarios of the seed product's launch (docs/config.md)."""
from __future__ import annotations

import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import NOW

from hub import db
from hub.config import load_settings
from hub.context import FixedClock
from hub.core import Hub
from hub.ledger import user_carbon

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config").glob("*.toml")) + sorted((ROOT / "config" / "examples").glob("*.toml"))
LAUNCH = ROOT / "config" / "examples" / "launch-financial.toml"
CST = timezone(timedelta(hours=8))


def test_the_configs_are_found():
    assert ROOT / "config" / "hub.toml" in CONFIGS and LAUNCH in CONFIGS


def secrets_environ(path: Path) -> dict[str, str]:
    """A test value for every secret the file names (partners' secret_env, API keys' key_env)."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    names = [p["secret_env"] for p in data.get("partners", {}).values()]
    names += [k["key_env"] for k in data.get("api_keys", {}).values()]
    return {name: f"test-{name.lower()}-0123456789" for name in names}


def build(path: Path, tmp_path: Path) -> Hub:
    environ = secrets_environ(path)
    settings = load_settings(path, environ=environ)
    hub = Hub(settings, clock=FixedClock(NOW), database_url=f"sqlite:///{tmp_path}/hub.db")
    hub.init_db()
    # Every partner and key is active with the test environment, none read from a secrets file.
    assert {p.secret_env: settings.secret(p.secret_env) for p in settings.partners.values()} == \
        {p.secret_env: environ[p.secret_env] for p in settings.partners.values()}
    return hub


@pytest.fixture
def close_db():
    yield
    if not db.database.is_closed():
        db.database.close()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(ROOT).as_posix() for p in CONFIGS])
def test_config_loads_and_builds_a_hub(path, tmp_path, close_db):
    hub = build(path, tmp_path)
    with open(path, "rb") as fh:
        configured = set(tomllib.load(fh).get("scenarios", {}))
    assert set(hub.enabled_scenarios()) == configured  # every configured scenario has its plugin
    for sid in configured:
        view = hub.scenario_view(sid)
        assert view["methodology"]["version_in_force"], f"{path.name}: {sid} has no version in force"
    assert {p.id for p in db.Partner.select()} == set(hub.settings.partners)


def test_launch_config_enables_exactly_the_three_financial_scenarios(tmp_path, close_db):
    hub = build(LAUNCH, tmp_path)
    assert hub.enabled_scenarios() == ["ecard", "estatement", "utility_payments"]
    assert {sid: hub.scenario_view(sid)["methodology"]["id"] for sid in hub.enabled_scenarios()} == {
        "ecard": "ecard-no-plastic", "estatement": "estatement-paperless",
        "utility_payments": "utility-payment-online"}
    assert {sid: hub.scenario_view(sid)["partners"] for sid in hub.enabled_scenarios()} == {
        "ecard": ["cardcentre"], "estatement": ["cardcentre", "mbank"], "utility_payments": ["sgcc"]}
    # Installed plugins whose scenarios the bank did not configure are off.
    assert {"metro", "bike"} <= set(hub.registry.scenarios) - set(hub.enabled_scenarios())

    # An e-card through the card centre earns the documented 89 g (docs/scenarios/ecard.md).
    account, _ = hub.open_account("cust-launch-0001")
    hub.set_consent(account.id, "ecard", True, at=datetime(2026, 1, 1, tzinfo=CST))
    card = {"application_id": "ECA-20261115-000731", "type": "issued", "account_id": account.id,
            "card_token": "ctk_5b0e9a27c4d1", "product": "e-card UnionPay", "issue": "new",
            "applied_at": "2026-11-15T09:48:00+08:00", "issued_at": "2026-11-15T10:22:00+08:00",
            "plastic_card": False}
    (rec,) = hub.pipeline.ingest("cardcentre", [card]).records
    assert (rec.status, rec.behaviours[0].grams, rec.behaviours[0].points) == ("accepted", 89, 18)
    assert hub.ledger.balance(user_carbon(account.id), "g") == 89
