"""Pull: the hub pages through a partner's HTTP API on a schedule.

A plugin subclasses :class:`HttpPullConnector`, lists its streams and, when the
partner's API differs from the default shape, overrides
:meth:`~HttpPullConnector.request_params` and :meth:`~HttpPullConnector.parse_page`.
The default shape::

    GET {base_url}{stream.options["path"]}?since=<ISO>&until=<ISO>&limit=100[&page_token=…]
    Authorization: Bearer <the key in options.api_key_env>

    200 {"data": [<native record>, …], "next_page_token": "…" | null}

Each run of a stream (:func:`run_stream`):

- reads from the saved cursor minus ``lookback_s`` (records written late at the
  boundary are read again; those already received are skipped by their primary
  key, so nothing is counted twice) up to ``until`` = the run's start: the
  cursor never passes "now";
- sends each page through the pipeline as one database transaction that also
  saves the cursor (sorted streams: after every page; unsorted: with the last
  page), so a crash loses no record and repeats none;
- retries 429 (after ``Retry-After``), 5xx, timeouts and unreadable pages with
  exponential backoff, up to ``max_attempts``; a 401/403/404 is a config error
  and any other 4xx a failure; a failed run keeps the cursor of its last
  committed page, and the next run resumes from there.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, ClassVar, Mapping

import requests
from marshmallow import RAISE, Schema, fields, validate

from hub import db
from hub.accounts import new_id
from hub.config import ENV_NAME

from .base import CONFIG, FAIL, PULL, RETRY, CheckResult, Connector, ConnectorFailure, Stream, parse_cursor

log = logging.getLogger("carbonhub.connectors")
Sleep = Callable[[float], None]


class PullOptions(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "The partner API's root, e.g. https://api.partner.example/v1."})
    api_key_env = fields.String(load_default=None, validate=ENV_NAME,
                                metadata={"secret": True, "description": "Environment variable holding the key."})
    page_size = fields.Integer(strict=True, load_default=100, validate=validate.Range(1, 1000))
    lookback_s = fields.Integer(strict=True, load_default=3600, validate=validate.Range(0, 30 * 86_400),
                                metadata={"description": "Re-read this far before the cursor each run."})
    timeout_s = fields.Float(load_default=10.0, validate=validate.Range(0.1, 300))
    max_attempts = fields.Integer(strict=True, load_default=5, validate=validate.Range(1, 20))
    backoff_s = fields.Float(load_default=1.0, validate=validate.Range(0, 600))
    max_backoff_s = fields.Float(load_default=60.0, validate=validate.Range(0, 3600))
    max_pages = fields.Integer(strict=True, load_default=1000, validate=validate.Range(1, 1_000_000),
                               metadata={"description": "A run stops after this many pages; the next continues."})
    start = fields.AwareDateTime(load_default=None,
                                 metadata={"description": "Where the first run starts (default: a day ago)."})


@dataclass(frozen=True)
class Page:
    """One page of a partner's answer: its records and the token of the next page (None: last page)."""

    records: list[Any]
    next_token: str | None = None


@dataclass
class RunSummary:
    """What one run of one stream did (also stored as a ``ConnectorRun`` row)."""

    connector: str
    stream: str
    status: str = "running"
    pages: int = 0
    fetched: int = 0
    skipped: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    cursor_from: str | None = None
    cursor_to: str | None = None
    error: dict[str, Any] | None = None
    run_id: int | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)  # (params) of each page request, for tests

    def as_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "stream": self.stream, "status": self.status, "pages": self.pages,
                "fetched": self.fetched, "skipped": self.skipped, "accepted": self.accepted,
                "duplicate": self.duplicate, "rejected": self.rejected, "cursor_from": self.cursor_from,
                "cursor_to": self.cursor_to, "error": self.error}


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


