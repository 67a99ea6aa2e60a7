"""The store: peewee models on SQLite (default, WAL) or PostgreSQL, same code.

Conventions: datetimes are stored as naive UTC (:func:`to_db` / :func:`from_db`);
amounts are integers; JSON columns hold canonical JSON text. Models never leave
the hub: plugins see :mod:`hub.records` only.
"""
from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson
import peewee as pw
from playhouse.db_url import connect as url_connect

SCHEMA_VERSION = 1
database = pw.DatabaseProxy()


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# One encoder for every call: json.dumps with non-default options builds a new
# JSONEncoder each time, which costs more than encoding a small record.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=json_default, ensure_ascii=False)
# orjson writes the same text ten times faster. Datetimes and subclasses go
# through json_default so they come out exactly as the stdlib encoder writes them.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, Decimals as strings, UTF-8 text unescaped."""
    try:
        return orjson.dumps(value, default=json_default, option=_ORJSON_OPTIONS).decode("utf-8")
    except TypeError:
        # What orjson refuses (integers over 64 bits, non-string keys, a subclass
        # json_default does not know): the standard encoder decides.
        return _CANONICAL.encode(value)


class JSONText(pw.TextField):
    """JSON kept as canonical text, identical on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else canonical_json(value)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


def to_db(dt: datetime) -> datetime:
    """Aware datetime -> naive UTC for storage."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware datetimes")
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def sql_time(dt: datetime) -> str:
    """Aware datetime -> the text both drivers store for a naive UTC datetime.

    Bulk inserts pass this instead of a datetime: the same text sqlite3's
    adapter and COPY would write, formatted once per chunk instead of per row.
    """
    return to_db(dt).isoformat(" ")


