"""Methodology formula families and the built-in plugins' versioned documents.

Each module here is one family: ``compute(factors, behaviour) -> Calculation``.
Documents live in one folder per scenario (``methodologies/<scenario>/*.toml``).
"""
from pathlib import Path

DOCUMENTS = Path(__file__).parent


def documents(folder: str) -> tuple[Path, ...]:
    """All TOML documents of one folder, e.g. ``documents("metro")``."""
    return tuple(sorted((DOCUMENTS / folder).glob("*.toml")))
