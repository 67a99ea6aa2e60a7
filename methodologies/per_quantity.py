"""Family ``per_quantity``: emissions proportional to the behaviour's quantity.

    baseline = quantity × factor ``baseline``   (what the usual alternative emits)
    project  = quantity × factor ``project``    (what the low-carbon act emits; 0 if absent)

Used where a published factor is per passenger-km, per statement, per item...
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    q = Decimal(behaviour.quantity)
    base = factors["baseline"]
    proj = factors.get("project")
    baseline = q * base.value
    project = q * proj.value if proj else Decimal(0)
    used = ("baseline", "project") if proj else ("baseline",)
    text = f"{q} {behaviour.unit} × {base.value} {base.unit}"
    text += f" − {q} {behaviour.unit} × {proj.value} {proj.unit}" if proj else " − 0"
    return Calculation(baseline_g=baseline, project_g=project, factors_used=used, formula=text)
