"""The hub's services wired together: settings, plugins, methodologies, store, ledger, pipeline.

:class:`Hub` is what the HTTP app, the CLI and the tests share; it is built
fresh each time (no global plugin manager).
"""
from __future__ import annotations

import logging
from datetime import datetime
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from . import accounts, carbon_uses, content, db, lots, usage
from .config import ConfigError, Settings
from .context import Clock, HookContext, utc_now
from .exchange import BenefitServices, Exchange
from .ingest import Pipeline
from .ledger import Ledger
from .methodology import MethodologyRegistry
from .plugins import build_plugin_manager, collect_registrations, notify
from .records import AccountRecord, TransactionRecord

log = logging.getLogger("carbonhub")


class Hub:
    def __init__(self, settings: Settings, *, clock: Clock = utc_now, extra_plugins: Iterable[Any] = (),
                 database_url: str | None = None):
        self.settings = settings
        self._clock = clock
        # Every service reads the time through self.now, so `clock_set_to` moves them all at once.
        self.ctx = HookContext(settings, self.now)
        self.pm = build_plugin_manager(settings.blocked_plugins, extra_plugins)
        self.registry = collect_registrations(self.pm, self.ctx)
        self.methodologies = MethodologyRegistry(self.registry.methodologies.values())
        self._check_config()
        self._scenario_dicts = {sid: s.as_dict() for sid, s in settings.scenarios.items()}
        self.database = db.bind(database_url or settings.database_url)
        self.ledger = Ledger(self.now, indexers=(lots.index_transactions,))
        self.pipeline = Pipeline(self)
        self.exchange = Exchange(self)
        self.ctx.benefits = BenefitServices(self.exchange)
        from connectors.registry import Connectors  # connectors build on the hub's services

        self.connectors = Connectors(self)

    def _cap_errors(self, sid: str, conf: Any, mid: str) -> list[tuple[str, str]]:
        """Config caps that could never apply: looser than the methodology's own
        (the lower always wins), or per_subject caps with nothing to count by."""
        versions = [v for v in self.methodologies.versions[mid] if not conf.versions or v.version in conf.versions]
        errors = []
        for kind, value in sorted(conf.caps.items()):
            looser = [v for v in versions if v.caps.get(kind) is not None and value > v.caps[kind]]
            if looser:
                v = looser[0]
                errors.append((f"scenarios.{sid}.caps.{kind}",
                               f"{value} is looser than {mid} {v.version}'s cap of {v.caps[kind]}; the lower cap "
                               f"always applies, so lower this one or remove it."))
            if kind.startswith("per_subject_") and not any(v.cap_subject for v in versions):
                errors.append((f"scenarios.{sid}.caps.{kind}",
                               f"{mid} names no cap_subject, so there is nothing to count {kind} by."))
        return errors

    def unchecked_partners(self) -> list[str]:
        """Partners with no ``kind`` that report a scenario accepting only some kinds."""
        return sorted(p.id for p in self.settings.partners.values() if p.kind is None and any(
            self.registry.scenarios[s].partner_kinds for s in p.scenarios if s in self.registry.scenarios))

    def now(self) -> datetime:
        return self._clock()

    @contextmanager
    def clock_set_to(self, clock: Clock) -> Iterator[None]:
        """Run with another clock, then restore this hub's (the demo replays past days with it)."""
        saved, self._clock = self._clock, clock
        try:
            yield
        finally:
            self._clock = saved

    def _check_config(self) -> None:
        """Config that names scenarios, methodologies or versions no plugin provides."""
        errors = []
        for sid, conf in self.settings.scenarios.items():
            spec = self.registry.scenarios.get(sid)
            if spec is None:
                hint = " (its plugin is blocked)" if self.settings.blocked_plugins else ""
                errors.append((f"scenarios.{sid}", f"No plugin registers scenario {sid!r}{hint}."))
                continue
            mid = conf.methodology or spec.methodology
            if mid not in self.methodologies.versions:
                errors.append((f"scenarios.{sid}.methodology", f"Unknown methodology {mid!r}."))
                continue
            known = {v.version for v in self.methodologies.versions[mid]}
            for v in conf.versions:
                if v not in known:
                    errors.append((f"scenarios.{sid}.versions", f"{mid} has no version {v!r} "
                                                                f"(known: {', '.join(sorted(known))})."))
            errors += self._cap_errors(sid, conf, mid)
        for partner in self.settings.partners.values():
            for sid in partner.scenarios:
                spec = self.registry.scenarios.get(sid)
                # A partner without a kind is not checked (config check warns about it).
                if spec is not None and spec.partner_kinds and partner.kind is not None \
                        and partner.kind not in spec.partner_kinds:
                    errors.append((f"partners.{partner.id}.scenarios",
                                   f"Scenario {sid!r} may be reported only by partners of kind "
                                   f"{', '.join(spec.partner_kinds)}; {partner.id!r} is of kind {partner.kind!r}."))
        for bid in self.settings.benefits:
            if bid not in self.registry.benefits:
                hint = " (its plugin is blocked)" if self.settings.blocked_plugins else ""
                errors.append((f"benefits.{bid}", f"No plugin registers benefit {bid!r}{hint}."))
        if errors:
            raise ConfigError(self.settings.source, errors)

    def scenario_config_dict(self, scenario: str) -> dict[str, Any]:
        return self._scenario_dicts[scenario]

    def notify(self, hook_name: str, **kwargs: Any) -> int:
        return notify(self.pm, hook_name, ctx=self.ctx, **kwargs)

    # --- store -------------------------------------------------------------

    def init_db(self) -> int:
        """Create the schema if needed and mirror configured partners; idempotent."""
        version = db.init_schema()
        self.sync_partners()
        if lots.needs_rebuild():  # a ledger from before point lots: derive them once
            lots.rebuild(write=True)
        return version

    def sync_partners(self) -> None:
        now = db.to_db(self.now())
        with db.database.atomic():
            for p in self.settings.partners.values():
                (db.Partner.insert(id=p.id, name=p.name, scenarios=list(p.scenarios), enabled=p.enabled,
                                   updated_at=now)
                 .on_conflict(conflict_target=[db.Partner.id],
                              update={db.Partner.name: p.name, db.Partner.scenarios: list(p.scenarios),
                                      db.Partner.enabled: p.enabled, db.Partner.updated_at: now})
                 .execute())
            configured = list(self.settings.partners)
            (db.Partner.update(enabled=False, updated_at=now)
             .where(db.Partner.id.not_in(configured) if configured else True).execute())

    # --- ledger ----------------------------------------------------------------

    def reverse(self, seq: int, reason: str) -> tuple[TransactionRecord, bool]:
        """Correct a transaction by its reversal, and tell the plugins once.

        Grams of the credit already retired or aggregated decide first, in the
        same database transaction (:func:`hub.carbon_uses.before_reversal`); a
        reversed credit gives its room back to the caps (:mod:`hub.usage`).
        """
        with db.database.atomic():
            db.lock_ledger()
            adjustments = carbon_uses.before_reversal(self.ledger, seq, reason, self.now())
            tx, created = self.ledger.reverse(seq, reason)
            if created:
                usage.release_credit(seq, self.methodologies, self.settings.timezone)
        for posted in adjustments:
            self.notify("carbonhub_transaction_posted", transaction=posted)
        if created:
            self.notify("carbonhub_transaction_posted", transaction=tx)
        return tx, created

    # --- accounts ------------------------------------------------------------

    def open_account(self, bank_ref: str) -> tuple[AccountRecord, bool]:
        account, created = accounts.open_account(bank_ref, self.now())
        if created:
            self.notify("carbonhub_account_opened", account=account)
        return account, created

    def set_consent(self, account_id: str, scenario: str, granted: bool, *, at: datetime | None = None,
                    source: str = "api") -> bool:
        return accounts.set_consent(account_id, scenario, granted, at or self.now(), source)

    # --- views ---------------------------------------------------------------

    def enabled_scenarios(self) -> list[str]:
        return sorted(s for s, c in self.settings.scenarios.items() if c.enabled and s in self.registry.scenarios)

    def scenario_view(self, sid: str, at: datetime | None = None) -> dict[str, Any]:
        spec, conf = self.registry.scenarios[sid], self.settings.scenarios[sid]
        mid = conf.methodology or spec.methodology
        when = at or self.now()
        current = self.methodologies.in_force(mid, when, self.settings.timezone, conf.versions)
        caps = dict(current.caps) if current else {}
        for kind, value in conf.caps.items():
            caps[kind] = min(value, caps.get(kind, value))
        return {
            "id": sid, "title": spec.title, "description": spec.description, "unit": spec.unit,
            "plugin": self.registry.owner[("scenario", sid)],
            "partners": sorted(p.id for p in self.settings.partners.values() if sid in p.scenarios and p.enabled),
            "methodology": {"id": mid, "version_in_force": current.version if current else None,
                            "approved_versions": list(conf.versions) or
                            [v.version for v in self.methodologies.versions[mid]]},
            "caps": caps,
            "cap_subject": current.cap_subject if current else None,
            "points": dict(conf.points),
            "campaigns": [c.as_dict() for c in conf.campaigns],
            "point_caps": dict(conf.point_caps),
            "science": content.article_for_scenario(sid),
        }
