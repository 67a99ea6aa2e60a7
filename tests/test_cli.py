"""The `carbonhub` command, run in-process with click's runner on a real database."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub import db
from hub.cli import main

CONFIG = """
[hub]
timezone = "Asia/Shanghai"
secrets_file = "{secrets}"

[partners.szmetro]
name = "Shenzhen Metro"
secret_env = "CARBONHUB_SECRET_SZMETRO"
scenarios = ["metro"]

[partners.cardcentre]
name = "Card Centre"
secret_env = "CARBONHUB_SECRET_CARDCENTRE"
scenarios = ["estatement"]

[scenarios.metro]
caps = {{ per_day_g = 3000, per_day_count = 5 }}
points = {{ per_kg = 100, bonus = 1 }}

[scenarios.estatement]
points = {{ bonus = 5 }}

[api_keys.app]
key_env = "CARBONHUB_KEY_APP"
scopes = ["accounts:read", "accounts:write"]
"""


@pytest.fixture
def cli(tmp_path, database_url):
    path = tmp_path / "hub.toml"
    path.write_text(CONFIG.format(secrets=tmp_path / "secrets.env"))
    runner = CliRunner()
    env = {"CARBONHUB_DATABASE_URL": database_url, "CARBONHUB_SECRET_SZMETRO": "metro-secret-value-123",
           "CARBONHUB_SECRET_CARDCENTRE": "", "CARBONHUB_KEY_APP": ""}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(path), *args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    yield run
    if not db.database.is_closed():
        db.database.close()


@pytest.mark.empty_database
def test_db_init_is_idempotent(cli):
    assert "schema version 1" in cli("db", "init")
    assert "schema version 1" in cli("db", "init")
    assert db.schema_version() == 1


def test_config_check_masks_secrets(cli):
    out = cli("config", "check")
    assert "metro-secret-value-123" not in out
    effective = json.loads(out[:out.rindex("}") + 1])
    assert effective["partners"]["szmetro"]["secret"].startswith("****")
    assert effective["partners"]["cardcentre"]["secret"] == "(unset)"
    assert "config ok" in out


def test_config_check_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenarios.metro]\ncaps = { per_day_g = -1 }\n')
    result = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert f"{bad}: scenarios.metro.caps.per_day_g:" in result.output


def test_plugins_lists_hooks_and_scenarios(cli):
    rows = {r["name"]: r for r in json.loads(cli("plugins", "--json"))}
    assert rows["metro"]["scenarios"] == ["metro"]
    assert "carbonhub_normalize_record" in rows["metro"]["hooks"]
    assert rows["estatement"]["methodologies"] == ["estatement-paperless"]
    assert "metro 0.1.0 (API 1.0)" in cli("plugins")


def test_demo_twice_credits_once_and_verify_catches_tampering(cli):
    first = cli("demo")
    assert "demo-alice" in first and "accepted" in first
    balances = {(b.account, b.unit): b.amount for b in db.Balance.select()}
    assert any(amount > 0 for (account, unit), amount in balances.items() if account.startswith("user:"))

    second = cli("demo")
    assert "accepted 0" in second
    assert {(b.account, b.unit): b.amount for b in db.Balance.select()} == balances

    assert "ledger ok" in cli("ledger", "verify")
    posting = db.Posting.select().where(db.Posting.unit == "g", db.Posting.amount > 0).order_by(db.Posting.id).first()
    db.Posting.update(amount=posting.amount + 1).where(db.Posting.id == posting.id).execute()
    broken = cli("ledger", "verify", code=1)
    assert f"BROKEN at seq {posting.tx_seq}" in broken


def test_inbox_list_and_replay_after_consent(cli):
    cli("demo")
    listed = cli("inbox", "list", "--reason", "no_consent")
    assert "demo-bob" in listed
    bob = db.Account.get(db.Account.bank_ref == "demo-bob")
    from datetime import datetime, timezone

    from hub.accounts import set_consent

    set_consent(bob.id, "estatement", True, datetime(2020, 1, 1, tzinfo=timezone.utc), source="test")
    summary = json.loads(cli("inbox", "replay", "--reason", "no_consent"))
    assert summary["accepted"] >= 1 and summary["rejected"] == 0
    again = json.loads(cli("inbox", "replay", "--reason", "no_consent"))
    assert again["records"] == 0


def test_ledger_reverse_corrects_once(cli):
    cli("demo")
    credit = db.LedgerTransaction.select().where(db.LedgerTransaction.kind == "credit").order_by(
        db.LedgerTransaction.seq).first()
    account = credit.memo["account"]
    before = db.Balance.get(db.Balance.account == f"user:{account}:carbon").amount
    grams = next(p.amount for p in db.Posting.select().where(db.Posting.tx_seq == credit.seq,
                                                               db.Posting.account == f"user:{account}:carbon"))
    out = cli("ledger", "reverse", str(credit.seq), "--reason", "partner withdrew the ride")
    assert f"of seq {credit.seq}" in out and out.startswith("posted")
    assert db.Balance.get(db.Balance.account == f"user:{account}:carbon").amount == before - grams
    assert cli("ledger", "reverse", str(credit.seq), "--reason", "partner withdrew the ride").startswith(
        "already posted")
    assert "already_reversed" in cli("ledger", "reverse", str(credit.seq), "--reason", "other", code=1)
    assert "ledger ok" in cli("ledger", "verify")


def test_push_signs_and_sends_a_batch_over_http(tmp_path, settings, database_url):
    """`carbonhub push` against a real HTTP server: signed, processed, one credit per ride."""
    import threading
    from datetime import datetime, timedelta, timezone

    from werkzeug.serving import make_server

    from conftest import SECRETS
    from hub.app import create_app
    from hub.core import Hub

    hub = Hub(settings, database_url=database_url)  # the real clock: the CLI signs with the real time
    hub.init_db()
    account, _ = hub.open_account("push-user")
    now = datetime.now(timezone.utc)
    hub.set_consent(account.id, "metro", True, at=now - timedelta(days=1))
    server = make_server("127.0.0.1", 0, create_app(hub=hub), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        entry = now - timedelta(hours=1)
        ride = {"ride_id": "PUSH-1", "account_id": account.id, "card_token": "tok-push", "city": "shenzhen",
                "line": "1", "entry_station": "Luohu", "exit_station": "Futian", "entry_at": entry.isoformat(),
                "exit_at": (entry + timedelta(minutes=20)).isoformat(), "distance_km": "6.1"}
        rides = tmp_path / "rides.json"
        rides.write_text(json.dumps([ride, ride]))
        config = tmp_path / "hub.toml"
        config.write_text(CONFIG.format(secrets=tmp_path / "none.env"))
        url = f"http://127.0.0.1:{server.server_port}"
        env = {"CARBONHUB_SECRET_SZMETRO": SECRETS["CARBONHUB_SECRET_SZMETRO"]}
        result = CliRunner().invoke(main, ["--config", str(config), "push", "szmetro", str(rides), "--url", url],
                                    env=env)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.output)
        assert [r["status"] for r in answer["results"]] == ["accepted", "duplicate"]
        assert answer["batch"]["grams"] == 285  # 6.1 km × 46.8 g/pkm = 285.48, rounded down

        env["CARBONHUB_SECRET_SZMETRO"] = "not-the-secret"
        refused = CliRunner().invoke(main, ["--config", str(config), "push", "szmetro", str(rides), "--url", url],
                                     env=env)
        assert refused.exit_code == 1 and "bad_signature" in refused.output
    finally:
        server.shutdown()
        thread.join()
    unreachable = CliRunner().invoke(main, ["--config", str(config), "push", "szmetro", str(rides), "--url", url],
                                     env=env)
    assert unreachable.exit_code == 2 and "cannot reach the hub" in unreachable.output


def test_verify_anchor_catches_a_rewritten_tail(cli):
    cli("demo")
    out = cli("ledger", "verify")
    anchor = out.split("head ")[1].split()[0]
    seq = int(anchor.split(":")[0])
    assert "ledger ok" in cli("ledger", "verify", "--anchor", anchor)
    # Someone removes the last transaction with its postings, fixes the balances and rewinds the head:
    # the chain alone is consistent again, the anchor is not.
    postings = list(db.Posting.select().where(db.Posting.tx_seq == seq))
    last = db.LedgerTransaction.get_by_id(seq)
    for p in postings:
        db.Balance.update(amount=db.Balance.amount - p.amount).where(
            (db.Balance.account == p.account) & (db.Balance.unit == p.unit)).execute()
    db.Posting.delete().where(db.Posting.tx_seq == seq).execute()
    db.LedgerTransaction.delete().where(db.LedgerTransaction.seq == seq).execute()
    db.LedgerHead.update(seq=seq - 1, hash=last.prev_hash).execute()
    assert "ledger ok" in cli("ledger", "verify")
    broken = cli("ledger", "verify", "--anchor", anchor, code=1)
    assert f"seq {seq}: anchored transaction is missing" in broken
    assert "is not SEQ:HASH" in cli("ledger", "verify", "--anchor", "12:abc", code=2)


def test_worker_once_runs_every_scheduled_job(cli):
    cli("demo")
    out = json.loads(cli("worker", "--once"))
    # Nothing is due right after the demo: nothing expires, no hold is stale.
    assert out["points-expiry"]["lots"] == 0 and out["redemptions-void-stale"] == {"voided": 0}
    assert "aggregation" not in out  # this config names no exchange
