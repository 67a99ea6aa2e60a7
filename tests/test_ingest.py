"""The ingestion pipeline: gate order, reason codes, duplicates, caps, points,
consent timelines, the inbox, replay, throughput shape and concurrency.

Numbers used throughout: a Shenzhen Metro ride of 18.6 km is 870 g
(18.6 × 46.8 = 870.48, rounded down) and earns 88 points with the test config
(``per_kg = 100``, ``bonus = 1``: 870 × 100 // 1000 + 1); a 5 km ride is 234 g
and 24 points.
"""
from __future__ import annotations

import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from conftest import NOW, PG_URL, SECRETS
from plugin_helpers import (LAB_SCENARIO, METRO_EVIDENCE, SHANGHAI, estatement, lab_plugin, lab_record, metro_ride,
                            plugin_module)

from hub import db
from hub.config import load_settings
from hub.core import Hub
from hub.db import Behaviour, InboxRecord, LedgerTransaction, Receipt, UsageCounter
from hub.ingest import REASONS
from hub.ledger import Ledger, user_carbon, user_points, verify
from hub.records import ACCEPTED, DUPLICATE, REJECTED, Problem, ScenarioSpec

CONSENT_AT = datetime(2019, 1, 1, tzinfo=SHANGHAI)  # before every ride below, even the 2020 one
RIDE_AT = datetime(2026, 11, 20, 8, 1, tzinfo=SHANGHAI)  # the morning before NOW (2026-11-21 12:00 local)


