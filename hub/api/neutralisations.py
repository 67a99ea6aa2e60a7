"""Neutralisations: a user retires carbon against a footprint and gets a certificate."""
from __future__ import annotations

from typing import Any

from .. import neutralisation
from .accounts import require_account
from .auth import current_hub
from .carbon_schemas import CertificatePageSchema, CertificateQuerySchema, CertificateSchema, NeutraliseSchema
from .errors import not_found
from .idempotency import IDEMPOTENCY_DOC, idempotency_key
from .routing import ApiBlueprint
from .schemas import encode_cursor

bp = ApiBlueprint("neutralisations", __name__, tag="neutralisations",
                  description="Carbon a user retires against a footprint (a flight, a trip...), with certificates.")


@bp.operation("/accounts/<account_id>/neutralisations", "POST", summary="Retire carbon against a footprint",
              description="Moves `grams` of the user's carbon to `@retired` and returns the certificate: the "
                          "footprint, the time and the receipts it draws on (the credited behaviours whose grams "
                          "it retired, oldest act first; a gram is never retired twice, nor retired once "
                          "aggregated). Requires the `Idempotency-Key` header: the same key with the same body "
                          "returns the original certificate (200); with another body it is 409 "
                          "`idempotency_conflict`.",
              scope="accounts:write", body=NeutraliseSchema, response=CertificateSchema,
              headers=IDEMPOTENCY_DOC,
              success={201: "Retired: the certificate.", 200: "A retry: the original certificate."},
              errors={404: "No such account (`not_found`).",
                      409: "Not enough carbon not yet retired or aggregated (`insufficient_carbon`), or the "
                           "key was used with another body (`idempotency_conflict`)."})
def neutralise(account_id: str, body: dict[str, Any]) -> Any:
    require_account(account_id)
    key = idempotency_key()
    cert, created = neutralisation.neutralise(current_hub(), account_id, body["grams"], body["footprint"], key)
    location = {"Location": f"/v1/accounts/{account_id}/neutralisations/{cert['id']}"}
    return cert, (201 if created else 200), location


@bp.operation("/accounts/<account_id>/neutralisations", "GET", summary="The user's certificates, newest first",
              description="Keyset pagination with the opaque `next` cursor.",
              scope="accounts:read", query=CertificateQuerySchema, response=CertificatePageSchema,
              errors={404: "No such account (`not_found`)."})
def list_neutralisations(account_id: str, query: dict[str, Any]) -> Any:
    require_account(account_id)
    rows, cursor = neutralisation.certificates_page(account_id, limit=query["limit"], before=query.get("before"))
    return {"account": account_id, "certificates": rows, "next": encode_cursor(*cursor) if cursor else None}


@bp.operation("/accounts/<account_id>/neutralisations/<certificate_id>", "GET", summary="One certificate",
              scope="accounts:read", response=CertificateSchema,
              errors={404: "No such account, or no such certificate of this account (`not_found`)."})
def get_neutralisation(account_id: str, certificate_id: str) -> Any:
    require_account(account_id)
    cert = neutralisation.certificate(account_id, certificate_id)
    if cert is None:
        raise not_found("certificate", certificate_id)
    return cert