def from_db(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    if isinstance(dt, str):  # SQLite may hand back text for some expressions
        dt = datetime.fromisoformat(dt)
    return dt.replace(tzinfo=timezone.utc)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.TextField()


class Partner(BaseModel):
    """Partners known to the hub; mirrored from config at start-up."""

    id = pw.CharField(primary_key=True, max_length=64)
    name = pw.CharField(max_length=200)
    scenarios = JSONText()
    enabled = pw.BooleanField(default=True)
    updated_at = pw.DateTimeField()


class Account(BaseModel):
    id = pw.CharField(primary_key=True, max_length=40)
    bank_ref = pw.CharField(unique=True, max_length=128)
    opened_at = pw.DateTimeField()
    status = pw.CharField(max_length=16, default="open")


class Consent(BaseModel):
    """Current consent per account and scenario; history is in ConsentEvent."""

    account = pw.CharField(max_length=40)
    scenario = pw.CharField(max_length=64)
    granted = pw.BooleanField()
    updated_at = pw.DateTimeField()

    class Meta:
        primary_key = pw.CompositeKey("account", "scenario")


class ConsentEvent(BaseModel):
    """Append-only log of grants and revocations."""

    id = pw.BigAutoField()
    account = pw.CharField(max_length=40, index=True)
    scenario = pw.CharField(max_length=64)
    action = pw.CharField(max_length=8)  # grant | revoke
    at = pw.DateTimeField()
    source = pw.CharField(max_length=64, default="api")


class InboxRecord(BaseModel):
    """Every raw partner record as received, with where it ended up."""

    id = pw.CharField(primary_key=True, max_length=40)
    partner = pw.CharField(max_length=64, index=True)
    batch_id = pw.CharField(max_length=40, index=True)
    source = pw.CharField(max_length=16)  # push | pull | batch | demo
    received_at = pw.DateTimeField()
    payload = JSONText()
    event_id = pw.CharField(max_length=128, null=True)
    status = pw.CharField(max_length=16, index=True)  # accepted | duplicate | rejected
    reason = pw.CharField(max_length=64, null=True, index=True)
    detail = JSONText(null=True)
    attempts = pw.IntegerField(default=1)
    updated_at = pw.DateTimeField()

    class Meta:
        # The console's ingestion chart reads a window of days: by this index alone (it covers
        # the columns it groups by), not by a scan of every record ever received.
        indexes = ((("received_at", "partner", "status", "reason"), False),)


class Behaviour(BaseModel):
    """A normalized act and its outcome; one row per processing attempt.

    ``event_key`` and ``credit_fingerprint`` are set only on credited rows, and
    are unique: the database itself refuses a second credit for the same
    partner event or the same real act.
    """

    id = pw.CharField(primary_key=True, max_length=40)
    inbox_id = pw.CharField(max_length=40, index=True)
    partner = pw.CharField(max_length=64)
    scenario = pw.CharField(max_length=64)
    account = pw.CharField(max_length=40, index=True, null=True)
    event_id = pw.CharField(max_length=128)
    event_key = pw.CharField(max_length=200, unique=True, null=True)
    fingerprint = pw.CharField(max_length=64)
    credit_fingerprint = pw.CharField(max_length=140, unique=True, null=True)
    occurred_at = pw.DateTimeField(null=True)
    quantity = pw.CharField(max_length=40, null=True)
    unit = pw.CharField(max_length=32, null=True)
    attributes = JSONText(null=True)
    status = pw.CharField(max_length=16)
    reason = pw.CharField(max_length=64, null=True)
    detail = JSONText(null=True)
    duplicate_of = pw.CharField(max_length=40, null=True)
    grams = pw.BigIntegerField(default=0)
    points = pw.BigIntegerField(default=0)
    tx_seq = pw.BigIntegerField(null=True)
    created_at = pw.DateTimeField()


class Receipt(BaseModel):
    """How the grams of one credited behaviour were computed."""

    behaviour = pw.CharField(primary_key=True, max_length=40)
    methodology = pw.CharField(max_length=64)
    version = pw.CharField(max_length=32)
    quantity = pw.CharField(max_length=40)
    unit = pw.CharField(max_length=32)
    baseline_g = pw.CharField(max_length=40)
    project_g = pw.CharField(max_length=40)
    computed_g = pw.BigIntegerField()
    credited_g = pw.BigIntegerField()
    formula = pw.TextField()
    factors = JSONText()
    caps = JSONText()
    points = JSONText()
    created_at = pw.DateTimeField()


class LedgerTransaction(BaseModel):
    """One immutable, hash-chained ledger transaction."""

    seq = pw.BigIntegerField(primary_key=True)
    key = pw.CharField(max_length=200, unique=True)
    kind = pw.CharField(max_length=32)
    content_hash = pw.CharField(max_length=64)
    methodology = pw.CharField(max_length=100, null=True)
    memo = JSONText()
    reverses = pw.BigIntegerField(unique=True, null=True)
    created_at = pw.DateTimeField()
    prev_hash = pw.CharField(max_length=64)
    hash = pw.CharField(max_length=64)


class Posting(BaseModel):
    id = pw.BigAutoField()
    tx_seq = pw.BigIntegerField(index=True)
    account = pw.CharField(max_length=100, index=True)
    unit = pw.CharField(max_length=8)
    amount = pw.BigIntegerField()


class Balance(BaseModel):
    """Balance per account and unit, kept in the same transaction as postings."""

    account = pw.CharField(max_length=100)
    unit = pw.CharField(max_length=8)
    amount = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("account", "unit")


class LedgerHead(BaseModel):
    """The single row that orders the chain; locked by every ledger write."""

    id = pw.IntegerField(primary_key=True)
    seq = pw.BigIntegerField()
    hash = pw.CharField(max_length=64)


class UsageCounter(BaseModel):
    """Credited grams and count per account, scenario and period (for caps)."""

    account = pw.CharField(max_length=40)
    scenario = pw.CharField(max_length=64)
    period = pw.CharField(max_length=16)  # d:2026-11-21 | m:2026-11
    grams = pw.BigIntegerField(default=0)
    count = pw.IntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("account", "scenario", "period")


# --- carbon assets: neutralisation and aggregation (hub/carbon_uses.py) -------------------------


class CarbonUse(BaseModel):
    """Grams of one credited behaviour retired by a certificate or aggregated into a pool.

    What a behaviour still holds is its credited grams minus these rows (nothing
    once its credit is reversed). Rows are written in the database transaction
    of the ledger postings that move the grams, under the ledger lock.
    """

    id = pw.BigAutoField()
    behaviour = pw.CharField(max_length=40)
    account = pw.CharField(max_length=40, index=True)
    kind = pw.CharField(max_length=16)  # retired | aggregated
    ref = pw.CharField(max_length=100, index=True)  # certificate id | aggregation id
    grams = pw.BigIntegerField()
    tx_seq = pw.BigIntegerField()
    created_at = pw.DateTimeField()

    class Meta:
        indexes = ((("behaviour", "ref"), True),)


class Certificate(BaseModel):
    """A neutralisation: grams a user retired against a footprint."""

    id = pw.CharField(primary_key=True, max_length=40)
    account = pw.CharField(max_length=40)
    idempotency_key = pw.CharField(max_length=100)
    request_hash = pw.CharField(max_length=64)
    grams = pw.BigIntegerField()
    footprint = JSONText()
    tx_seq = pw.BigIntegerField()
    created_at = pw.DateTimeField()

    class Meta:
        indexes = ((("account", "idempotency_key"), True), (("account", "created_at", "id"), False))


class Aggregation(BaseModel):
    """One exchange's pool report for one month; the report is kept as written to files."""

    id = pw.CharField(primary_key=True, max_length=100)  # agg_<exchange>_<YYYY-MM>
    exchange = pw.CharField(max_length=64)
    period = pw.CharField(max_length=7)
    grams = pw.BigIntegerField()
    adjustment_g = pw.BigIntegerField()
    behaviours = pw.IntegerField()
    accounts = pw.IntegerField()
    points = pw.BigIntegerField()
    report = JSONText()
    created_at = pw.DateTimeField()

    class Meta:
        indexes = ((("exchange", "period"), True), (("created_at", "id"), False))


class CarbonAdjustment(BaseModel):
    """Aggregated grams taken back out of a pool because their credit was reversed.

    ``reported_in`` is the later aggregation whose report carries it as a
    negative line (null until then).
    """

    id = pw.BigAutoField()
    behaviour = pw.CharField(max_length=40, unique=True)
    account = pw.CharField(max_length=40)
    exchange = pw.CharField(max_length=64, index=True)
    aggregation = pw.CharField(max_length=100)
    grams = pw.BigIntegerField()
    reversal_of = pw.BigIntegerField()
    tx_seq = pw.BigIntegerField()
    reason = pw.TextField()
    reported_in = pw.CharField(max_length=100, null=True)
    created_at = pw.DateTimeField()


# --- points and the benefit exchange (hub/lots.py, hub/rewards.py, hub/exchange.py) -------------


class PointLot(BaseModel):
    """Points credited to a user by one ledger transaction, and what is left of them.

    A derived index of the ledger, written in the database transaction of the
    postings that move the points (:mod:`hub.lots`), rebuildable from the
    ledger with ``carbonhub points rebuild``. A lot is named by its account and
    ``seq``, the crediting transaction; ``expires_at`` null means never.
    """

    account = pw.CharField(max_length=40)
    seq = pw.BigIntegerField()
    amount = pw.BigIntegerField()
    remaining = pw.BigIntegerField()
    earned_at = pw.DateTimeField()
    expires_at = pw.DateTimeField(null=True)

    class Meta:
        primary_key = pw.CompositeKey("account", "seq")


class PointsUsage(BaseModel):
    """Points earned per account, scenario and period (d:/w:/m:), for the points caps."""

    account = pw.CharField(max_length=40)
    scenario = pw.CharField(max_length=64)
    period = pw.CharField(max_length=16)  # d:2026-11-21 | w:2026-W47 | m:2026-11
    points = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("account", "scenario", "period")


class QuizAnswer(BaseModel):
    """A user's first answer to a quiz question (hub.quiz): the outcome every retry returns."""

    account = pw.CharField(max_length=40)
    question = pw.CharField(max_length=64)
    day = pw.CharField(max_length=10)  # the local day it was answered, YYYY-MM-DD
    choice = pw.IntegerField()
    correct = pw.BooleanField()
    points = pw.BigIntegerField(default=0)
    seq = pw.BigIntegerField(null=True)  # the ledger transaction awarding the points
    answered_at = pw.DateTimeField()

    class Meta:
        primary_key = pw.CompositeKey("account", "question")


class ShareCard(BaseModel):
    """A share card of a user's carbon value (hub.shares): a frozen snapshot behind a public link.

    Only the sha256 of the link's token is kept; the token itself is shown once, at creation.
    """

    id = pw.CharField(primary_key=True, max_length=40)
    account = pw.CharField(max_length=40)
    token_sha256 = pw.CharField(max_length=64, unique=True)
    period = pw.CharField(max_length=7)  # all | YYYY | YYYY-MM (local calendar)
    card = JSONText()  # the snapshot shown publicly: figures only, nothing about the user
    created_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("account", "created_at"), False),)


