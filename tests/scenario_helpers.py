"""What the scenario tests (tests/test_scenario_*.py) share: fixture files, verdicts, the
documented JSON examples, and a plugin that records announced transactions."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from hub.hookspecs import hookimpl


def fixture_loader(folder: Path) -> Callable[[str], Any]:
    """``load("good.json")`` for one plugin's fixture folder."""
    return lambda name: json.loads((folder / name).read_text(encoding="utf-8"))


def with_account(record: dict, account_id: str) -> dict:
    """The record with every "{account}" value replaced, also inside nested objects."""
    return json.loads(json.dumps(record).replace('"{account}"', json.dumps(account_id)))


def verdict(outcome) -> tuple[str, str | None, str | None]:
    """(status, reason, field) of a record: the record's own problem, else its behaviour's."""
    if outcome.reason:
        return outcome.status, outcome.reason, outcome.field
    (b,) = outcome.behaviours
    return outcome.status, b.reason, b.field


def json_blocks(page: Path) -> list:
    """The ```json blocks of a documentation page, parsed."""
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]


def contains(documented, actual) -> bool:
    """Whether everything the (abridged) documentation shows is in the actual value."""
    if isinstance(documented, dict):
        return isinstance(actual, dict) and all(k in actual and contains(v, actual[k]) for k, v in documented.items())
    if isinstance(documented, list):
        return isinstance(actual, list) and len(documented) == len(actual) and all(
            contains(d, a) for d, a in zip(documented, actual))
    return documented == actual


class Recorder:
    """A notification plugin: keeps every transaction the hub announces."""

    CARBONHUB_API = "1.0"

    def __init__(self):
        self.transactions = []

    @hookimpl
    def carbonhub_transaction_posted(self, ctx, transaction):
        self.transactions.append(transaction)
