"""The carbonhub plugin API: the one file a partner reads.

A plugin is a module (usually in its own distribution) that

1. declares the hub API it was written for::

       CARBONHUB_API = "1.0"      # major must match, minor must be <= the hub's

2. implements some of the hooks below with ``@hookimpl``::

       from hub.hookspecs import hookimpl

       @hookimpl
       def carbonhub_register_scenarios(ctx):
           return [ScenarioSpec(id="metro", ...)]

3. is listed in the ``carbonhub.plugins`` entry-point group of its
   distribution (the built-in plugins use the same group).

Every hook receives ``ctx`` (:class:`hub.context.HookContext`): the plugin's own
config section (``ctx.plugin_config("name")``), the clock (``ctx.now()``), a
logger (``ctx.log``) and an HTTP session (``ctx.http``). Hooks exchange the
typed records of :mod:`hub.records`, never database rows. Hook arguments may
grow in later minor versions; pluggy passes only the arguments an
implementation names, so old plugins keep working.

Hooks are grouped by phase: registration (start-up), pipeline (per record) and
lifecycle (notifications).
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("carbonhub")
hookimpl = pluggy.HookimplMarker("carbonhub")


# --- registration: called once at start-up; every implementation runs --------


@hookspec
def carbonhub_register_scenarios(ctx):
    """Return a list of :class:`hub.records.ScenarioSpec` this plugin handles.

    Called once when the hub starts. Scenario ids are global: two plugins
    registering the same id stop the hub with an error naming both. A scenario
    only receives records once the bank enables it in ``config/hub.toml``
    (``[scenarios.<id>]``), and only from partners allowed to feed it.
    """


@hookspec
def carbonhub_register_methodologies(ctx):
    """Return a list of :class:`hub.records.MethodologySpec`.

    Each spec names a methodology id and its versioned TOML documents. The hub
    loads and validates every document at start-up (fields, effective dates that
    do not overlap, known formula family); a bad document or a duplicate id
    stops the hub with an error naming the file.
    """


@hookspec
def carbonhub_register_connectors(ctx):
    """Return a list of :class:`hub.records.ConnectorSpec` this plugin offers.

    A connector says how the partner's data arrives: ``push`` (signed webhook to
    ``POST /v1/partners/<partner>/events``), ``pull`` (the hub fetches it on a
    schedule) or ``batch`` (files). Ids are unique across plugins.
    """


@hookspec
def carbonhub_register_benefits(ctx):
    """Return a list of :class:`hub.records.BenefitSpec` this partner can fulfil.

    Registering a benefit only says the partner can deliver it; the bank prices,
    stocks and enables it in config (``[benefits.<id>]``). Ids are unique across
    plugins; the plugin that registers a benefit is the one asked to fulfil it.
    """


# --- pipeline: called for every record ----------------------------------------


@hookspec(firstresult=True)
def carbonhub_normalize_record(ctx, record):
    """Map one native partner record to a list of :class:`hub.records.Behaviour`.

    ``record`` is a :class:`hub.records.RawRecord`; ``record.payload`` is the
    partner's JSON object and ``record.scenarios`` the scenarios the bank allows
    for this partner. The hub calls only the plugins that registered one of those
    scenarios, so plugins do not shadow each other; among them the first non-None
    result wins (return ``None`` for a record that is not yours).

    Return an empty list for a record that carries no creditable act. Raise
    :class:`hub.records.RecordError` (code, message, field) for an unusable record:
    it is stored as rejected with that reason and can be replayed. Set each
    behaviour's ``fingerprint`` from the real act (city, card, time, line...) with
    :func:`hub.records.fingerprint`, so the same act reported by two partners is
    credited once.
    """


@hookspec
def carbonhub_validate_behaviour(ctx, behaviour):
    """Return a list of :class:`hub.records.Problem` for an implausible behaviour.

    The hub calls the implementation of the plugin that registered the
    behaviour's scenario, and those of plugins that register no scenario (a
    bank-wide policy); return ``[]`` or ``None`` for those of your scenarios you
    do not check. Any problem rejects the behaviour with the first problem's code
    as its reason; e.g. a 300 km metro ride, a ride faster than a train. Do not
    query other systems here: the hook runs for every record of a batch.
    """


@hookspec
def carbonhub_evaluate_rewards(ctx, behaviour, reduction, scenario_config):
    """Return a list of :class:`hub.records.PointGrant` for a credited behaviour.

    Every implementation runs and all grants are added. ``reduction`` is the
    :class:`hub.records.Reduction` after caps (``reduction.grams`` is what was
    credited); ``scenario_config`` is the bank's ``[scenarios.<id>]`` section as a
    dict. The hub's own rule (``points.per_kg`` and ``points.bonus``) is one such
    implementation. Points must be non-negative integers; each grant's ``rule`` is
    recorded in the ledger transaction.
    """


# --- the benefit exchange: called for each redemption ----------------------------


@hookspec(firstresult=True)
def carbonhub_fulfil_benefit(ctx, redemption):
    """Deliver a redeemed benefit; return a :class:`hub.records.Fulfilment`.

    ``redemption`` is a :class:`hub.records.RedemptionRecord`. Only the plugin
    that registered ``redemption.benefit`` is called (no plugin can shadow
    another); its first non-None result is the answer, and None means "not
    delivered" (the hold is voided). The user's points are already held in
    escrow and the stock taken; the call runs outside any database transaction,
    so it may call the partner's API (``ctx.http``, with a timeout).

    Send ``redemption.id`` to the partner as its idempotency key: the hub calls
    again after a :class:`hub.records.RetryableFulfilmentError` (timeout, 5xx,
    an answer you cannot read) with backoff, up to ``redemptions.fulfil_attempts``
    times, then voids and refunds. Raise :class:`hub.records.PermanentFulfilmentError`
    when the partner refused (unknown member, closed offer): the hold is voided
    at once. Any other exception is treated as permanent and logged. A
    fulfilment is posted (points to ``@benefits:<partner>``) exactly once.
    """


@hookspec
def carbonhub_cancel_fulfilment(ctx, redemption):
    """Undo, at the partner, what a fulfilment may have delivered for a redemption that was voided.

    Called (only for the plugin owning the benefit) after the hub voided a
    hold whose fulfilment may have reached the partner: a retried timeout or
    5xx, a hold voided by the stale-holds job while the call was in flight, or
    a success that came after that. ``redemption.fulfilment`` is the
    :class:`hub.records.Fulfilment` when one was returned, else None. The
    user's points are already refunded; make it idempotent (it may come twice,
    or for a redemption the partner never saw). Exceptions are logged and
    change nothing in the hub.
    """


# --- lifecycle: notifications; failures are logged and isolated ----------------


@hookspec
def carbonhub_account_opened(ctx, account):
    """Called after a carbon account is opened (:class:`hub.records.AccountRecord`).

    Called once per account, after the opening is committed. An exception is
    logged and does not undo the opening or stop other plugins.
    """


@hookspec
def carbonhub_transaction_posted(ctx, transaction):
    """Called after a ledger transaction is committed.

    ``transaction`` is a :class:`hub.records.TransactionRecord`. Use it for
    notifications (push message, partner callback). It runs after the commit:
    an exception is logged with the plugin's name and never aborts the ledger
    or the other plugins.
    """