class Redemption(BaseModel):
    """A user's redemption of a benefit: held, then fulfilled or voided exactly once."""

    id = pw.CharField(primary_key=True, max_length=40)
    account = pw.CharField(max_length=40)
    benefit = pw.CharField(max_length=64)
    partner = pw.CharField(max_length=64)
    cost = pw.BigIntegerField()
    status = pw.CharField(max_length=16)  # held | fulfilled | voided
    idempotency_key = pw.CharField(max_length=200)
    request_hash = pw.CharField(max_length=64)
    details = JSONText()
    created_at = pw.DateTimeField()
    deadline_at = pw.DateTimeField()
    resolved_at = pw.DateTimeField(null=True)
    hold_seq = pw.BigIntegerField(null=True)
    resolve_seq = pw.BigIntegerField(null=True)
    attempts = pw.IntegerField(default=0)
    fulfilment = JSONText(null=True)
    failure = JSONText(null=True)

    class Meta:
        indexes = ((("account", "idempotency_key"), True), (("account", "benefit", "created_at"), False),
                   (("status", "deadline_at"), False), (("account", "created_at", "id"), False))


class BenefitStock(BaseModel):
    """How many of a benefit are held or fulfilled; the bank's config says how many there are."""

    benefit = pw.CharField(primary_key=True, max_length=64)
    taken = pw.BigIntegerField(default=0)


