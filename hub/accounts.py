"""Carbon accounts and per-scenario consents (with their append-only log)."""
from __future__ import annotations

import os
import time
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime
from typing import Iterable

from . import db
from .db import Account, Consent, ConsentEvent, database
from .records import AccountRecord

GRANT, REVOKE = "grant", "revoke"


def new_id(prefix: str) -> str:
    """Unguessable, URL-safe id with a readable prefix (see :func:`new_ids`)."""
    return new_ids(prefix, 1)[0]


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids: ``<prefix>_`` + 12 hex digits of milliseconds + 16 random hex digits.

    The time comes first so new rows land at the end of their indexes instead
    of on random pages (the main write cost of ingestion); 64 random bits keep
    ids unguessable. One call to the system's random source for all ``n``.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    digits = os.urandom(8 * n).hex()
    return [f"{prefix}_{stamp}{digits[i:i + 16]}" for i in range(0, 16 * n, 16)]


def _record(row: Account) -> AccountRecord:
    return AccountRecord(id=row.id, bank_ref=row.bank_ref, opened_at=db.from_db(row.opened_at))


def open_account(bank_ref: str, now: datetime) -> tuple[AccountRecord, bool]:
    """Open the account for ``bank_ref``; repeating it returns the same account."""
    with database.atomic():
        row = Account.get_or_none(Account.bank_ref == bank_ref)
        if row is not None:
            return _record(row), False
        inserted = (Account.insert(id=new_id("acc"), bank_ref=bank_ref, opened_at=db.to_db(now))
                    .on_conflict_ignore().execute())
        row = Account.get(Account.bank_ref == bank_ref)
        return _record(row), bool(inserted)


def get_account(account_id: str) -> AccountRecord | None:
    row = Account.get_or_none(Account.id == account_id)
    return _record(row) if row else None


def set_consent(account_id: str, scenario: str, granted: bool, at: datetime, source: str = "api") -> bool:
    """Grant or revoke; logs only real changes. Returns whether anything changed."""
    with database.atomic():
        current = Consent.get_or_none((Consent.account == account_id) & (Consent.scenario == scenario))
        # Never granted counts as revoked: revoking it is not a change to log.
        if (current.granted if current is not None else False) == granted:
            return False
        when = db.to_db(at)
        (Consent.insert(account=account_id, scenario=scenario, granted=granted, updated_at=when)
         .on_conflict(conflict_target=[Consent.account, Consent.scenario],
                      update={Consent.granted: granted, Consent.updated_at: when})
         .execute())
        ConsentEvent.create(account=account_id, scenario=scenario, action=GRANT if granted else REVOKE,
                            at=when, source=source)
        return True


def consents_of(account_id: str) -> tuple[list[Consent], list[ConsentEvent]]:
    current = list(Consent.select().where(Consent.account == account_id).order_by(Consent.scenario))
    log = list(ConsentEvent.select().where(ConsentEvent.account == account_id).order_by(ConsentEvent.id))
    return current, log


class ConsentTimeline:
    """Answers "was consent granted at time t?" for many accounts, from one query."""

    def __init__(self, account_ids: Iterable[str], scenarios: Iterable[str] | None = None):
        """``scenarios``: only those are loaded (a user may have consented to many)."""
        events: dict[tuple[str, str], list[tuple[datetime, bool]]] = defaultdict(list)
        only = sorted(set(scenarios)) if scenarios is not None else []
        where = f' AND "scenario" IN ({db.marks(len(only))})' if only else ""
        rows = db.fetch_in('SELECT "account", "scenario", "action", "at" FROM "consent_event" '
                           f'WHERE "account" IN ({{marks}}){where} ORDER BY "at", "id"', list(account_ids), only)
        to_python = ConsentEvent.at.python_value  # what peewee would apply to the column
        for account, scenario, action, at in rows:
            events[(account, scenario)].append((db.from_db(to_python(at)), action == GRANT))
        self._times = {k: [t for t, _ in v] for k, v in events.items()}
        self._states = {k: [g for _, g in v] for k, v in events.items()}

    def granted_at(self, account_id: str, scenario: str, at: datetime) -> bool:
        times = self._times.get((account_id, scenario))
        if not times:
            return False
        i = bisect_right(times, at)
        return i > 0 and self._states[(account_id, scenario)][i - 1]


def existing_accounts(account_ids: Iterable[str]) -> set[str]:
    return {a for (a,) in db.fetch_in('SELECT "id" FROM "account" WHERE "id" IN ({marks})', list(account_ids))}
