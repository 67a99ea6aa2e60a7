"""Methodologies: reviewed, versioned TOML documents plus a formula per family.

A document (see ``docs/methodologies.md``) names its ``family``; the formula is
``methodologies/<family>.py:compute`` unless the plugin gives one in code.
Reduction = baseline - project, never negative, rounded down to whole grams.
The version in force on the local date of ``occurred_at`` is used, so a factor
update is a new document with a later ``effective_from``, never an edit.
"""
from __future__ import annotations

import importlib
import math
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .config import flatten_errors
from .records import Behaviour, Calculation, Factor, MethodologySpec, Reduction

CAP_KINDS = ("per_day_g", "per_month_g", "per_day_count", "per_month_count")
# Counted per value of the document's ``cap_subject`` attribute across all users
# (one bill account, one card), not per user.
SUBJECT_CAP_KINDS = ("per_subject_day_count", "per_subject_month_count")
ALL_CAP_KINDS = CAP_KINDS + SUBJECT_CAP_KINDS


class MethodologyError(Exception):
    """A methodology document is invalid; the hub will not start."""


class _DecimalField(fields.Field):
    """Accepts the Decimals tomllib gives with ``parse_float=Decimal`` and ints."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise ValidationError("Must be a number.")
        return Decimal(value)


class FactorSchema(Schema):
    class Meta:
        unknown = RAISE

    value = _DecimalField(required=True, validate=validate.Range(min=0))
    unit = fields.String(required=True)
    source = fields.String(required=True, validate=validate.Length(min=3))
    note = fields.String()


class CapsDocSchema(Schema):
    class Meta:
        unknown = RAISE

    per_day_g = fields.Integer(validate=validate.Range(min=0))
    per_month_g = fields.Integer(validate=validate.Range(min=0))
    per_day_count = fields.Integer(validate=validate.Range(min=0))
    per_subject_day_count = fields.Integer(validate=validate.Range(min=0))
    per_subject_month_count = fields.Integer(validate=validate.Range(min=0))
    per_month_count = fields.Integer(validate=validate.Range(min=0))


class DocumentSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True)
    version = fields.String(required=True, validate=validate.Length(min=1, max=32))
    title = fields.String(required=True)
    family = fields.String(required=True, validate=validate.Regexp(r"^[a-z_][a-z0-9_]*$"))
    reviewer = fields.String(required=True, validate=validate.Length(min=2))
    reviewed_on = fields.Date(required=True)
    effective_from = fields.Date(required=True)
    effective_to = fields.Date(load_default=None)
    quantity_unit = fields.String(required=True)
    evidence = fields.List(fields.String(), load_default=list)
    description = fields.String(load_default="")
    factors = fields.Dict(keys=fields.String(), values=fields.Nested(FactorSchema), required=True,
                          validate=validate.Length(min=1))
    caps = fields.Nested(CapsDocSchema, load_default=dict)
    cap_subject = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$"))

    @validates_schema
    def _dates(self, data: dict, **_: Any) -> None:
        if data.get("effective_to") and data["effective_to"] <= data["effective_from"]:
            raise ValidationError("Must be after effective_from.", "effective_to")

    @validates_schema
    def _subject(self, data: dict, **_: Any) -> None:
        if not data.get("cap_subject") and any(k in data.get("caps", {}) for k in SUBJECT_CAP_KINDS):
            raise ValidationError("per_subject caps need cap_subject (the attribute they count by).", "cap_subject")


def _as_date(value: Any) -> Any:
    # tomllib gives datetime.date for TOML dates; marshmallow's Date wants text.
    return value.isoformat() if isinstance(value, date) else value


@dataclass(frozen=True)
class MethodologyVersion:
    """One reviewed version of a methodology."""

    id: str
    version: str
    title: str
    family: str
    reviewer: str
    reviewed_on: date
    effective_from: date
    effective_to: date | None
    quantity_unit: str
    evidence: tuple[str, ...]
    description: str
    factors: Mapping[str, Factor]
    caps: Mapping[str, int]
    path: str
    formula: Callable[[Mapping[str, Factor], Behaviour], Calculation] = field(repr=False, compare=False)
    cap_subject: str | None = None  # attribute whose value per_subject caps count by
    # Set by the registry: the next version's effective_from, which ends an
    # open-ended version without editing its published document.
    superseded_on: date | None = None

    @property
    def ends_on(self) -> date | None:
        """First day this version is no longer in force (None: still open)."""
        ends = [d for d in (self.effective_to, self.superseded_on) if d is not None]
        return min(ends) if ends else None

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.ends_on is None or day < self.ends_on)

    def compute(self, behaviour: Behaviour) -> Reduction:
        calc = self.formula(self.factors, behaviour)
        grams = max(0, math.floor(calc.baseline_g - calc.project_g))
        return Reduction(methodology=self.id, version=self.version, grams=grams,
                         baseline_g=calc.baseline_g, project_g=calc.project_g, formula=calc.formula,
                         factors=tuple(self.factors[name] for name in calc.factors_used))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "title": self.title, "family": self.family,
            "reviewer": self.reviewer, "reviewed_on": self.reviewed_on.isoformat(),
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "superseded_on": self.superseded_on.isoformat() if self.superseded_on else None,
            "quantity_unit": self.quantity_unit, "evidence": list(self.evidence),
            "description": self.description, "caps": dict(self.caps), "cap_subject": self.cap_subject,
            "factors": {n: {"value": str(f.value), "unit": f.unit, "source": f.source}
                        for n, f in self.factors.items()},
        }


def family_formula(family: str) -> Callable[[Mapping[str, Factor], Behaviour], Calculation]:
    try:
        module = importlib.import_module(f"methodologies.{family}")
    except ModuleNotFoundError:
        raise MethodologyError(f"unknown formula family {family!r} (no module methodologies/{family}.py)") from None
    compute = getattr(module, "compute", None)
    if not callable(compute):  # e.g. a documents folder, which imports as a namespace package
        raise MethodologyError(f"unknown formula family {family!r} (methodologies.{family} has no compute())")
    return compute


def load_document(path: Path, spec: MethodologySpec) -> MethodologyVersion:
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise MethodologyError(f"{path}: methodology document not found") from None
    data = _parse_document(str(path), content)
    if data["id"] != spec.id:
        raise MethodologyError(f"{path}: id {data['id']!r} does not match the registered methodology {spec.id!r}")
    try:
        formula = spec.formula or family_formula(data["family"])
    except MethodologyError as exc:
        raise MethodologyError(f"{path}: family: {exc}") from None
    factors = {name: Factor(name=name, value=f["value"], unit=f["unit"], source=f["source"])
               for name, f in data["factors"].items()}
    return MethodologyVersion(
        id=data["id"], version=data["version"], title=data["title"], family=data["family"],
        reviewer=data["reviewer"], reviewed_on=data["reviewed_on"], effective_from=data["effective_from"],
        effective_to=data["effective_to"], quantity_unit=data["quantity_unit"],
        evidence=tuple(data["evidence"]), description=data["description"], factors=factors,
        caps=dict(data["caps"]), path=str(path), formula=formula, cap_subject=data["cap_subject"])


@lru_cache(maxsize=256)
def _parse_document(path: str, content: bytes) -> Mapping[str, Any]:
    """A document's validated fields. Cached by its bytes: every hub a process builds (each
    test, each worker's reload) reads the same dozen documents, and parsing them cost
    more than the rest of start-up; an edited document is new bytes, parsed again.
    The result is shared: read it, never change it."""
    try:
        raw = tomllib.loads(content.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MethodologyError(f"{path}: {exc}") from None
    for key in ("reviewed_on", "effective_from", "effective_to"):
        if key in raw:
            raw[key] = _as_date(raw[key])
    try:
        return DocumentSchema().load(raw)
    except ValidationError as exc:
        raise MethodologyError("\n".join(f"{path}: {k}: {m}" for k, m in flatten_errors(exc.messages))) from None


class MethodologyRegistry:
    """Every loaded version, by methodology id, sorted by effective date."""

    def __init__(self, specs: Iterable[MethodologySpec]):
        self.versions: dict[str, list[MethodologyVersion]] = {}
        for spec in specs:
            loaded = sorted((load_document(Path(p), spec) for p in spec.documents),
                            key=lambda v: v.effective_from)
            if not loaded:
                raise MethodologyError(f"methodology {spec.id!r} has no documents")
            seen: set[str] = set()
            for v in loaded:
                if v.version in seen:
                    raise MethodologyError(f"{v.path}: version {v.version!r} of {spec.id!r} appears twice")
                seen.add(v.version)
            for i, (a, b) in enumerate(zip(loaded, loaded[1:])):
                if a.effective_from == b.effective_from or (a.effective_to and a.effective_to > b.effective_from):
                    raise MethodologyError(
                        f"{b.path}: {spec.id} {b.version} starts {b.effective_from} while {a.version} "
                        f"is still in force; set effective_to = {b.effective_from} in {a.path} or start later")
                if a.effective_to is None:
                    # A newer version supersedes an open-ended one: factor updates
                    # are new documents, the published one stays untouched.
                    loaded[i] = replace(a, superseded_on=b.effective_from)
            self.versions[spec.id] = loaded

    def get(self, methodology_id: str, version: str | None = None) -> MethodologyVersion | None:
        for v in self.versions.get(methodology_id, ()):
            if version is None or v.version == version:
                return v
        return None

    def in_force(self, methodology_id: str, occurred_at: datetime, tz: ZoneInfo,
                 approved: Iterable[str] = ()) -> MethodologyVersion | None:
        """The version in force on the local date of ``occurred_at``.

        ``approved`` restricts to the versions the bank approved (empty: all).
        """
        day = occurred_at.astimezone(tz).date()
        allowed = set(approved)
        for v in self.versions.get(methodology_id, ()):
            if v.in_force(day) and (not allowed or v.version in allowed):
                return v
        return None
