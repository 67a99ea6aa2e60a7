"""Scenarios the bank has enabled: what users can consent to and earn for."""
from __future__ import annotations

from typing import Any

from .auth import current_hub
from .routing import PUBLIC, ApiBlueprint
from .schemas import ScenarioSchema

bp = ApiBlueprint("scenarios", __name__, tag="scenarios",
                  description="Enabled scenarios with their methodology, caps and points (public).")


@bp.operation("/scenarios", "GET", summary="Enabled scenarios", auth=PUBLIC, response=ScenarioSchema, many=True,
              description="Public: no key needed. Each scenario names the methodology version in force "
                          "today, the caps (the lower of methodology and bank config) and the points rule.")
def list_scenarios() -> Any:
    hub = current_hub()
    return [hub.scenario_view(s) for s in hub.enabled_scenarios()]