def local(month: int, day: int, hour: int = 8, minute: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


# --- fixtures -----------------------------------------------------------------


@pytest.fixture
def config_data(config_data):
    """The shared test config plus the lab plugin's scenario and partner."""
    config_data["scenarios"]["labride"] = {"methodology": "metro-avoided-car", "points": {"per_kg": 100}}
    config_data["partners"]["lab"] = {"name": "Lab", "secret_env": "CARBONHUB_SECRET_LAB", "scenarios": ["labride"]}
    return config_data


@pytest.fixture
def lab():
    return lab_plugin()


@pytest.fixture
def extra_plugins(lab):
    return [lab]


@pytest.fixture
def make_hub(config_data, database_url, clock, lab):
    """Build the hub after the test edited ``config_data`` (instead of ``hub``)."""

    def build(plugins=None) -> Hub:
        settings = load_settings(data=config_data, environ=dict(SECRETS))
        h = Hub(settings, clock=clock, database_url=database_url,
                extra_plugins=[lab] if plugins is None else plugins)
        h.init_db()
        return h

    yield build
    if not db.database.is_closed():
        db.database.close()


def open_account(hub: Hub, bank_ref: str, scenarios=("metro", "estatement", "labride"), at=CONSENT_AT) -> str:
    account, _ = hub.open_account(bank_ref)
    for scenario in scenarios:
        hub.set_consent(account.id, scenario, True, at=at)
    return account.id


@pytest.fixture
def account(hub) -> str:
    return open_account(hub, "bank-1")


# --- helpers ------------------------------------------------------------------


def verdict(record) -> tuple[str, str | None, str | None]:
    """``(status, reason, field)`` of a one-behaviour record outcome."""
    if record.reason or not record.behaviours:
        return record.status, record.reason, record.field
    b = record.behaviours[0]
    return b.status, b.reason, b.field


def only(result):
    (record,) = result.records
    return record


def behaviour_of(record):
    (b,) = record.behaviours
    return b


def tx_count() -> int:
    return LedgerTransaction.select().count()


def assert_books_balance() -> None:
    """Balances equal the grams and points of accepted behaviours; the chain verifies."""
    grams, points = defaultdict(int), defaultdict(int)
    issued_g, issued_pts = defaultdict(int), defaultdict(int)
    credited = list(Behaviour.select().where(Behaviour.status == ACCEPTED))
    for b in credited:
        grams[b.account] += b.grams
        points[b.account] += b.points
        issued_g[b.scenario] += b.grams
        issued_pts[b.scenario] += b.points
    for acc in set(grams) | {b.account for b in Behaviour.select() if b.account}:
        assert Ledger.balance(user_carbon(acc), "g") == grams[acc]
        assert Ledger.balance(user_points(acc), "pts") == points[acc]
    for scenario in issued_g:
        assert Ledger.balance(f"@issuer:{scenario}", "g") == -issued_g[scenario]
        assert Ledger.balance(f"@issuer:{scenario}", "pts") == -issued_pts[scenario]
    # One credit transaction per credited behaviour, and no other credit.
    assert len({b.tx_seq for b in credited}) == len(credited)
    assert LedgerTransaction.select().where(LedgerTransaction.kind == "credit").count() == len(credited)
    report = verify()
    assert report.ok, report.problems


# --- one test per reason code ---------------------------------------------------

def _no_consent_account(hub, acc):
    account, _ = hub.open_account("bank-without-consent")
    return metro_ride(account.id, "R1", RIDE_AT)


def _disable(path):
    def change(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = False
    return change


# (id, partner, record builder (hub, account) -> payload, config change, reason, field)
REASON_CASES = [
    ("unknown_partner", "nobody", lambda h, a: metro_ride(a, "R1", RIDE_AT), None, "unknown_partner", None),
    ("unknown_partner-disabled", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT),
     _disable(("partners", "szmetro", "enabled")), "unknown_partner", None),
    ("normalize_failed", "lab", lambda h, a: lab_record(a, "L1", RIDE_AT, **{"raise": True}), None,
     "normalize_failed", None),
    ("normalize_failed-not-behaviours", "lab", lambda h, a: {"garbage": True}, None, "normalize_failed", None),
    ("reward_failed", "lab", lambda h, a: lab_record(a, "L1", RIDE_AT, attributes={**METRO_EVIDENCE,
                                                                                   "reward_crash": True}),
     None, "reward_failed", None),
    ("not_handled", "lab", lambda h, a: {"skip": True, "event_id": "L1"}, None, "not_handled", None),
    ("no_behaviour", "lab", lambda h, a: {"empty": True}, None, "no_behaviour", None),
    ("partner_not_allowed", "lab", lambda h, a: lab_record(a, "L1", RIDE_AT, scenario="metro"), None,
     "partner_not_allowed", "scenario"),
    ("scenario_disabled", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT),
     _disable(("scenarios", "metro", "enabled")), "scenario_disabled", "scenario"),
    ("unknown_account", "szmetro", lambda h, a: metro_ride("acc_missing", "R1", RIDE_AT), None,
     "unknown_account", "account_id"),
    ("no_consent", "szmetro", _no_consent_account, None, "no_consent", "occurred_at"),
    ("invalid_record-missing-field", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, card_token=None), None,
     "invalid_record", "card_token"),
    ("invalid_record-exit-before-entry", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, minutes=-5), None,
     "invalid_record", "exit_at"),
    ("invalid_record-bad-number", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="far"), None,
     "invalid_record", "distance_km"),
    ("invalid_record-naive-time", "lab", lambda h, a: lab_record(a, "L1", RIDE_AT.replace(tzinfo=None)), None,
     "invalid_record", "occurred_at"),
    ("invalid_record-channel", "cardcentre",
     lambda h, a: estatement(a, "ST-1", "2026-10", local(11, 3), channel="fax"), None, "invalid_record", "channel"),
    ("future_date", "szmetro", lambda h, a: metro_ride(a, "R1", NOW + timedelta(minutes=10)), None,
     "future_date", "occurred_at"),
    ("non_positive_quantity-zero", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="0"), None,
     "non_positive_quantity", "quantity"),
    ("non_positive_quantity-negative", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="-2"),
     None, "non_positive_quantity", "quantity"),
    ("no_methodology_in_force", "szmetro",
     lambda h, a: metro_ride(a, "R1", datetime(2020, 6, 1, 8, 0, tzinfo=SHANGHAI)), None,
     "no_methodology_in_force", "occurred_at"),
    ("unit_mismatch", "lab", lambda h, a: lab_record(a, "L1", RIDE_AT, unit="km"), None, "unit_mismatch", "unit"),
    ("missing_evidence", "lab",
     lambda h, a: lab_record(a, "L1", RIDE_AT, attributes={"entry_station": "A", "exit_station": "B"}), None,
     "missing_evidence", "attributes.city"),
    ("zero_reduction", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="0.01"), None,
     "zero_reduction", None),
    # Plugin validators (their codes are the plugin's, not the hub's).
    ("implausible_distance", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="150", minutes=100),
     None, "implausible_distance", "distance_km"),
    ("implausible_speed", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, distance_km="50", minutes=10), None,
     "implausible_speed", "exit_at"),
    ("same_station", "szmetro", lambda h, a: metro_ride(a, "R1", RIDE_AT, exit_station="Luohu"), None,
     "same_station", "exit_station"),
    ("paper_sent", "cardcentre",
     lambda h, a: estatement(a, "ST-1", "2026-10", local(11, 3), paper_suppressed=False), None,
     "paper_sent", "paper_suppressed"),
    ("viewed_before_cycle", "cardcentre", lambda h, a: estatement(a, "ST-1", "2026-11", local(10, 30)), None,
     "viewed_before_cycle", "viewed_at"),
]
# Reasons that need more than one record; each has its own tests below.
# methodology_failed: tests/test_kernel_methodology_rules.py.
REASONS_TESTED_ELSEWHERE = {"duplicate_event", "double_claim", "cap_reached", "methodology_failed",
                            "malformed_row", "malformed_json"}  # the last two: tests/test_import.py


def test_every_hub_reason_code_has_a_case():
    covered = {case[4] for case in REASON_CASES} | REASONS_TESTED_ELSEWHERE
    assert set(REASONS) <= covered, f"reason codes without a test: {sorted(set(REASONS) - covered)}"


@pytest.mark.parametrize("partner,build,change,reason,field_name",
                         [case[1:] for case in REASON_CASES], ids=[case[0] for case in REASON_CASES])
def test_reason_code(make_hub, config_data, partner, build, change, reason, field_name):
    if change:
        change(config_data)
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    result = hub.pipeline.ingest(partner, [build(hub, acc)])

    record = only(result)
    assert verdict(record) == (REJECTED, reason, field_name)
    assert result.summary()["rejected"] == 1 and result.reasons == Counter({reason: 1})
    row = InboxRecord.get_by_id(record.inbox_id)
    assert (row.partner, row.status, row.reason) == (partner, REJECTED, reason)
    assert row.detail["code"] == reason and row.detail["message"]
    assert row.detail.get("field") == field_name
    assert tx_count() == 0
    assert_books_balance()


