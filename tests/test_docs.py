"""The documentation is part of the contract: these tests fail when it drifts.

Following datasette's habit (``tests/test_docs.py`` there):

- every hook in ``hub.hookspecs`` has a section in ``docs/hooks.md`` whose
  heading repeats the spec's arguments, and says whether it is firstresult;
- every hook is exercised by some test under ``tests/``;
- every reason code the hub or a built-in plugin can give is documented;
- every config key and methodology document field is documented;
- the partner guide's example plugin is built from ``docs/partners.md`` and its
  own tests are run, and every other block of the guide is run or loaded
  (shell, commands, config, Python), so the guide keeps working.
"""
from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from datetime import datetime, timezone
from pathlib import Path

import pluggy
import pytest
from marshmallow import Schema

import hub.config
import hub.hookspecs
import hub.methodology
import hub.records as records
from hub.ingest import REASONS
from hub.plugins import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
HUB = ROOT / "hub"
CODE = re.compile(r"`([a-z][a-z0-9_]*)`")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def all_docs() -> str:
    return "\n".join(read(p) for p in sorted(DOCS.rglob("*.md")))


def backticked(text: str) -> set[str]:
    """Whole code spans that are one lowercase identifier, e.g. `cap_reached`."""
    return set(CODE.findall(text))


