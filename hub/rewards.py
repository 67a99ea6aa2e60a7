"""The hub's own reward rule, registered as a default plugin.

Config per scenario::

    [scenarios.metro.points]
    per_kg = 100   # points per whole kilogram credited (integer arithmetic, rounded down)
    bonus = 0      # fixed points per credited behaviour

Campaigns, lots and expiry come with the benefit exchange; plugins add rule
types through the same ``carbonhub_evaluate_rewards`` hook.
"""
from __future__ import annotations

from typing import Any, Mapping

from .hookspecs import hookimpl
from .records import Behaviour, PointGrant, Reduction


def points_for(grams: int, per_kg: int, bonus: int) -> int:
    return grams * per_kg // 1000 + bonus if grams > 0 else 0


@hookimpl
def carbonhub_evaluate_rewards(behaviour: Behaviour, reduction: Reduction,
                               scenario_config: Mapping[str, Any]) -> list[PointGrant]:
    rule = scenario_config.get("points") or {}
    per_kg, bonus = int(rule.get("per_kg", 0)), int(rule.get("bonus", 0))
    points = points_for(reduction.grams, per_kg, bonus)
    if points <= 0:
        return []
    return [PointGrant(points=points, rule=f"config:{behaviour.scenario}",
                       detail=f"{reduction.grams} g × {per_kg} pts/kg + {bonus}")]
