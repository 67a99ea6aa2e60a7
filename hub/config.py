"""The bank's switches: ``config/hub.toml`` loaded into validated settings.

Errors name the file, the dotted key and what is wrong, e.g.
``config/hub.toml: scenarios.metro.caps.per_day_g: Must be greater than or equal to 0.``
Secrets never live in the file: it names environment variables, which are read
from the process environment or, for local development, from ``secrets_file``.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import Binding
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates, validates_schema

DEFAULT_CONFIG = Path("config/hub.toml")
SCOPES = ("accounts:read", "accounts:write", "admin")
_ID = validate.Regexp(r"^[a-z0-9][a-z0-9_.-]{0,63}$", error="Must be a lowercase id: letters, digits, '_', '.', '-'.")
ENV_NAME = validate.Regexp(r"^[A-Z_][A-Z0-9_]*$", error="Must be an environment variable name (A-Z, 0-9, _).")


class ConfigError(Exception):
    """Invalid configuration; ``errors`` is a list of ``(key, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        super().__init__("\n".join(f"{source}: {key}: {msg}" for key, msg in errors))


def flatten_errors(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Turn marshmallow's nested error dict into ``(dotted.key, message)`` pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "key":  # marshmallow's Dict: the entry's name itself is invalid
                out.extend((k, f"invalid name: {m}") for k, m in flatten_errors(value, prefix))
                continue
            # "value" holding a dict is marshmallow's Dict wrapper around a nested schema's
            # errors (a field named "value" holds a list); "_schema" is a whole-object error
            name = "" if key == "_schema" or (key == "value" and isinstance(value, dict)) else str(key)
            out.extend(flatten_errors(value, f"{prefix}.{name}".strip(".") if name else prefix))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                out.extend(flatten_errors(item, prefix))
            else:
                out.append((prefix or "(top level)", str(item)))
    else:
        out.append((prefix or "(top level)", str(messages)))
    return out


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class HubSchema(_Strict):
    database_url = fields.String(load_default="sqlite:///var/carbonhub.db")
    timezone = fields.String(load_default="Asia/Shanghai")
    max_batch_records = fields.Integer(load_default=1000, validate=validate.Range(1, 100_000))
    signature_max_age_s = fields.Integer(load_default=300, validate=validate.Range(1, 3600))
    future_skew_s = fields.Integer(load_default=300, validate=validate.Range(0, 86_400))
    secrets_file = fields.String(load_default="var/secrets.env")

    @validates("timezone")
    def _tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"Unknown time zone {value!r}.") from exc

    @validates("database_url")
    def _url(self, value: str, **_: Any) -> None:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValidationError("Must start with sqlite:/// or postgresql://.")


class PluginsSchema(_Strict):
    block = fields.List(fields.String(), load_default=list)


class PartnerSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1))
    secret_env = fields.String(required=True, validate=ENV_NAME)
    scenarios = fields.List(fields.String(validate=_ID), required=True, validate=validate.Length(min=1))
    enabled = fields.Boolean(load_default=True)
    kind = fields.String(load_default=None, validate=_ID)


class CapsSchema(_Strict):
    per_day_g = fields.Integer(validate=validate.Range(min=0))
    per_month_g = fields.Integer(validate=validate.Range(min=0))
    per_day_count = fields.Integer(validate=validate.Range(min=0))
    per_month_count = fields.Integer(validate=validate.Range(min=0))
    per_subject_day_count = fields.Integer(validate=validate.Range(min=0))
    per_subject_month_count = fields.Integer(validate=validate.Range(min=0))


class LocalDate(fields.Date):
    """A calendar day in the bank's time zone: a TOML date (``2026-12-01``) or that text, never a date-time."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, datetime):
            raise ValidationError("Must be a date (2026-12-01), not a date-time.")
        if isinstance(value, date):
            return value
        return super()._deserialize(value, attr, data, **kwargs)


def _window_ok(data: Mapping[str, Any]) -> None:
    if data.get("from_") and data.get("to") and data["to"] < data["from_"]:
        raise ValidationError("Must not be before 'from'.", "to")


class CampaignSchema(_Strict):
    """``[[scenarios.<id>.points.campaigns]]``: the config rule's points multiplied on some days."""

    id = fields.String(load_default=None, validate=_ID)
    multiplier_pct = fields.Integer(strict=True, required=True, validate=validate.Range(100, 10_000))
    from_ = LocalDate(data_key="from", required=True)
    to = LocalDate(required=True)

    @validates_schema
    def _window(self, data: dict, **_: Any) -> None:
        _window_ok(data)