# --- gate order ---------------------------------------------------------------------


def test_partner_not_allowed_beats_everything(hub):
    # Unknown account, future date, zero quantity: the partner check still comes first.
    record = lab_record("acc_missing", "L1", NOW + timedelta(days=1), scenario="metro", quantity="0")
    assert verdict(only(hub.pipeline.ingest("lab", [record]))) == (REJECTED, "partner_not_allowed", "scenario")


def test_scenario_disabled_beats_account_consent_and_validity(make_hub, config_data):
    config_data["scenarios"]["metro"]["enabled"] = False
    hub = make_hub()
    ride = metro_ride("acc_missing", "R1", NOW + timedelta(days=1), exit_station="Luohu")
    assert verdict(only(hub.pipeline.ingest("szmetro", [ride]))) == (REJECTED, "scenario_disabled", "scenario")


def test_unknown_account_beats_no_consent_and_validity(hub):
    ride = metro_ride("acc_missing", "R1", NOW + timedelta(days=1), distance_km="300")
    assert verdict(only(hub.pipeline.ingest("szmetro", [ride]))) == (REJECTED, "unknown_account", "account_id")


def test_no_consent_beats_future_date_and_validators(hub):
    account, _ = hub.open_account("bank-without-consent")
    future = metro_ride(account.id, "R1", NOW + timedelta(days=1))
    implausible = metro_ride(account.id, "R2", RIDE_AT, distance_km="300", exit_station="Luohu")
    result = hub.pipeline.ingest("szmetro", [future, implausible])
    assert [verdict(r)[1] for r in result.records] == ["no_consent", "no_consent"]


def test_validity_checks_run_in_order(hub, account):
    cases = [
        # future date beats a non-positive quantity
        (metro_ride(account, "R1", NOW + timedelta(days=1), distance_km="0"), "future_date"),
        # a non-positive quantity beats the plugin's validators (same station)
        (metro_ride(account, "R2", RIDE_AT, distance_km="0", exit_station="Luohu"), "non_positive_quantity"),
        # plugin validators run before the methodology lookup (2020 has none in force)
        (metro_ride(account, "R3", datetime(2020, 6, 1, 8, 0, tzinfo=SHANGHAI), exit_station="Luohu"),
         "same_station"),
        # the first validator problem is the reason: too far (and therefore too fast)
        (metro_ride(account, "R4", RIDE_AT, distance_km="300", minutes=20), "implausible_distance"),
    ]
    result = hub.pipeline.ingest("szmetro", [payload for payload, _ in cases])
    assert [verdict(r)[1] for r in result.records] == [reason for _, reason in cases]


def test_unreadable_record_is_rejected_before_any_account_check(hub):
    ride = metro_ride("acc_missing", "R1", RIDE_AT, entry_at="yesterday morning")
    assert verdict(only(hub.pipeline.ingest("szmetro", [ride]))) == (REJECTED, "invalid_record", "entry_at")


def test_validity_beats_duplicate_and_duplicate_beats_caps(make_hub, config_data):
    config_data["scenarios"]["metro"]["caps"] = {"per_day_count": 1}
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    first = only(hub.pipeline.ingest("szmetro", [metro_ride(acc, "R1", RIDE_AT)]))
    assert first.status == ACCEPTED
    result = hub.pipeline.ingest("szmetro", [
        metro_ride(acc, "R1", RIDE_AT, exit_station="Luohu"),  # same event, now invalid
        metro_ride(acc, "R1", RIDE_AT),  # same event again, while the day's cap is also reached
        metro_ride(acc, "R2", RIDE_AT + timedelta(hours=2)),  # a new ride over the cap
    ])
    assert [verdict(r)[1] for r in result.records] == ["same_station", "duplicate_event", "cap_reached"]


# --- RecordError and plugin failures ------------------------------------------------


def test_record_error_fields_reach_outcome_inbox_and_summary(hub, account):
    result = hub.pipeline.ingest("szmetro", [metro_ride(account, "R1", RIDE_AT, minutes=-1)])
    record = only(result)
    assert (record.reason, record.field) == ("invalid_record", "exit_at")
    assert record.message == "exit_at must be after entry_at."
    assert record.behaviours == []
    assert record.as_dict()["field"] == "exit_at"
    assert InboxRecord.get_by_id(record.inbox_id).detail == {
        "code": "invalid_record", "message": "exit_at must be after entry_at.", "field": "exit_at"}
    assert Behaviour.select().count() == 0  # nothing was normalized


