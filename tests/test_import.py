"""Batch import: ``carbonhub import <partner> <file>`` (connectors/importer.py, docs/import.md).

Runs on the real database of the ``hub`` fixture (SQLite, or PostgreSQL with
CARBONHUB_TEST_DATABASE_URL) with the shipped config/hub.toml, so the recycler's
``aihuishou-monthly`` binding is the one the bank ships. The CLI runs through
click's CliRunner on the fixture's hub; the interruption test runs the real
``carbonhub`` command in a subprocess and kills it with SIGKILL.
"""
from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PG_URL, shipped_config

from connectors.importer import ImportConflict, ImportRefused, file_digest, import_file
from hub import db
from hub.cli import main
from hub.ledger import verify

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "recycling"
CST = timezone(timedelta(hours=8))
CONSENT_AT = datetime(2020, 7, 1, tzinfo=CST)
METRO_HEADER = ("ride_id", "account_id", "card_token", "city", "line", "entry_station", "exit_station", "entry_at",
                "exit_at", "distance_km")


@pytest.fixture
def config_data():
    """The shipped config/hub.toml (what the subprocess reads too), without the local secrets file."""
    data = copy.deepcopy(shipped_config())
    data["hub"]["secrets_file"] = "/nonexistent/secrets.env"
    return data


@pytest.fixture
def account(hub):
    acc, _ = hub.open_account("cust-import-0001")
    hub.set_consent(acc.id, "recycling", True, at=CONSENT_AT)
    hub.set_consent(acc.id, "metro", True, at=CONSENT_AT)
    return acc.id


def fixture_csv(tmp_path: Path, name: str, account_id: str) -> Path:
    """A recycling fixture file with the test account, under tmp_path (the rejects file goes next to it)."""
    path = tmp_path / name
    path.write_text((FIXTURES / name).read_text(encoding="utf-8").replace("{account}", account_id), encoding="utf-8")
    return path


def run(hub, *args: str):
    """``carbonhub <args>`` on the fixture's hub."""
    return CliRunner().invoke(main, list(args), obj={"hub": hub}, catch_exceptions=False)


def ride(i: int, accounts: list[str]) -> dict[str, str]:
    """Metro ride ``i``: account ``i % n``, two rides a day from 1 November 2026, 2.0 to 7.9 km."""
    slot, acct = divmod(i, len(accounts))
    day, evening = divmod(slot, 2)
    km10 = 20 + (i * 7919) % 60
    entry = (18 if evening else 8) * 60 + i % 50
    exit_ = entry + 5 + km10 // 5
    date = (datetime(2026, 11, 1) + timedelta(days=day)).date().isoformat()
    return {"ride_id": f"SZM-{i:07d}", "account_id": accounts[acct], "card_token": f"tok_{acct:08x}",
            "city": "shenzhen", "line": str(1 + i % 5), "entry_station": "Luohu", "exit_station": "Chegongmiao",
            "entry_at": f"{date}T{entry // 60:02d}:{entry % 60:02d}:00+08:00",
            "exit_at": f"{date}T{exit_ // 60:02d}:{exit_ % 60:02d}:00+08:00", "distance_km": f"{km10 / 10:.1f}"}


def metro_accounts(hub, n: int) -> list[str]:
    ids = []
    for k in range(n):
        acc, _ = hub.open_account(f"cust-metro-{k:04d}")
        hub.set_consent(acc.id, "metro", True, at=CONSENT_AT)
        ids.append(acc.id)
    return ids


def write_rides_csv(path: Path, rows: int, accounts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRO_HEADER)
        for i in range(rows):
            r = ride(i, accounts)
            writer.writerow([r[c] for c in METRO_HEADER])
    return path


def rejects_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def inbox_of(import_id: str) -> list[db.InboxRecord]:
    return list(db.InboxRecord.select().where(db.InboxRecord.batch_id == import_id))


def credited(hub) -> int:
    return -hub.ledger.balance("@issuer:recycling", "g")


# --- the recycler's monthly CSV --------------------------------------------------------------------------


