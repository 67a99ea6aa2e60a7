"""``carbonhub plugin new <name>``: scaffold a partner plugin distribution that passes the conformance suite.

The templates are package data under ``hub/scaffold/`` (``string.Template``
files, ``${name}`` placeholders), so the command works from an installed hub.
"""
from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

import click

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

# template file -> path in the new project (placeholders allowed in the path)
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "setup.cfg.tmpl": "setup.cfg",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "plugin.py.tmpl": "${package}/__init__.py",
    "methodology.toml.tmpl": "${package}/methodology/${methodology}-2026.1.toml",
    "samples.json.tmpl": "samples/samples.json",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


class ScaffoldError(click.ClickException):
    """The name or target directory is not usable; nothing was written."""


def placeholders(name: str, title: str | None = None) -> dict[str, str]:
    """The values the templates are filled with, derived from the plugin ``name``."""
    return {
        "name": name,
        "package": f"carbonhub_{name}",
        "dist": f"carbonhub-{name.replace('_', '-')}",
        "methodology": f"{name.replace('_', '-')}-avoided",
        "title": title or name.replace("_", " ").capitalize(),
        "klass": "".join(part.capitalize() for part in name.split("_")),
        "upper": name.upper(),
        "secret_env": f"CARBONHUB_SECRET_{name.upper()}",
    }


def scaffold(name: str, target: Path, title: str | None = None) -> list[Path]:
    """Write a new plugin project for ``name`` into ``target`` (which must not exist); the files written.

    Raises :class:`ScaffoldError` for a name that is not a lowercase id or an
    existing target: a partner's work is never overwritten.
    """
    if not NAME.match(name):
        raise ScaffoldError(f"{name!r} is not a plugin name: use a lowercase id (a-z, then a-z, 0-9 or _, "
                            f"at most 40), e.g. evcharge or city_bikes.")
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another --dir or remove it first.")
    values = placeholders(name, title)
    templates = files("hub") / "scaffold"
    written = []
    for template, relative in LAYOUT.items():
        path = target / Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(templates.joinpath(template).read_text(encoding="utf-8")).substitute(values),
                        encoding="utf-8")
        written.append(path)
    return written


@click.group()
def plugin() -> None:
    """Write partner plugins: scaffold one that passes the hub's conformance suite."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the project (default ./carbonhub-<name>); must not exist.")
@click.option("--title", help="The scenario's title shown to users (default: from the name).")
def new(name: str, directory: Path | None, title: str | None) -> None:
    """Create a plugin distribution for NAME: hooks, methodology, samples and conformance tests."""
    target = directory or Path(placeholders(name)["dist"] if NAME.match(name) else name)
    written = scaffold(name, target, title)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"\nNext: cd {target} && PYTHONPATH=. python -m pytest   (then replace every TODO; "
               f"see docs/partners.md)")