def test_plugin_crash_is_normalize_failed_and_the_record_is_kept_for_replay(hub, account, lab, caplog):
    bad = lab_record(account, "L1", RIDE_AT, **{"raise": True})
    good = lab_record(account, "L2", RIDE_AT + timedelta(hours=1))
    result = hub.pipeline.ingest("lab", [bad, good])

    assert [verdict(r)[:2] for r in result.records] == [(REJECTED, "normalize_failed"), (ACCEPTED, None)]
    assert "lab plugin bug" in result.records[0].message
    assert any("normalize failed for partner lab" in r.getMessage() for r in caplog.records)
    row = InboxRecord.get_by_id(result.records[0].inbox_id)
    assert (row.status, row.reason, row.payload) == (REJECTED, "normalize_failed", bad)

    lab.fixed = True  # the partner ships a fix; the stored record is replayed as received
    replayed = hub.pipeline.replay(reason="normalize_failed")
    assert replayed.summary()["accepted"] == 1 and replayed.summary()["records"] == 1
    row = InboxRecord.get_by_id(result.records[0].inbox_id)
    assert (row.status, row.reason, row.attempts) == (ACCEPTED, None, 2)
    assert_books_balance()


def test_failing_reward_rule_rejects_one_behaviour_and_replays_after_the_fix(hub, account, lab, caplog):
    crash = lab_record(account, "L1", RIDE_AT, attributes={**METRO_EVIDENCE, "reward_crash": True})
    good = lab_record(account, "L2", RIDE_AT + timedelta(hours=1))
    result = hub.pipeline.ingest("lab", [crash, good])
    assert [verdict(r)[:2] for r in result.records] == [(REJECTED, "reward_failed"), (ACCEPTED, None)]
    assert any("reward rule of plugin lab failed" in r.getMessage() for r in caplog.records)
    assert db.LedgerTransaction.select().count() == 1  # only the good record was credited

    lab.fixed = True
    assert hub.pipeline.replay(reason="reward_failed").summary()["accepted"] == 1
    assert db.LedgerTransaction.select().count() == 2
    assert hub.pipeline.replay(reason="reward_failed").summary()["records"] == 0
    assert_books_balance()


def test_failing_validator_rejects_as_normalize_failed(make_hub, lab):
    def validate(ctx, behaviour):
        if behaviour.attributes.get("boom"):
            raise ValueError("validator bug")
        return [Problem("too_green", "Suspiciously green.", "quantity")] if behaviour.quantity > 40 else []

    hub = make_hub(plugins=[lab, plugin_module("checker", carbonhub_validate_behaviour=validate)])
    acc = open_account(hub, "bank-1")
    attrs = {"city": "sz", "entry_station": "A", "exit_station": "B"}
    result = hub.pipeline.ingest("lab", [
        lab_record(acc, "L1", RIDE_AT, attributes={**attrs, "boom": True}),
        lab_record(acc, "L2", RIDE_AT, quantity="41"),
        lab_record(acc, "L3", RIDE_AT),
    ])
    assert [verdict(r) for r in result.records] == [
        (REJECTED, "normalize_failed", None), (REJECTED, "too_green", "quantity"), (ACCEPTED, None, None)]


def test_validators_see_their_own_scenarios_and_policy_plugins_see_all(make_hub, lab):
    seen: dict[str, list[str]] = {"owner": [], "policy": []}

    def owner_validate(ctx, behaviour):  # a plugin that registers scenario "labride2"
        seen["owner"].append(behaviour.scenario)
        return [Problem("owner_says_no", "Not a labride2 act.", "quantity")]

    def policy_validate(ctx, behaviour):  # a bank-wide policy: registers no scenario
        seen["policy"].append(behaviour.scenario)
        return []

    owner = plugin_module("owner", carbonhub_validate_behaviour=owner_validate,
                          carbonhub_register_scenarios=lambda ctx: [ScenarioSpec(
                              id="labride2", title="Other rides (test)", methodology="metro-avoided-car", unit="pkm")])
    hub = make_hub(plugins=[lab, owner, plugin_module("policy", carbonhub_validate_behaviour=policy_validate)])
    acc = open_account(hub, "bank-1")
    result = hub.pipeline.ingest("lab", [lab_record(acc, "L1", RIDE_AT)])

    # The owner of labride2 is never asked about labride; the policy plugin is.
    assert verdict(only(result)) == (ACCEPTED, None, None)
    assert seen == {"owner": [], "policy": [LAB_SCENARIO]}


# --- duplicates ---------------------------------------------------------------------


def test_same_event_twice_in_one_batch_is_duplicate_of_the_first(hub, account):
    ride = metro_ride(account, "R1", RIDE_AT)
    first, second = hub.pipeline.ingest("szmetro", [ride, dict(ride)]).records
    assert first.status == ACCEPTED
    dup = behaviour_of(second)
    assert (second.status, dup.reason, dup.grams, dup.points) == (DUPLICATE, "duplicate_event", 0, 0)
    assert dup.duplicate_of == behaviour_of(first).id
    assert dup.as_dict()["duplicate_of"] == behaviour_of(first).id
    assert (InboxRecord.get_by_id(second.inbox_id).status, InboxRecord.get_by_id(second.inbox_id).reason) == (
        DUPLICATE, "duplicate_event")
    assert tx_count() == 1
    assert Ledger.balance(user_carbon(account), "g") == 870
    assert_books_balance()


