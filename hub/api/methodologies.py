"""Methodologies: every reviewed version, with its factors and their sources."""
from __future__ import annotations

from typing import Any

from ..core import Hub
from .auth import current_hub
from .errors import not_found
from .routing import PUBLIC, ApiBlueprint
from .schemas import MethodologySchema

bp = ApiBlueprint("methodologies", __name__, tag="methodologies",
                  description="The published methodologies behind every gram (public).")


def _view(hub: Hub, methodology_id: str) -> dict[str, Any]:
    today = hub.now().astimezone(hub.settings.timezone).date()
    used_by = [s for s in hub.enabled_scenarios()
               if (hub.settings.scenarios[s].methodology or hub.registry.scenarios[s].methodology) == methodology_id]
    return {"id": methodology_id, "scenarios": used_by,
            "versions": [{**v.as_dict(), "in_force_today": v.in_force(today)}
                         for v in hub.methodologies.versions[methodology_id]]}


@bp.operation("/methodologies", "GET", summary="Every methodology and all its versions", auth=PUBLIC,
              response=MethodologySchema, many=True,
              description="Public. Versions are ordered by `effective_from`; `in_force_today` uses today's "
                          "date in the bank's time zone.")
def list_methodologies() -> Any:
    hub = current_hub()
    return [_view(hub, mid) for mid in sorted(hub.methodologies.versions)]


@bp.operation("/methodologies/<methodology_id>", "GET", summary="One methodology and all its versions",
              auth=PUBLIC, response=MethodologySchema, errors={404: "No such methodology (`not_found`)."})
def get_methodology(methodology_id: str) -> Any:
    hub = current_hub()
    if methodology_id not in hub.methodologies.versions:
        raise not_found("methodology", methodology_id)
    return _view(hub, methodology_id)