class VoucherCode(BaseModel):
    """A code of a benefit's pool, loaded by the bank; handed out to one redemption, once."""

    id = pw.BigAutoField()
    benefit = pw.CharField(max_length=64)
    code = pw.CharField(max_length=200)
    loaded_at = pw.DateTimeField()
    redemption = pw.CharField(max_length=40, null=True, unique=True)
    assigned_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("benefit", "code"), True),)


class ConnectorState(BaseModel):
    """Where a connector's stream has read up to: saved with the inbox rows it covers."""

    connector = pw.CharField(max_length=64)
    stream = pw.CharField(max_length=64)
    cursor = pw.CharField(max_length=64, null=True)  # ISO-8601, never past the run's start ("now")
    updated_at = pw.DateTimeField()

    class Meta:
        primary_key = pw.CompositeKey("connector", "stream")


class ConnectorRun(BaseModel):
    """One run of a connector stream (a pull) or one file import: when, how far, what came of it."""

    id = pw.BigAutoField()
    connector = pw.CharField(max_length=64)
    stream = pw.CharField(max_length=64)
    mode = pw.CharField(max_length=8)
    started_at = pw.DateTimeField()
    finished_at = pw.DateTimeField(null=True)
    status = pw.CharField(max_length=16)  # running | ok | failed
    pages = pw.IntegerField(default=0)
    fetched = pw.IntegerField(default=0)
    skipped = pw.IntegerField(default=0)  # already received (a re-read lookback window)
    counts = JSONText(null=True)  # accepted / duplicate / rejected
    cursor_from = pw.CharField(max_length=64, null=True)
    cursor_to = pw.CharField(max_length=64, null=True)
    error = JSONText(null=True)  # {kind, code, message}

    class Meta:
        indexes = ((("connector", "stream", "id"), False),)