def test_same_event_across_batches_is_duplicate_even_with_other_content(hub, account):
    first = only(hub.pipeline.ingest("szmetro", [metro_ride(account, "R1", RIDE_AT)]))
    # The partner resends R1 with a corrected distance: its event id decides.
    again = only(hub.pipeline.ingest("szmetro", [metro_ride(account, "R1", RIDE_AT, distance_km="20")]))
    assert verdict(again)[:2] == (DUPLICATE, "duplicate_event")
    assert behaviour_of(again).duplicate_of == behaviour_of(first).id
    assert tx_count() == 1
    assert_books_balance()


def test_same_act_reported_by_two_partners_is_credited_once(make_hub, config_data):
    config_data["partners"]["cardnet"] = {"name": "Card network", "secret_env": "CARBONHUB_SECRET_CARDNET",
                                          "scenarios": ["metro"]}
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    operator = only(hub.pipeline.ingest("szmetro", [metro_ride(acc, "R1", RIDE_AT)]))
    # The card network reports the same tap in UTC, 30 s later within the same minute, under its own id.
    tap = RIDE_AT.astimezone(NOW.tzinfo) + timedelta(seconds=30)
    network = hub.pipeline.ingest("cardnet", [
        metro_ride(acc, "CN-77", tap, entry_at=tap.strftime("%Y-%m-%dT%H:%M:%SZ")),
        # Event ids are per partner: the network's own "R1" is another ride and is credited.
        metro_ride(acc, "R1", RIDE_AT + timedelta(hours=3)),
    ])
    claim, other = network.records
    assert verdict(claim)[:2] == (DUPLICATE, "double_claim")
    assert behaviour_of(claim).duplicate_of == behaviour_of(operator).id
    assert other.status == ACCEPTED
    assert Ledger.balance(user_carbon(acc), "g") == 870 * 2
    assert tx_count() == 2
    assert_books_balance()


# --- caps --------------------------------------------------------------------------------


def test_daily_gram_cap_credits_partially_then_rejects(hub, account):
    rides = [metro_ride(account, f"R{h}", local(11, 20, h)) for h in (8, 9, 10, 11)]
    result = hub.pipeline.ingest("szmetro", rides)
    outcomes = [behaviour_of(r) for r in result.records]
    assert [b.grams for b in outcomes] == [870, 870, 870, 390]
    assert [b.capped for b in outcomes] == [False, False, False, True]
    assert [b.points for b in outcomes] == [88, 88, 88, 40]  # points follow the credited grams
    receipt = Receipt.get_by_id(outcomes[3].id)
    assert (receipt.computed_g, receipt.credited_g) == (870, 390)
    assert receipt.caps == [{"cap": "per_day_g", "limit": 3000, "used_before": 2610, "computed_g": 870,
                             "credited_g": 390}]
    assert Receipt.get_by_id(outcomes[0].id).caps == []

    # The day is full; the usage survives the batch.
    over = only(hub.pipeline.ingest("szmetro", [metro_ride(account, "R12", local(11, 20, 12))]))
    assert verdict(over)[:2] == (REJECTED, "cap_reached")
    assert Ledger.balance(user_carbon(account), "g") == 3000
    assert Ledger.balance(user_points(account), "pts") == 304
    assert_books_balance()


def test_a_reversed_credit_gives_its_room_back_to_the_caps(hub, account):
    rides = [metro_ride(account, f"R{h}", local(11, 20, h)) for h in (8, 9, 10, 11)]
    outcomes = [behaviour_of(r) for r in hub.pipeline.ingest("szmetro", rides).records]
    assert [b.grams for b in outcomes] == [870, 870, 870, 390]  # the day's 3,000 g are used

    def usage() -> dict[str, tuple[int, int]]:
        return {u.period: (u.grams, u.count) for u in UsageCounter.select().where(UsageCounter.account == account)}

    assert usage() == {"d:2026-11-20": (3000, 4), "m:2026-11": (3000, 4)}
    reversal, created = hub.reverse(outcomes[1].tx_seq, "ride refunded by the operator")
    assert created
    assert usage() == {"d:2026-11-20": (2130, 3), "m:2026-11": (2130, 3)}
    hub.reverse(outcomes[1].tx_seq, "ride refunded by the operator")  # a retry gives nothing back twice
    assert usage() == {"d:2026-11-20": (2130, 3), "m:2026-11": (2130, 3)}

    # The refunded ride's 870 g of room go to the next ride of that day.
    later = behaviour_of(only(hub.pipeline.ingest("szmetro", [metro_ride(account, "R12", local(11, 20, 12))])))
    assert (later.status, later.grams, later.capped) == (ACCEPTED, 870, False)
    assert Ledger.balance(user_carbon(account), "g") == 3000
    assert usage() == {"d:2026-11-20": (3000, 4), "m:2026-11": (3000, 4)}
    assert verify().ok


def test_daily_count_cap(hub, account):
    rides = [metro_ride(account, f"R{h}", local(11, 20, h), distance_km="5") for h in range(8, 14)]
    result = hub.pipeline.ingest("szmetro", rides)
    assert [r.status for r in result.records] == [ACCEPTED] * 5 + [REJECTED]
    assert "At most 5 metro behaviours per day" in behaviour_of(result.records[5]).message
    assert behaviour_of(result.records[5]).reason == "cap_reached"


