"""The bank's earning rules: the config points rule (registered as a default plugin), campaigns and caps.

Config per scenario::

    [scenarios.metro.points]
    per_kg = 100         # points per whole kilogram credited (integer arithmetic, rounded down)
    bonus = 0            # fixed points per credited behaviour
    max_per_day = 500    # per user: points this scenario may award a day / an ISO week / a month
    max_per_week = 2000
    max_per_month = 6000

    [[scenarios.metro.points.campaigns]]
    id = "double-december"
    multiplier_pct = 200   # the rule's points × 200 / 100 for acts on these local days
    from = 2026-12-01
    to = 2026-12-31

Each award names its rule in the ledger memo and the receipt: ``config:<scenario>``
for the base rule, ``campaign:<scenario>:<id>`` for a campaign's extra points,
``cap:<scenario>:<max_per_…>`` (negative) when a cap trims them. Plugins add rule
types through the same ``carbonhub_evaluate_rewards`` hook; caps apply to the
sum of every rule's points. Lots and expiry are in :mod:`hub.lots`.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any, Iterable, Mapping

from . import db
from .db import PointsUsage
from .hookspecs import hookimpl
from .records import Behaviour, PointGrant, Reduction

CAP_PERIODS = (("max_per_day", "d"), ("max_per_week", "w"), ("max_per_month", "m"))


def points_for(grams: int, per_kg: int, bonus: int) -> int:
    return grams * per_kg // 1000 + bonus if grams > 0 else 0


def campaign_in_force(campaigns: Iterable[Mapping[str, Any]], day: date) -> Mapping[str, Any] | None:
    """The campaign with the highest multiplier on ``day`` (campaigns never stack), or None."""
    best = None
    for c in campaigns:
        if c["from"] <= day <= c["to"] and (best is None or c["multiplier_pct"] > best["multiplier_pct"]):
            best = c
    return best


@hookimpl
def carbonhub_evaluate_rewards(ctx: Any, behaviour: Behaviour, reduction: Reduction,
                               scenario_config: Mapping[str, Any]) -> list[PointGrant]:
    rule = scenario_config.get("points") or {}
    per_kg, bonus = int(rule.get("per_kg", 0)), int(rule.get("bonus", 0))
    points = points_for(reduction.grams, per_kg, bonus)
    if points <= 0:
        return []
    grants = [PointGrant(points=points, rule=f"config:{behaviour.scenario}",
                         detail=f"{reduction.grams} g × {per_kg} pts/kg + {bonus}")]
    campaigns = scenario_config.get("campaigns")
    if campaigns:
        campaign = campaign_in_force(campaigns, behaviour.occurred_at.astimezone(ctx.tz).date())
        extra = points * campaign["multiplier_pct"] // 100 - points if campaign else 0
        if extra > 0:
            grants.append(PointGrant(points=extra, rule=f"campaign:{behaviour.scenario}:{campaign['id']}",
                                     detail=f"{campaign['multiplier_pct']} % of {points} pts, "
                                            f"{campaign['from']}..{campaign['to']}"))
    return grants


def periods_of(day: date) -> dict[str, str]:
    """The usage periods of a local day: ``d:2026-11-21``, ``w:2026-W47`` (ISO week), ``m:2026-11``."""
    year, week, _ = day.isocalendar()
    return {"d": f"d:{day:%Y-%m-%d}", "w": f"w:{year}-W{week:02d}", "m": f"m:{day:%Y-%m}"}


class PointCaps:
    """The per-user points caps of one ingestion chunk: usage read once, trimmed in memory, written once.

    Runs inside the chunk's database transaction, under the ledger lock, so the
    counts are exact across workers.
    """

    def __init__(self, caps_by_scenario: Mapping[str, Mapping[str, int]], tz: Any):
        self.caps = {s: c for s, c in caps_by_scenario.items() if c}
        self.tz = tz
        self.used: dict[tuple[str, str, str], int] = {}
        self.delta: dict[tuple[str, str, str], int] = defaultdict(int)
        self._periods: dict[date, dict[str, str]] = {}

    def _periods_of(self, behaviour: Behaviour) -> dict[str, str]:
        day = behaviour.occurred_at.astimezone(self.tz).date()
        periods = self._periods.get(day)
        if periods is None:
            periods = self._periods[day] = periods_of(day)
        return periods

    def load(self, behaviours: Iterable[Behaviour]) -> None:
        """Read the usage of every capped account, scenario and period of ``behaviours`` (one query)."""
        keys = {(b.account_id, b.scenario, p) for b in behaviours if b.scenario in self.caps
                and b.occurred_at.tzinfo is not None for p in self._periods_of(b).values()}
        if not keys:
            return
        accounts = sorted({k[0] for k in keys})
        periods = sorted({k[2] for k in keys})
        rows = db.fetch_in('SELECT "account", "scenario", "period", "points" FROM "points_usage" '
                           f'WHERE "account" IN ({{marks}}) AND "period" IN ({db.marks(len(periods))})',
                           accounts, periods, chunk=400)
        self.used = {(a, s, p): n for a, s, p, n in rows}

    def apply(self, behaviour: Behaviour, grants: list[PointGrant]) -> list[PointGrant]:
        """``grants`` plus a negative ``cap:`` grant when a cap trims them; counts what is awarded."""
        caps = self.caps.get(behaviour.scenario)
        total = sum(g.points for g in grants)
        if not caps or total <= 0:
            return grants
        periods = self._periods_of(behaviour)
        award, trimmed_by = total, None
        for key, letter in CAP_PERIODS:
            limit = caps.get(key)
            if limit is None:
                continue
            k = (behaviour.account_id, behaviour.scenario, periods[letter])
            room = max(0, limit - self.used.get(k, 0) - self.delta.get(k, 0))
            if award > room:
                award, trimmed_by = room, (key, limit, limit - room)
        if award:
            for letter in ("d", "w", "m"):
                self.delta[(behaviour.account_id, behaviour.scenario, periods[letter])] += award
        if trimmed_by is None:
            return grants
        key, limit, used = trimmed_by
        return [*grants, PointGrant(points=award - total, rule=f"cap:{behaviour.scenario}:{key}",
                                    detail=f"{key} {limit} pts with {used} already awarded: "
                                           f"{award} of {total} pts")]

    def write(self) -> None:
        db.upsert_add(PointsUsage, ("account", "scenario", "period"), ("points",),
                      [(a, s, p, n) for (a, s, p), n in self.delta.items() if n])