class StreamKey(BaseModel):
    """A pulled record's primary key, so a re-read window skips what already reached the inbox."""

    connector = pw.CharField(max_length=64)
    stream = pw.CharField(max_length=64)
    key = pw.CharField(max_length=200)
    inbox_id = pw.CharField(max_length=40)

    class Meta:
        primary_key = pw.CompositeKey("connector", "stream", "key")


class ImportFile(BaseModel):
    """A partner file given to ``carbonhub import``: its hash, and how many rows are committed."""

    id = pw.CharField(primary_key=True, max_length=40)
    partner = pw.CharField(max_length=64)
    sha256 = pw.CharField(max_length=64)
    name = pw.CharField(max_length=255)
    size = pw.BigIntegerField()
    rows_done = pw.BigIntegerField(default=0)  # rows committed, so a resumed import starts after them
    status = pw.CharField(max_length=16)  # running | done
    counts = JSONText(null=True)
    started_at = pw.DateTimeField()
    finished_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("partner", "sha256"), False),)


class PushNonce(BaseModel):
    """A signature already used by a partner push: the same signed request is refused a second time."""

    partner = pw.CharField(max_length=64)
    signature = pw.CharField(max_length=64)
    expires_at = pw.DateTimeField(index=True)

    class Meta:
        primary_key = pw.CompositeKey("partner", "signature")


class LedgerCheck(BaseModel):
    """One run of ``ledger.verify()`` (hub.ledger_checks): when, by what, and what it found."""

    id = pw.BigAutoField()
    trigger = pw.CharField(max_length=16)  # cli | api | schedule
    started_at = pw.DateTimeField(index=True)
    finished_at = pw.DateTimeField()
    duration_ms = pw.IntegerField()
    ok = pw.BooleanField()
    transactions = pw.BigIntegerField()
    accounts = pw.BigIntegerField()
    head_seq = pw.BigIntegerField()
    head_hash = pw.CharField(max_length=64)
    first_break = pw.BigIntegerField(null=True)
    problem_count = pw.IntegerField()
    problems = JSONText()  # the first few problems (list of strings)


# Partial indexes: the lots still holding points, by account (spending) and by expiry (the expiry job).
PointLot.add_index(PointLot.account, PointLot.expires_at, where=PointLot.remaining > 0)
PointLot.add_index(PointLot.expires_at, where=PointLot.remaining > 0)
VoucherCode.add_index(VoucherCode.benefit, VoucherCode.id, where=VoucherCode.redemption.is_null())
# One running import per partner file: two `carbonhub import` of the same new file
# started together claim one row (the second resumes it) instead of one each.
ImportFile.add_index(pw.ModelIndex(ImportFile, (ImportFile.partner, ImportFile.sha256), unique=True,
                                   where=ImportFile.status == "running", name="import_file_one_running"))


MODELS: tuple[type[BaseModel], ...] = (
    Meta, Partner, Account, Consent, ConsentEvent, InboxRecord, Behaviour, Receipt,
    LedgerTransaction, Posting, Balance, LedgerHead, UsageCounter,
    CarbonUse, Certificate, Aggregation, CarbonAdjustment,
    PointLot, PointsUsage, Redemption, BenefitStock, VoucherCode,
    ConnectorState, ConnectorRun, StreamKey, ImportFile, PushNonce,
    QuizAnswer, ShareCard, LedgerCheck,
)
GENESIS_HASH = "0" * 64


