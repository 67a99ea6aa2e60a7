"""The connector contract: how a partner's data reaches the hub, whatever the transport.

A connector (in the spirit of the Airbyte CDK) has

- a **mode**: ``push`` (the partner calls the hub's signed webhook), ``pull``
  (the hub pages through the partner's API on a schedule) or ``batch`` (files);
- a **config schema** (marshmallow) for the options the bank sets under
  ``[connectors.<name>.options]``; a field whose metadata says ``secret=True``
  holds the *name* of an environment variable, never the secret itself, and is
  masked wherever config is shown;
- :meth:`Connector.check`, answering ok or a typed :class:`ConnectorFailure`;
- its **streams** (:class:`Stream`): primary key, cursor field, whether records
  arrive sorted, and the scenario they feed.

Every mode produces the same thing: the partner's native records, which enter the
kernel's inbox and pipeline exactly as a push does (``carbonhub_normalize_record``
reads them). A plugin offers a connector by returning a
:class:`hub.records.ConnectorSpec` whose ``connector`` is a subclass of one of
:class:`connectors.webhook.PushConnector`, :class:`connectors.http_pull.HttpPullConnector`
or :class:`connectors.batch.BatchConnector`; the bank binds it to a partner in config::

    [connectors.hellobike-rides]
    connector = "hellobike-rides"      # the ConnectorSpec id
    partner = "hellobike"
    every_s = 300                      # pull only: how often each stream runs
    [connectors.hellobike-rides.options]
    base_url = "https://open.hellobike.example/carbon/v1"
    api_key_env = "CARBONHUB_HELLOBIKE_API_KEY"
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from marshmallow import RAISE, Schema, ValidationError

if TYPE_CHECKING:
    from hub.context import HookContext

PUSH, PULL, BATCH = "push", "pull", "batch"
MODES = (PUSH, PULL, BATCH)

# How a failure should be handled (Airbyte's retry / fail / config_error).
RETRY = "retry"      # transient: the next attempt or run may succeed (429, 5xx, timeout, unreadable page)
FAIL = "fail"        # the partner refused this request; retrying the same request will not help
CONFIG = "config"    # the bank's settings are wrong (unknown host, bad key): fix config, then run again
FAILURE_KINDS = (RETRY, FAIL, CONFIG)


class ConnectorFailure(Exception):
    """A typed connector failure: ``kind`` (retry / fail / config), a short ``code`` and a message.

    ``retry_after`` (seconds) is set when the partner said when to come back (429 ``Retry-After``).
    """

    def __init__(self, kind: str, code: str, message: str, *, retry_after: float | None = None):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(message)
        self.kind, self.code, self.message, self.retry_after = kind, code, message, retry_after

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "code": self.code, "message": self.message}
        if self.retry_after is not None:
            out["retry_after_s"] = self.retry_after
        return out


@dataclass(frozen=True)
class CheckResult:
    """What :meth:`Connector.check` answers: ok, or the failure that stops the connector."""

    ok: bool
    failure: ConnectorFailure | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "failure": self.failure.as_dict() if self.failure else None}


@dataclass(frozen=True)
class Stream:
    """One kind of record a connector delivers.

    - ``primary_key``: the native record's fields that identify it at the partner
      (``("order_id",)``); a record already received under the same key is skipped
      when a pull re-reads its lookback window.
    - ``cursor_field``: the field the stream is read incrementally by (an ISO
      date-time such as ``updated_at``); None for a stream read whole each time.
    - ``is_sorted``: records arrive in ascending cursor order, so the cursor can be
      saved after every page; otherwise only once the whole run is read.
    - ``scenario``: the scenario its records feed (documentation and the admin view).
    - ``options``: connector-specific settings (for HTTP pulls, the ``path``).
    """

    name: str
    scenario: str
    primary_key: tuple[str, ...]
    cursor_field: str | None = None
    is_sorted: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def key_of(self, record: Mapping[str, Any]) -> str | None:
        """The record's primary key as one string, or None when a part is missing."""
        parts = []
        for name in self.primary_key:
            value = record.get(name) if isinstance(record, Mapping) else None
            if value is None or value == "":
                return None
            parts.append(str(value))
        return "\x1f".join(parts)


class NoOptions(Schema):
    """A connector without options."""

    class Meta:
        unknown = RAISE


@dataclass(frozen=True)
class Binding:
    """A connector the bank switched on: ``[connectors.<name>]`` in config."""

    name: str
    connector: str            # the ConnectorSpec id
    partner: str
    enabled: bool = True
    every_s: int = 300        # pull: seconds between runs of each stream
    options: Mapping[str, Any] = field(default_factory=dict)


class Connector:
    """Base class of every connector; subclass one of the three mode classes.

    The hub builds one instance per configured binding, with ``options`` already
    loaded through :attr:`config_schema` (so defaults are filled in and types
    converted). ``ctx`` is the same :class:`hub.context.HookContext` hooks get:
    ``ctx.http`` (a ``requests`` session), ``ctx.secret(env_name)``, ``ctx.now()``,
    ``ctx.log``.
    """

    mode: ClassVar[str] = ""
    config_schema: ClassVar[type[Schema]] = NoOptions

    def __init__(self, binding: Binding, ctx: "HookContext", options: Mapping[str, Any] | None = None):
        self.binding = binding
        self.ctx = ctx
        self.options: Mapping[str, Any] = options if options is not None else self.load_options(binding.options)

    @property
    def name(self) -> str:
        return self.binding.name

    @property
    def partner(self) -> str:
        return self.binding.partner

    @classmethod
    def load_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the bank's options; raises ``marshmallow.ValidationError`` naming the field."""
        return cls.config_schema().load(dict(raw))

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """Options whose values name an environment variable holding a secret."""
        return tuple(name for name, f in cls.config_schema().fields.items() if f.metadata.get("secret"))

    def secret(self, option: str) -> str | None:
        """The secret named by the option ``option`` (an environment variable name), or None."""
        env_name = self.options.get(option)
        return self.ctx.secret(env_name) if env_name else None

    def streams(self) -> list[Stream]:
        """The streams this connector delivers (pull and batch connectors have at least one)."""
        return []

    def check(self) -> CheckResult:
        """Whether the connector can work with its options: ok, or a typed failure.

        The base check only verifies that every secret option names a variable that is
        set; an HTTP connector also calls the partner (see ``HttpPullConnector.check``).
        """
        for option in self.secret_fields():
            env_name = self.options.get(option)
            if env_name and not self.ctx.secret(env_name):
                return CheckResult(False, ConnectorFailure(CONFIG, "secret_unset",
                                                           f"options.{option}: the environment variable "
                                                           f"{env_name} is not set."))
        return CheckResult(True, detail="options valid")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "connector": self.binding.connector, "mode": self.mode,
                "partner": self.partner, "enabled": self.binding.enabled,
                "streams": [{"name": s.name, "scenario": s.scenario, "primary_key": list(s.primary_key),
                             "cursor_field": s.cursor_field, "is_sorted": s.is_sorted} for s in self.streams()]}


def options_errors(connector_cls: type[Connector], raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` pairs for options the connector's schema refuses."""
    try:
        connector_cls.load_options(raw)
    except ValidationError as exc:
        from hub.config import flatten_errors

        return flatten_errors(exc.messages)
    return []


def parse_cursor(value: Any) -> datetime | None:
    """An ISO-8601 cursor value as an aware datetime (``Z`` allowed), or None when absent/unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
