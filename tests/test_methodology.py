"""Methodology documents and the engine: version in force, rounding, formula text,
document validation, and a credited behaviour's receipt reproducing its grams."""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import db
from hub.ledger import user_carbon
from hub.methodology import MethodologyError, MethodologyRegistry
from hub.records import Behaviour, Factor, MethodologySpec
from methodologies import per_quantity

SHANGHAI = ZoneInfo("Asia/Shanghai")
MID = "metro-test"

BASE_DOC: dict[str, Any] = {
    "id": MID,
    "version": "2021.1",
    "title": "Metro ride instead of car (test)",
    "family": "per_quantity",
    "reviewer": "methodology review board",
    "reviewed_on": date(2020, 12, 1),
    "effective_from": date(2021, 1, 1),
    "quantity_unit": "pkm",
    "evidence": ["city"],
    "factors": {"baseline": {"value": Decimal("46.8"), "unit": "gCO2e/pkm", "source": "Shenzhen 2021 trial"}},
}
V1 = {"effective_to": date(2026, 1, 1)}
V2 = {"version": "2026.1", "effective_from": date(2026, 1, 1), "reviewed_on": date(2025, 12, 1),
      "factors": {"baseline": {"value": Decimal("40.0"), "unit": "gCO2e/pkm", "source": "Shenzhen 2026 update"},
                  "project": {"value": Decimal("2.5"), "unit": "gCO2e/pkm", "source": "Metro operator 2025"}},
      "caps": {"per_day_count": 8}}


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, date)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """Render a document the way a reviewer writes one: scalars, then [tables]."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in doc.items():
        if not isinstance(table, dict):
            continue
        if all(isinstance(v, dict) for v in table.values()) and table:
            for name, sub in table.items():
                lines += ["", f"[{key}.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
        else:
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write_doc(folder: Path, name: str, **changes: Any) -> Path:
    """Write BASE_DOC with ``changes`` applied (a value of ``None`` drops the key)."""
    doc = {**BASE_DOC, **changes}
    doc = {k: v for k, v in doc.items() if v is not None}
    path = folder / name
    path.write_text(to_toml(doc), encoding="utf-8")
    return path


def registry(*paths: Path, mid: str = MID) -> MethodologyRegistry:
    return MethodologyRegistry([MethodologySpec(id=mid, documents=tuple(paths))])


@pytest.fixture
def two_versions(tmp_path) -> MethodologyRegistry:
    # Listed newest first: the registry must order by effective date itself.
    return registry(write_doc(tmp_path, "v2026.toml", **V2), write_doc(tmp_path, "v2021.toml", **V1))


def ride(quantity: str, occurred_at: datetime | None = None) -> Behaviour:
    return Behaviour(scenario="metro", account_id="acc_x", event_id="r1", fingerprint="f" * 64,
                     occurred_at=occurred_at or datetime(2025, 6, 1, 8, tzinfo=SHANGHAI),
                     quantity=Decimal(quantity), unit="pkm", attributes={"city": "shenzhen"})


# --- version in force -----------------------------------------------------------


def test_documents_load_with_their_fields(two_versions):
    v1, v2 = two_versions.versions[MID]
    assert (v1.version, v2.version) == ("2021.1", "2026.1")
    assert v1.effective_to == date(2026, 1, 1) and v2.effective_to is None
    assert v1.factors["baseline"].value == Decimal("46.8")  # exact, never a float
    assert v2.caps == {"per_day_count": 8} and v1.caps == {}
    assert v1.evidence == ("city",) and v1.path.endswith("v2021.toml")
    assert two_versions.get(MID, "2026.1") is v2
    assert two_versions.get(MID) is v1
    assert two_versions.get(MID, "1999.1") is None and two_versions.get("other") is None
    assert v2.as_dict()["factors"]["project"] == {"value": "2.5", "unit": "gCO2e/pkm",
                                                  "source": "Metro operator 2025"}


@pytest.mark.parametrize("instant, expected", [
    (datetime(2021, 6, 1, tzinfo=timezone.utc), "2021.1"),
    (datetime(2025, 12, 31, 15, 59, 59, tzinfo=timezone.utc), "2021.1"),  # 23:59:59 in Shanghai
    (datetime(2025, 12, 31, 16, 0, tzinfo=timezone.utc), "2026.1"),  # UTC still Dec 31; Shanghai Jan 1
    (datetime(2025, 12, 31, 20, 30, tzinfo=timezone.utc), "2026.1"),
    (datetime(2026, 1, 1, 0, 0, tzinfo=SHANGHAI), "2026.1"),
    (datetime(2025, 12, 31, 23, 59, tzinfo=SHANGHAI), "2021.1"),
    (datetime(2030, 1, 1, tzinfo=timezone.utc), "2026.1"),
    (datetime(2020, 12, 31, 15, 59, tzinfo=timezone.utc), None),  # before the first version, locally
    (datetime(2020, 12, 31, 16, 0, tzinfo=timezone.utc), "2021.1"),
])
def test_version_in_force_on_the_local_date(two_versions, instant, expected):
    found = two_versions.in_force(MID, instant, SHANGHAI)
    assert (found.version if found else None) == expected


def test_boundary_depends_on_the_banks_timezone(two_versions):
    instant = datetime(2025, 12, 31, 16, 30, tzinfo=timezone.utc)
    assert two_versions.in_force(MID, instant, SHANGHAI).version == "2026.1"
    assert two_versions.in_force(MID, instant, ZoneInfo("UTC")).version == "2021.1"
    # The offset the instant was reported in does not matter, only the bank's zone.
    reported = instant.astimezone(timezone(timedelta(hours=-5)))
    assert two_versions.in_force(MID, reported, SHANGHAI).version == "2026.1"


def test_gap_between_versions_has_no_version(tmp_path):
    reg = registry(write_doc(tmp_path, "a.toml", effective_to=date(2023, 1, 1)),
                   write_doc(tmp_path, "b.toml", version="2024.1", effective_from=date(2024, 1, 1)))
    assert reg.in_force(MID, datetime(2023, 6, 1, tzinfo=SHANGHAI), SHANGHAI) is None
    assert reg.in_force(MID, datetime(2022, 12, 31, 23, tzinfo=SHANGHAI), SHANGHAI).version == "2021.1"
    assert reg.in_force(MID, datetime(2024, 1, 1, tzinfo=SHANGHAI), SHANGHAI).version == "2024.1"


def test_approved_versions_restrict_the_choice(two_versions):
    old_day = datetime(2025, 6, 1, tzinfo=timezone.utc)
    new_day = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert two_versions.in_force(MID, new_day, SHANGHAI, approved=["2021.1"]) is None
    assert two_versions.in_force(MID, old_day, SHANGHAI, approved=["2021.1"]).version == "2021.1"
    assert two_versions.in_force(MID, old_day, SHANGHAI, approved=["2026.1"]) is None
    assert two_versions.in_force(MID, new_day, SHANGHAI, approved=("2021.1", "2026.1")).version == "2026.1"
    assert two_versions.in_force(MID, new_day, SHANGHAI, approved=()).version == "2026.1"
    assert two_versions.in_force("unknown", new_day, SHANGHAI) is None


# --- computing ----------------------------------------------------------------


def test_compute_with_project_factor(two_versions):
    v2 = two_versions.get(MID, "2026.1")
    r = v2.compute(ride("18.6"))
    # 18.6 × 40.0 − 18.6 × 2.5 = 697.5, rounded DOWN (round() would give 698)
    assert r.grams == 697 and type(r.grams) is int
    assert (r.baseline_g, r.project_g) == (Decimal("744.0"), Decimal("46.5"))
    assert (r.methodology, r.version) == (MID, "2026.1")
    assert [f.name for f in r.factors] == ["baseline", "project"]
    assert r.formula == "18.6 pkm × 40.0 gCO2e/pkm − 18.6 pkm × 2.5 gCO2e/pkm"


def test_compute_without_project_factor(two_versions):
    v1 = two_versions.get(MID, "2021.1")
    r = v1.compute(ride("18.6"))
    assert r.grams == 870  # 870.48
    assert r.project_g == 0 and [f.name for f in r.factors] == ["baseline"]
    assert "18.6 pkm" in r.formula and "46.8 gCO2e/pkm" in r.formula and r.formula.endswith("− 0")


@pytest.mark.parametrize("quantity, grams", [("0.0213", 0), ("0.02137", 1), ("1", 46), ("2.5", 117)])
def test_rounding_is_always_down(two_versions, quantity, grams):
    # 46.8 × q: 0.99684, 1.000116, 46.8, 117.0
    assert two_versions.get(MID, "2021.1").compute(ride(quantity)).grams == grams


def test_reduction_is_never_negative(tmp_path):
    path = write_doc(tmp_path, "worse.toml", factors={
        "baseline": {"value": Decimal("10"), "unit": "g/pkm", "source": "study A"},
        "project": {"value": Decimal("12.5"), "unit": "g/pkm", "source": "study B"}})
    r = registry(path).get(MID).compute(ride("3"))
    assert r.grams == 0
    assert (r.baseline_g, r.project_g) == (Decimal("30"), Decimal("37.5"))


def test_family_formula_given_in_code_wins(tmp_path):
    def halve(factors, behaviour):
        return per_quantity.compute(factors, dataclasses.replace(behaviour, quantity=behaviour.quantity / 2))

    path = write_doc(tmp_path, "a.toml", family="not_a_module")  # not looked up: the spec has a formula
    reg = MethodologyRegistry([MethodologySpec(id=MID, documents=(path,), formula=halve)])
    assert reg.get(MID).compute(ride("10")).grams == 234  # 5 × 46.8


# --- document validation --------------------------------------------------------


@pytest.mark.parametrize("changes, key, words", [
    (dict(reviewer=None), "reviewer", "Missing data"),
    (dict(reviewer="x"), "reviewer", "minimum length"),
    (dict(factors={"baseline": {"value": Decimal("-1.5"), "unit": "g", "source": "src"}}),
     "factors.baseline.value", "greater than or equal to 0"),
    (dict(factors={"baseline": {"value": "46.8", "unit": "g", "source": "src"}}),
     "factors.baseline.value", "Must be a number"),
    (dict(factors={"baseline": {"value": 1, "unit": "g"}}), "factors.baseline.source", "Missing data"),
    (dict(factors={}), "factors", "minimum length"),
    (dict(family="nosuchfamily"), "family", "unknown formula family 'nosuchfamily'"),
    (dict(family="metro"), "family", "unknown formula family 'metro'"),  # a documents folder, not a formula
    (dict(family="Per-Quantity"), "family", "String does not match"),
    (dict(effective_to=date(2020, 6, 1)), "effective_to", "after effective_from"),
    (dict(effective_to=date(2021, 1, 1)), "effective_to", "after effective_from"),
    (dict(effective_from="soon"), "effective_from", "date"),
    (dict(id="someone-else"), "id", "'someone-else' does not match"),
    (dict(factor_typo=1), "factor_typo", "Unknown field"),
    (dict(caps={"per_week_g": 5}), "caps.per_week_g", "Unknown field"),
    (dict(caps={"per_day_g": -1}), "caps.per_day_g", "greater than or equal to 0"),
])
def test_invalid_document_names_file_and_key(tmp_path, changes, key, words):
    path = write_doc(tmp_path, "bad.toml", **changes)
    with pytest.raises(MethodologyError) as exc:
        registry(path)
    message = str(exc.value)
    assert f"{path}: {key}" in message, message
    assert words in message


def test_overlapping_versions_are_refused(tmp_path):
    first = write_doc(tmp_path, "v1.toml", effective_to=date(2026, 6, 1))
    second = write_doc(tmp_path, "v2.toml", **V2)
    with pytest.raises(MethodologyError) as exc:
        registry(second, first)
    message = str(exc.value)
    assert str(second) in message and str(first) in message
    assert "set effective_to = 2026-01-01" in message


def test_open_ended_version_is_superseded_by_the_next(tmp_path):
    first = write_doc(tmp_path, "v1.toml")  # no effective_to: the published document is never edited
    second = write_doc(tmp_path, "v2.toml", **V2)
    reg = registry(first, second)
    v1, v2 = reg.versions[MID]
    assert v1.effective_to is None and v1.superseded_on == V2["effective_from"] == v1.ends_on
    assert not v1.in_force(V2["effective_from"]) and v2.in_force(V2["effective_from"])
    assert v1.in_force(V2["effective_from"] - timedelta(days=1))


def test_versions_starting_the_same_day_are_refused(tmp_path):
    a = write_doc(tmp_path, "a.toml", effective_to=date(2022, 1, 1))
    b = write_doc(tmp_path, "b.toml", version="2021.2")
    with pytest.raises(MethodologyError, match="still in force"):
        registry(a, b)


def test_duplicate_version_is_refused(tmp_path):
    first = write_doc(tmp_path, "v1.toml", effective_to=date(2026, 1, 1))
    second = write_doc(tmp_path, "v1-again.toml", effective_from=date(2026, 1, 1))
    with pytest.raises(MethodologyError) as exc:
        registry(first, second)
    assert f"{second}: version '2021.1' of '{MID}' appears twice" in str(exc.value)


def test_unreadable_documents(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('id = "metro-test\n', encoding="utf-8")
    with pytest.raises(MethodologyError, match=f"^{broken}: "):
        registry(broken)
    with pytest.raises(MethodologyError, match="not found"):
        registry(tmp_path / "missing.toml")
    with pytest.raises(MethodologyError, match="no documents"):
        registry()


def test_an_edited_document_is_read_again_not_served_from_the_cache(tmp_path):
    path = write_doc(tmp_path, "v.toml")
    assert registry(path).get(MID).factors["baseline"].value == Decimal("46.8")
    # Same path, same size, written within the file system's timestamp resolution.
    write_doc(tmp_path, "v.toml", factors={"baseline": {**BASE_DOC["factors"]["baseline"], "value": Decimal("46.9")}})
    assert registry(path).get(MID).factors["baseline"].value == Decimal("46.9")
    path.write_text("not = [toml\n", encoding="utf-8")
    with pytest.raises(MethodologyError, match=f"^{path}: "):
        registry(path)
    path.write_bytes(b"id = \"\xff\"\n")
    with pytest.raises(MethodologyError, match=f"^{path}: "):  # not UTF-8: a clear error, not a crash
        registry(path)


def test_builtin_documents_load():
    from plugins.metro import carbonhub_register_methodologies as metro
    from plugins.estatement import carbonhub_register_methodologies as estatement

    reg = MethodologyRegistry([*metro(ctx=None), *estatement(ctx=None)])
    assert set(reg.versions) == {"metro-avoided-car", "estatement-paperless"}
    for versions in reg.versions.values():
        assert all(v.reviewer and v.factors for v in versions)


# --- property: the per_quantity family ----------------------------------------


AMOUNTS = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)
FACTORS = st.decimals(min_value=0, max_value=10**4, places=4, allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def base_version(tmp_path_factory):
    return registry(write_doc(tmp_path_factory.mktemp("doc"), "v.toml")).get(MID)


@settings(max_examples=200, deadline=None)
@given(q1=AMOUNTS.filter(bool), q2=AMOUNTS.filter(bool), baseline=FACTORS, project=st.none() | FACTORS)
def test_grams_are_the_floored_non_negative_difference(base_version, q1, q2, baseline, project):
    factors = {"baseline": Factor("baseline", baseline, "g/pkm", "study")}
    if project is not None:
        factors["project"] = Factor("project", project, "g/pkm", "study")
    version = dataclasses.replace(base_version, factors=factors)
    grams = {}
    for q in (q1, q2):
        r = version.compute(ride(str(q)))
        # Exact rational arithmetic, independent of Decimal's context precision.
        exact = Fraction(q) * Fraction(baseline) - Fraction(q) * Fraction(project or 0)
        assert r.grams == max(0, math.floor(exact))
        assert type(r.grams) is int and r.grams >= 0
        assert str(q) in r.formula and str(baseline) in r.formula
        grams[q] = r.grams
    low, high = sorted((q1, q2))
    assert grams[low] <= grams[high]


# --- end to end: a receipt reproduces its grams -----------------------------------


def metro_ride(account_id: str, n: int, km: str = "18.6") -> dict[str, str]:
    entry = datetime(2026, 11, 20, 8 + n, 1, tzinfo=SHANGHAI)
    return {"ride_id": f"SZM-20261120-{n:06d}", "account_id": account_id, "card_token": "tok_9f2c",
            "city": "Shenzhen", "line": "1", "entry_station": f"Station {n}", "exit_station": "Shijie Zhichuang",
            "entry_at": entry.isoformat(), "exit_at": (entry + timedelta(minutes=39)).isoformat(),
            "distance_km": km}


def recompute(receipt: db.Receipt) -> int:
    """Grams from the receipt alone: quantity × each factor it records."""
    q = Fraction(Decimal(receipt.quantity))
    values = {f["name"]: Fraction(Decimal(f["value"])) for f in receipt.factors}
    return max(0, math.floor(q * values["baseline"] - q * values.get("project", 0)))


def test_receipt_reproduces_credited_grams(hub):
    acc, _ = hub.open_account("bank-ref-0001")
    hub.set_consent(acc.id, "metro", True, at=datetime(2026, 11, 1, tzinfo=timezone.utc))
    # The test config caps metro at 3000 g a day: the fourth 870 g ride is cut to 390 g.
    result = hub.pipeline.ingest("szmetro", [metro_ride(acc.id, n) for n in range(4)])
    assert result.summary()["accepted"] == 4, result.summary()

    rows = list(db.Behaviour.select().where(db.Behaviour.status == "accepted").order_by(db.Behaviour.occurred_at))
    receipts = {r.behaviour: r for r in db.Receipt.select()}
    assert len(rows) == len(receipts) == 4
    credited = []
    for row in rows:
        receipt = receipts[row.id]
        assert (receipt.methodology, receipt.version) == ("metro-avoided-car", "2021.1")
        assert receipt.quantity == "18.6" and receipt.unit == "pkm"
        assert recompute(receipt) == receipt.computed_g == 870
        assert "18.6" in receipt.formula and "46.8" in receipt.formula
        assert Decimal(receipt.baseline_g) - Decimal(receipt.project_g) >= receipt.computed_g
        if not receipt.caps:
            assert receipt.credited_g == recompute(receipt)
        else:
            (cap,) = receipt.caps
            assert cap["cap"] == "per_day_g" and cap["computed_g"] == 870
            assert receipt.credited_g == cap["credited_g"] == 3000 - cap["used_before"] < recompute(receipt)
        # The ledger credited exactly what the receipt says.
        posted = [p for p in hub.ledger.postings_of(row.tx_seq) if p.account == user_carbon(acc.id)]
        assert [p.amount for p in posted] == [receipt.credited_g] == [row.grams]
        credited.append(receipt.credited_g)
    assert credited == [870, 870, 870, 390]
    assert hub.ledger.balance(user_carbon(acc.id), "g") == 3000