# Every SQLite connection of the hub. wal_autocheckpoint: an ingestion chunk
# dirties thousands of index pages, so the default (1,000 pages) checkpoints,
# and fsyncs, after every commit; 20,000 pages (80 MB of WAL) checkpoints every
# few chunks, and pages dirtied again meanwhile are copied once (bench/README.md).
SQLITE_PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
    "busy_timeout": 30_000, "cache_size": -64_000, "wal_autocheckpoint": 20_000,
}


def make_database(url: str) -> pw.Database:
    """A peewee database for ``sqlite:///path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # IMMEDIATE: a writer takes the lock at BEGIN, so two writers queue
        # instead of failing when both try to upgrade a read lock.
        return pw.SqliteDatabase(path, lock_type="IMMEDIATE", pragmas=dict(SQLITE_PRAGMAS))
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return url_connect(url)


def bind(url: str) -> pw.Database:
    db = make_database(url)
    database.initialize(db)
    return db


def is_postgres() -> bool:
    return isinstance(database.obj, pw.PostgresqlDatabase)


def init_schema() -> int:
    """Create missing tables and record the schema version; idempotent."""
    with database.atomic():
        database.create_tables(MODELS, safe=True)
        row = Meta.get_or_none(Meta.key == "schema_version")
        if row is None:
            Meta.create(key="schema_version", value=str(SCHEMA_VERSION))
        elif int(row.value) > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {row.value} is newer than this hub ({SCHEMA_VERSION})")
        LedgerHead.insert(id=1, seq=0, hash=GENESIS_HASH).on_conflict_ignore().execute()
    return SCHEMA_VERSION


def schema_version() -> int | None:
    if not database.table_exists("meta"):
        return None
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else None


def drop_schema() -> None:
    database.drop_tables(MODELS, safe=True)


def lock_ledger() -> LedgerHead:
    """Lock the chain head for this transaction (row lock on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already holds the write lock)."""
    query = LedgerHead.select().where(LedgerHead.id == 1)
    if is_postgres():
        query = query.for_update()
    return query.get()


def bulk_insert(model: type[BaseModel], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert many rows of DB-ready values with one statement per page (COPY on PostgreSQL).

    Values are passed as given (serialise JSON and datetimes first). This is the
    hot path of ingestion, so it bypasses peewee's per-value query building.
    """
    rows = list(rows)
    if not rows:
        return
    table = model._meta.table_name
    cols = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
    cursor = database.cursor()
    with pw.__exception_wrapper__:  # driver errors as peewee's (IntegrityError...), as execute_sql raises them
        _bulk_insert(cursor, table, cols, len(columns), rows)


def _bulk_insert(cursor: Any, table: str, cols: str, width: int, rows: list[Sequence[Any]]) -> None:
    if is_postgres():
        text = _copy_text(rows)
        if text is not None:  # COPY is parsed and inserted about 2.5 times faster than INSERT .. VALUES
            cursor.copy_expert(f'COPY "{table}" ({cols}) FROM STDIN', io.StringIO(text))
            return
        from psycopg2.extras import execute_values

        execute_values(cursor, f'INSERT INTO "{table}" ({cols}) VALUES %s', rows, page_size=1000)
    else:
        _sqlite_insert_pages(cursor, f'INSERT INTO "{table}" ({cols})', width, rows)


class _NotCopyable(Exception):
    pass


def _copy_field(value: Any) -> str:
    """One value in COPY's text format; only types whose text form is unambiguous."""
    if value is None:
        return "\\N"
    cls = type(value)
    if cls is str:
        if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
            return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return value
    if cls is int:
        return str(value)
    if cls is bool:
        return "t" if value else "f"
    if cls is datetime and value.tzinfo is None:  # naive UTC, as stored (an aware one would be converted)
        return value.isoformat(" ")
    raise _NotCopyable


