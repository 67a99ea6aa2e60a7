"""The partner kit: ``carbonhub plugin new``, the conformance suite (hub.testing) and examples/evcharge.

A scaffolded project and the example are run as a partner runs them: pytest in
a subprocess, with the project on PYTHONPATH (never installed into this
environment, where its entry point would load in every other test).
"""
from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import main
from hub.cli_plugin import scaffold
from hub.plugins import ENTRY_POINT_GROUP
from hub.testing import ACCOUNT, load_samples, with_account

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "evcharge"


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The project's own tests, as its partner runs them (CARBONHUB_TEST_DATABASE_URL passes through)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CARBONHUB_") or k == "CARBONHUB_TEST_DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


def passed(proc: subprocess.CompletedProcess) -> int:
    m = re.search(r"(\d+) passed", proc.stdout)
    return int(m.group(1)) if m else 0


# --- carbonhub plugin new --------------------------------------------------------------------------


def test_plugin_new_writes_the_project(tmp_path):
    result = CliRunner().invoke(main, ["plugin", "new", "city_bins", "--dir", str(tmp_path / "p"),
                                       "--title", "City recycling bins"])
    assert result.exit_code == 0, result.output
    project = tmp_path / "p"
    assert {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()} == {
        "pyproject.toml", "setup.cfg", "README.md", ".gitignore", "carbonhub_city_bins/__init__.py",
        "carbonhub_city_bins/methodology/city-bins-avoided-2026.1.toml", "samples/samples.json",
        "tests/test_conformance.py"}
    assert "City recycling bins" in (project / "carbonhub_city_bins" / "__init__.py").read_text()


def test_plugin_new_defaults_to_a_directory_named_after_the_distribution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plugin", "new", "city_bins"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "carbonhub-city-bins" / "setup.cfg").is_file()


def test_scaffold_is_packaged_for_the_entry_point_group(tmp_path):
    project = tmp_path / "p"
    scaffold("city_bins", project)
    cfg = configparser.ConfigParser()
    cfg.read(project / "setup.cfg", encoding="utf-8")
    (line,) = [ln for ln in cfg["options.entry_points"][ENTRY_POINT_GROUP].splitlines() if ln.strip()]
    assert [part.strip() for part in line.split("=")] == ["city_bins", "carbonhub_city_bins"]
    assert list((project / "carbonhub_city_bins").glob(cfg["options.package_data"]["carbonhub_city_bins"]))
    assert cfg["metadata"]["name"] == "carbonhub-city-bins"


@pytest.mark.parametrize("name", ["Bins", "city-bins", "1bins", "", "a" * 41, "bins/../x"])
def test_plugin_new_refuses_a_name_that_is_not_a_lowercase_id(tmp_path, name):
    result = CliRunner().invoke(main, ["plugin", "new", name, "--dir", str(tmp_path / "p")])
    assert result.exit_code != 0 and "not a plugin name" in result.output
    assert not (tmp_path / "p").exists()


def test_plugin_new_never_overwrites(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "mine.txt").write_text("partner work")
    result = CliRunner().invoke(main, ["plugin", "new", "bins", "--dir", str(project)])
    assert result.exit_code != 0 and "already exists" in result.output
    assert [p.name for p in project.iterdir()] == ["mine.txt"]


def test_scaffold_passes_the_conformance_suite_out_of_the_box(tmp_path):
    project = tmp_path / "carbonhub-city-bins"
    scaffold("city_bins", project)
    proc = run_pytest(project)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert passed(proc) >= 12, proc.stdout[-2000:]
    # Skips are stated: the template's TODOs, and the pull checks of a plugin without a pull connector.
    assert "template placeholders left" in proc.stdout and "registers no pull connector" in proc.stdout


def test_scaffold_samples_are_what_the_suite_reads(tmp_path):
    scaffold("city_bins", tmp_path / "p")
    samples = load_samples(tmp_path / "p" / "samples" / "samples.json")
    assert [s[1:] for s in samples.good] == [("accepted", 200), ("accepted", 100)]
    assert {s[1] for s in samples.bad} == {"invalid_record", "implausible_quantity", "non_positive_quantity"}
    assert with_account(samples.good[0][0], "acc_x")["account_id"] == "acc_x"
    assert samples.good[0][0]["account_id"] == ACCOUNT


# --- the conformance suite catches broken plugins ------------------------------------------------