@pytest.mark.parametrize("config_count,effective", [(3, 3), (None, 10)], ids=["config-tighter", "methodology-only"])
def test_the_tighter_of_config_and_methodology_caps_wins(make_hub, config_data, config_count, effective):
    # The metro methodology caps at 10 rides a day (a looser config cap stops the hub: test_config.py).
    config_data["scenarios"]["metro"]["caps"] = {"per_day_count": config_count} if config_count else {}
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    rides = [metro_ride(acc, f"R{i}", local(11, 20, 6) + timedelta(minutes=40 * i), distance_km="5")
             for i in range(12)]
    result = hub.pipeline.ingest("szmetro", rides)
    statuses = Counter(r.status for r in result.records)
    assert statuses == Counter({ACCEPTED: effective, REJECTED: 12 - effective})
    assert hub.scenario_view("metro")["caps"]["per_day_count"] == effective


def test_monthly_gram_cap_counts_local_calendar_months(make_hub, config_data):
    config_data["scenarios"]["metro"]["caps"] = {"per_month_g": 2000}
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    rides = [
        metro_ride(acc, "oct31", local(10, 31, 23, 30)),  # 15:30 UTC on Oct 31: October
        metro_ride(acc, "nov1", local(11, 1, 0, 30)),  # 16:30 UTC on Oct 31, but November in Shanghai
        metro_ride(acc, "nov2", local(11, 2)),
        metro_ride(acc, "nov3", local(11, 3)),
        metro_ride(acc, "nov4", local(11, 4)),
    ]
    outcomes = [behaviour_of(r) for r in hub.pipeline.ingest("szmetro", rides).records]
    assert [(b.status, b.grams, b.capped) for b in outcomes] == [
        (ACCEPTED, 870, False), (ACCEPTED, 870, False), (ACCEPTED, 870, False), (ACCEPTED, 260, True),
        (REJECTED, 0, False)]
    assert outcomes[4].reason == "cap_reached"
    assert Receipt.get_by_id(outcomes[3].id).caps[0]["cap"] == "per_month_g"
    usage = {row.period: (row.grams, row.count) for row in UsageCounter.select().where(UsageCounter.account == acc)
             if row.period.startswith("m:")}
    assert usage == {"m:2026-10": (870, 1), "m:2026-11": (2000, 3)}
    assert_books_balance()


def test_daily_cap_resets_at_local_midnight(hub, account):
    evening = [metro_ride(account, f"E{h}", local(11, 19, h)) for h in (20, 21, 22, 23)]
    late = metro_ride(account, "late", local(11, 19, 23, 50))
    # 00:30 on Nov 20 in Shanghai is still Nov 19 in UTC, yet it is a new day for the cap.
    after_midnight = metro_ride(account, "night", local(11, 20, 0, 30))
    outcomes = [behaviour_of(r) for r in hub.pipeline.ingest("szmetro", evening + [late, after_midnight]).records]
    assert [(b.status, b.grams) for b in outcomes] == [
        (ACCEPTED, 870), (ACCEPTED, 870), (ACCEPTED, 870), (ACCEPTED, 390), (REJECTED, 0), (ACCEPTED, 870)]
    assert not outcomes[5].capped
    usage = {row.period: (row.grams, row.count) for row in UsageCounter.select()}
    assert usage["d:2026-11-19"] == (3000, 4) and usage["d:2026-11-20"] == (870, 1)


# --- consent --------------------------------------------------------------------------------


def test_consent_granted_after_the_ride_is_no_consent(hub):
    account, _ = hub.open_account("bank-late")
    hub.set_consent(account.id, "metro", True)  # now, after yesterday's ride
    result = hub.pipeline.ingest("szmetro", [metro_ride(account.id, "R1", RIDE_AT),
                                             metro_ride(account.id, "R2", NOW)])
    assert [verdict(r)[:2] for r in result.records] == [(REJECTED, "no_consent"), (ACCEPTED, None)]


def test_consent_timeline_revoked_then_granted_again(hub):
    account, _ = hub.open_account("bank-2")
    hub.set_consent(account.id, "metro", True, at=local(11, 1, 0, 0))
    hub.set_consent(account.id, "metro", False, at=local(11, 10, 0, 0))
    hub.set_consent(account.id, "metro", True, at=local(11, 15, 0, 0))
    rides = {
        "before-first-grant": (local(10, 30), REJECTED),
        "at-grant": (local(11, 1, 0, 0), ACCEPTED),
        "granted": (local(11, 5), ACCEPTED),
        "at-revoke": (local(11, 10, 0, 0), REJECTED),
        "revoked": (local(11, 12), REJECTED),
        "granted-again": (local(11, 16), ACCEPTED),
    }
    result = hub.pipeline.ingest("szmetro", [metro_ride(account.id, name, at) for name, (at, _) in rides.items()])
    got = {r.event_id: verdict(r)[:2] for r in result.records}
    assert got == {name: (status, None if status == ACCEPTED else "no_consent")
                   for name, (_, status) in rides.items()}
    # Another scenario's consent is separate.
    other = only(hub.pipeline.ingest("cardcentre", [estatement(account.id, "ST-1", "2026-10", local(11, 3))]))
    assert verdict(other)[1] == "no_consent"


# --- inbox and replay -------------------------------------------------------------------------


