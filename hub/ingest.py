"""The ingestion pipeline: RawRecord -> normalize -> gate -> methodology -> rewards -> ledger.

Records are processed in chunks; each chunk is one database transaction with a
handful of queries (accounts, consents, seen events, seen fingerprints, usage
counters, then bulk inserts), not several per record. Every record ends
``accepted``, ``duplicate`` or ``rejected`` with a reason code, and stays in the
inbox; rejected ones can be replayed after a fix, and a replay never credits an
act twice (the credit keys are unique in the database and in the ledger).

Gate order (the first failing check gives the reason):
partner allowed for the scenario, scenario enabled, account exists, consent at
``occurred_at``, record valid (plugin validators, no future date, positive
quantity, methodology in force, unit, evidence), partner event not seen
(``duplicate``), real act not credited by any partner (``duplicate``), caps.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field as dc_field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from . import db, lots
from .accounts import ConsentTimeline, existing_accounts, new_id, new_ids
from .db import Behaviour as BehaviourRow
from .db import InboxRecord, Receipt, UsageCounter, canonical_json, database
from .ledger import TxRequest, user_carbon, user_points
from .methodology import ALL_CAP_KINDS, MethodologyVersion
from .plugins import Impl, call_each, hookimpls
from .rewards import PointCaps
from .records import (ACCEPTED, DUPLICATE, REJECTED, Behaviour, PointGrant, PostingRecord, Problem,
                      RawRecord, RecordError, Reduction, redacted)

if TYPE_CHECKING:
    from .core import Hub

log = logging.getLogger("carbonhub.ingest")
# Called inside a chunk's transaction with (inbox_id, payload, status) per record.
ChunkHook = Callable[[list[tuple[str, Any, str]]], None]
DEFAULT_CHUNK = 1000

# Reason codes set by the hub (plugins add their own through validators).
REASONS = {
    "unknown_partner": "The partner is not configured or is disabled.",
    "normalize_failed": "The plugin could not read the record.",
    "not_handled": "No plugin handled this record.",
    "no_behaviour": "The record carries no creditable act.",
    "partner_not_allowed": "The partner may not report this scenario.",
    "scenario_disabled": "The scenario is not enabled by the bank.",
    "unknown_account": "No carbon account with this id.",
    "no_consent": "The user had not authorised this scenario when the act happened.",
    "invalid_record": "A field of the record is invalid.",
    "future_date": "occurred_at is in the future.",
    "non_positive_quantity": "The quantity must be positive.",
    "no_methodology_in_force": "No approved methodology version was in force on that date.",
    "unit_mismatch": "The quantity's unit differs from the methodology's.",
    "missing_evidence": "The methodology requires evidence the record lacks.",
    "duplicate_event": "The partner already reported this event (duplicate).",
    "double_claim": "This act was already credited, possibly through another partner (duplicate).",
    "cap_reached": "The user's cap for this scenario is reached.",
    "zero_reduction": "The methodology gives no reduction for this act.",
    "methodology_failed": "The methodology's formula failed on this act; it is kept for replay.",
    "reward_failed": "A reward rule failed; the act is kept for replay, nothing was credited.",
    "malformed_row": "A line of a partner file could not be read as a record (e.g. a wrong number of CSV cells).",
    "malformed_json": "A line of a JSON Lines file is not JSON.",
}


@dataclass(frozen=True)
class Unreadable:
    """A record a connector could not read or reshape (a bad line of a partner file).

    Given among the payloads of :meth:`Pipeline.ingest`, it is stored in the inbox
    as ``rejected`` with ``problem`` and never reaches the plugins; ``payload`` is
    what the connector could read of it (e.g. the line's text). Replays skip it:
    the partner resends the line.
    """

    payload: Any
    problem: Problem


@dataclass
class BehaviourOutcome:
    id: str
    scenario: str
    account: str | None
    event_id: str
    status: str
    reason: str | None = None
    message: str | None = None
    field: str | None = None
    grams: int = 0
    points: int = 0
    duplicate_of: str | None = None
    tx_seq: int | None = None
    capped: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "scenario": self.scenario, "account": self.account, "event_id": self.event_id,
               "status": self.status, "grams": self.grams, "points": self.points}
        if self.reason:
            out["reason"] = self.reason
            out["message"] = self.message
            if self.field:
                out["field"] = self.field
        if self.duplicate_of:
            out["duplicate_of"] = self.duplicate_of
        if self.tx_seq is not None:
            out["transaction"] = self.tx_seq
        if self.capped:
            out["capped"] = True
        return out


@dataclass
class RecordOutcome:
    index: int
    inbox_id: str
    event_id: str | None
    status: str
    reason: str | None = None
    message: str | None = None
    field: str | None = None
    behaviours: list[BehaviourOutcome] = dc_field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {"index": self.index, "inbox_id": self.inbox_id, "event_id": self.event_id, "status": self.status}
        if self.reason:
            out.update(reason=self.reason, message=self.message)
            if self.field:
                out["field"] = self.field
        out["behaviours"] = [b.as_dict() for b in self.behaviours]
        return out


@dataclass
class BatchResult:
    batch_id: str
    counts: Counter = dc_field(default_factory=Counter)
    reasons: Counter = dc_field(default_factory=Counter)
    grams: int = 0
    points: int = 0
    records: list[RecordOutcome] = dc_field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "records": sum(self.counts.values()),
                "accepted": self.counts[ACCEPTED], "duplicate": self.counts[DUPLICATE],
                "rejected": self.counts[REJECTED], "grams": self.grams, "points": self.points,
                "reasons": dict(self.reasons)}


@dataclass
class _Item:
    """A behaviour in flight through the gate."""

    outcome: BehaviourOutcome
    behaviour: Behaviour | None
    static_problem: Problem | None = None  # partner / scenario problems (checked first)
    validity_problem: Problem | None = None  # checked after account and consent
    version: MethodologyVersion | None = None
    reduction: Reduction | None = None
    receipt: dict[str, Any] | None = None
    day: str = ""
    month: str = ""
    subject: str | None = None  # usage-counter key of the per_subject caps, when the methodology has them


@dataclass
class _Rec:
    index: int
    inbox_id: str
    payload: Mapping[str, Any]
    received_at: datetime
    replay: bool
    problem: Problem | None = None
    items: list[_Item] = dc_field(default_factory=list)
    status: str | None = None  # record_status(), once the gate is done
    redact: tuple[str, ...] = ()  # payload fields the plugin said must not be stored (RecordError.redact)
    unreadable: bool = False  # given as Unreadable: rejected before normalize, never replayed


@dataclass
class _ChunkCache:
    """Lookups that are the same for every behaviour of a chunk (settings do not
    change mid-chunk): scenario config, version in force per local day, usage periods."""

    scenarios: dict[str, tuple[Any, str]] = dc_field(default_factory=dict)
    versions: dict[tuple[str, Any, tuple[str, ...]], MethodologyVersion | None] = dc_field(default_factory=dict)
    periods: dict[Any, tuple[str, str]] = dc_field(default_factory=dict)


def _problem(code: str, message: str | None = None, field_name: str | None = None) -> Problem:
    return Problem(code, message or REASONS.get(code, code), field_name)


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def record_status(rec: _Rec) -> str:
    if rec.problem is not None:
        return REJECTED
    statuses = {i.outcome.status for i in rec.items}
    # Rejected wins so a partly failed record stays replayable; a replay finds
    # the credited parts already credited.
    for status in (REJECTED, ACCEPTED, DUPLICATE):
        if status in statuses:
            return status
    return REJECTED


class Pipeline:
    def __init__(self, hub: "Hub"):
        self.hub = hub
        self._normalizers: dict[str, Any] = {}
        self._validators_by_scenario: dict[str, list[Impl]] | None = None

    # --- public ------------------------------------------------------------

    def ingest(self, partner_id: str, payloads: Iterable[Mapping[str, Any]], *, source: str = "push",
               batch_id: str | None = None, keep_results: bool = True,
               chunk_size: int = DEFAULT_CHUNK, in_transaction: ChunkHook | None = None) -> BatchResult:
        """Run partner records through the pipeline; each chunk commits atomically.

        ``in_transaction(chunk)`` is called inside each chunk's database transaction,
        after its rows are written, with ``(inbox_id, payload, status)`` per record:
        a connector saves its cursor or file position there, so the position and
        the inbox rows it covers commit together (or not at all).
        """
        result = BatchResult(batch_id=batch_id or new_id("bat"))
        index = 0
        for chunk in _chunks(payloads, chunk_size):
            recs = self._recs(chunk, index)
            index += len(recs)
            self._process(partner_id, recs, result, source, keep_results, in_transaction, outcomes=keep_results)
        return result

    def ingest_chunks(self, partner_id: str, payloads: Iterable[Mapping[str, Any]], *, source: str,
                      result: BatchResult, keep_results: bool = False, chunk_size: int = DEFAULT_CHUNK,
                      in_transaction: ChunkHook | None = None) -> Iterator[list[RecordOutcome]]:
        """Like :meth:`ingest`, yielding each committed chunk's outcomes (in order) as it goes.

        ``result`` accumulates the counts; its ``records`` only when ``keep_results``.
        Reading ``payloads`` lazily keeps memory flat for files of any size.
        """
        index = 0
        for chunk in _chunks(payloads, chunk_size):
            recs = self._recs(chunk, index)
            index += len(recs)
            yield self._process(partner_id, recs, result, source, keep_results, in_transaction, outcomes=True)

    def _recs(self, chunk: list[Any], index: int) -> list[_Rec]:
        now = self.hub.now()
        recs = [_Rec(index=index + i, inbox_id=inbox_id, payload=payload, received_at=now, replay=False)
                for i, (payload, inbox_id) in enumerate(zip(chunk, new_ids("in", len(chunk))))]
        for rec in recs:
            if type(rec.payload) is Unreadable:
                rec.problem, rec.payload, rec.unreadable = rec.payload.problem, rec.payload.payload, True
        return recs

    def replay(self, *, partner: str | None = None, reason: str | None = None,
               ids: Sequence[str] | None = None, limit: int | None = None) -> BatchResult:
        """Re-run rejected inbox records (after a fix to config, consent or plugin)."""
        query = InboxRecord.select().where(InboxRecord.status == REJECTED).order_by(InboxRecord.received_at,
                                                                                     InboxRecord.id)
        if partner:
            query = query.where(InboxRecord.partner == partner)
        if reason:
            query = query.where(InboxRecord.reason == reason)
        if ids:
            query = query.where(InboxRecord.id.in_(list(ids)))
        if limit:
            query = query.limit(limit)
        # A record stored with redacted fields, or an unreadable line, cannot become valid: the partner resends it.
        rows = [row for row in query
                if not (row.detail or {}).get("redacted") and not (row.detail or {}).get("unreadable")]
        result = BatchResult(batch_id=new_id("rpl"))
        by_partner: dict[str, list[InboxRecord]] = defaultdict(list)
        for row in rows:
            by_partner[row.partner].append(row)
        index = 0
        for partner_id, prow in by_partner.items():
            for chunk in _chunks(prow, DEFAULT_CHUNK):
                recs = []
                for row in chunk:
                    recs.append(_Rec(index=index, inbox_id=row.id, payload=row.payload,
                                     received_at=db.from_db(row.received_at), replay=True))
                    index += 1
                self._process(partner_id, recs, result, "replay", True)
        return result

    # --- stages ------------------------------------------------------------

    def _normalizer(self, partner_id: str, scenarios: tuple[str, ...]) -> Any:
        """A hook caller limited to the plugins owning the partner's scenarios,
        so one plugin's normalize cannot shadow another's."""
        caller = self._normalizers.get(partner_id)
        if caller is None:
            pm = self.hub.pm
            owners = self.hub.registry.plugins_for_scenarios(scenarios)
            others = [p for name, p in pm.list_name_plugin() if p is not None and name not in owners]
            caller = pm.subset_hook_caller("carbonhub_normalize_record", remove_plugins=others)
            self._normalizers[partner_id] = caller
        return caller

    def _normalize(self, partner_id: str, recs: list[_Rec]) -> None:
        hub = self.hub
        partner = hub.settings.partners.get(partner_id)
        if partner is None or not partner.enabled:
            for rec in recs:
                rec.problem = _problem("unknown_partner", f"Partner {partner_id!r} is not configured or disabled.")
            return
        normalize = self._normalizer(partner_id, partner.scenarios)
        validators = self._validators()
        ctx, tz, settings = hub.ctx, hub.settings.timezone, hub.settings
        latest = hub.now() + timedelta(seconds=settings.future_skew_s)
        ids = iter(new_ids("bhv", len(recs)))  # one per behaviour; new_id() if a record has several
        cache = _ChunkCache()
        for rec in recs:
            if rec.unreadable:
                continue
            raw = RawRecord(inbox_id=rec.inbox_id, partner=partner_id, payload=rec.payload,
                            received_at=rec.received_at, scenarios=partner.scenarios)
            try:
                behaviours = normalize(ctx=ctx, record=raw)
            except RecordError as exc:
                rec.problem, rec.redact = exc.problem, exc.redact
                continue
            except Exception as exc:  # a plugin bug must not lose the record
                log.exception("normalize failed for partner %s", partner_id)
                rec.problem = _problem("normalize_failed", f"The plugin failed: {exc!r}")
                continue
            if behaviours is None:
                rec.problem = _problem("not_handled")
                continue
            if not isinstance(behaviours, (list, tuple)) or not all(isinstance(b, Behaviour) for b in behaviours):
                rec.problem = _problem("normalize_failed", "The plugin returned something other than behaviours.")
                continue
            if not behaviours:
                rec.problem = _problem("no_behaviour")
                continue
            for b in behaviours:
                item = _Item(outcome=BehaviourOutcome(id=next(ids, None) or new_id("bhv"), scenario=b.scenario,
                                                      account=b.account_id, event_id=b.event_id, status=REJECTED),
                             behaviour=b)
                rec.items.append(item)
                item.static_problem = self._static_problem(partner, b)
                if item.static_problem is None:
                    item.validity_problem = self._validity_problem(b, item, latest, tz, validators.get(b.scenario),
                                                                   cache)

    def _validators(self) -> dict[str, list[Impl]]:
        """Per scenario, the validators that see its behaviours: those of the plugin that
        registered it, and those of plugins registering no scenario (bank-wide policies)."""
        if self._validators_by_scenario is None:
            impls = hookimpls(self.hub.pm.hook.carbonhub_validate_behaviour)
            owner = {s: plugin for (kind, s), plugin in self.hub.registry.owner.items() if kind == "scenario"}
            owners = set(owner.values())
            self._validators_by_scenario = {
                s: [i for i in impls if i[0] == plugin or i[0] not in owners] for s, plugin in owner.items()}
        return self._validators_by_scenario

    def _static_problem(self, partner: Any, b: Behaviour) -> Problem | None:
        if b.scenario not in partner.scenarios:
            return _problem("partner_not_allowed", f"Partner {partner.id!r} may not report scenario {b.scenario!r}.",
                            "scenario")
        conf = self.hub.settings.scenarios.get(b.scenario)
        if conf is None or not conf.enabled or b.scenario not in self.hub.registry.scenarios:
            return _problem("scenario_disabled", f"Scenario {b.scenario!r} is not enabled.", "scenario")
        return None

    def _validity_problem(self, b: Behaviour, item: _Item, latest: datetime, tz: Any,
                          validators: list[Impl] | None,
                          cache: _ChunkCache) -> Problem | None:
        if b.occurred_at.tzinfo is None:
            return _problem("invalid_record", "occurred_at must carry a time zone.", "occurred_at")
        if b.occurred_at > latest:
            return _problem("future_date", field_name="occurred_at")
        if not isinstance(b.quantity, (int, Decimal)) or b.quantity <= 0:
            return _problem("non_positive_quantity", field_name="quantity")
        hub = self.hub
        if validators:  # in turn, isolated, stopping at the first problem
            for _, problems, exc in call_each(validators, ctx=hub.ctx, behaviour=b):
                if exc is not None:
                    log.error("validator failed: %r", exc)
                    return _problem("normalize_failed", f"A validator failed: {exc!r}")
                if problems:
                    return problems[0]
        scenario = cache.scenarios.get(b.scenario)
        if scenario is None:
            conf = hub.settings.scenarios[b.scenario]
            scenario = cache.scenarios[b.scenario] = (
                conf, conf.methodology or hub.registry.scenarios[b.scenario].methodology)
        conf, methodology_id = scenario
        # The version in force depends only on the local date: look it up once per day.
        day = b.occurred_at.astimezone(tz).date()
        key = (methodology_id, day, conf.versions)
        if key in cache.versions:
            version = cache.versions[key]
        else:
            version = cache.versions[key] = hub.methodologies.in_force(methodology_id, b.occurred_at, tz,
                                                                       conf.versions)
        if version is None:
            return _problem("no_methodology_in_force",
                            f"No approved version of {methodology_id!r} was in force on "
                            f"{day}.", "occurred_at")
        if b.unit != version.quantity_unit:
            return _problem("unit_mismatch", f"Unit {b.unit!r}; {version.id} {version.version} "
                                             f"counts {version.quantity_unit!r}.", "unit")
        for name in version.evidence:
            if b.attributes.get(name) in (None, ""):
                return _problem("missing_evidence", f"{version.id} {version.version} requires {name!r}.",
                                f"attributes.{name}")
        if version.cap_subject is not None:
            value = b.attributes.get(version.cap_subject)
            if value in (None, ""):
                return _problem("missing_evidence", f"{version.id} {version.version} counts caps by "
                                f"{version.cap_subject!r}, which the record lacks.", f"attributes.{version.cap_subject}")
            item.subject = subject_key(b.scenario, value)
        item.version = version
        try:
            item.reduction = version.compute(b)
        except RecordError as exc:  # the family says this act cannot be computed (e.g. no factor for the city)
            return exc.problem
        except Exception as exc:  # a formula bug rejects the act (replayable), not the chunk
            log.exception("methodology %s %s failed", version.id, version.version)
            return _problem("methodology_failed", f"{version.id} {version.version} failed: {exc!r}")
        periods = cache.periods.get(day)
        if periods is None:
            periods = cache.periods[day] = usage_periods(day)
        item.day, item.month = periods
        return None

    def _process(self, partner_id: str, recs: list[_Rec], result: BatchResult, source: str,
                 keep_results: bool, in_transaction: ChunkHook | None = None,
                 outcomes: bool = True) -> list[RecordOutcome]:
        self._normalize(partner_id, recs)
        with database.atomic():
            posted = self._gate_and_write(partner_id, recs, source, result.batch_id)
            if in_transaction is not None:
                in_transaction([(rec.inbox_id, rec.payload, rec.status or record_status(rec)) for rec in recs])
        done: list[RecordOutcome] = []
        for rec in recs:
            status = rec.status or record_status(rec)
            result.counts[status] += 1
            reason = rec.problem.code if rec.problem else next(
                (i.outcome.reason for i in rec.items if i.outcome.status == status and i.outcome.reason), None)
            if reason:
                result.reasons[reason] += 1
            for item in rec.items:
                if item.outcome.status == ACCEPTED:
                    result.grams += item.outcome.grams
                    result.points += item.outcome.points
            if outcomes:
                outcome = self._record_outcome(rec, status)
                done.append(outcome)
                if keep_results:
                    result.records.append(outcome)
        if posted and self.hub.pm.hook.carbonhub_transaction_posted.get_hookimpls():
            for tx in posted:
                self.hub.notify("carbonhub_transaction_posted", transaction=tx)
        return done

    @staticmethod
    def _record_outcome(rec: _Rec, status: str) -> RecordOutcome:
        event_id = rec.items[0].outcome.event_id if rec.items else _payload_event_id(rec.payload)
        out = RecordOutcome(index=rec.index, inbox_id=rec.inbox_id, event_id=event_id, status=status,
                            behaviours=[i.outcome for i in rec.items])
        if rec.problem:
            out.reason, out.message, out.field = rec.problem.code, rec.problem.message, rec.problem.field
        else:  # the behaviour that decided the record's status says why (as the inbox row does)
            decisive = next((i.outcome for i in rec.items if i.outcome.status == status and i.outcome.reason), None)
            if decisive is not None:
                out.reason, out.message, out.field = decisive.reason, decisive.message, decisive.field
        return out

    def _gate_and_write(self, partner_id: str, recs: list[_Rec], source: str, batch_id: str) -> list[Any]:
        hub = self.hub
        db.lock_ledger()  # serialises ingestion: the checks below see every earlier commit
        items = [i for r in recs for i in r.items if i.static_problem is None]
        accounts = {i.behaviour.account_id for i in items}
        known_accounts = existing_accounts(accounts)
        consents = ConsentTimeline(known_accounts, {i.behaviour.scenario for i in items})
        keyed = [i for i in items if i.validity_problem is None]
        event_keys = {f"{partner_id}:{i.behaviour.event_id}" for i in keyed}
        fingerprints = {i.behaviour.fingerprint for i in keyed}
        seen_events = {k: (bid, g) for k, bid, g in db.fetch_in(
            'SELECT "event_key", "id", "grams" FROM "behaviour" WHERE "event_key" IN ({marks})', list(event_keys))}
        seen_fps = {k: (bid, g) for k, bid, g in db.fetch_in(
            'SELECT "credit_fingerprint", "id", "grams" FROM "behaviour" WHERE "credit_fingerprint" IN ({marks})',
            list(fingerprints))}
        usage = self._load_usage(keyed)
        usage_delta: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        now = hub.now()
        credits: list[tuple[_Item, TxRequest]] = []
        caps_cache: dict[tuple[str, str, str], dict[str, int]] = {}
        reward_rules = hookimpls(hub.pm.hook.carbonhub_evaluate_rewards)
        point_caps = PointCaps({s: c.point_caps for s, c in hub.settings.scenarios.items()}, hub.settings.timezone)
        point_caps.load(i.behaviour for i in keyed)
        expiry = lots.expiry_memo(hub.settings, now)  # the same for every credit of the chunk

        for rec in recs:
            for item in rec.items:
                out, b = item.outcome, item.behaviour
                problem = item.static_problem
                if problem is None and b.account_id not in known_accounts:
                    problem = _problem("unknown_account", f"No carbon account {b.account_id!r}.", "account_id")
                # A naive occurred_at cannot be placed on the consent timeline; the
                # validity check below rejects it as invalid_record.
                if problem is None and b.occurred_at.tzinfo is not None and \
                        not consents.granted_at(b.account_id, b.scenario, b.occurred_at):
                    problem = _problem("no_consent", f"Account {b.account_id} had not authorised {b.scenario!r} "
                                                     f"at {b.occurred_at.isoformat()}.", "occurred_at")
                if problem is None:
                    problem = item.validity_problem
                if problem is not None:
                    out.status, out.reason, out.message, out.field = REJECTED, problem.code, problem.message, \
                        problem.field
                    continue
                event_key = f"{partner_id}:{b.event_id}"
                dup = seen_events.get(event_key)
                if dup is not None:
                    self._duplicate(out, "duplicate_event", dup)
                    continue
                dup = seen_fps.get(b.fingerprint)
                if dup is not None:
                    self._duplicate(out, "double_claim", dup)
                    continue
                caps_key = (b.scenario, item.version.id, item.version.version)
                caps = caps_cache.get(caps_key)
                if caps is None:
                    caps = caps_cache[caps_key] = self._caps_for(item)
                grams, caps_applied, cap_problem = self._apply_caps(item, usage, usage_delta, caps)
                if cap_problem is not None:
                    out.status, out.reason, out.message, out.field = REJECTED, cap_problem.code, \
                        cap_problem.message, cap_problem.field
                    continue
                if grams <= 0:
                    out.status, out.reason, out.message = REJECTED, "zero_reduction", REASONS["zero_reduction"]
                    continue
                reduction = item.reduction
                credited = Reduction(reduction.methodology, reduction.version, grams, reduction.baseline_g,
                                     reduction.project_g, reduction.formula, reduction.factors)
                grants, reward_problem = self._rewards(b, credited, reward_rules)
                if reward_problem is not None:
                    out.status, out.reason, out.message = REJECTED, reward_problem.code, reward_problem.message
                    continue
                grants = point_caps.apply(b, grants)
                points = sum(g.points for g in grants)
                out.status, out.grams, out.points, out.capped = ACCEPTED, grams, points, bool(caps_applied)
                seen_events[event_key] = (out.id, grams)
                seen_fps[b.fingerprint] = (out.id, grams)
                for period in (item.day, item.month):
                    delta = usage_delta[(b.account_id, b.scenario, period)]
                    delta[0] += grams
                    delta[1] += 1
                    if item.subject is not None:
                        delta = usage_delta[(item.subject, b.scenario, period)]
                        delta[0] += grams
                        delta[1] += 1
                item.receipt = {"caps": caps_applied, "points": [g.__dict__ for g in grants]}
                credits.append((item, self._credit_request(partner_id, item, grams, grants, expiry)))

        # Credit keys come from behaviour ids minted for this chunk: they cannot exist yet.
        posted = hub.ledger.post_many([req for _, req in credits], new_keys=True) if credits else []
        for (item, _), (tx, _created) in zip(credits, posted):
            item.outcome.tx_seq = tx.seq
        self._write_rows(partner_id, recs, source, batch_id, now)
        self._write_usage(usage_delta)
        point_caps.write()
        return [tx for tx, created in posted if created]

    @staticmethod
    def _duplicate(out: BehaviourOutcome, reason: str, original: tuple[str, int]) -> None:
        out.status, out.reason, out.message = DUPLICATE, reason, REASONS[reason]
        out.duplicate_of, out.grams = original[0], 0

    def _load_usage(self, items: list[_Item]) -> dict[tuple[str, str, str], tuple[int, int]]:
        if not items:
            return {}
        accounts = sorted({i.behaviour.account_id for i in items} | {i.subject for i in items if i.subject})
        periods = sorted({p for i in items for p in (i.day, i.month)})
        scenarios = sorted({i.behaviour.scenario for i in items})
        rows = db.fetch_in('SELECT "account", "scenario", "period", "grams", "count" FROM "usage_counter" '
                           f'WHERE "account" IN ({{marks}}) AND "period" IN ({db.marks(len(periods))}) '
                           f'AND "scenario" IN ({db.marks(len(scenarios))})', accounts, [*periods, *scenarios],
                           chunk=400)
        return {(a, s, p): (g, n) for a, s, p, g, n in rows}

    def _caps_for(self, item: _Item) -> dict[str, int]:
        """Methodology caps tightened by the bank's config (the lower one wins)."""
        conf = self.hub.settings.scenarios[item.behaviour.scenario].caps
        caps = {}
        for kind in ALL_CAP_KINDS:
            values = [v for v in (item.version.caps.get(kind), conf.get(kind)) if v is not None]
            if values:
                caps[kind] = min(values)
        return caps

    def _apply_caps(self, item: _Item, usage: Mapping, delta: Mapping,
                    caps: dict[str, int] | None = None) -> tuple[int, list[dict], Problem | None]:
        b = item.behaviour
        if caps is None:
            caps = self._caps_for(item)
        grams = item.reduction.grams
        if not caps:
            return grams, [], None
        zero = (0, 0)
        account, scenario = b.account_id, b.scenario
        used = {}
        for label, period in (("day", item.day), ("month", item.month)):
            key = (account, scenario, period)
            g, n = usage.get(key, zero)
            d = delta.get(key, zero)  # get() never calls a defaultdict's factory: it does not grow
            used[label] = (g + d[0], n + d[1])
        applied: list[dict] = []
        for label in ("day", "month"):
            limit = caps.get(f"per_{label}_count")
            if limit is not None and used[label][1] >= limit:
                return 0, [], _problem("cap_reached", f"At most {limit} {b.scenario} behaviours per {label} "
                                                      f"are credited; this one is over.")
        if item.subject is not None:
            for label, period in (("day", item.day), ("month", item.month)):
                limit = caps.get(f"per_subject_{label}_count")
                if limit is None:
                    continue
                key = (item.subject, b.scenario, period)
                count = usage.get(key, (0, 0))[1] + delta.get(key, (0, 0))[1]
                if count >= limit:
                    subject = item.version.cap_subject
                    return 0, [], _problem("cap_reached", f"At most {limit} {b.scenario} behaviours per {subject} "
                                                          f"per {label} are credited; this {subject} has had "
                                                          f"{count}.", f"attributes.{subject}")
        for label in ("day", "month"):
            limit = caps.get(f"per_{label}_g")
            if limit is None:
                continue
            room = max(0, limit - used[label][0])
            if grams > room:
                applied.append({"cap": f"per_{label}_g", "limit": limit, "used_before": used[label][0],
                                "computed_g": grams, "credited_g": room})
                grams = room
        if grams <= 0 and applied:
            cap = applied[-1]
            return 0, applied, _problem("cap_reached", f"The {cap['cap']} cap of {cap['limit']} g is reached.")
        return grams, applied, None

    def _rewards(self, b: Behaviour, reduction: Reduction, rules: list[Impl] | None = None
                 ) -> tuple[list[PointGrant], Problem | None]:
        """Run every reward rule (``rules``: :func:`hub.plugins.hookimpls`, taken once per chunk).

        A failing rule or an invalid grant rejects this behaviour (``reward_failed``,
        replayable) instead of the chunk: the other records go on.
        """
        conf = self.hub.scenario_config_dict(b.scenario)
        if rules is None:
            rules = hookimpls(self.hub.pm.hook.carbonhub_evaluate_rewards)
        grants: list[PointGrant] = []
        for name, result, exc in call_each(rules, ctx=self.hub.ctx, behaviour=b, reduction=reduction,
                                           scenario_config=conf):
            if exc is not None:
                log.error("reward rule of plugin %s failed", name, exc_info=exc)
                return [], _problem("reward_failed", f"The reward rule of plugin {name!r} failed: {exc!r}")
            for g in result or ():
                if not isinstance(g, PointGrant) or type(g.points) is not int or g.points < 0:
                    return [], _problem("reward_failed", f"Plugin {name!r} returned an invalid point grant {g!r}.")
                if g.points:
                    grants.append(g)
        return grants, None

    @staticmethod
    def _credit_request(partner_id: str, item: _Item, grams: int, grants: list[PointGrant],
                        expiry: Mapping[str, Any] | None = None) -> TxRequest:
        b, out = item.behaviour, item.outcome
        issuer = f"@issuer:{b.scenario}"
        postings = [PostingRecord(issuer, "g", -grams), PostingRecord(user_carbon(b.account_id), "g", grams)]
        points = out.points
        if points:
            postings += [PostingRecord(issuer, "pts", -points), PostingRecord(user_points(b.account_id), "pts", points)]
        memo = {"behaviour": out.id, "scenario": b.scenario, "partner": partner_id, "event_id": b.event_id,
                "account": b.account_id, "rules": [g.rule for g in grants]}
        if points and expiry:
            memo.update(expiry)  # when this lot of points expires (hub.lots)
        return TxRequest(key=f"credit:{out.id}", kind="credit", postings=tuple(postings), memo=memo,
                         methodology=f"{item.version.id}@{item.version.version}")

    def _write_rows(self, partner_id: str, recs: list[_Rec], source: str, batch_id: str, now: datetime) -> None:
        when = db.sql_time(now)
        inbox_new, inbox_old, behaviours, receipts = [], [], [], []
        factor_cache: dict[tuple[str, str], str] = {}
        for rec in recs:
            rec.status = status = record_status(rec)
            problem = rec.problem or next((Problem(i.outcome.reason, i.outcome.message or "", i.outcome.field)
                                           for i in rec.items if i.outcome.status == status and i.outcome.reason),
                                          None)
            event_id = rec.items[0].behaviour.event_id if rec.items else _payload_event_id(rec.payload)
            detail_dict = problem.as_dict() if problem else None
            if rec.redact and detail_dict is not None:
                detail_dict["redacted"] = list(rec.redact)  # such a record is never replayed: see replay()
            if rec.unreadable and detail_dict is not None:
                detail_dict["unreadable"] = True  # nor is this one
            detail = canonical_json(detail_dict) if detail_dict is not None else None
            if rec.replay:
                inbox_old.append((rec.inbox_id, status, problem.code if problem else None, detail_dict,
                                  redacted(rec.payload, rec.redact) if rec.redact else None))
            else:
                inbox_new.append((rec.inbox_id, partner_id, batch_id, source,
                                  when if rec.received_at is now else db.sql_time(rec.received_at),
                                  canonical_json(redacted(rec.payload, rec.redact) if rec.redact else rec.payload),
                                  str(event_id)[:128] if event_id is not None else None, status,
                                  problem.code if problem else None, detail, 1, when))
            for item in rec.items:
                out, b = item.outcome, item.behaviour
                accepted = out.status == ACCEPTED
                item_detail = (canonical_json({"code": out.reason, "message": out.message, "field": out.field})
                               if out.reason else None)
                occurred = db.sql_time(b.occurred_at) if b.occurred_at.tzinfo else None
                behaviours.append((out.id, rec.inbox_id, partner_id, b.scenario, b.account_id, str(b.event_id)[:128],
                                   f"{partner_id}:{b.event_id}" if accepted else None, b.fingerprint,
                                   b.fingerprint if accepted else None, occurred, str(b.quantity), b.unit,
                                   canonical_json(b.attributes), out.status, out.reason, item_detail,
                                   out.duplicate_of, out.grams, out.points, out.tx_seq, when))
                if accepted:
                    v, r = item.version, item.reduction
                    fkey = (v.id, v.version)
                    if fkey not in factor_cache:
                        factor_cache[fkey] = canonical_json([{"name": f.name, "value": f.value, "unit": f.unit,
                                                              "source": f.source} for f in r.factors])
                    receipts.append((out.id, v.id, v.version, str(b.quantity), b.unit, str(r.baseline_g),
                                     str(r.project_g), r.grams, out.grams, r.formula, factor_cache[fkey],
                                     canonical_json(item.receipt["caps"]) if item.receipt["caps"] else "[]",
                                     canonical_json(item.receipt["points"]),
                                     when))
        db.bulk_insert(InboxRecord, ("id", "partner", "batch_id", "source", "received_at", "payload", "event_id",
                                     "status", "reason", "detail", "attempts", "updated_at"), inbox_new)
        for inbox_id, status, reason, detail, payload in inbox_old:
            changes = {"payload": payload} if payload is not None else {}
            (InboxRecord.update(status=status, reason=reason, detail=detail,
                                attempts=InboxRecord.attempts + 1, updated_at=db.to_db(now), **changes)
             .where(InboxRecord.id == inbox_id).execute())
        db.bulk_insert(BehaviourRow, ("id", "inbox_id", "partner", "scenario", "account", "event_id", "event_key",
                                      "fingerprint", "credit_fingerprint", "occurred_at", "quantity", "unit",
                                      "attributes", "status", "reason", "detail", "duplicate_of", "grams",
                                      "points", "tx_seq", "created_at"), behaviours)
        db.bulk_insert(Receipt, ("behaviour", "methodology", "version", "quantity", "unit", "baseline_g",
                                 "project_g", "computed_g", "credited_g", "formula", "factors", "caps", "points",
                                 "created_at"), receipts)

    def _write_usage(self, delta: Mapping[tuple[str, str, str], list[int]]) -> None:
        db.upsert_add(UsageCounter, ("account", "scenario", "period"), ("grams", "count"),
                      [(a, s, p, g, n) for (a, s, p), (g, n) in delta.items()])


def usage_periods(day: date) -> tuple[str, str]:
    """The usage-counter periods of a local day for the gram and count caps: ``d:2026-11-21``, ``m:2026-11``."""
    return f"d:{day:%Y-%m-%d}", f"m:{day:%Y-%m}"


def subject_key(scenario: str, value: Any) -> str:
    """The usage-counter account of a per_subject cap: a hash, so a bill account
    number or card token is never stored in clear (and fits the column)."""
    return "s:" + hashlib.sha256(f"{scenario}\x1f{value}".encode("utf-8")).hexdigest()[:32]


def _payload_event_id(payload: Any) -> Any:
    if isinstance(payload, Mapping):
        for key in ("event_id", "id"):
            if payload.get(key) is not None:
                return payload[key]
    return None