BREAKAGES = {
    # a fingerprint built from the inbox id changes between two reports of the same act
    "fingerprint": ("fingerprint(SCENARIO, account_id,", "fingerprint(SCENARIO, record.inbox_id, account_id,",
                    "test_fingerprints_are_stable"),
    # answering records of scenarios it does not own would shadow other plugins
    "shadowing": ("return None  # another plugin's record", "pass", "test_ignores_records_of_scenarios"),
    "api": ('CARBONHUB_API = "1.0"', 'CARBONHUB_API = "2.0"', "test_declares_a_supported_hub_api_version"),
}


@pytest.mark.parametrize("breakage", ["fingerprint", "shadowing", "api"])
def test_conformance_suite_fails_a_broken_plugin(tmp_path, breakage):
    project = tmp_path / "p"
    scaffold("city_bins", project)
    module = project / "carbonhub_city_bins" / "__init__.py"
    old, new, failing = BREAKAGES[breakage]
    source = module.read_text()
    assert old in source
    module.write_text(source.replace(old, new, 1))
    proc = run_pytest(project)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert re.search(rf"FAILED \S+::{failing}", proc.stdout), proc.stdout[-3000:]


def test_conformance_suite_fails_wrong_grams_and_reasons(tmp_path):
    project = tmp_path / "p"
    scaffold("city_bins", project)
    path = project / "samples" / "samples.json"
    data = json.loads(path.read_text())
    data["good"][0]["grams"] += 1
    data["bad"][0]["field"] = "account_id"
    path.write_text(json.dumps(data))
    proc = run_pytest(project)
    failed = set(re.findall(r"FAILED \S+::(\S+)", proc.stdout))
    assert failed == {"test_good_sample_is_credited[good0]", "test_bad_sample_is_rejected_with_its_reason[bad0]"}, \
        proc.stdout[-3000:]


PULL_PLUGIN = '''

from connectors.base import Stream
from connectors.http_pull import HttpPullConnector, Page
from hub.records import ConnectorSpec


class Sites(HttpPullConnector):
    def streams(self):
        return [Stream(name="acts", scenario=SCENARIO, primary_key=("event_id",), cursor_field="occurred_at",
                       is_sorted=True, options={"path": "/acts"})]
    BROKEN


@hookimpl
def carbonhub_register_connectors(ctx):
    return [ConnectorSpec(id="city-bins-acts", mode="pull", connector=Sites)]
'''
PULL_TEST = '''
    pull_pages = [
        {"data": [{**SAMPLES.good[0][0], "event_id": "P-1"}], "next_page_token": "2"},
        {"data": [{**SAMPLES.good[1][0], "event_id": "P-2"}], "next_page_token": None},
    ]
'''
# A connector that never asks for the next page reads one page of two.
FIRST_PAGE_ONLY = """
    def parse_page(self, stream, body):
        return Page(records=body["data"], next_token=None)"""


@pytest.mark.parametrize("broken", [False, True])
def test_conformance_pull_checks_run_and_catch_a_connector_that_stops_early(tmp_path, broken):
    project = tmp_path / "p"
    scaffold("city_bins", project)
    module = project / "carbonhub_city_bins" / "__init__.py"
    module.write_text(module.read_text() + PULL_PLUGIN.replace("    BROKEN", FIRST_PAGE_ONLY if broken else ""))
    test = project / "tests" / "test_conformance.py"
    test.write_text(test.read_text() + PULL_TEST)
    proc = run_pytest(project)
    failed = set(re.findall(r"FAILED \S+::(\S+)", proc.stdout))
    assert "registers no pull connector" not in proc.stdout
    if broken:
        assert "test_pull_reads_every_page" in failed, proc.stdout[-3000:]
    else:
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert re.search(r"(\d+) passed", proc.stdout)


# --- examples/evcharge -------------------------------------------------------------------------------


def test_example_plugin_passes_its_own_tests():
    proc = run_pytest(EXAMPLE)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert passed(proc) >= 20, proc.stdout[-2000:]
    assert "SKIPPED" not in proc.stdout, "the example must run every check, pull included"


def test_example_methodology_cites_a_source_for_every_factor():
    import tomllib

    (document,) = (EXAMPLE / "carbonhub_evcharge" / "methodology").glob("*.toml")
    data = tomllib.loads(document.read_text(encoding="utf-8"))
    assert set(data["factors"]) == {"ev_use", "petrol_car", "grid"}
    for name, factor in data["factors"].items():
        assert re.search(r"(EPA|Ministry of Ecology)", factor["source"]), f"{name}: {factor['source']}"
    assert "TODO" not in document.read_text()


def test_example_is_not_installed_in_this_environment():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert "evcharge" not in names, "examples/evcharge must not be installed into the hub's own venv"