def test_every_record_has_an_inbox_row_with_its_status_and_reason(hub, account):
    payloads = [
        metro_ride(account, "R1", RIDE_AT),
        metro_ride(account, "R1", RIDE_AT),
        metro_ride(account, "R2", RIDE_AT, card_token=None),
        metro_ride("acc_missing", "R3", RIDE_AT),
        metro_ride(account, "R4", RIDE_AT, exit_station="Luohu"),
    ]
    result = hub.pipeline.ingest("szmetro", payloads, batch_id="bat_test")
    rows = {row.id: row for row in InboxRecord.select()}
    assert len(rows) == len(payloads)
    expected = [(ACCEPTED, None), (DUPLICATE, "duplicate_event"), (REJECTED, "invalid_record"),
                (REJECTED, "unknown_account"), (REJECTED, "same_station")]
    for payload, record, (status, reason) in zip(payloads, result.records, expected):
        row = rows[record.inbox_id]
        assert (row.status, row.reason, row.partner, row.batch_id, row.attempts) == (
            status, reason, "szmetro", "bat_test", 1)
        assert row.payload == payload
        if record.behaviours:  # the event id is known once the plugin read the record
            assert row.event_id == payload["ride_id"]
    assert result.summary() | {"batch_id": None} == {
        "batch_id": None, "records": 5, "accepted": 1, "duplicate": 1, "rejected": 3, "grams": 870, "points": 88,
        "reasons": {"duplicate_event": 1, "invalid_record": 1, "unknown_account": 1, "same_station": 1}}


def test_replay_credits_after_consent_and_never_twice(hub):
    late, _ = hub.open_account("bank-late")
    never, _ = hub.open_account("bank-never")
    rides = [metro_ride(late.id, f"R{h}", local(11, 20, h)) for h in (8, 9, 10)]
    rides.append(metro_ride(never.id, "N1", RIDE_AT, card="card-9"))
    first = hub.pipeline.ingest("szmetro", rides)
    assert first.reasons == Counter({"no_consent": 4}) and tx_count() == 0

    # The bank's app backfills the consent the user gave on Nov 1.
    hub.set_consent(late.id, "metro", True, at=local(11, 1, 0, 0))
    replayed = hub.pipeline.replay(partner="szmetro", reason="no_consent")
    assert (replayed.summary()["records"], replayed.summary()["accepted"], replayed.summary()["rejected"]) == (4, 3, 1)
    assert replayed.grams == 870 * 3 and replayed.points == 88 * 3
    for record in first.records[:3]:
        row = InboxRecord.get_by_id(record.inbox_id)
        assert (row.status, row.reason, row.attempts) == (ACCEPTED, None, 2)
    balances = (Ledger.balance(user_carbon(late.id), "g"), Ledger.balance(user_points(late.id), "pts"))
    assert balances == (2610, 264)
    transactions = tx_count()

    again = hub.pipeline.replay()
    assert again.summary()["records"] == 1 and again.summary()["accepted"] == 0  # only N1 is still rejected
    assert InboxRecord.get_by_id(first.records[3].inbox_id).attempts == 3
    assert (Ledger.balance(user_carbon(late.id), "g"), Ledger.balance(user_points(late.id), "pts")) == balances
    assert tx_count() == transactions
    assert Behaviour.select().where(Behaviour.status == ACCEPTED).count() == 3
    assert_books_balance()


def test_replayed_records_that_became_duplicates_end_duplicate(make_hub, config_data):
    config_data["partners"]["cardnet"] = {"name": "Card network", "secret_env": "CARBONHUB_SECRET_CARDNET",
                                          "scenarios": ["metro"]}
    hub = make_hub()
    account, _ = hub.open_account("bank-late")
    early = hub.pipeline.ingest("szmetro", [metro_ride(account.id, "R1", RIDE_AT)])
    network = hub.pipeline.ingest("cardnet", [metro_ride(account.id, "CN-1", RIDE_AT)])
    assert verdict(only(early))[1] == verdict(only(network))[1] == "no_consent"

    hub.set_consent(account.id, "metro", True, at=CONSENT_AT)
    resent = only(hub.pipeline.ingest("szmetro", [metro_ride(account.id, "R1", RIDE_AT)]))
    assert resent.status == ACCEPTED
    credited = behaviour_of(resent).id

    replayed = hub.pipeline.replay()
    by_inbox = {r.inbox_id: r for r in replayed.records}
    old_operator, old_network = by_inbox[only(early).inbox_id], by_inbox[only(network).inbox_id]
    assert verdict(old_operator)[:2] == (DUPLICATE, "duplicate_event")
    assert verdict(old_network)[:2] == (DUPLICATE, "double_claim")
    assert behaviour_of(old_operator).duplicate_of == behaviour_of(old_network).duplicate_of == credited
    assert {InboxRecord.get_by_id(i).status for i in by_inbox} == {DUPLICATE}
    assert hub.pipeline.replay().summary()["records"] == 0  # duplicates are final, not replayed
    assert tx_count() == 1
    assert_books_balance()


# --- points and books -----------------------------------------------------------------------