def code_words(text: str) -> set[str]:
    """Identifiers inside any code span: `[partners.<id>]` gives partners and id."""
    spans = re.findall(r"`([^`\n]+)`", text)
    # Hyphenated ids (benefit metro-ride-voucher) count whole and by their parts.
    return {w for span in spans for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*", span)} | \
        {w for span in spans for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


# --- hooks ---------------------------------------------------------------------------------------------


def hook_specs() -> dict[str, pluggy.HookCaller]:
    pm = pluggy.PluginManager("carbonhub")
    pm.add_hookspecs(hub.hookspecs)
    return {name: getattr(pm.hook, name) for name in dir(pm.hook) if name.startswith("carbonhub_")}


HOOKS = sorted(hook_specs())


def headings(text: str) -> list[tuple[int, int, str]]:
    """(level, offset, title) of each Markdown heading outside fenced code blocks."""
    out, fenced, offset = [], False, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^(#{1,6}) (.*?)\s*$", line)):
            out.append((len(m.group(1)), offset, m.group(2)))
        offset += len(line)
    return out


def hook_sections() -> dict[str, tuple[tuple[str, ...], str]]:
    """Documented hook -> (arguments from the heading, text of its section)."""
    text = read(DOCS / "hooks.md")
    found = headings(text)
    sections: dict[str, tuple[tuple[str, ...], str]] = {}
    for i, (level, start, title) in enumerate(found):
        m = re.fullmatch(r"(carbonhub_\w+)\(([^)]*)\)", title)
        if level != 2 or not m:
            continue
        end = next((o for lvl, o, _ in found[i + 1:] if lvl <= 2), len(text))
        args = tuple(a.strip() for a in m.group(2).split(",") if a.strip())
        assert m.group(1) not in sections, f"{m.group(1)} is documented twice in docs/hooks.md"
        sections[m.group(1)] = (args, text[start:end])
    return sections


def test_hookspecs_are_found():
    assert "carbonhub_normalize_record" in HOOKS and len(HOOKS) >= 9


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_arguments(hook):
    sections = hook_sections()
    assert hook in sections, f"docs/hooks.md has no '## {hook}(...)' section"
    documented, _ = sections[hook]
    expected = tuple(hook_specs()[hook].spec.argnames)
    assert documented == expected, (f"docs/hooks.md documents {hook}({', '.join(documented)}), "
                                    f"the spec is {hook}({', '.join(expected)})")


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documentation_says_whether_it_is_firstresult(hook):
    sections = hook_sections()
    assert hook in sections, f"docs/hooks.md has no '## {hook}(...)' section"
    _, body = sections[hook]
    firstresult = bool(hook_specs()[hook].spec.opts.get("firstresult"))
    line = "**firstresult: yes**" if firstresult else "**firstresult: no**"
    assert line in body, f"the {hook} section must say {line}"
    assert "```python" in body, f"the {hook} section needs a short code example"


def test_no_documented_hook_is_missing_from_the_spec():
    unknown = set(hook_sections()) - set(HOOKS)
    assert not unknown, f"docs/hooks.md documents hooks that hub/hookspecs.py lacks: {sorted(unknown)}"


def test_hooks_doc_covers_every_record_type():
    text = read(DOCS / "hooks.md")
    types = [name for name, obj in vars(records).items()
             if isinstance(obj, type) and obj.__module__ == records.__name__ and not name.startswith("_")]
    assert "Behaviour" in types
    missing = [t for t in types if t not in code_words(text)]
    assert not missing, f"docs/hooks.md does not describe the records {missing}"


def hook_scan_files() -> list[Path]:
    return [p for p in sorted(TESTS.rglob("*.py")) if p.resolve() != Path(__file__).resolve()]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    """Each hook name appears in some test module (or test helper) besides this one."""
    users = [p.name for p in hook_scan_files() if hook in read(p)]
    assert users, f"no test under tests/ exercises {hook}"


# --- reason codes --------------------------------------------------------------------------------------


def problem_codes(paths) -> set[str]:
    """Codes passed as a literal first argument to Problem(), RecordError() or _problem()."""
    codes = set()
    for path in paths:
        for node in ast.walk(ast.parse(read(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            if name in ("Problem", "RecordError", "_problem") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                codes.add(first.value)
    return codes


def builtin_plugin_files() -> list[Path]:
    """Source files of the plugins the hub itself ships in the entry-point group."""
    files: list[Path] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (ep.dist.name if ep.dist else "") != "carbonhub" and not ep.module.startswith("plugins."):
            continue
        spec = importlib.util.find_spec(ep.module)
        origin = Path(spec.origin)
        files.extend(sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin])
    return files


def test_builtin_plugins_are_found():
    names = {p.parent.name for p in builtin_plugin_files()}
    assert {"metro", "estatement"} <= names


@pytest.mark.parametrize("code", sorted(REASONS))
def test_hub_reason_is_documented(code):
    assert code in backticked(all_docs()), f"reason code {code!r} (hub.ingest.REASONS) is not documented in docs/"


def test_operations_doc_lists_every_hub_reason():
    listed = backticked(read(DOCS / "operations.md"))
    assert not set(REASONS) - listed, f"docs/operations.md lacks {sorted(set(REASONS) - listed)}"


@pytest.mark.parametrize("code", sorted(problem_codes(builtin_plugin_files())))
def test_builtin_plugin_code_is_documented(code):
    assert code in backticked(all_docs()), f"the built-in plugins' code {code!r} is not documented in docs/"


def test_builtin_plugin_codes_are_found():
    assert {"implausible_distance", "paper_sent"} <= problem_codes(builtin_plugin_files())


@pytest.mark.parametrize("code", sorted(problem_codes(sorted(HUB.rglob("*.py")))))
def test_every_code_the_hub_raises_is_documented(code):
    assert code in backticked(all_docs()), f"hub code {code!r} is not documented in docs/"


# --- configuration -------------------------------------------------------------------------------------


def schemas_of(module) -> dict[str, type[Schema]]:
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, Schema) and obj.__module__ == module.__name__
            and obj._declared_fields}


def schema_keys(module) -> list[tuple[str, str]]:
    return sorted((name, field.data_key or key) for name, schema in schemas_of(module).items()
                  for key, field in schema._declared_fields.items())


def test_config_schemas_are_found():
    assert {"HubSchema", "PartnerSchema", "ScenarioConfigSchema", "CapsSchema", "PointsSchema",
            "ApiKeySchema"} <= set(schemas_of(hub.config))


@pytest.mark.parametrize("schema, key", schema_keys(hub.config))
def test_config_key_is_documented(schema, key):
    assert key in code_words(read(DOCS / "config.md")), f"docs/config.md does not document {schema}.{key}"


def test_shipped_config_keys_are_documented():
    """Every key written in config/hub.toml appears in docs/config.md (ids of partners etc. too)."""
    import tomllib

    def keys(table, out):
        for key, value in table.items():
            out.add(key)
            if isinstance(value, dict):
                keys(value, out)
        return out

    with open(ROOT / "config" / "hub.toml", "rb") as fh:
        shipped = keys(tomllib.load(fh), set())
    missing = shipped - code_words(read(DOCS / "config.md"))
    assert not missing, f"docs/config.md does not mention {sorted(missing)}"


def environment_variables() -> list[str]:
    pattern = re.compile(r"""(?:\.get\(\s*|environ\[\s*|getenv\(\s*|envvar=)["'](CARBONHUB_[A-Z0-9_]+)["']""")
    return sorted({name for p in HUB.rglob("*.py") for name in pattern.findall(read(p))})


def test_environment_variables_are_found():
    assert {"CARBONHUB_CONFIG", "CARBONHUB_DATABASE_URL", "CARBONHUB_LOAD_PLUGINS"} <= set(environment_variables())


@pytest.mark.parametrize("name", environment_variables())
def test_environment_variable_is_documented(name):
    assert f"`{name}`" in read(DOCS / "config.md"), f"docs/config.md does not document {name}"


# --- methodologies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema, key", schema_keys(hub.methodology))
def test_methodology_field_is_documented(schema, key):
    assert key in code_words(read(DOCS / "methodologies.md")), \
        f"docs/methodologies.md does not document {schema}.{key}"


# --- general -------------------------------------------------------------------------------------------


DOC_FILES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("doc", DOC_FILES)
def test_python_examples_compile(doc):
    for block in re.findall(r"```python\n(.*?)```", read(DOCS / doc), re.S):
        compile(block, f"docs/{doc}", "exec")


@pytest.mark.parametrize("doc", DOC_FILES)
def test_relative_links_resolve(doc):
    path = DOCS / doc
    for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", read(path)):
        assert (path.parent / target).exists(), f"docs/{doc} links to {target}, which does not exist"


# --- the partner guide's example plugin ----------------------------------------------------------------


def example_project(tmp_path: Path) -> Path:
    """Write every code block of docs/partners.md that starts with '# file: <path>'."""
    written = []
    for block in re.findall(r"```\w*\n(# file: .*?)```", read(DOCS / "partners.md"), re.S):
        first, _, rest = block.partition("\n")
        relative = first[len("# file: "):].strip()
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block, encoding="utf-8")
        written.append(relative)
    assert "setup.cfg" in written and any(w.startswith("tests/") for w in written), written
    return tmp_path


def test_plugin_guide_example_is_packaged_as_described(tmp_path):
    project = example_project(tmp_path)
    cfg = configparser.ConfigParser()
    cfg.read(project / "setup.cfg", encoding="utf-8")
    group = cfg["options.entry_points"][ENTRY_POINT_GROUP]
    (line,) = [ln for ln in group.splitlines() if ln.strip()]
    name, _, module = (part.strip() for part in line.partition("="))
    assert name and (project / module / "__init__.py").exists()
    package_data = cfg["options.package_data"][module].strip()
    assert list((project / module).glob(package_data)), "package_data must match the methodology documents"


def test_plugin_guide_example_passes_its_own_tests(tmp_path):
    project = example_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]