def test_recycler_monthly_csv_is_reshaped_and_credited(hub, account, tmp_path):
    path = fixture_csv(tmp_path, "aihuishou-2026-11.csv", account)
    result = run(hub, "import", "aihuishou", str(path))
    assert result.exit_code == 0, result.output
    assert "accepted   5   duplicate 0   rejected 0" in result.output
    assert "108,499 g, 1,109 pts" in result.output

    (imp,) = db.ImportFile.select()
    assert (imp.partner, imp.status, imp.rows_done, imp.name) == ("aihuishou", "done", 5, path.name)
    assert imp.counts["accepted"] == 5 and imp.counts["grams"] == 108_499
    rows = {r.event_id: r for r in inbox_of(imp.id)}
    assert {r.source for r in rows.values()} == {"batch"} and {r.status for r in rows.values()} == {"accepted"}
    # The reshaped native record: item id from order and line, Beijing time, dotted device columns.
    phone = rows["AHS-20261118-000731-01"].payload
    assert phone == {"item_id": "AHS-20261118-000731-01", "order_id": "AHS-20261118-000731", "account_id": account,
                     "item_kind": "phone", "outcome": "resold", "handed_over_at": "2026-11-18T15:20:00+08:00",
                     "device_token": "imei_5c1f09ab", "model": "iPhone 14 Pro Max", "condition_pct": "90"}
    assert rows["AHS-20261105-000093-01"].payload["model"] == "Galaxy S21, 5G"  # a quoted cell with a comma
    assert rows["AHS-20261117-000288-01"].payload["weight_kg"] == "2.35"  # 2350 g
    grams = {b.event_id: b.grams for b in db.Behaviour.select()}
    # docs/scenarios/recycling.md: 51 903 g for the 90%-new phone, 8 460 g for 2.35 kg of clothes,
    # 1 500 g for three books, 500 g for one, 46 136 g for an 85%-new phone (grade 80).
    assert grams == {"AHS-20261118-000731-01": 51_903, "AHS-20261117-000288-01": 8_460,
                     "AHS-20261116-000102-01": 1_500, "AHS-20261110-000450-02": 500,
                     "AHS-20261105-000093-01": 46_136}
    assert credited(hub) == 108_499
    assert not (tmp_path / (path.name + ".rejects.jsonl")).exists()  # nothing rejected: no rejects file

    (run_row,) = db.ConnectorRun.select()
    assert (run_row.connector, run_row.stream, run_row.mode, run_row.status) == ("aihuishou-monthly", "file",
                                                                                 "batch", "ok")
    assert run_row.fetched == 5 and run_row.counts == {"accepted": 5, "duplicate": 0, "rejected": 0}
    assert run_row.cursor_to == f"{imp.id}:5" and run_row.finished_at is not None


def test_a_pushed_item_in_the_monthly_file_is_a_duplicate(hub, account, tmp_path):
    """The file's item ids are those of the recycler's pushes: an item both pushed and listed counts once."""
    pushed = {"item_id": "AHS-20261118-000731-01", "account_id": account, "item_kind": "phone", "outcome": "resold",
              "handed_over_at": "2026-11-18T15:20:00+08:00", "device_token": "imei_5c1f09ab", "condition_pct": 90}
    assert hub.pipeline.ingest("aihuishou", [pushed]).counts["accepted"] == 1
    summary = import_file(hub, "aihuishou", fixture_csv(tmp_path, "aihuishou-2026-11.csv", account))
    assert (summary.accepted, summary.duplicate) == (4, 1)
    assert summary.reasons == {"duplicate_event": 1}
    assert credited(hub) == 108_499


