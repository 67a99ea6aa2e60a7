"""The mixed batch: every scenario's sample records, good and bad, for ``bench.ingest --mix``.

Each partner's stream repeats its fixtures from ``tests/fixtures/<plugin>/``
(the same files the scenario tests read) as often as needed: one record in
twenty is a bad sample, the others good ones. Record ``i`` of a stream goes to
account ``i % accounts`` (consecutive accounts, as in the metro stream), and in
copy ``k`` of a sample every identifying field (names
ending in ``_id``, ``_token``, ``_ref``, ``_account``) gets ``-k`` appended,
so copies are new acts rather than duplicates. Caps, bad samples and acts
dated after the run's clock still give their rejections: the mix is what a day
of all partners looks like, not only the happy path.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# (fixture file, partner that sends it). Bad files list {"record": ..., "partner"?: ...}.
SOURCES = (
    ("metro/good.json", "szmetro"), ("metro/bad.json", "szmetro"), ("metro/good_wuhan.json", "whmetro"),
    ("metro/good_unionpay.json", "unionpay"), ("metro/bad_unionpay.json", "unionpay"),
    ("bus/good.json", "szbus"), ("bus/bad.json", "szbus"),
    ("bike/good.json", "hellobike"), ("bike/bad.json", "hellobike"),
    ("airlines/good.json", "xiamenair"), ("airlines/good_ctrip.json", "ctrip"), ("airlines/bad.json", "xiamenair"),
    ("recycling/good.json", "aihuishou"), ("recycling/bad.json", "aihuishou"),
    ("reading/good.json", "citicpress"), ("reading/bad.json", "citicpress"),
    ("utility_payments/good.json", "sgcc"), ("utility_payments/bad.json", "sgcc"),
    ("estatement/good.json", "cardcentre"), ("estatement/bad.json", "cardcentre"),
    ("estatement/view_log_good.json", "mbank"), ("estatement/view_log_bad.json", "mbank"),
    ("ecard/good.json", "cardcentre"), ("ecard/bad.json", "cardcentre"),
)
_IDENTIFYING = ("_id", "_token", "_ref", "_account")


BAD_EVERY = 20  # record i of a partner's stream is a bad sample when i % 20 == 19


def samples() -> dict[str, tuple[list[Any], list[Any]]]:
    """``(good, bad)`` sample records per partner, in file order."""
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    for name, partner in SOURCES:
        for entry in json.loads((FIXTURES / name).read_text(encoding="utf-8")):
            if isinstance(entry, dict) and "record" in entry and "reason" in entry:  # a bad sample
                out.setdefault(entry.get("partner", partner), ([], []))[1].append(entry["record"])
            else:
                out.setdefault(partner, ([], []))[0].append(entry)
    return out


def copy(value: Any, k: int, account: str, key: str = "") -> Any:
    """Copy ``k`` of a sample: the account filled in, identifying fields made unique."""
    if isinstance(value, dict):
        return {name: copy(v, k, account, name) for name, v in value.items()}
    if isinstance(value, list):
        return [copy(v, k, account, key) for v in value]
    if value == "{account}":
        return account
    if k and isinstance(value, str) and value and key != "account_id" and key.endswith(_IDENTIFYING):
        return f"{value}-{k}"
    return value


def partner_streams(records: int, account_ids: list[str]) -> list[tuple[str, int, Iterator[Any]]]:
    """``(partner, count, stream)`` for each partner; counts add up to ``records``,
    shared in proportion to each partner's number of good samples."""
    by_partner = {p: gb for p, gb in samples().items() if gb[0]}
    total = sum(len(good) for good, _ in by_partner.values())
    shares, given = [], 0
    for i, (partner, (good, bad)) in enumerate(sorted(by_partner.items())):
        count = records - given if i == len(by_partner) - 1 else records * len(good) // total
        given += count
        shares.append((partner, count, _stream(good, bad, count, account_ids)))
    return shares


def _stream(good: list[Any], bad: list[Any], count: int, account_ids: list[str]) -> Iterator[Any]:
    for i in range(count):
        recs = bad if bad and i % BAD_EVERY == BAD_EVERY - 1 else good
        k, j = divmod(i, len(recs))
        # Consecutive accounts, as in the metro stream, so the two rates compare like with like.
        yield copy(recs[j], k, account_ids[i % len(account_ids)])