def _copy_text(rows: Sequence[Sequence[Any]]) -> str | None:
    """The rows as COPY text, or None when a value is of another type (then INSERT is used)."""
    try:
        return "".join("\t".join([_copy_field(v) for v in row]) + "\n" for row in rows)
    except _NotCopyable:
        return None


def upsert_add(model: type[BaseModel], keys: Sequence[str], adds: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> None:
    """Insert rows ``(*keys, *adds)``; where the key exists, add the ``adds`` columns to it.

    The raw-SQL twin of ``insert_many(...).on_conflict(update={f: f + EXCLUDED.f})``
    for the hot path (usage counters, balances). ``rows`` must not repeat a key.
    """
    rows = list(rows)
    if not rows:
        return
    table = model._meta.table_name
    names = [model._meta.fields[c].column_name for c in (*keys, *adds)]
    cols = ", ".join(f'"{n}"' for n in names)
    target = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in keys)
    update = ", ".join(f'"{n}" = "{table}"."{n}" + EXCLUDED."{n}"'
                       for n in (model._meta.fields[c].column_name for c in adds))
    conflict = f"ON CONFLICT ({target}) DO UPDATE SET {update}"
    cursor = database.cursor()
    with pw.__exception_wrapper__:
        if is_postgres():
            from psycopg2.extras import execute_values

            execute_values(cursor, f'INSERT INTO "{table}" ({cols}) VALUES %s {conflict}', rows, page_size=1000)
        else:
            _sqlite_insert_pages(cursor, f'INSERT INTO "{table}" ({cols})', len(names), rows, f" {conflict}")


# Rows per multi-row INSERT on SQLite. Larger pages are not faster, but each
# distinct statement stays compiled in sqlite3's statement cache: with
# 5,000-record chunks, pages of ~1,500 rows took peak RSS from 160 to 250 MB.
SQLITE_PAGE_ROWS = 250


def _sqlite_insert_pages(cursor: Any, head: str, width: int, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """``head VALUES (?, ...), (?, ...) tail``: one statement per page of rows.

    ``executemany`` would run one statement per row (each traced and stepped
    alone); a page holds as many rows as SQLite's bound-parameter limit allows,
    up to ``SQLITE_PAGE_ROWS``.
    """
    per_page = max(1, min(SQLITE_PAGE_ROWS,
                          cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    row_marks = "(" + ", ".join(["?"] * width) + ")"
    for i in range(0, len(rows), per_page):
        page = rows[i:i + per_page]
        cursor.execute(f"{head} VALUES {', '.join([row_marks] * len(page))}{tail}",
                       list(chain.from_iterable(page)))


def marks(n: int) -> str:
    """``n`` comma-separated parameter placeholders for the bound database."""
    return ", ".join([database.param] * n)


def fetch_in(sql: str, values: Sequence[Any], extra: Sequence[Any] = (), chunk: int = 900) -> list[tuple]:
    """Raw-SQL :func:`select_in` for the hot path: rows as tuples of driver values.

    ``sql`` holds ``{marks}`` where the placeholders of one chunk of ``values``
    go; ``extra`` parameters follow them (write their placeholders with
    :func:`marks`). Building a 900-value ``IN`` through peewee's query builder
    costs more than running the query, hence this.
    """
    out: list[tuple] = []
    values = list(values)
    for i in range(0, len(values), chunk):
        part = values[i:i + chunk]
        out.extend(database.execute_sql(sql.format(marks=marks(len(part))), [*part, *extra]).fetchall())
    return out


def select_in(query_fn, values: Sequence[Any], chunk: int = 900) -> list[Any]:
    """Run ``query_fn(chunk_of_values)`` over chunks (SQLite limits parameters)."""
    out: list[Any] = []
    values = list(values)
    for i in range(0, len(values), chunk):
        out.extend(query_fn(values[i:i + chunk]))
    return out
