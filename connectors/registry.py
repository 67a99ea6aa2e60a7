"""The connectors the bank switched on (``[connectors.<name>]``), bound to their partners.

Built when the hub starts: an unknown connector id, options the connector's
schema refuses, or a partner of a kind the connector does not serve stops the
hub with an error naming the file and the dotted key.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.config import ConfigError

from .base import BATCH, MODES, PULL, PUSH, Binding, Connector, options_errors
from .batch import BatchConnector
from .webhook import PushConnector

if TYPE_CHECKING:
    from hub.core import Hub


class Connectors:
    """The bound connectors of one hub, by binding name."""

    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.bound: dict[str, Connector] = {}
        errors: list[tuple[str, str]] = []
        for b in hub.settings.connectors.values():
            errors += self._bind(b)
        seen: dict[str, str] = {}
        for name, c in sorted(self.bound.items()):
            if c.mode == PUSH and c.binding.enabled:
                if c.partner in seen:
                    errors.append((f"connectors.{name}.partner", f"Partner {c.partner!r} already pushes through "
                                                                 f"connectors.{seen[c.partner]}; one push "
                                                                 f"connector per partner."))
                seen[c.partner] = name
        if errors:
            raise ConfigError(hub.settings.source, errors)

    def _bind(self, b: Binding) -> list[tuple[str, str]]:
        hub, key = self.hub, f"connectors.{b.name}"
        spec = hub.registry.connectors.get(b.connector)
        if spec is None:
            known = ", ".join(sorted(hub.registry.connectors)) or "none"
            return [(f"{key}.connector", f"No plugin registers connector {b.connector!r} (known: {known}).")]
        cls = spec.connector
        if not (isinstance(cls, type) and issubclass(cls, Connector)) or cls.mode not in MODES \
                or cls.mode != spec.mode:
            return [(f"{key}.connector", f"Connector {b.connector!r} of plugin "
                                         f"{hub.registry.owner[('connector', b.connector)]!r} has no usable "
                                         f"{spec.mode} connector class.")]
        partner = hub.settings.partners[b.partner]
        if spec.partner_kind and partner.kind and partner.kind != spec.partner_kind:
            return [(f"{key}.partner", f"Connector {b.connector!r} serves partners of kind {spec.partner_kind!r}; "
                                       f"{b.partner!r} is of kind {partner.kind!r}.")]
        problems = options_errors(cls, b.options)
        if problems:
            return [(f"{key}.options.{field}".rstrip("."), message) for field, message in problems]
        self.bound[b.name] = cls(b, hub.ctx)
        return []

    def __getitem__(self, name: str) -> Connector:
        return self.bound[name]

    def get(self, name: str) -> Connector | None:
        return self.bound.get(name)

    def of_mode(self, mode: str, *, enabled_only: bool = True) -> list[Connector]:
        return [c for _, c in sorted(self.bound.items())
                if c.mode == mode and (c.binding.enabled or not enabled_only)]

    def pulls(self) -> list[Any]:
        return self.of_mode(PULL)

    def push_for(self, partner: str) -> PushConnector:
        """The partner's push connector, or the built-in webhook with the hub's defaults."""
        for c in self.of_mode(PUSH):
            if c.partner == partner:
                return c  # type: ignore[return-value]
        return PushConnector(Binding(name=f"{partner}.webhook", connector="webhook", partner=partner),
                             self.hub.ctx)

    def batch_for(self, partner: str, name: str | None = None) -> BatchConnector:
        """The partner's batch connector: ``name``, its only one, or the built-in ``file`` reader.

        Raises KeyError with a message when ``name`` is not a batch connector of the
        partner, or when the partner has several and none is named.
        """
        mine = [c for c in self.of_mode(BATCH) if c.partner == partner]
        if name is not None:
            found = [c for c in mine if c.name == name]
            if not found:
                raise KeyError(f"{name!r} is not an enabled batch connector of partner {partner!r} "
                               f"(its batch connectors: {', '.join(c.name for c in mine) or 'none'}).")
            return found[0]  # type: ignore[return-value]
        if len(mine) > 1:
            raise KeyError(f"Partner {partner!r} has several batch connectors ({', '.join(c.name for c in mine)}); "
                           f"name one with --connector.")
        if mine:
            return mine[0]  # type: ignore[return-value]
        return BatchConnector(Binding(name=f"{partner}.file", connector="file", partner=partner), self.hub.ctx)