class PointsSchema(_Strict):
    per_kg = fields.Integer(load_default=0, validate=validate.Range(min=0))
    bonus = fields.Integer(load_default=0, validate=validate.Range(min=0))
    max_per_day = fields.Integer(strict=True, validate=validate.Range(min=0))
    max_per_week = fields.Integer(strict=True, validate=validate.Range(min=0))
    max_per_month = fields.Integer(strict=True, validate=validate.Range(min=0))
    campaigns = fields.List(fields.Nested(CampaignSchema), load_default=list)


class ScenarioConfigSchema(_Strict):
    enabled = fields.Boolean(load_default=True)
    methodology = fields.String(load_default=None, validate=_ID)
    versions = fields.List(fields.String(), load_default=list)
    caps = fields.Nested(CapsSchema, load_default=dict)
    points = fields.Nested(PointsSchema, load_default=lambda: {"per_kg": 0, "bonus": 0})


class ApiKeySchema(_Strict):
    key_env = fields.String(required=True, validate=ENV_NAME)
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1))


def _keyed(schema: type[Schema]) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=_ID), values=fields.Nested(schema), load_default=dict)


class ExchangeSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1))
    price_fen_per_tonne = fields.Integer(load_default=0, validate=validate.Range(0, 10**9))
    user_share_percent = fields.Integer(load_default=0, validate=validate.Range(0, 100))
    points_per_fen = fields.Integer(load_default=1, validate=validate.Range(0, 10**6))


class AggregationSchema(_Strict):
    reports_dir = fields.String(load_default="var/reports", validate=validate.Length(min=1))
    settle_days = fields.Integer(load_default=3, validate=validate.Range(0, 366))
    exchanges = _keyed(ExchangeSchema)


class RewardsSchema(_Strict):
    points_expire_after_months = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 1200))
    expire_every_s = fields.Integer(strict=True, load_default=3600, validate=validate.Range(10, 7 * 86_400))


class QuizSchema(_Strict):
    """``[quiz]``: the daily quiz (content/quiz/*.toml, docs/content.md)."""

    questions_per_day = fields.Integer(strict=True, load_default=3, validate=validate.Range(1, 50))
    points_per_correct = fields.Integer(strict=True, load_default=10, validate=validate.Range(0, 10**6))
    max_points_per_day = fields.Integer(strict=True, load_default=30, validate=validate.Range(0, 10**9))


class WebSchema(_Strict):
    """``[web]``: the user page and the bank's console served by the hub (docs/web.md)."""

    secret_key_env = fields.String(load_default="CARBONHUB_WEB_SECRET", validate=ENV_NAME)
    sign_in_link_ttl_s = fields.Integer(strict=True, load_default=600, validate=validate.Range(30, 7 * 86_400))
    session_ttl_s = fields.Integer(strict=True, load_default=8 * 3600, validate=validate.Range(60, 30 * 86_400))
    demo_sign_in = fields.Boolean(load_default=False)
    cookie_secure = fields.Boolean(load_default=False)


LIMIT_PERIODS = ("day", "week", "month", "ever")


class BenefitSchema(_Strict):
    """``[benefits.<id>]``: the bank's terms for a benefit a plugin registers."""

    enabled = fields.Boolean(load_default=True)
    partner = fields.String(required=True, validate=_ID)
    cost = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10**12))
    stock = fields.Integer(strict=True, load_default=None, validate=validate.Range(0, 10**12))
    limit_per_user = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    limit_period = fields.String(load_default="ever", validate=validate.OneOf(LIMIT_PERIODS))
    from_ = LocalDate(data_key="from", load_default=None)
    to = LocalDate(load_default=None)
    requires_green_record = fields.Boolean(load_default=False)
    welcome = fields.Boolean(load_default=False)
    options = fields.Dict(keys=fields.String(), load_default=dict)

    @validates_schema
    def _window(self, data: dict, **_: Any) -> None:
        _window_ok(data)


class RedemptionsSchema(_Strict):
    hold_deadline_s = fields.Integer(strict=True, load_default=600, validate=validate.Range(10, 86_400))
    fulfil_attempts = fields.Integer(strict=True, load_default=3, validate=validate.Range(1, 10))
    fulfil_backoff_ms = fields.Integer(strict=True, load_default=500, validate=validate.Range(0, 60_000))
    void_stale_every_s = fields.Integer(strict=True, load_default=60, validate=validate.Range(5, 86_400))