class HttpPullConnector(Connector):
    """Pages through a partner's HTTP API; subclass it and list your streams.

    Override :meth:`request_params`, :meth:`parse_page` or :meth:`auth_headers`
    when the partner's API is not the default shape; the class attributes name
    the default shape's parameters.
    """

    mode = PULL
    config_schema = PullOptions
    since_param: ClassVar[str] = "since"
    until_param: ClassVar[str] = "until"
    limit_param: ClassVar[str] = "limit"
    page_param: ClassVar[str] = "page_token"
    records_key: ClassVar[str] = "data"
    next_key: ClassVar[str] = "next_page_token"

    # --- what a partner's subclass may override -------------------------------------

    def auth_headers(self) -> dict[str, str]:
        key = self.secret("api_key_env")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def url(self, stream: Stream) -> str:
        return str(self.options["base_url"]).rstrip("/") + str(stream.options.get("path", ""))

    def request_params(self, stream: Stream, since: datetime, until: datetime, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {self.since_param: iso(since), self.until_param: iso(until),
                                  self.limit_param: self.options["page_size"]}
        if token:
            params[self.page_param] = token
        return params

    def parse_page(self, stream: Stream, body: Any) -> Page:
        """Read one page; raise ``ConnectorFailure(RETRY, "malformed_page", …)`` when it cannot be read."""
        records = body.get(self.records_key) if isinstance(body, Mapping) else None
        if not isinstance(records, list):
            raise ConnectorFailure(RETRY, "malformed_page", f"The page has no {self.records_key!r} list.")
        token = body.get(self.next_key)
        return Page(records=records, next_token=str(token) if token not in (None, "") else None)

    def record_cursor(self, stream: Stream, record: Any) -> datetime | None:
        if not stream.cursor_field or not isinstance(record, Mapping):
            return None
        return parse_cursor(record.get(stream.cursor_field))

    # --- the transport -----------------------------------------------------------------

    def check(self) -> CheckResult:
        """The options are valid, secrets set, and the first stream answers one page."""
        base = super().check()
        if not base.ok:
            return base
        streams = self.streams()
        if not streams:
            return CheckResult(False, ConnectorFailure(CONFIG, "no_streams", "The connector lists no streams."))
        now = self.ctx.now()
        try:
            self.fetch(streams[0], {**self.request_params(streams[0], now - timedelta(hours=1), now, None),
                                    self.limit_param: 1}, sleep=lambda s: None, attempts=1)
        except ConnectorFailure as exc:
            return CheckResult(False, exc)
        return CheckResult(True, detail=f"{self.url(streams[0])} answered")

    def fetch(self, stream: Stream, params: Mapping[str, Any], *, sleep: Sleep = time.sleep,
              attempts: int | None = None) -> Any:
        """GET one page as JSON, retrying transient failures with backoff; raises ConnectorFailure."""
        attempts = attempts or self.options["max_attempts"]
        last: ConnectorFailure | None = None
        for attempt in range(1, attempts + 1):
            try:
                return self._get(stream, params)
            except ConnectorFailure as exc:
                if exc.kind != RETRY:
                    raise
                last = exc
                if attempt == attempts:
                    break
                wait = exc.retry_after if exc.retry_after is not None else \
                    self.options["backoff_s"] * 2 ** (attempt - 1)
                wait = min(wait, self.options["max_backoff_s"])
                log.warning("%s/%s: %s (attempt %s of %s); retrying in %.1f s", self.name, stream.name,
                            exc.message, attempt, attempts, wait)
                sleep(wait)
        assert last is not None
        raise ConnectorFailure(RETRY, last.code, f"{last.message} (gave up after {attempts} attempts)",
                               retry_after=last.retry_after)

    def _get(self, stream: Stream, params: Mapping[str, Any]) -> Any:
        url = self.url(stream)
        try:
            response = self.ctx.http.get(url, params=dict(params), headers=self.auth_headers(),
                                         timeout=self.options["timeout_s"])
        except requests.Timeout:
            raise ConnectorFailure(RETRY, "timeout", f"{url} did not answer in {self.options['timeout_s']} s.") \
                from None
        except requests.ConnectionError as exc:
            raise ConnectorFailure(RETRY, "connection_error", f"{url}: {exc}") from None
        status = response.status_code
        if status == 429:
            raise ConnectorFailure(RETRY, "rate_limited", f"{url} answered 429 Too Many Requests.",
                                   retry_after=retry_after_s(response.headers.get("Retry-After"), self.ctx.now()))
        if status >= 500:
            raise ConnectorFailure(RETRY, "server_error", f"{url} answered {status}.")
        if status in (401, 403):
            raise ConnectorFailure(CONFIG, "unauthorized", f"{url} answered {status}: check options.api_key_env.")
        if status == 404:
            raise ConnectorFailure(CONFIG, "not_found", f"{url} answered 404: check options.base_url.")
        if status >= 400:
            raise ConnectorFailure(FAIL, "bad_request", f"{url} answered {status}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise ConnectorFailure(RETRY, "malformed_json", f"{url} answered {status} with a body that is not "
                                                            f"JSON.") from None


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110); None when absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