def test_points_follow_the_configured_rule_in_integers(make_hub, config_data):
    config_data["scenarios"]["metro"]["points"] = {"per_kg": 7, "bonus": 3}
    config_data["scenarios"]["labride"]["points"] = {"per_kg": 1, "bonus": 0}
    hub = make_hub()
    acc = open_account(hub, "bank-1")
    metro = hub.pipeline.ingest("szmetro", [
        metro_ride(acc, "R1", local(11, 20, 8), distance_km="21.37"),  # 1000.116 g -> 1000 g -> 7 + 3
        metro_ride(acc, "R2", local(11, 20, 9), distance_km="21.36"),  # 999.648 g -> 999 g -> 6 + 3
        metro_ride(acc, "R3", local(11, 19, 9), distance_km="5"),  # 234 g -> 1 + 3
    ])
    assert [(behaviour_of(r).grams, behaviour_of(r).points) for r in metro.records] == [(1000, 10), (999, 9),
                                                                                        (234, 4)]
    receipt = Receipt.get_by_id(behaviour_of(metro.records[0]).id)
    assert receipt.points == [{"points": 10, "rule": "config:metro", "detail": "1000 g × 7 pts/kg + 3"}]

    card = only(hub.pipeline.ingest("cardcentre", [estatement(acc, "ST-1", "2026-10", local(11, 3))]))
    assert (behaviour_of(card).grams, behaviour_of(card).points) == (24, 5)  # per_kg 0, bonus 5

    bike = only(hub.pipeline.ingest("lab", [lab_record(acc, "L1", RIDE_AT, quantity="5")]))
    assert (behaviour_of(bike).grams, behaviour_of(bike).points) == (234, 0)  # 0.234 kg × 1 rounds to 0
    tx = hub.ledger.get(behaviour_of(bike).tx_seq)
    assert {p.unit for p in tx.postings} == {"g"}  # no zero-point postings

    assert Ledger.balance(user_points(acc), "pts") == 10 + 9 + 4 + 5
    assert_books_balance()


def test_balances_equal_accepted_grams_and_points_across_accounts(hub):
    accounts = [open_account(hub, f"bank-{i}") for i in range(3)]
    payloads = []
    for i, acc in enumerate(accounts):
        card = f"card-{i}"
        payloads += [metro_ride(acc, f"{acc}-{h}", local(11, 20, h), card=card, distance_km=str(3 + h))
                     for h in range(6, 13)]  # some hit the daily caps
        payloads.append(metro_ride(acc, f"{acc}-6", local(11, 18), card=card))  # duplicate event
    result = hub.pipeline.ingest("szmetro", payloads)
    result_card = hub.pipeline.ingest("cardcentre", [estatement(a, f"ST-{a}", "2026-10", local(11, 3), card=a[-6:])
                                                     for a in accounts])
    total_g = sum(Ledger.balance(user_carbon(a), "g") for a in accounts)
    total_pts = sum(Ledger.balance(user_points(a), "pts") for a in accounts)
    assert total_g == result.grams + result_card.grams > 0
    assert total_pts == result.points + result_card.points > 0
    assert result.counts[ACCEPTED] and result.counts[DUPLICATE] == 3 and result.reasons["cap_reached"]
    assert_books_balance()


# --- throughput shape and concurrency ----------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="counts statements with sqlite3's trace callback; PostgreSQL has none")
def test_a_batch_uses_a_handful_of_statements_not_several_per_record(hub):
    accounts = [open_account(hub, f"bank-{i}", scenarios=("metro",)) for i in range(40)]
    payloads = [metro_ride(acc, f"{acc}-{n}", local(11, 20, 7 + n), card=acc, distance_km="5")
                for acc in accounts for n in range(5)]
    statements: list[str] = []
    connection = hub.database.connection()
    connection.set_trace_callback(statements.append)
    try:
        result = hub.pipeline.ingest("szmetro", payloads)
    finally:
        connection.set_trace_callback(None)
    assert result.counts[ACCEPTED] == 200
    assert len(statements) < 40, Counter(s.split("(")[0][:40] for s in statements).most_common(8)
    assert_books_balance()


def test_two_concurrent_ingestions_credit_each_act_once(hub):
    accounts = [open_account(hub, f"bank-{i}", scenarios=("metro",)) for i in range(4)]
    payloads = [metro_ride(acc, f"{acc}-{n}", local(11, 20, 7 + n), card=acc, distance_km="5")
                for acc in accounts for n in range(5)]
    barrier = threading.Barrier(2)
    results, errors = [None, None], []

    def run(slot: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[slot] = hub.pipeline.ingest("szmetro", payloads, chunk_size=7)
        except BaseException as exc:  # reported below, the thread must not die silently
            errors.append(exc)
        finally:
            if not db.database.is_closed():
                db.database.close()  # each thread opened its own connection

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    per_event = defaultdict(list)
    for result in results:
        for record in result.records:
            per_event[record.event_id].append(record.status)
    assert len(per_event) == 20
    assert all(sorted(statuses) == [ACCEPTED, DUPLICATE] for statuses in per_event.values()), per_event
    assert results[0].grams + results[1].grams == 20 * 234
    assert tx_count() == 20
    assert sum(Ledger.balance(user_carbon(a), "g") for a in accounts) == 20 * 234
    assert_books_balance()
