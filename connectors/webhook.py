"""Push: the partner calls the hub's signed webhook ``POST /v1/partners/<partner>/events``.

Every partner can push with the hub's built-in ``webhook`` connector: body
``{"records": [...]}``, HMAC-SHA256 over ``timestamp + "." + body`` (see
:mod:`hub.signing`), a timestamp at most ``hub.signature_max_age_s`` old, and a
signature accepted once (a captured request replayed inside that window is 409
``replayed_request``). The bank may bind a partner to a push connector to change
these per partner::

    [connectors.unionpay-push]
    connector = "webhook"
    partner = "unionpay"
    [connectors.unionpay-push.options]
    signature_max_age_s = 120          # stricter than the hub's default
    reject_replayed = true

A plugin whose partner sends another body shape subclasses :class:`PushConnector`
and overrides :meth:`PushConnector.split`.
"""
from __future__ import annotations

from typing import Any, Mapping

from marshmallow import RAISE, Schema, fields, validate

from .base import PUSH, Connector, ConnectorFailure, FAIL


class PushOptions(Schema):
    class Meta:
        unknown = RAISE

    signature_max_age_s = fields.Integer(strict=True, load_default=None, validate=validate.Range(1, 3600),
                                         metadata={"description": "Oldest X-Carbonhub-Timestamp accepted; "
                                                                  "default hub.signature_max_age_s."})
    reject_replayed = fields.Boolean(load_default=True,
                                     metadata={"description": "Refuse a signature already used (409)."})


class PushConnector(Connector):
    """The signed webhook. Override :meth:`split` for a partner whose body is not ``{"records": [...]}``."""

    mode = PUSH
    config_schema = PushOptions
    #: Whether :meth:`split` reads the body itself (no ``{"records": [...]}`` check by the hub).
    custom_body = False

    def split(self, body: Any) -> list[Mapping[str, Any]]:
        """The native records of one pushed body, in order.

        Raise :class:`connectors.base.ConnectorFailure` (kind ``fail``) when the body
        cannot be read: the push is answered 422 with its code and message, and
        nothing is stored (the partner must resend a readable body).
        """
        records = body.get("records") if isinstance(body, Mapping) else None
        if not isinstance(records, list):
            raise ConnectorFailure(FAIL, "invalid_body", "The body must be an object with a 'records' list.")
        return records

    def max_age_s(self, default: int) -> int:
        return self.options.get("signature_max_age_s") or default
