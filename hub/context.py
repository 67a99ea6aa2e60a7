"""The ``ctx`` every hook receives: the hub's services for plugins."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import requests

from .config import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class HookContext:
    """Services a plugin may use; new services are added as attributes.

    - ``now()``: the hub's clock (timezone-aware UTC); tests may freeze it.
    - ``tz``: the bank's time zone, which decides calendar days for caps.
    - ``log``: a logger under ``carbonhub.plugins``.
    - ``http``: a shared ``requests.Session`` for partner APIs.
    - ``plugin_config(name)``: the ``[plugin_config.<name>]`` section of hub.toml.
    - ``secret(env_name)``: a secret named in config (environment, or the local secrets file).
    - ``benefits``: the exchange's services (:class:`hub.exchange.BenefitServices`):
      ``take_code(benefit, redemption_id)``, ``offers(benefit)``, ``grant(account_id, benefit, key)``.
    """

    def __init__(self, settings: Settings, clock: Clock = utc_now):
        self.settings = settings
        self._clock = clock
        self.tz = settings.timezone
        self.log = logging.getLogger("carbonhub.plugins")
        self._http: requests.Session | None = None
        self.benefits: Any = None  # set by the hub once its exchange exists

    def now(self) -> datetime:
        return self._clock()

    @property
    def http(self) -> requests.Session:
        if self._http is None:
            self._http = requests.Session()
            self._http.headers["User-Agent"] = "carbonhub"
        return self._http

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        return self.settings.plugin_config.get(name, {})

    def secret(self, env_name: str) -> str | None:
        """The value of the environment variable ``env_name`` (a plugin names it in its config), or None."""
        return self.settings.secret(env_name)


class FixedClock:
    """A clock that stands still until moved; for tests, demos and replays."""

    def __init__(self, now: datetime):
        if now.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self.current = now

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self.current += timedelta(**delta)
        return self.current
