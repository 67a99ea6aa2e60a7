"""Consents: a user authorises (or stops authorising) a scenario.

Only behaviours that happened while consent was granted are credited.
"""
from __future__ import annotations

from typing import Any

from .. import queries
from .accounts import require_account
from .auth import current_hub
from .errors import not_found
from .routing import ApiBlueprint
from .schemas import ConsentChangeSchema, ConsentsSchema

bp = ApiBlueprint("consents", __name__, tag="consents",
                  description="Per-scenario consent of a user, with its append-only log.")
UNKNOWN_SCENARIO = "No enabled scenario with this id (`unknown_scenario`), or no such account (`not_found`)."


def _change(account_id: str, scenario: str, granted: bool) -> dict[str, Any]:
    hub = current_hub()
    require_account(account_id)
    if scenario not in hub.enabled_scenarios():
        raise not_found("enabled scenario", scenario, code="unknown_scenario")
    changed = hub.set_consent(account_id, scenario, granted, source="api")
    return {**queries.consent_state(account_id, scenario), "changed": changed}


@bp.operation("/accounts/<account_id>/consents/<scenario>", "PUT", summary="Grant consent to a scenario",
              description="Idempotent: granting again changes nothing (`changed: false`). Takes effect at the "
                          "hub's current time; behaviours that happened earlier stay uncredited.",
              scope="accounts:write", response=ConsentChangeSchema, errors={404: UNKNOWN_SCENARIO})
def grant_consent(account_id: str, scenario: str) -> Any:
    return _change(account_id, scenario, True)


@bp.operation("/accounts/<account_id>/consents/<scenario>", "DELETE", summary="Revoke consent to a scenario",
              description="Idempotent. Behaviours that happen after the revocation are rejected `no_consent`; "
                          "earlier ones are unaffected.",
              scope="accounts:write", response=ConsentChangeSchema, errors={404: UNKNOWN_SCENARIO})
def revoke_consent(account_id: str, scenario: str) -> Any:
    return _change(account_id, scenario, False)


@bp.operation("/accounts/<account_id>/consents", "GET", summary="Current consents and their log",
              scope="accounts:read", response=ConsentsSchema, errors={404: "No such account (`not_found`)."})
def list_consents(account_id: str) -> Any:
    require_account(account_id)
    return queries.consents_view(account_id)