class ConnectorBindingSchema(_Strict):
    """``[connectors.<name>]``: a registered connector switched on for one partner."""

    connector = fields.String(required=True, validate=_ID)
    partner = fields.String(required=True, validate=_ID)
    enabled = fields.Boolean(load_default=True)
    every_s = fields.Integer(strict=True, load_default=300, validate=validate.Range(10, 7 * 86_400))
    options = fields.Dict(keys=fields.String(), load_default=dict)


class ConfigSchema(_Strict):
    hub = fields.Nested(HubSchema, load_default=lambda: HubSchema().load({}))
    plugins = fields.Nested(PluginsSchema, load_default=lambda: {"block": []})
    plugin_config = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)
    partners = _keyed(PartnerSchema)
    scenarios = _keyed(ScenarioConfigSchema)
    api_keys = _keyed(ApiKeySchema)
    rewards = fields.Nested(RewardsSchema, load_default=lambda: RewardsSchema().load({}))
    benefits = _keyed(BenefitSchema)
    redemptions = fields.Nested(RedemptionsSchema, load_default=lambda: RedemptionsSchema().load({}))
    aggregation = fields.Nested(AggregationSchema, load_default=lambda: AggregationSchema().load({}))
    connectors = _keyed(ConnectorBindingSchema)
    quiz = fields.Nested(QuizSchema, load_default=lambda: QuizSchema().load({}))
    web = fields.Nested(WebSchema, load_default=lambda: WebSchema().load({}))

    @post_load
    def _defaults(self, data: dict, **_: Any) -> dict:
        # Nested load_default values are not passed through the nested schema.
        if "hub" not in data or "database_url" not in data["hub"]:
            data["hub"] = HubSchema().load(data.get("hub", {}))
        return data


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    secret_env: str
    scenarios: tuple[str, ...]
    enabled: bool = True
    kind: str | None = None  # e.g. metro_operator; scenarios may accept only some kinds


@dataclass(frozen=True)
class ScenarioConfig:
    id: str
    enabled: bool
    methodology: str | None
    versions: tuple[str, ...]
    caps: Mapping[str, int]
    points: Mapping[str, int]  # per_kg, bonus
    campaigns: tuple["Campaign", ...] = ()
    point_caps: Mapping[str, int] = field(default_factory=dict)  # max_per_day / _week / _month

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "methodology": self.methodology, "versions": list(self.versions),
                "caps": dict(self.caps), "points": dict(self.points),
                "campaigns": [c.as_dict() for c in self.campaigns], "point_caps": dict(self.point_caps)}


@dataclass(frozen=True)
class Campaign:
    """Points of the config rule multiplied by ``multiplier_pct`` / 100 for acts on local days ``start``..``end``."""

    id: str
    multiplier_pct: int
    start: date
    end: date

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "multiplier_pct": self.multiplier_pct, "from": self.start, "to": self.end}


@dataclass(frozen=True)
class RewardsConfig:
    points_expire_after_months: int = 0  # 0: points never expire
    expire_every_s: int = 3600


@dataclass(frozen=True)
class BenefitConfig:
    """The bank's terms for one benefit (``[benefits.<id>]``)."""

    id: str
    partner: str
    cost: int
    enabled: bool = True
    stock: int | None = None  # None: unlimited
    limit_per_user: int | None = None
    limit_period: str = "ever"
    start: date | None = None
    end: date | None = None
    requires_green_record: bool = False
    welcome: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "partner": self.partner, "cost": self.cost, "stock": self.stock,
                "limit_per_user": self.limit_per_user, "limit_period": self.limit_period,
                "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None,
                "requires_green_record": self.requires_green_record, "welcome": self.welcome,
                "options": dict(self.options)}


@dataclass(frozen=True)
class RedemptionsConfig:
    hold_deadline_s: int = 600
    fulfil_attempts: int = 3
    fulfil_backoff_ms: int = 500
    void_stale_every_s: int = 60


@dataclass(frozen=True)
class ApiKey:
    name: str
    key_env: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Exchange:
    """A carbon exchange the hub aggregates reductions for (``[aggregation.exchanges.<id>]``)."""

    id: str
    name: str
    price_fen_per_tonne: int = 0
    user_share_percent: int = 0
    points_per_fen: int = 1