def test_bad_lines_are_rejected_into_the_inbox_and_the_rejects_file(hub, account, tmp_path):
    path = fixture_csv(tmp_path, "aihuishou-2026-11-bad.csv", account)
    result = run(hub, "import", "aihuishou", str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # 8 data rows (the blank line is not a row): 2 credited, 6 rejected, nothing lost.
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (8, 2, 6)
    assert summary["grams"] == 6_480 + 1_000  # 1.8 kg of clothes, two books
    rejects_path = tmp_path / "aihuishou-2026-11-bad.csv.rejects.jsonl"
    assert summary["rejects_file"] == str(rejects_path)
    got = [(r["line"], r["reason"], r["field"]) for r in rejects_of(rejects_path)]
    assert got == [(3, "malformed_row", None), (4, "invalid_record", "handover_time"),
                   (5, "invalid_record", "weight_g"), (6, "unknown_item_kind", "item_kind"),
                   (7, "no_factor", "outcome"), (8, "invalid_record", "order_no")]
    first = rejects_of(rejects_path)[0]
    assert first["message"] == "Line 3 has 9 cells; the header has 11."
    assert first["record"][0] == "AHS-20261103-000121"  # the cells as read
    assert rejects_of(rejects_path)[1]["record"]["handover_time"] == "04/11/2026 10:00"

    # Every rejected line is a rejected inbox record with its reason, under the import's batch id.
    rows = inbox_of(summary["import_id"])
    assert len(rows) == 8
    by_inbox = {r.id: r for r in rows}
    for entry in rejects_of(rejects_path):
        row = by_inbox[entry["inbox_id"]]
        assert (row.status, row.reason) == ("rejected", entry["reason"])
        assert row.detail["message"] == entry["message"]
    unreadable = [r for r in rows if (r.detail or {}).get("unreadable")]
    assert sorted(r.payload["line"] for r in unreadable) == [3, 4, 5, 8]  # the lines no plugin could read
    assert all(r.payload["file"] == path.name for r in unreadable)
    # A replay re-runs the plugin's rejections only: an unreadable line waits for the partner to resend it.
    replay = hub.pipeline.replay(partner="aihuishou")
    assert sum(replay.counts.values()) == 2 and replay.counts["rejected"] == 2


def test_rejects_file_can_be_csv(hub, account, tmp_path):
    path = fixture_csv(tmp_path, "aihuishou-2026-11-bad.csv", account)
    rejects = tmp_path / "out" / "rejects.csv"
    rejects.parent.mkdir()
    result = run(hub, "import", "aihuishou", str(path), "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    with open(rejects, encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["line"], r["reason"], r["field"]) for r in table][:2] == [("3", "malformed_row", ""),
                                                                         ("4", "invalid_record", "handover_time")]
    assert json.loads(table[1]["record"])["order_no"] == "AHS-20261104-000300"
    assert not (tmp_path / "aihuishou-2026-11-bad.csv.rejects.jsonl").exists()


# --- refusal and --force ----------------------------------------------------------------------------------


def test_a_file_already_imported_is_refused_and_force_credits_nothing_twice(hub, account, tmp_path):
    path = fixture_csv(tmp_path, "aihuishou-2026-11.csv", account)
    assert run(hub, "import", "aihuishou", str(path)).exit_code == 0
    transactions = db.LedgerTransaction.select().count()

    again = run(hub, "import", "aihuishou", str(path))
    assert again.exit_code == 1
    assert "error: already_imported:" in again.output and "--force" in again.output
    assert db.ImportFile.select().count() == 1 and db.ConnectorRun.select().count() == 1  # nothing written

    # The same bytes under another name are the same file.
    copy_path = tmp_path / "renamed.csv"
    copy_path.write_bytes(path.read_bytes())
    assert run(hub, "import", "aihuishou", str(copy_path)).exit_code == 1

    forced = run(hub, "import", "aihuishou", str(path), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.output)
    assert (summary["accepted"], summary["duplicate"], summary["grams"], summary["forced"]) == (0, 5, 0, True)
    assert db.LedgerTransaction.select().count() == transactions
    assert credited(hub) == 108_499
    assert db.ImportFile.select().where(db.ImportFile.status == "done").count() == 2


# --- JSON Lines, the built-in file connector -----------------------------------------------------------------


def test_jsonl_file_through_the_builtin_connector(hub, tmp_path):
    accounts = metro_accounts(hub, 3)
    lines = [json.dumps(ride(i, accounts)) for i in range(6)]
    lines.insert(2, '{"ride_id": "SZM-broken", ')           # line 3: not JSON
    lines.insert(4, "")                                      # line 5: blank, skipped
    lines.insert(5, '["SZM-0000099", "a list"]')             # line 6: JSON, not an object
    path = tmp_path / "rides-2026-11.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = import_file(hub, "szmetro", path)
    assert (summary.connector, summary.format, summary.rows) == ("szmetro.file", "jsonl", 8)
    assert (summary.accepted, summary.rejected) == (6, 2)
    assert summary.reasons == {"malformed_json": 2}
    got = [(r["line"], r["reason"]) for r in rejects_of(Path(summary.rejects_path))]
    assert got == [(3, "malformed_json"), (6, "malformed_json")]
    assert rejects_of(Path(summary.rejects_path))[0]["record"] == '{"ride_id": "SZM-broken", '


def test_dotted_columns_of_the_builtin_reader_become_nested_objects(hub, tmp_path):
    """A partner whose native record nests objects sends them as dotted columns; empty cells are left out."""
    accounts = metro_accounts(hub, 1)
    r = ride(0, accounts)
    path = tmp_path / "rides.csv"
    path.write_text("ride_id,account_id,card_token,city,line,entry_station,exit_station,entry_at,exit_at,"
                    "distance_km,extra.gate,extra.note\n"
                    + ",".join(r[c] for c in METRO_HEADER) + ",A3,\n", encoding="utf-8")
    summary = import_file(hub, "szmetro", path)
    assert summary.accepted == 1
    (row,) = inbox_of(summary.import_id)
    assert row.payload["extra"] == {"gate": "A3"} and row.payload["ride_id"] == "SZM-0000000"


# --- empty, header only, wrong format -----------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "order_no,line_no,member_id,category,disposition,handover_time\n"],
                         ids=["empty", "header-only"])