# --- every other block of the partner guide ----------------------------------------------------------


def guide_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of docs/partners.md."""
    return re.findall(r"^```(\w*)\n(.*?)^```", read(DOCS / "partners.md"), re.S | re.M)


def guide_blocks_of(language: str) -> list[str]:
    return [body for lang, body in guide_blocks() if lang == language and not body.startswith("# file: ")]


def test_every_partner_guide_block_is_exercised():
    """Each block is a `# file:` of the example or of a kind the tests below run or load."""
    exercised = {"sh", "console", "toml", "python", "text"}
    for lang, body in guide_blocks():
        assert body.startswith("# file: ") or lang in exercised, \
            f"docs/partners.md has a ```{lang} block no test exercises: {body[:80]!r}"
    assert len(guide_blocks_of("toml")) >= 3 and len(guide_blocks_of("python")) >= 3


def test_partner_guide_layout_matches_the_example(tmp_path):
    project = example_project(tmp_path)
    (tree,) = guide_blocks_of("text")
    lines = tree.splitlines()
    assert lines[0].rstrip("/") == "carbonhub-reclothe"
    stack: list[tuple[int, str]] = []
    for line in lines[1:]:
        indent, name = len(line) - len(line.lstrip()), line.split()[0]
        stack = [(i, n) for i, n in stack if i < indent] + [(indent, name.rstrip("/"))]
        path = project.joinpath(*[n for _, n in stack])
        assert path.is_dir() if name.endswith("/") else path.is_file(), f"the guide lists {path}"


def test_partner_guide_shell_blocks_run(tmp_path):
    """The ```sh blocks run as written, in an empty directory: scaffold a plugin and pass its tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONHUB_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    blocks = guide_blocks_of("sh")
    assert any("carbonhub plugin new" in b for b in blocks)
    for block in blocks:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.replace("python ", f"{sys.executable} ")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]


def test_partner_guide_commands_exist_with_their_options(tmp_path, monkeypatch):
    """Each `$ carbonhub ...` line of a ```console block parses against the real command line."""
    import shlex

    import click

    from hub.cli import main

    commands = [line[2:] for block in guide_blocks_of("console") for line in block.splitlines()
                if line.startswith("$ ")]
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "carbonhub", command
        monkeypatch.chdir(tmp_path)
        for word in words:  # the partner's files the command names must exist for it to parse
            if re.search(r"\.(csv|jsonl)$", word):
                (tmp_path / word).touch()
        cmd, args, ctx = main, words[1:], click.Context(main, info_name="carbonhub")
        while isinstance(cmd, click.Group) and args:
            sub = cmd.get_command(ctx, args[0])
            assert sub is not None, f"`{command}`: no command {args[0]!r}"
            cmd, args = sub, args[1:]
        cmd.make_context(cmd.name, list(args), parent=ctx)  # raises UsageError on an unknown option or argument


def _guide_plugin(tmp_path: Path, monkeypatch) -> object:
    """The guide's ReClothe plugin, imported from its project (never installed)."""
    project = example_project(tmp_path)
    monkeypatch.syspath_prepend(str(project))
    for name in [m for m in sys.modules if m == "carbonhub_reclothe" or m.startswith("carbonhub_reclothe.")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("carbonhub_reclothe")


def test_partner_guide_config_blocks_load_with_the_plugin(tmp_path, monkeypatch):
    """Every ```toml config block loads as the bank's config, and a hub starts with it and the plugin."""
    import tomllib

    from hub.context import FixedClock
    from hub.core import Hub

    plugin = _guide_plugin(tmp_path, monkeypatch)
    monkeypatch.setenv("CARBONHUB_LOAD_PLUGINS", "")
    base = {"hub": {"secrets_file": str(tmp_path / "none.env")},
            "partners": {"reclothe": {"name": "ReClothe", "secret_env": "CARBONHUB_SECRET_RECLOTHE",
                                      "scenarios": ["textiles"]}},
            "scenarios": {"textiles": {}}}
    blocks = guide_blocks_of("toml")
    for block in blocks:
        data = tomllib.loads(block)
        config = {**base, **data}
        settings = hub.config.load_settings(data=config, environ={"CARBONHUB_SECRET_RECLOTHE": "s" * 16,
                                                                  "CARBONHUB_RECLOTHE_API_KEY": "k" * 16})
        h = Hub(settings, clock=FixedClock(datetime(2026, 11, 21, tzinfo=timezone.utc)),
                database_url=f"sqlite:///{tmp_path}/hub.db", extra_plugins=[plugin])
        for name in data.get("connectors", {}):
            assert h.connectors.get(name) is not None, f"[connectors.{name}] did not bind"
    assert any("connectors" in tomllib.loads(b) for b in blocks)


def test_partner_guide_python_snippets_run(tmp_path, monkeypatch):
    """Every ```python block that is not a `# file:` runs (imports resolve, classes build, asserts hold)."""
    _guide_plugin(tmp_path, monkeypatch)
    snippets = guide_blocks_of("python")
    for snippet in snippets:
        exec(compile(snippet, "docs/partners.md", "exec"), {"__name__": "partners_md_snippet"})