# --- runs ---------------------------------------------------------------------------------


def saved_cursor(connector: str, stream: str) -> datetime | None:
    row = db.ConnectorState.get_or_none((db.ConnectorState.connector == connector)
                                        & (db.ConnectorState.stream == stream))
    return parse_cursor(row.cursor) if row and row.cursor else None


def _save_cursor(connector: str, stream: str, cursor: datetime, now: datetime) -> None:
    value, when = iso(cursor), db.to_db(now)
    (db.ConnectorState.insert(connector=connector, stream=stream, cursor=value, updated_at=when)
     .on_conflict(conflict_target=[db.ConnectorState.connector, db.ConnectorState.stream],
                  update={db.ConnectorState.cursor: value, db.ConnectorState.updated_at: when})
     .execute())


def _known_keys(connector: str, stream: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    sql = ('SELECT "key" FROM "stream_key" WHERE "key" IN ({marks}) AND "connector" = %s AND "stream" = %s'
           .replace("%s", db.database.param))
    return {row[0] for row in db.fetch_in(sql, keys, extra=(connector, stream))}


def run_stream(hub: Any, connector: HttpPullConnector, stream: Stream, *, since: datetime | None = None,
               sleep: Sleep = time.sleep) -> RunSummary:
    """Run one stream once: page from the cursor (minus the lookback) to now; see the module doc."""
    name, opts = connector.name, connector.options
    until = hub.now()  # the signpost: nothing after the run's start moves the cursor
    cursor = saved_cursor(name, stream.name)
    if since is not None:
        start = since
    elif cursor is not None:
        start = cursor - timedelta(seconds=opts["lookback_s"])
    else:
        start = opts["start"] or until - timedelta(days=1)
    summary = RunSummary(connector=name, stream=stream.name, cursor_from=iso(cursor))
    run = db.ConnectorRun.create(connector=name, stream=stream.name, mode=PULL, started_at=db.to_db(until),
                                 status="running", cursor_from=iso(cursor))
    summary.run_id = run.id
    best = cursor  # the cursor to save: the newest record seen, never past `until`
    token: str | None = None
    tokens: set[str] = set()
    try:
        while True:
            if summary.pages >= opts["max_pages"]:
                log.warning("%s/%s: stopped after max_pages=%s; the next run continues", name, stream.name,
                            opts["max_pages"])
                break
            params = connector.request_params(stream, start, until, token)
            summary.requests.append(dict(params))
            page = connector.parse_page(stream, connector.fetch(stream, params, sleep=sleep))
            summary.pages += 1
            summary.fetched += len(page.records)
            for record in page.records:
                seen = connector.record_cursor(stream, record)
                if seen is not None and (best is None or seen > best):
                    best = min(seen, until)
            last = page.next_token is None
            save = best if (best is not None and best != cursor and (stream.is_sorted or last)) else None
            _ingest_page(hub, connector, stream, page.records, summary, save, until)
            if save is not None:
                cursor = save
            if last:
                break
            if page.next_token in tokens:
                raise ConnectorFailure(FAIL, "pagination_loop", f"The partner sent page token "
                                                                f"{page.next_token!r} twice.")
            tokens.add(page.next_token)
            token = page.next_token
        summary.status = "ok"
    except ConnectorFailure as exc:
        summary.status, summary.error = "failed", exc.as_dict()
        log.error("%s/%s failed: %s", name, stream.name, exc.message)
    except Exception as exc:  # a plugin bug in parse_page or request_params: recorded, never silent
        summary.status = "failed"
        summary.error = {"kind": FAIL, "code": "connector_failed", "message": repr(exc)}
        log.exception("%s/%s failed", name, stream.name)
    summary.cursor_to = iso(cursor)
    (db.ConnectorRun.update(finished_at=db.to_db(hub.now()), status=summary.status, pages=summary.pages,
                            fetched=summary.fetched, skipped=summary.skipped,
                            counts={"accepted": summary.accepted, "duplicate": summary.duplicate,
                                    "rejected": summary.rejected},
                            cursor_to=summary.cursor_to, error=summary.error)
     .where(db.ConnectorRun.id == run.id).execute())
    return summary


def _ingest_page(hub: Any, connector: HttpPullConnector, stream: Stream, records: list[Any], summary: RunSummary,
                 cursor: datetime | None, now: datetime) -> None:
    """The page's new records through the pipeline, their keys and the cursor in one transaction."""
    name = connector.name
    keys = [stream.key_of(r) if isinstance(r, Mapping) else None for r in records]
    known = _known_keys(name, stream.name, sorted({k for k in keys if k is not None}))
    fresh, taken = [], set()
    for record, key in zip(records, keys):
        if key is not None and (key in known or key in taken):
            summary.skipped += 1  # already received: a re-read lookback window, or repeated in the page
            continue
        if key is not None:
            taken.add(key)
        fresh.append(record)

    def in_transaction(chunk: list[tuple[str, Any, str]]) -> None:
        rows = [(name, stream.name, k, inbox_id) for inbox_id, payload, _ in chunk
                if (k := stream.key_of(payload) if isinstance(payload, Mapping) else None) is not None]
        if rows:
            (db.StreamKey.insert_many(rows, fields=[db.StreamKey.connector, db.StreamKey.stream, db.StreamKey.key,
                                                    db.StreamKey.inbox_id])
             .on_conflict_ignore().execute())
        if cursor is not None:
            _save_cursor(name, stream.name, cursor, now)

    if not fresh:
        if cursor is not None:
            with db.database.atomic():
                _save_cursor(name, stream.name, cursor, now)
        return
    # One chunk per page: the keys and the cursor commit with every record they cover.
    result = hub.pipeline.ingest(connector.partner, fresh, source="pull", batch_id=new_id("pul"),
                                 keep_results=False, chunk_size=len(fresh), in_transaction=in_transaction)
    summary.accepted += result.counts.get("accepted", 0)
    summary.duplicate += result.counts.get("duplicate", 0)
    summary.rejected += result.counts.get("rejected", 0)


def pull(hub: Any, name: str, *, since: datetime | None = None, sleep: Sleep = time.sleep) -> list[RunSummary]:
    """Run every stream of the pull connector ``name`` once (``carbonhub pull``); KeyError if not one."""
    connector = hub.connectors.get(name)
    if connector is None or connector.mode != PULL:
        known = ", ".join(c.name for c in hub.connectors.pulls()) or "none"
        raise KeyError(f"{name!r} is not a configured pull connector (configured: {known}).")
    if not connector.binding.enabled:
        raise KeyError(f"{name!r} is disabled (connectors.{name}.enabled = false); "
                       f"try it with carbonhub connectors check {name}.")
    return [run_stream(hub, connector, stream, since=since, sleep=sleep) for stream in connector.streams()]
