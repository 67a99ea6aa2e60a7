"""The conformance suite a partner's plugin must pass: subclass one class, set a little config.

In the spirit of Airbyte's connector acceptance tests and SQLAlchemy's dialect
suite, the hub's own checks run against *your* plugin, on a real hub (a fresh
SQLite file per test, or PostgreSQL when ``CARBONHUB_TEST_DATABASE_URL`` is
set), with no other installed plugin loaded::

    # tests/test_conformance.py
    from datetime import datetime, timezone

    import carbonhub_reclothe
    from hub.testing import ACCOUNT, PluginConformance


    class TestReClothe(PluginConformance):
        plugin = carbonhub_reclothe
        config = {
            "partners": {"reclothe": {"name": "ReClothe", "secret_env": "CARBONHUB_SECRET_RECLOTHE",
                                      "scenarios": ["textiles"]}},
            "scenarios": {"textiles": {"points": {"per_kg": 10, "bonus": 0}}},
        }
        now = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
        good_records = [  # (native record, expected status, expected grams)
            ({"drop_id": "RC-1", "account_id": ACCOUNT, "bin_id": "SZ-FT-0042",
              "dropped_at": "2026-11-20T18:05:00+08:00", "weight_kg": "2.35"}, "accepted", 8460),
        ]
        bad_records = [  # (native record, expected reason code, expected field)
            ({"drop_id": "RC-2", "account_id": ACCOUNT, "bin_id": "SZ-FT-0042",
              "dropped_at": "yesterday", "weight_kg": "2.35"}, "invalid_record", "dropped_at"),
        ]

``ACCOUNT`` is a placeholder: wherever a record holds exactly that string, the
suite puts the id of a test account that has consented to every scenario of the
plugin (at :attr:`PluginConformance.consent_at`). Samples can also live in a
JSON file the bank can replay (:func:`load_samples`).

Each check is its own test method, so a failure names what is wrong: the API
version, registration and methodology documents, every good sample's grams,
every bad sample's reason and field, stable fingerprints, no second credit for
a resent record, signed pushes, and, for a plugin that registers a pull
connector, paging, resuming from the cursor and surviving 429 and 500 answers
(served from the recorded pages in :attr:`PluginConformance.pull_pages` with
the ``responses`` library: no live credentials). A check that does not apply is
skipped with the reason, never silently passed.
"""
from __future__ import annotations

import copy
import inspect
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import peewee as pw
import pytest

from . import db, signing
from .config import load_settings
from .context import FixedClock
from .ledger import user_carbon
from .plugins import check_api_version
from .records import ACCEPTED, DUPLICATE, REJECTED, Behaviour, RawRecord

#: Put this string where a record names the user's carbon account; the suite substitutes a real id.
ACCOUNT = "<account_id>"
#: Where :class:`PluginConformance` serves recorded pull pages from, unless the test class sets its own.
PULL_BASE_URL = "https://partner.example/api"
PULL_KEY_ENV = "CARBONHUB_CONFORMANCE_API_KEY"
PULL_BINDING = "conformance-pull"

GoodSample = tuple[Mapping[str, Any], str, int]          # record, expected status, expected grams
BadSample = tuple[Mapping[str, Any], str, "str | None"]  # record, expected reason code, expected field


@dataclass(frozen=True)
class Samples:
    """Good and bad sample records, as :func:`load_samples` reads them from JSON."""

    good: tuple[GoodSample, ...]
    bad: tuple[BadSample, ...]


