"""The bank's user-facing content: science articles and quiz banks under ``content/``.

``content/`` is a top-level folder of data next to ``config/`` and
``methodologies/``, found relative to the repository root (the parent of the
``hub`` package), so it works from a fresh clone and after ``pip install -e .``.
``CARBONHUB_CONTENT_DIR`` points elsewhere. See ``docs/content.md``.

An article is ``content/science/<slug>.md``: TOML front matter between ``+++``
lines (``title``, ``tags``, ``sources``, optional ``scenario``), then Markdown.
"""
from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class ContentError(ValueError):
    """A content file is malformed; the message names the file."""


def content_dir() -> Path:
    return Path(os.environ.get("CARBONHUB_CONTENT_DIR") or CONTENT_DIR)


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    scenario: str | None
    body: str

    def summary(self) -> dict[str, Any]:
        return {"slug": self.slug, "title": self.title, "tags": list(self.tags), "scenario": self.scenario}

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "sources": list(self.sources), "format": "markdown", "body": self.body}


def parse_article(slug: str, text: str, source: str = "<text>") -> Article:
    """One article from its file text: ``+++`` TOML front matter, then the Markdown body."""
    if not SLUG.match(slug):
        raise ContentError(f"{source}: the file name must be a slug (a-z, 0-9, '-')")
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != "+++":
        raise ContentError(f"{source}: must start with a '+++' line (TOML front matter)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise ContentError(f"{source}: the front matter has no closing '+++' line") from None
    try:
        meta = tomllib.loads("".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{source}: front matter: {exc}") from None
    unknown = set(meta) - {"title", "tags", "sources", "scenario"}
    if unknown:
        raise ContentError(f"{source}: unknown front matter keys {sorted(unknown)}")
    title, tags, sources, scenario = meta.get("title"), meta.get("tags", []), meta.get("sources"), \
        meta.get("scenario")
    if not isinstance(title, str) or not title.strip():
        raise ContentError(f"{source}: title must be non-empty text")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ContentError(f"{source}: tags must be a list of text")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        raise ContentError(f"{source}: sources must be a non-empty list of text")
    if scenario is not None and not isinstance(scenario, str):
        raise ContentError(f"{source}: scenario must be a scenario id")
    body = "".join(lines[end + 1:]).strip() + "\n"
    return Article(slug=slug, title=title.strip(), tags=tuple(tags), sources=tuple(sources), scenario=scenario,
                   body=body)


@functools.lru_cache(maxsize=8)
def _articles(root: Path) -> dict[str, Article]:
    out: dict[str, Article] = {}
    for path in sorted((root / "science").glob("*.md")):
        article = parse_article(path.stem, path.read_text(encoding="utf-8"), str(path))
        out[article.slug] = article
    by_scenario: dict[str, str] = {}
    for a in out.values():
        if a.scenario is not None:
            if a.scenario in by_scenario:
                raise ContentError(f"{root / 'science'}: scenario {a.scenario!r} is explained by both "
                                   f"{by_scenario[a.scenario]!r} and {a.slug!r}")
            by_scenario[a.scenario] = a.slug
    return out


def articles(root: Path | None = None) -> dict[str, Article]:
    """Every article by slug, sorted by slug (read once per process)."""
    return _articles(root or content_dir())


def article_for_scenario(scenario: str, root: Path | None = None) -> str | None:
    """The slug of the article explaining ``scenario``'s methodology, or None."""
    return next((a.slug for a in articles(root).values() if a.scenario == scenario), None)
