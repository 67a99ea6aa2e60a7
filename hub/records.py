"""Typed records that cross the plugin boundary.

Plugins receive and return these dataclasses, never database models, so the
store can change without breaking a partner's plugin. All are frozen: a hook
that wants to change a record returns a new one (``dataclasses.replace``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

# Status of a partner record or behaviour once the pipeline is done with it.
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


@dataclass(frozen=True)
class ScenarioSpec:
    """A kind of low-carbon behaviour a plugin can normalize.

    ``id`` is unique across all plugins (a duplicate stops the hub at start-up).
    ``methodology`` names the methodology id used unless the bank's config picks
    another one; ``unit`` is the unit of ``Behaviour.quantity`` (e.g. ``pkm``,
    ``statement``). ``partner_kinds``, when not empty, are the partner kinds
    (config ``partners.<id>.kind``) that may report the scenario, e.g.
    ``("metro_operator", "payment_network")``: the hub refuses to start when the
    bank binds the scenario to a partner of another kind.
    """

    id: str
    title: str
    methodology: str
    unit: str
    description: str = ""
    partner_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodologySpec:
    """A methodology and its versioned TOML documents.

    ``documents`` are paths to TOML files, one per version (see
    ``docs/methodologies.md`` for their fields). ``formula`` optionally gives the
    family formula in code; when ``None`` the document's ``family`` names a module
    in the ``methodologies`` package.
    """

    id: str
    documents: tuple[Path, ...]
    formula: Callable[..., "Calculation"] | None = None


@dataclass(frozen=True)
class ConnectorSpec:
    """A way partner data reaches the hub (``push``, ``pull`` or ``batch``).

    ``connector`` is the class the hub instantiates for each binding the bank
    configures (``[connectors.<name>] connector = "<id>"``): a subclass of
    :class:`connectors.webhook.PushConnector`, :class:`connectors.http_pull.HttpPullConnector`
    or :class:`connectors.batch.BatchConnector` (see ``docs/partners.md``). ``mode``
    must equal the class's mode.
    """

    id: str
    mode: str
    partner_kind: str = ""
    scenarios: tuple[str, ...] = ()
    description: str = ""
    connector: Any = None


@dataclass(frozen=True)
class BenefitSpec:
    """Something a partner can fulfil when a user redeems points.

    The bank switches a benefit on, prices and stocks it in config
    (``[benefits.<id>]``). ``details`` names what the user must give when
    redeeming (e.g. ``("member_id",)`` for airline miles): the hub refuses a
    redemption without them and hands them to the fulfilment as
    ``Redemption.details``.
    """

    id: str
    title: str
    partner_kind: str = ""
    description: str = ""
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fulfilment:
    """What a partner delivered for a redemption, as ``carbonhub_fulfil_benefit`` returns it.

    ``code`` is what the user sees and uses (a voucher or card code, a coupon);
    ``reference`` the partner's own id for what it did (a miles-credit id);
    ``detail`` JSON-safe extras shown to the user (miles credited, valid until).
    """

    code: str | None = None
    reference: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reference": self.reference, "detail": dict(self.detail)}


@dataclass(frozen=True)
class RedemptionRecord:
    """A redemption as the fulfilment hooks see it.

    - ``id``: the hub's id (``rdm_…``); send it to the partner as the
      idempotency key of the request, so a retry never delivers twice.
    - ``details``: what the user gave (see ``BenefitSpec.details``).
    - ``options``: the bank's ``[benefits.<id>] options`` (e.g. how many miles).
    - ``attempt``: 1 for the first call, 2… for retries of the same redemption.
    - ``fulfilment``: what an earlier call returned, when ``carbonhub_cancel_fulfilment``
      is called after one succeeded; otherwise None.
    """

    id: str
    account_id: str
    benefit: str
    partner: str
    cost: int
    created_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    fulfilment: Fulfilment | None = None


class FulfilmentError(Exception):
    """Raise from ``carbonhub_fulfil_benefit`` when the partner did not deliver.

    Use a subclass: :class:`RetryableFulfilmentError` (timeout, 5xx, an answer
    that cannot be read: the hub calls again with backoff, then voids) or
    :class:`PermanentFulfilmentError` (the partner refused, e.g. an unknown
    member: the hub voids at once). ``code`` is a short lowercase reason shown
    to the user with ``message``.
    """

    retryable = False

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class RetryableFulfilmentError(FulfilmentError):
    """The partner may deliver if asked again (timeout, 5xx, malformed answer)."""

    retryable = True


class PermanentFulfilmentError(FulfilmentError):
    """The partner refused; asking again would not help."""

    retryable = False


@dataclass(frozen=True)
class RawRecord:
    """One partner record exactly as received, before normalization.

    ``payload`` is the partner's native JSON object; ``scenarios`` are the
    scenarios the bank allows this partner to feed.
    """

    inbox_id: str
    partner: str
    payload: Mapping[str, Any]
    received_at: datetime
    scenarios: tuple[str, ...] = ()


@dataclass(frozen=True)
class Behaviour:
    """A normalized low-carbon act of one user.

    - ``event_id``: the partner's id for this act; a second record with the same
      partner and event id is answered ``duplicate``.
    - ``fingerprint``: identifies the real act whoever reports it (build it with
      :func:`fingerprint`); the same act from two partners is credited once.
    - ``occurred_at``: timezone-aware; decides which methodology version applies.
    - ``quantity``: positive, in the scenario's ``unit``.
    - ``attributes``: the evidence the methodology asks for (JSON-safe values).
    """

    scenario: str
    account_id: str
    event_id: str
    fingerprint: str
    occurred_at: datetime
    quantity: Decimal
    unit: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Why a record or behaviour cannot be credited: a code, a message, a field."""

    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class RecordError(Exception):
    """Raise from ``carbonhub_normalize_record`` when a native record is unusable.

    The record is stored as ``rejected`` with this code, message and field, and
    can be replayed later. ``redact`` names fields (dotted paths such as
    ``card.pan`` or ``items.0.pan``) the hub must not keep: the inbox stores the
    record with their values replaced by ``"[redacted]"`` (a full card number
    sent by mistake, say), so such a record is kept, but not its secret.
    """

    REDACTED = "[redacted]"

    def __init__(self, code: str, message: str, field: str | None = None, *, redact: tuple[str, ...] = ()):
        super().__init__(message)
        self.problem = Problem(code, message, field)
        self.redact = tuple(redact)