def load_samples(path: str | os.PathLike[str]) -> Samples:
    """Read a samples file: ``{"good": [{"record", "status", "grams"}], "bad": [{"record", "reason", "field"}]}``.

    The same file is what a partner gives the bank to replay in a test
    environment (``carbonhub push``), with ``"<account_id>"`` where the account goes.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    good = tuple((s["record"], s.get("status", ACCEPTED), int(s["grams"])) for s in data.get("good", ()))
    bad = tuple((s["record"], s["reason"], s.get("field")) for s in data.get("bad", ()))
    return Samples(good=good, bad=bad)


def with_account(value: Any, account_id: str) -> Any:
    """A deep copy of ``value`` with every string equal to :data:`ACCOUNT` replaced by ``account_id``."""
    if isinstance(value, str):
        return account_id if value == ACCOUNT else value
    if isinstance(value, Mapping):
        return {k: with_account(v, account_id) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [with_account(v, account_id) for v in value]
    return copy.deepcopy(value)


def replay_protection_available() -> bool:
    """Whether this hub refuses a replayed signed push (409 ``replayed_request``)."""
    from .api import auth

    return "replayed_request" in inspect.getsource(auth)


def fresh_database_url(tmp_path: Path, name: str = "hub.db", *, empty: bool = False) -> str:
    """A database for one test: ``CARBONHUB_TEST_DATABASE_URL`` emptied, or a new SQLite file in ``tmp_path``.

    The PostgreSQL database is shared by every test, so it is emptied first
    (the hub's own suite does the same): every table of the hub holds no row and
    every id sequence starts again at 1, as if the schema had just been dropped
    and created again. Building ~30 tables for each test is what made a suite
    on PostgreSQL slow, so the tables are kept between tests and only emptied
    (:func:`reset_database`); ``empty=True`` drops them, for a test of ``db
    init`` itself.
    """
    url = os.environ.get("CARBONHUB_TEST_DATABASE_URL")
    if url:
        db.bind(url)
        try:
            if empty:
                db.drop_schema()
            else:
                reset_database()
        finally:
            db.database.close()
        return url
    return f"sqlite:///{tmp_path}/{name}"


#: Per PostgreSQL database: the catalog of the schema this process last created there (:func:`reset_database`).
_known_schemas: dict[tuple, list[tuple]] = {}

_CATALOG_SQL = ("SELECT c.oid, c.relname, c.relkind, c.relnatts, c.relchecks, c.relhastriggers FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY c.oid")


def reset_database() -> None:
    """Empty the bound database as :func:`hub.db.drop_schema` would, for ``Hub.init_db()`` to fill anew.

    On SQLite this is :func:`hub.db.drop_schema`. On PostgreSQL the first call
    for a database drops and creates the hub's tables, then notes the schema's
    catalog: every table, index and sequence by its oid, with its column, check
    and trigger counts. Later calls read the catalog again (one cheap query):
    when it is unchanged, no DDL ran since, so emptying the tables that hold
    rows (``TRUNCATE``) and restarting every id sequence leaves what creating
    them anew would; when anything differs (a test dropped the schema, another
    process rebuilt it, a table or column was added), the tables are dropped
    and created again. Either way no table holds a row afterwards:
    ``Hub.init_db()`` writes the schema version and the ledger's genesis head
    as on a new database.
    """
    database = db.database
    if not db.is_postgres():
        db.drop_schema()
        return
    key = (database.obj.database, tuple(sorted((k, str(v)) for k, v in database.obj.connect_params.items())))
    catalog = [tuple(row) for row in database.execute_sql(_CATALOG_SQL).fetchall()]
    tables = [m._meta.table_name for m in db.MODELS]
    if catalog != _known_schemas.get(key):
        db.drop_schema()
        with database.atomic():
            database.create_tables(db.MODELS)
        _known_schemas[key] = [tuple(row) for row in database.execute_sql(_CATALOG_SQL).fetchall()]
        return  # new tables: empty, sequences at 1
    quoted = [f'"{name}"' for name in tables]
    with database.atomic():
        # As DROP TABLE would: wait for any other session still writing, and keep them out until emptied.
        database.execute_sql(f"LOCK TABLE {', '.join(quoted)} IN ACCESS EXCLUSIVE MODE")
        holding = [name for (name,) in database.execute_sql(" UNION ALL ".join(
            f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {q})" for name, q in zip(tables, quoted))).fetchall()]
        if holding:
            database.execute_sql("TRUNCATE " + ", ".join(f'"{name}"' for name in holding) + " CASCADE")
        serial = [(m._meta.table_name, m._meta.primary_key.column_name) for m in db.MODELS
                  if isinstance(m._meta.primary_key, pw.AutoField)]
        if serial:  # a rolled-back insert moves a sequence on too, so restart them all
            database.execute_sql("SELECT " + ", ".join(
                f"setval(pg_get_serial_sequence('\"{table}\"', '{column}'), 1, false)" for table, column in serial))


class PluginConformance:
    """Subclass this (named ``Test…``) and set the class attributes below; pytest runs the checks.

    Required: :attr:`plugin`, :attr:`config`, :attr:`good_records`. Everything
    else has a default. Override a ``test_*`` method only to skip it with a reason
    the bank will read (``pytest.skip("…")``).
    """

    #: The plugin module (or object) exactly as the entry point would load it.
    plugin: ClassVar[Any] = None
    #: The bank's config as a dict: ``partners``, ``scenarios``, ``plugin_config`` (like ``config/hub.toml``).
    config: ClassVar[Mapping[str, Any]] = {}
    #: The partner whose records the samples are; default: the only partner in :attr:`config`.
    partner: ClassVar[str] = ""
    #: The hub's frozen clock; date the samples before it.
    now: ClassVar[datetime] = datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc)
    #: When the test account consented to the plugin's scenarios (consent is checked at ``occurred_at``).
    consent_at: ClassVar[datetime] = datetime(2020, 1, 1, tzinfo=timezone.utc)
    #: ``(native record, expected status, expected grams)``; status is usually ``"accepted"``.
    good_records: ClassVar[Sequence[GoodSample]] = ()
    #: ``(native record, expected reason code, expected field or None)``: each must be rejected so.
    bad_records: ClassVar[Sequence[BadSample]] = ()
    #: Recorded pages a pull connector's partner API answers, in order: a list (the first stream's) or
    #: ``{stream name: [page body, ...]}``. Each page is the JSON body exactly as the partner sends it.
    pull_pages: ClassVar[Sequence[Any] | Mapping[str, Sequence[Any]]] = ()
    #: The pull ``ConnectorSpec`` id to test; default: the only pull connector the plugin registers.
    pull_connector: ClassVar[str] = ""
    #: Options of the test binding (``[connectors.<name>.options]``); ``base_url`` defaults to a fake host.
    pull_options: ClassVar[Mapping[str, Any]] = {}

    # --- fixtures -------------------------------------------------------------------------------

    def _check_class(self) -> None:
        if self.plugin is None:
            pytest.fail(f"{type(self).__name__}: set `plugin` to your plugin module")
        if not self.config.get("partners"):
            pytest.fail(f"{type(self).__name__}: `config` needs a `partners` table")

    def partner_id(self) -> str:
        if self.partner:
            return self.partner
        partners = list(self.config.get("partners", {}))
        if len(partners) != 1:
            pytest.fail(f"{type(self).__name__}: config has partners {partners}; set `partner`")
        return partners[0]

    def secret_of(self, partner: str) -> str:
        """The push signing secret the suite gives ``partner`` (through its ``secret_env``)."""
        return f"{partner}-conformance-secret-0123456789"

    def config_data(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:attr:`config` with test defaults (no secrets file) and ``extra`` tables merged in."""
        data = copy.deepcopy(dict(self.config))
        data.setdefault("hub", {}).setdefault("secrets_file", "/nonexistent/carbonhub-conformance.env")
        for key, value in (extra or {}).items():
            data.setdefault(key, {}).update(copy.deepcopy(value))
        return data

    def environ(self) -> dict[str, str]:
        env = {p["secret_env"]: self.secret_of(pid) for pid, p in self.config.get("partners", {}).items()
               if p.get("secret_env")}
        env[PULL_KEY_ENV] = "conformance-api-key-0123456789"
        return env

    def build_hub(self, database_url: str, extra_config: Mapping[str, Any] | None = None) -> Any:
        """A hub with only this plugin (and the hub's defaults) loaded, on ``database_url``."""
        from .core import Hub

        settings = load_settings(data=self.config_data(extra_config), environ=self.environ())
        hub = Hub(settings, clock=FixedClock(self.now), database_url=database_url, extra_plugins=[self.plugin])
        hub.init_db()
        return hub

    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return fresh_database_url(tmp_path, "conformance.db")

    @pytest.fixture
    def hub(self, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
        """A fresh hub loading no installed plugin but this one."""
        self._check_class()
        monkeypatch.setenv("CARBONHUB_LOAD_PLUGINS", "")
        h = self.build_hub(database_url)
        yield h
        if not db.database.is_closed():
            db.database.close()

    @pytest.fixture
    def account_id(self, hub: Any) -> str:
        """A test account that consented to every scenario this plugin registers."""
        account, _ = hub.open_account("conformance-user-1")
        for scenario in self.own(hub, "scenario"):
            hub.set_consent(account.id, scenario, True, at=self.consent_at)
        return account.id

    # --- helpers --------------------------------------------------------------------------------

    def own(self, hub: Any, kind: str) -> list[str]:
        """Ids of ``kind`` (scenario, methodology, connector, benefit) this plugin registered."""
        name = hub.pm.get_name(self.plugin)
        return sorted(i for (k, i), owner in hub.registry.owner.items() if k == kind and owner == name)

    def raw(self, hub: Any, payload: Mapping[str, Any], *, inbox_id: str = "inb_conformance",
            received_at: datetime | None = None, scenarios: tuple[str, ...] | None = None) -> RawRecord:
        partner = hub.settings.partners[self.partner_id()]
        return RawRecord(inbox_id=inbox_id, partner=partner.id, payload=payload,
                         received_at=received_at or self.now,
                         scenarios=tuple(partner.scenarios) if scenarios is None else scenarios)

    def normalize(self, hub: Any, raw: RawRecord) -> list[Behaviour] | None:
        return hub.pm.hook.carbonhub_normalize_record(ctx=hub.ctx, record=raw)

    @staticmethod
    def outcome(result: Any) -> tuple[str, str | None, str | None, int]:
        """``(status, reason, field, grams)`` of a one-record batch, whatever stage decided it."""
        (rec,) = result.records
        if rec.reason or not rec.behaviours:
            return rec.status, rec.reason, rec.field, 0
        first = next((b for b in rec.behaviours if b.reason), rec.behaviours[0])
        return rec.status, first.reason, first.field, sum(b.grams for b in rec.behaviours)

    def carbon(self, hub: Any, account_id: str) -> int:
        return hub.ledger.balance(user_carbon(account_id), "g")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per sample, so a failure names the sample."""
        if "good_sample" in metafunc.fixturenames:
            samples = list(self.good_records)
            metafunc.parametrize("good_sample", samples or [None], ids=_ids("good", samples))
        if "bad_sample" in metafunc.fixturenames:
            samples = list(self.bad_records)
            metafunc.parametrize("bad_sample", samples or [None], ids=_ids("bad", samples))

    # --- the checks: plugin and registration ----------------------------------------------------

    def test_declares_a_supported_hub_api_version(self) -> None:
        """``CARBONHUB_API`` is set, MAJOR.MINOR, and this hub provides it."""
        self._check_class()
        assert getattr(self.plugin, "CARBONHUB_API", None), "set CARBONHUB_API = \"1.0\" in the plugin module"
        check_api_version(getattr(self.plugin, "__name__", "plugin"), self.plugin)  # raises PluginError

    def test_registers_scenarios_and_methodologies_that_load(self, hub: Any) -> None:
        """Scenarios register; every methodology document loads; units and config agree."""
        scenarios = self.own(hub, "scenario")
        assert scenarios, "the plugin registers no scenario (carbonhub_register_scenarios)"
        for mid in self.own(hub, "methodology"):
            spec = hub.registry.methodologies[mid]
            assert spec.documents, f"methodology {mid!r} lists no documents (ship them as package data)"
            loaded = hub.methodologies.versions[mid]
            assert len(loaded) == len(spec.documents), f"{mid}: {len(spec.documents)} documents, " \
                                                       f"{len(loaded)} loaded"
            for version in loaded:
                for factor in version.factors.values():
                    assert factor.source.strip(), f"{version.path}: factor {factor.name} has no source"
        for sid in scenarios:
            spec = hub.registry.scenarios[sid]
            assert sid in hub.settings.scenarios, f"config enables no [scenarios.{sid}]: add it to `config`"
            mid = hub.settings.scenarios[sid].methodology or spec.methodology
            assert mid in hub.methodologies.versions, f"scenario {sid!r} uses unknown methodology {mid!r}"
            units = {v.quantity_unit for v in hub.methodologies.versions[mid]}
            assert units == {spec.unit}, f"scenario {sid!r} counts {spec.unit!r}; {mid} documents count {units}"
        partner = hub.settings.partners[self.partner_id()]
        assert set(partner.scenarios) & set(scenarios), \
            f"partner {partner.id!r} feeds none of the plugin's scenarios {scenarios}"

    def test_methodology_documents_are_filled_in(self, hub: Any) -> None:
        """No ``TODO`` left from the ``carbonhub plugin new`` template in reviewer, description or sources."""
        left = [f"{Path(v.path).name}: {where}"
                for mid in self.own(hub, "methodology") for v in hub.methodologies.versions[mid]
                for where, text in [("reviewer", v.reviewer), ("description", v.description)]
                + [(f"factors.{f.name}.source", f.source) for f in v.factors.values()]
                if "TODO" in text]
        if left:
            pytest.skip(f"template placeholders left (the bank will refuse them): {', '.join(left)}")

    def test_ignores_records_of_scenarios_it_does_not_own(self, hub: Any) -> None:
        """``carbonhub_normalize_record`` answers None for a record of another scenario."""
        record, _, _ = self._first_good()
        raw = self.raw(hub, with_account(record, "acc_conformance"), scenarios=("conformance_not_yours",))
        assert self.normalize(hub, raw) is None, \
            "return None from carbonhub_normalize_record when none of record.scenarios is yours"

    # --- the checks: records through the pipeline -----------------------------------------------

    def test_good_sample_is_credited(self, hub: Any, account_id: str, good_sample: GoodSample | None) -> None:
        """Each good sample normalizes and ends with the expected status and grams."""
        if good_sample is None:
            pytest.fail("set `good_records`: at least one (record, status, grams) the plugin must credit")
        record, status, grams = good_sample
        result = hub.pipeline.ingest(self.partner_id(), [with_account(record, account_id)])
        got = self.outcome(result)
        assert (got[0], got[3]) == (status, grams), f"expected {status} with {grams} g, got {got}"
        if status == ACCEPTED:
            assert self.carbon(hub, account_id) == grams

    def test_bad_sample_is_rejected_with_its_reason(self, hub: Any, account_id: str,
                                                    bad_sample: BadSample | None) -> None:
        """Each bad sample is rejected with the expected reason code and field, and credits nothing."""
        if bad_sample is None:
            pytest.skip("no `bad_records`: give at least one per reason code your plugin raises")
        record, reason, field = bad_sample
        result = hub.pipeline.ingest(self.partner_id(), [with_account(record, account_id)])
        got = self.outcome(result)
        assert got[:3] == (REJECTED, reason, field), f"expected rejected {reason!r} on {field!r}, got {got}"
        assert self.carbon(hub, account_id) == 0

    def test_fingerprints_are_stable(self, hub: Any, account_id: str) -> None:
        """The same record normalized twice (other inbox id, other arrival time) has the same fingerprints."""
        for record, _, _ in self.good_records:
            payload = with_account(record, account_id)
            first = self.normalize(hub, self.raw(hub, payload))
            again = self.normalize(hub, self.raw(hub, copy.deepcopy(payload), inbox_id="inb_conformance_2",
                                                 received_at=self.now + timedelta(hours=6)))
            assert first, f"a good sample normalized to {first!r}: {record}"
            prints = [b.fingerprint for b in first]
            assert all(isinstance(p, str) and p for p in prints), "every behaviour needs a fingerprint"
            assert prints == [b.fingerprint for b in again or []], \
                "the fingerprint changed between two normalizations of the same record: build it from the " \
                "act only (hub.records.fingerprint), never from arrival time or inbox id"
            assert [b.event_id for b in first] == [b.event_id for b in again or []]

    def test_resent_record_is_a_duplicate_never_a_second_credit(self, hub: Any, account_id: str) -> None:
        """Pushing a credited sample again answers duplicate and leaves the balance unchanged."""
        credited = 0
        for record, _, _ in self.good_records:
            payload = with_account(record, account_id)
            if self.outcome(hub.pipeline.ingest(self.partner_id(), [payload]))[0] != ACCEPTED:
                continue  # e.g. a cap reached by an earlier sample: nothing to duplicate
            credited += 1
            before = self.carbon(hub, account_id)
            status, reason, _, grams = self.outcome(hub.pipeline.ingest(self.partner_id(), [payload]))
            assert (status, grams) == (DUPLICATE, 0), f"a resent record gave {status} {reason} {grams} g"
            assert self.carbon(hub, account_id) == before
        assert credited, "no good sample was accepted, so nothing could be resent"

    # --- the checks: signed pushes --------------------------------------------------------------

    def _push(self, client: Any, hub: Any, body: bytes, *, secret: str | None = None,
              signed_body: bytes | None = None) -> Any:
        partner = self.partner_id()
        headers = signing.signed_headers(partner, secret or self.secret_of(partner),
                                         body if signed_body is None else signed_body, int(hub.now().timestamp()))
        return client.post(f"/v1/partners/{partner}/events", data=body, headers=headers)

    def test_push_needs_a_good_signature(self, hub: Any, account_id: str) -> None:
        """A signed push is processed (200); a wrong secret or an altered body is 401 ``bad_signature``."""
        from .app import create_app

        client = create_app(hub=hub).test_client()
        record, status, _ = self._first_good()
        body = signing.encode({"records": [with_account(record, account_id)]})
        wrong = self._push(client, hub, body, secret="not-the-partner-secret")
        assert (wrong.status_code, wrong.get_json()["error"]["code"]) == (401, "bad_signature")
        altered = self._push(client, hub, body, signed_body=body.replace(b"}", b" }", 1))
        assert (altered.status_code, altered.get_json()["error"]["code"]) == (401, "bad_signature")
        assert self.carbon(hub, account_id) == 0, "a refused push must credit nothing"
        good = self._push(client, hub, body)
        assert good.status_code == 200, good.get_json()
        assert good.get_json()["results"][0]["status"] == status

    def test_replayed_push_is_refused(self, hub: Any, account_id: str) -> None:
        """The same signed request sent twice is refused the second time (409 ``replayed_request``)."""
        if not replay_protection_available():
            pytest.skip("this hub has no replay protection yet (hub/api/auth.py never answers replayed_request)")
        from .app import create_app

        client = create_app(hub=hub).test_client()
        record, _, _ = self._first_good()
        partner = self.partner_id()
        body = signing.encode({"records": [with_account(record, account_id)]})
        headers = signing.signed_headers(partner, self.secret_of(partner), body, int(hub.now().timestamp()))
        first = client.post(f"/v1/partners/{partner}/events", data=body, headers=headers)
        assert first.status_code == 200, first.get_json()
        again = client.post(f"/v1/partners/{partner}/events", data=body, headers=headers)
        assert (again.status_code, again.get_json()["error"]["code"]) == (409, "replayed_request")

    # --- the checks: pull connectors --------------------------------------------------------------

    def _pull_setup(self, hub: Any, database_url: str) -> tuple[Any, Any, list[tuple[Any, list[Any]]]]:
        """A hub with the plugin's pull connector bound to the partner, and (stream, pages) pairs."""
        specs = {cid: hub.registry.connectors[cid] for cid in self.own(hub, "connector")
                 if hub.registry.connectors[cid].mode == "pull"}
        if not specs:
            pytest.skip("this plugin registers no pull connector")
        cid = self.pull_connector or (next(iter(specs)) if len(specs) == 1 else "")
        if cid not in specs:
            pytest.fail(f"the plugin registers pull connectors {sorted(specs)}; set `pull_connector`")
        if not self.pull_pages:
            pytest.fail(f"the plugin registers pull connector {cid!r}: set `pull_pages` to recorded pages "
                        f"of your API (a list of JSON page bodies)")
        options = {"base_url": PULL_BASE_URL, "api_key_env": PULL_KEY_ENV, **self.pull_options}
        binding = {PULL_BINDING: {"connector": cid, "partner": self.partner_id(), "options": options}}
        pull_hub = self.build_hub(database_url, {"connectors": binding})
        connector = pull_hub.connectors[PULL_BINDING]
        streams = connector.streams()
        assert streams, f"pull connector {cid!r} lists no streams"
        if isinstance(self.pull_pages, Mapping):
            by_name = {s.name: s for s in streams}
            unknown = set(self.pull_pages) - set(by_name)
            assert not unknown, f"pull_pages names streams {sorted(unknown)} the connector lacks"
            pairs = [(by_name[n], list(p)) for n, p in self.pull_pages.items()]
        else:
            pairs = [(streams[0], list(self.pull_pages))]
        return pull_hub, connector, pairs

    def _serve(self, rsps: Any, connector: Any, pairs: list[tuple[Any, list[Any]]], account_id: str,
               *, trouble: bool = False) -> None:
        """Register the recorded pages in order (``responses`` answers same-URL calls in order)."""
        for stream, pages in pairs:
            url = connector.url(stream)
            if trouble:  # before the first page: rate-limited, then a server error, then the real answer
                rsps.get(url, status=429, headers={"Retry-After": "7"}, json={"error": "slow down"})
                rsps.get(url, status=500, json={"error": "oops"})
            for page in pages:
                rsps.get(url, json=with_account(page, account_id))

    def _run_pull(self, pull_hub: Any, *, sleeps: list[float] | None = None) -> list[Any]:
        """One ``carbonhub pull`` of the test binding; waits are recorded in ``sleeps``, never slept."""
        from connectors.http_pull import pull

        return pull(pull_hub, PULL_BINDING, sleep=(sleeps if sleeps is not None else []).append)

    def _pull_account(self, pull_hub: Any) -> str:
        account, _ = pull_hub.open_account("conformance-user-1")
        for scenario in self.own(pull_hub, "scenario"):
            pull_hub.set_consent(account.id, scenario, True, at=self.consent_at)
        return account.id

    def test_pull_reads_every_page(self, hub: Any, database_url: str) -> None:
        """One run pages through every recorded page, sends the partner's auth, and credits what it read."""
        responses = pytest.importorskip("responses", reason="the pull checks need the `responses` library")
        pull_hub, connector, pairs = self._pull_setup(hub, database_url)
        account_id = self._pull_account(pull_hub)
        with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
            self._serve(rsps, connector, pairs, account_id)
            summaries = self._run_pull(pull_hub)
            auth = connector.auth_headers()
            for call in rsps.calls:
                for name, value in auth.items():
                    assert call.request.headers.get(name) == value, f"request without its {name} header"
        by_stream = {s.stream: s for s in summaries}
        for stream, pages in pairs:
            run = by_stream[stream.name]
            assert run.status == "ok", run.error
            assert run.pages == len(pages), f"{stream.name}: read {run.pages} of {len(pages)} pages"
            assert run.fetched == sum(len(connector.parse_page(stream, p).records) for p in pages)
            assert run.accepted + run.duplicate + run.rejected + run.skipped == run.fetched
            assert run.accepted >= 1, f"{stream.name}: no recorded record was credited: {run.as_dict()}"
            if stream.cursor_field:
                assert run.cursor_to, f"{stream.name}: no cursor saved after a complete run"
        assert self.carbon(pull_hub, account_id) > 0

    def test_pull_resumes_from_its_cursor(self, hub: Any, database_url: str) -> None:
        """A second run starts at the saved cursor minus the lookback: no gap, and nothing credited twice."""
        responses = pytest.importorskip("responses", reason="the pull checks need the `responses` library")
        pull_hub, connector, pairs = self._pull_setup(hub, database_url)
        if not any(stream.cursor_field for stream, _ in pairs):
            pytest.skip("the pulled streams have no cursor_field: each run reads them whole")
        account_id = self._pull_account(pull_hub)
        with responses.RequestsMock() as rsps:
            self._serve(rsps, connector, pairs, account_id)
            first = {s.stream: s for s in self._run_pull(pull_hub)}
        credited = self.carbon(pull_hub, account_id)
        with responses.RequestsMock() as rsps:  # the partner answers the overlapping window again
            self._serve(rsps, connector, pairs, account_id)
            second = {s.stream: s for s in self._run_pull(pull_hub)}
        lookback = timedelta(seconds=connector.options["lookback_s"])
        for stream, _ in pairs:
            a, b = first[stream.name], second[stream.name]
            assert b.status == "ok", b.error
            assert b.cursor_from == a.cursor_to, "the second run did not start from the first run's cursor"
            if stream.cursor_field:
                since = _parse(a.cursor_to) - lookback
                expected = connector.request_params(stream, since, pull_hub.now(), None)
                assert b.requests[0] == expected, "the second run must ask from cursor - lookback_s (no gap)"
            assert b.accepted == 0, f"{stream.name}: the second run credited {b.accepted} record(s) again"
        assert self.carbon(pull_hub, account_id) == credited

    def test_pull_survives_rate_limits_and_server_errors(self, hub: Any, database_url: str) -> None:
        """A 429 with Retry-After and a 500 are retried (waiting as told) and the run completes."""
        responses = pytest.importorskip("responses", reason="the pull checks need the `responses` library")
        pull_hub, connector, pairs = self._pull_setup(hub, database_url)
        if connector.options["max_attempts"] < 3:
            pytest.skip("pull_options sets max_attempts below 3: a 429 then a 500 would end the run")
        account_id = self._pull_account(pull_hub)
        sleeps: list[float] = []
        with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
            self._serve(rsps, connector, pairs, account_id, trouble=True)
            summaries = {s.stream: s for s in self._run_pull(pull_hub, sleeps=sleeps)}
        for stream, pages in pairs:
            run = summaries[stream.name]
            assert run.status == "ok", run.error
            assert run.pages == len(pages) and run.accepted >= 1
        assert sleeps[:2] == [7.0, min(connector.options["backoff_s"] * 2, connector.options["max_backoff_s"])], \
            f"expected to wait Retry-After (7 s) then the backoff; waited {sleeps}"
        assert self.carbon(pull_hub, account_id) > 0

    # --- private --------------------------------------------------------------------------------

    def _first_good(self) -> GoodSample:
        if not self.good_records:
            pytest.fail("set `good_records`: at least one (record, status, grams) the plugin must credit")
        return self.good_records[0]


def _ids(prefix: str, samples: Sequence[Any]) -> list[str]:
    return [f"{prefix}{i}" for i in range(len(samples))] or [f"no-{prefix}-records"]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


__all__ = ["ACCOUNT", "PluginConformance", "Samples", "load_samples", "with_account",
           "replay_protection_available"]