def test_a_file_without_rows_imports_nothing(hub, tmp_path, content):
    path = tmp_path / "aihuishou-2026-12.csv"
    path.write_text(content, encoding="utf-8")
    result = run(hub, "import", "aihuishou", str(path))
    assert result.exit_code == 0, result.output
    assert "rows       0" in result.output and "no data rows" in result.output
    (imp,) = db.ImportFile.select()
    assert (imp.status, imp.rows_done) == ("done", 0)
    assert db.InboxRecord.select().count() == 0
    assert run(hub, "import", "aihuishou", str(path)).exit_code == 1  # the same (empty) file again


def test_wrong_formats_are_refused_before_anything_is_written(hub, tmp_path):
    txt = tmp_path / "rides.txt"
    txt.write_text("ride_id\nSZM-1\n", encoding="utf-8")
    result = run(hub, "import", "szmetro", str(txt))
    assert result.exit_code == 1 and "error: unknown_format:" in result.output
    binary = tmp_path / "rides.csv"
    binary.write_bytes(b"ride_id,account_id\n" + bytes(range(128, 256)) * 10)
    result = run(hub, "import", "szmetro", str(binary))
    assert result.exit_code == 1 and "error: not_text:" in result.output and "byte 19" in result.output
    assert db.ImportFile.select().count() == 0 and db.InboxRecord.select().count() == 0
    result = run(hub, "import", "nobody", str(binary))
    assert result.exit_code == 1 and "unknown_partner" in result.output
    result = run(hub, "import", "szmetro", str(binary), "--connector", "aihuishou-monthly")
    assert result.exit_code == 1 and "unknown_connector" in result.output


def test_a_csv_sent_as_json_lines_is_rejected_line_by_line(hub, account, tmp_path):
    path = tmp_path / "aihuishou-2026-11.jsonl"
    path.write_text(fixture_csv(tmp_path, "aihuishou-2026-11.csv", account).read_text(), encoding="utf-8")
    summary = import_file(hub, "szmetro", path)
    assert (summary.rows, summary.rejected, summary.reasons) == (6, 6, {"malformed_json": 6})
    assert credited(hub) == 0


# --- resume ---------------------------------------------------------------------------------------------------


class Stop(Exception):
    pass


def test_an_interrupted_import_resumes_after_the_committed_rows(hub, tmp_path):
    accounts = metro_accounts(hub, 10)
    path = write_rides_csv(tmp_path / "rides.csv", 95, accounts)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("SZM-bad,too,few,cells\n")  # line 97, the 96th row: rejected in the second run

    def stop_after_two_chunks(position: int, rows: int) -> None:
        if rows >= 20:
            raise Stop

    with pytest.raises(Stop):
        import_file(hub, "szmetro", path, chunk_size=10, progress=stop_after_two_chunks)
    (imp,) = db.ImportFile.select()
    assert (imp.status, imp.rows_done) == ("running", 20)
    assert len(inbox_of(imp.id)) == 20
    (failed,) = db.ConnectorRun.select()
    assert failed.status == "failed" and failed.cursor_to == f"{imp.id}:20"

    # A rejects entry written for a chunk that then failed to commit is dropped on resume.
    rejects = tmp_path / "rides.csv.rejects.jsonl"
    rejects.write_text(json.dumps({"line": 30, "reason": "never_committed"}) + "\n", encoding="utf-8")

    summary = import_file(hub, "szmetro", path, chunk_size=10)
    assert (summary.import_id, summary.resumed_from, summary.rows) == (imp.id, 20, 96)
    assert (summary.accepted, summary.duplicate, summary.rejected) == (95, 0, 1)  # whole-file counts
    assert [(r["line"], r["reason"]) for r in rejects_of(rejects)] == [(97, "malformed_row")]
    rows = inbox_of(imp.id)
    assert len(rows) == 96 and len({r.event_id for r in rows if r.event_id}) == 95
    assert db.LedgerTransaction.select().count() == 95
    assert db.ImportFile.get_by_id(imp.id).status == "done"
    assert [r.status for r in db.ConnectorRun.select().order_by(db.ConnectorRun.id)] == ["failed", "ok"]


def test_two_processes_cannot_advance_the_same_import(hub, tmp_path):
    """rows_done moves only from the value this run expects: a chunk racing another run rolls back."""
    accounts = metro_accounts(hub, 5)
    path = write_rides_csv(tmp_path / "rides.csv", 30, accounts)

    def other_process_moved_it(position: int, rows: int) -> None:
        if rows == 10:
            db.ImportFile.update(rows_done=db.ImportFile.rows_done + 10).execute()

    with pytest.raises(ImportConflict):
        import_file(hub, "szmetro", path, chunk_size=10, progress=other_process_moved_it)
    (imp,) = db.ImportFile.select()
    assert len(inbox_of(imp.id)) == 10  # the conflicting chunk was rolled back