def redacted(payload: Any, paths: tuple[str, ...]) -> Any:
    """A copy of ``payload`` with the values at ``paths`` (dotted; list items by index) replaced."""
    if not paths:
        return payload
    heads: dict[str, list[str]] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        heads.setdefault(head, []).append(rest)
    if isinstance(payload, Mapping):
        items = {str(k): k for k in payload}
        out = dict(payload)
        for head, rests in heads.items():
            if head in items:
                key = items[head]
                out[key] = RecordError.REDACTED if "" in rests else redacted(payload[key], tuple(rests))
        return out
    if isinstance(payload, (list, tuple)):
        out_list = list(payload)
        for head, rests in heads.items():
            if head.isdigit() and int(head) < len(out_list):
                i = int(head)
                out_list[i] = RecordError.REDACTED if "" in rests else redacted(out_list[i], tuple(rests))
        return out_list
    return payload


@dataclass(frozen=True)
class Factor:
    """A sourced emission factor from a methodology document."""

    name: str
    value: Decimal
    unit: str
    source: str


@dataclass(frozen=True)
class Calculation:
    """What a family formula returns: emissions in grams (may be fractional)."""

    baseline_g: Decimal
    project_g: Decimal
    factors_used: tuple[str, ...]
    formula: str


@dataclass(frozen=True)
class Reduction:
    """A reduction computed for one behaviour, before caps and rewards."""

    methodology: str
    version: str
    grams: int
    baseline_g: Decimal
    project_g: Decimal
    formula: str
    factors: tuple[Factor, ...]


@dataclass(frozen=True)
class PointGrant:
    """Points a reward rule awards for one credited behaviour."""

    points: int
    rule: str
    detail: str = ""


@dataclass(frozen=True)
class PostingRecord:
    account: str
    unit: str
    amount: int


@dataclass(frozen=True)
class TransactionRecord:
    """A posted ledger transaction as plugins see it."""

    seq: int
    key: str
    kind: str
    created_at: datetime
    postings: tuple[PostingRecord, ...]
    memo: Mapping[str, Any] = field(default_factory=dict)
    reverses: int | None = None


@dataclass(frozen=True)
class AccountRecord:
    id: str
    bank_ref: str
    opened_at: datetime


def fingerprint(*parts: Any) -> str:
    """Stable fingerprint of a real act from its identifying parts.

    Parts are joined with a separator that cannot appear in them unescaped, so
    ``("a|b", "c")`` and ``("a", "b|c")`` differ.
    """
    text = "\x1f".join(str(p).replace("\x1f", " ") for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