@dataclass(frozen=True)
class AggregationConfig:
    reports_dir: Path = Path("var/reports")
    settle_days: int = 3
    exchanges: Mapping[str, Exchange] = field(default_factory=dict)


@dataclass(frozen=True)
class QuizConfig:
    questions_per_day: int = 3
    points_per_correct: int = 10
    max_points_per_day: int = 30


@dataclass(frozen=True)
class WebConfig:
    secret_key_env: str = "CARBONHUB_WEB_SECRET"
    sign_in_link_ttl_s: int = 600
    session_ttl_s: int = 8 * 3600
    demo_sign_in: bool = False
    cookie_secure: bool = False


@dataclass
class Settings:
    """Validated configuration. Build with :func:`load_settings`."""

    source: str
    database_url: str
    timezone: ZoneInfo
    max_batch_records: int
    signature_max_age_s: int
    future_skew_s: int
    secrets_file: Path
    blocked_plugins: tuple[str, ...]
    plugin_config: Mapping[str, Mapping[str, Any]]
    partners: Mapping[str, Partner]
    scenarios: Mapping[str, ScenarioConfig]
    api_keys: Mapping[str, ApiKey]
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    benefits: Mapping[str, BenefitConfig] = field(default_factory=dict)
    redemptions: RedemptionsConfig = field(default_factory=RedemptionsConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    connectors: Mapping[str, Any] = field(default_factory=dict)  # name -> connectors.base.Binding
    quiz: QuizConfig = field(default_factory=QuizConfig)
    web: WebConfig = field(default_factory=WebConfig)
    _file_secrets: dict[str, str] | None = None

    def secret(self, env_name: str) -> str | None:
        """The value of a secret's environment variable, or None when unset."""
        value = self.environ.get(env_name)
        if value:
            return value
        if self._file_secrets is None:
            self._file_secrets = read_env_file(self.secrets_file)
        return self._file_secrets.get(env_name) or None

    def effective(self, mask: bool = True) -> dict[str, Any]:
        """The effective configuration as a dict, secrets masked or marked unset."""

        def shown(env: str) -> str:
            value = self.secret(env)
            if value is None:
                return "(unset)"
            return "****" + value[-2:] if mask and len(value) > 8 else ("****" if mask else value)

        return {
            "source": self.source,
            "hub": {"database_url": mask_url(self.database_url) if mask else self.database_url,
                    "timezone": str(self.timezone), "max_batch_records": self.max_batch_records,
                    "signature_max_age_s": self.signature_max_age_s, "future_skew_s": self.future_skew_s,
                    "secrets_file": str(self.secrets_file)},
            "plugins": {"block": list(self.blocked_plugins)},
            "partners": {p.id: {"name": p.name, "secret_env": p.secret_env, "secret": shown(p.secret_env),
                                "scenarios": list(p.scenarios), "enabled": p.enabled, "kind": p.kind}
                         for p in self.partners.values()},
            "scenarios": {s.id: s.as_dict() for s in self.scenarios.values()},
            "api_keys": {k.name: {"key_env": k.key_env, "key": shown(k.key_env), "scopes": list(k.scopes)}
                         for k in self.api_keys.values()},
            "rewards": {"points_expire_after_months": self.rewards.points_expire_after_months,
                        "expire_every_s": self.rewards.expire_every_s},
            "benefits": {b.id: b.as_dict() for b in self.benefits.values()},
            "redemptions": {"hold_deadline_s": self.redemptions.hold_deadline_s,
                            "fulfil_attempts": self.redemptions.fulfil_attempts,
                            "fulfil_backoff_ms": self.redemptions.fulfil_backoff_ms,
                            "void_stale_every_s": self.redemptions.void_stale_every_s},
            "aggregation": {"reports_dir": str(self.aggregation.reports_dir),
                            "settle_days": self.aggregation.settle_days,
                            "exchanges": {e.id: {"name": e.name, "price_fen_per_tonne": e.price_fen_per_tonne,
                                                 "user_share_percent": e.user_share_percent,
                                                 "points_per_fen": e.points_per_fen}
                                          for e in self.aggregation.exchanges.values()}},
            # Secret options name environment variables; their values are never shown here.
            "connectors": {b.name: {"connector": b.connector, "partner": b.partner, "enabled": b.enabled,
                                    "every_s": b.every_s, "options": dict(b.options)}
                           for b in self.connectors.values()},
            "quiz": {"questions_per_day": self.quiz.questions_per_day,
                     "points_per_correct": self.quiz.points_per_correct,
                     "max_points_per_day": self.quiz.max_points_per_day},
            "web": {"secret_key_env": self.web.secret_key_env, "secret_key": shown(self.web.secret_key_env),
                    "sign_in_link_ttl_s": self.web.sign_in_link_ttl_s, "session_ttl_s": self.web.session_ttl_s,
                    "demo_sign_in": self.web.demo_sign_in, "cookie_secure": self.web.cookie_secure},
        }


def mask_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1****@", url)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``NAME=value`` lines (``#`` comments); a missing file is empty."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip().strip('"').strip("'")
    return out


def _scenario_config(sid: str, s: Mapping[str, Any]) -> ScenarioConfig:
    points = dict(s["points"])
    campaigns = tuple(Campaign(id=c["id"] or f"{c['from_']}..{c['to']}", multiplier_pct=c["multiplier_pct"],
                               start=c["from_"], end=c["to"]) for c in points.pop("campaigns", ()))
    point_caps = {k: points.pop(k) for k in ("max_per_day", "max_per_week", "max_per_month") if k in points}
    return ScenarioConfig(id=sid, enabled=s["enabled"], methodology=s["methodology"], versions=tuple(s["versions"]),
                          caps=dict(s["caps"]), points=points, campaigns=campaigns, point_caps=point_caps)


def _benefit_config(bid: str, b: Mapping[str, Any]) -> BenefitConfig:
    b = dict(b)
    start, end = b.pop("from_"), b.pop("to")
    return BenefitConfig(id=bid, start=start, end=end, **b)


def config_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("CARBONHUB_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike | None = None, *, data: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate settings from a TOML file (or an already parsed dict).

    ``CARBONHUB_DATABASE_URL`` in the environment overrides ``hub.database_url``.
    """
    env = os.environ if environ is None else environ
    source = str(config_path(path)) if data is None else "<dict>"
    if data is None:
        try:
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, [("(file)", "Config file not found.")]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [("(syntax)", str(exc))]) from None
    try:
        loaded = ConfigSchema().load(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, flatten_errors(exc.messages)) from None

    hub = loaded["hub"]
    url = env.get("CARBONHUB_DATABASE_URL") or hub["database_url"]
    settings = Settings(
        source=source,
        database_url=url,
        timezone=ZoneInfo(hub["timezone"]),
        max_batch_records=hub["max_batch_records"],
        signature_max_age_s=hub["signature_max_age_s"],
        future_skew_s=hub["future_skew_s"],
        secrets_file=Path(hub["secrets_file"]),
        blocked_plugins=tuple(loaded["plugins"]["block"]),
        plugin_config=loaded["plugin_config"],
        partners={pid: Partner(id=pid, name=p["name"], secret_env=p["secret_env"],
                               scenarios=tuple(p["scenarios"]), enabled=p["enabled"], kind=p["kind"])
                  for pid, p in loaded["partners"].items()},
        scenarios={sid: _scenario_config(sid, s) for sid, s in loaded["scenarios"].items()},
        api_keys={name: ApiKey(name=name, key_env=k["key_env"], scopes=tuple(k["scopes"]))
                  for name, k in loaded["api_keys"].items()},
        environ=env,
        rewards=RewardsConfig(**loaded["rewards"]),
        benefits={bid: _benefit_config(bid, b) for bid, b in loaded["benefits"].items()},
        redemptions=RedemptionsConfig(**loaded["redemptions"]),
        aggregation=AggregationConfig(
            reports_dir=Path(loaded["aggregation"]["reports_dir"]),
            settle_days=loaded["aggregation"]["settle_days"],
            exchanges={xid: Exchange(id=xid, **x) for xid, x in loaded["aggregation"]["exchanges"].items()}),
        connectors={name: Binding(name=name, **b) for name, b in loaded["connectors"].items()},
        quiz=QuizConfig(**loaded["quiz"]),
        web=WebConfig(**loaded["web"]),
    )
    errors = [(f"partners.{p.id}.scenarios", f"Scenario {s!r} is not configured under [scenarios].")
              for p in settings.partners.values() for s in p.scenarios if s not in settings.scenarios]
    errors += [(f"connectors.{b.name}.partner", f"Partner {b.partner!r} is not configured under [partners].")
               for b in settings.connectors.values() if b.partner not in settings.partners]
    if errors:
        raise ConfigError(source, errors)
    return settings