def test_two_imports_of_a_new_file_started_together_claim_it_once(hub, database_url, tmp_path):
    """Another process claims the file between this import's read and its insert: this one resumes its claim."""
    accounts = metro_accounts(hub, 5)
    path = write_rides_csv(tmp_path / "rides.csv", 30, accounts)
    sha256, size = file_digest(path, "utf-8-sig")
    claimed, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_process() -> None:  # its own connection, its claim committed only once this import has read
        other = db.make_database(database_url)
        try:
            with other.atomic():
                other.execute_sql('INSERT INTO "import_file" ("id", "partner", "sha256", "name", "size", "rows_done", '
                                  '"status", "started_at") VALUES (%s)' % ", ".join([other.param] * 8),
                                  ("imp_other", "szmetro", sha256, path.name, size, 0, "running",
                                   db.to_db(hub.now())))
                claimed.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            claimed.set()
        finally:
            other.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    assert claimed.wait(10)
    # The other claim is not committed yet: this import reads no claim, then its insert waits for the
    # other's transaction (SQLite's write lock, PostgreSQL's unique index) and finds it committed.
    threading.Timer(1.0, release.set).start()
    summary = import_file(hub, "szmetro", path, chunk_size=10)
    thread.join(10)
    assert not errors
    assert [(r.id, r.status, r.rows_done) for r in db.ImportFile.select()] == [("imp_other", "done", 30)]
    assert (summary.import_id, summary.rows, summary.accepted) == ("imp_other", 30, 30)
    assert db.LedgerTransaction.select().count() == 30


def test_one_partner_file_has_at_most_one_running_import(hub, tmp_path):
    row = dict(partner="szmetro", sha256="ab" * 32, name="rides.csv", size=1, rows_done=0,
               started_at=db.to_db(hub.now()))
    db.ImportFile.create(id="imp_a", status="done", **row)
    db.ImportFile.create(id="imp_b", status="running", **row)  # a forced re-import of a done file
    with pytest.raises(db.pw.IntegrityError), db.database.atomic():
        db.ImportFile.create(id="imp_c", status="running", **row)
    db.ImportFile.create(id="imp_d", status="running", **{**row, "partner": "other"})


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_import_resumes_without_double_credit(hub, database_url, tmp_path):
    """The real command, killed with SIGKILL once rows are committed, then run again."""
    accounts = metro_accounts(hub, 200)
    rows = 4000
    path = write_rides_csv(tmp_path / "szmetro-2026-11.csv", rows, accounts)
    env = {**os.environ, "CARBONHUB_CONFIG": str(ROOT / "config" / "hub.toml"),
           "CARBONHUB_DATABASE_URL": database_url}
    command = [str(Path(sys.executable).with_name("carbonhub")), "import", "szmetro", str(path), "--chunk-size", "50"]
    db.database.close()  # the subprocess writes; this process only polls
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            imp = db.ImportFile.get_or_none()
            if imp is not None and imp.rows_done >= 300:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the import committed nothing in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    imp = db.ImportFile.get_by_id(imp.id)
    assert imp.status == "running" and 300 <= imp.rows_done < rows, "killed too late to test a resume"
    assert len(inbox_of(imp.id)) == imp.rows_done  # exactly the committed rows
    killed_at = imp.rows_done

    result = run(hub, "import", "szmetro", str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["import_id"], summary["resumed_from"], summary["rows"]) == (imp.id, killed_at, rows)
    # Every ride once: a ride processed twice would be a duplicate_event.
    assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == (rows, 0, 0)
    inbox = inbox_of(imp.id)
    assert len(inbox) == rows and len({r.event_id for r in inbox}) == rows
    assert db.Behaviour.select().count() == rows
    assert db.LedgerTransaction.select().count() == rows
    assert -hub.ledger.balance("@issuer:metro", "g") == summary["grams"] > 0
    report = verify()
    assert report.ok, report.problems
    runs = list(db.ConnectorRun.select().order_by(db.ConnectorRun.id))
    assert [r.status for r in runs] == ["running", "ok"]  # the killed run could record nothing
    assert runs[1].cursor_from == f"{imp.id}:{killed_at}"


def test_import_refused_error_codes_are_typed(hub, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as err:
        import_file(hub, "szmetro", path, connector="nope")
    assert err.value.code == "unknown_connector"
