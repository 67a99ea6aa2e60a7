"""Earning rules from config: campaigns with a validity window, points caps per day/week/month.

Numbers: an 18.6 km Shenzhen Metro ride is 870 g and earns 88 points with the
test config (870 × 100 // 1000 + 1); a 5 km ride is 234 g and 24 points.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from conftest import NOW
from plugin_helpers import SHANGHAI, metro_ride, plugin_module

from hub.config import ConfigError, load_settings
from hub.db import LedgerTransaction, PointsUsage, Receipt
from hub.ledger import Ledger, user_points, verify
from hub.records import PointGrant

CONSENT_AT = datetime(2019, 1, 1, tzinfo=SHANGHAI)


@pytest.fixture
def rider(hub):
    account, _ = hub.open_account("rider-1")
    hub.set_consent(account.id, "metro", True, at=CONSENT_AT)
    return account.id


def ride(hub, account, ride_id, at, km="18.6"):
    result = hub.pipeline.ingest("szmetro", [metro_ride(account, ride_id, at, distance_km=km, card=f"c-{ride_id}")])
    (behaviour,) = result.records[0].behaviours
    assert behaviour.status == "accepted", behaviour
    return behaviour


def receipt_points(behaviour_id):
    return [(g["rule"], g["points"]) for g in Receipt.get_by_id(behaviour_id).points]


# --- campaigns ---------------------------------------------------------------------------------


@pytest.fixture
def config_data(config_data):
    config_data["scenarios"]["metro"]["points"]["campaigns"] = [
        {"id": "double-weekend", "multiplier_pct": 200, "from": date(2026, 11, 20), "to": date(2026, 11, 21)},
        {"id": "triple-saturday", "multiplier_pct": 300, "from": date(2026, 11, 21), "to": date(2026, 11, 21)},
        {"id": "half-more", "multiplier_pct": 150, "from": date(2026, 11, 10), "to": date(2026, 11, 10)},
    ]
    return config_data


def test_a_campaign_multiplies_the_rule_on_the_local_days_of_its_window(hub, rider):
    # 2026-11-19 23:30 in Shanghai: the day before the window; 00:30 the next day is inside it.
    before = ride(hub, rider, "R-1", datetime(2026, 11, 19, 23, 30, tzinfo=SHANGHAI))
    inside = ride(hub, rider, "R-2", datetime(2026, 11, 20, 0, 30, tzinfo=SHANGHAI))
    assert before.points == 88
    assert inside.points == 176  # 88 × 200 / 100
    assert receipt_points(before.id) == [("config:metro", 88)]
    assert receipt_points(inside.id) == [("config:metro", 88), ("campaign:metro:double-weekend", 88)]
    tx = LedgerTransaction.get_by_id(inside.tx_seq)
    assert tx.memo["rules"] == ["config:metro", "campaign:metro:double-weekend"]
    assert Ledger.balance(user_points(rider), "pts") == 88 + 176


def test_overlapping_campaigns_do_not_stack_the_highest_wins(hub, rider):
    behaviour = ride(hub, rider, "R-1", datetime(2026, 11, 21, 8, 0, tzinfo=SHANGHAI))
    assert behaviour.points == 264  # 88 × 3, not 88 × (1 + 1 + 2)
    assert receipt_points(behaviour.id) == [("config:metro", 88), ("campaign:metro:triple-saturday", 176)]


def test_a_campaign_rounds_down(hub, rider):
    behaviour = ride(hub, rider, "R-1", datetime(2026, 11, 10, 8, 0, tzinfo=SHANGHAI), km="5")
    assert behaviour.points == 36  # 24 × 150 // 100: integers only


def test_scenarios_show_their_campaigns_and_caps(client):
    (metro,) = [s for s in client.get("/v1/scenarios").get_json() if s["id"] == "metro"]
    assert metro["points"] == {"per_kg": 100, "bonus": 1}
    assert metro["campaigns"][0] == {"id": "double-weekend", "multiplier_pct": 200, "from": "2026-11-20",
                                     "to": "2026-11-21"}
    assert metro["point_caps"] == {}


# --- caps --------------------------------------------------------------------------------------


def with_caps(config_data, **caps):
    config_data["scenarios"]["metro"]["points"].update(caps)
    config_data["scenarios"]["metro"]["points"].pop("campaigns", None)
    return config_data


class TestCaps:
    @pytest.fixture
    def config_data(self, config_data):
        return with_caps(config_data, max_per_day=150, max_per_week=300, max_per_month=400)

    def test_the_daily_cap_trims_the_credit_that_crosses_it_and_names_itself(self, hub, rider):
        day = datetime(2026, 11, 16, 8, 0, tzinfo=SHANGHAI)  # a Monday
        first = ride(hub, rider, "R-1", day)
        second = ride(hub, rider, "R-2", day + timedelta(hours=2))
        third = ride(hub, rider, "R-3", day + timedelta(hours=4))
        assert (first.points, second.points, third.points) == (88, 62, 0)
        assert third.grams == 870  # the carbon is still credited
        assert receipt_points(second.id) == [("config:metro", 88), ("cap:metro:max_per_day", -26)]
        tx = LedgerTransaction.get_by_id(second.tx_seq)
        assert tx.memo["rules"] == ["config:metro", "cap:metro:max_per_day"]
        assert sum(p.amount for p in Ledger.postings_of(second.tx_seq) if p.unit == "pts" and p.amount > 0) == 62
        # the third credit carries no points posting at all
        assert not [p for p in Ledger.postings_of(third.tx_seq) if p.unit == "pts"]
        assert Ledger.balance(user_points(rider), "pts") == 150
        assert verify().ok

    def test_week_and_month_caps_count_across_days_and_pushes(self, hub, rider):
        monday = datetime(2026, 11, 2, 8, 0, tzinfo=SHANGHAI)
        got = [ride(hub, rider, f"R-{i}", monday + timedelta(days=i)).points for i in range(5)]
        # 88 + 88 + 88 = 264, then 36 fills the week's 300; the week is full on Friday
        assert got == [88, 88, 88, 36, 0]
        next_monday = ride(hub, rider, "R-9", monday + timedelta(days=7))
        assert next_monday.points == 88  # a new ISO week: 388 of the month's 400 now
        last = ride(hub, rider, "R-10", monday + timedelta(days=8))
        assert last.points == 12
        assert receipt_points(last.id)[-1] == ("cap:metro:max_per_month", -76)
        usage = {(u.period, u.points) for u in PointsUsage.select().where(PointsUsage.account == rider)}
        assert ("m:2026-11", 400) in usage and ("w:2026-W45", 300) in usage and ("w:2026-W46", 100) in usage

    def test_a_reversed_credit_gives_its_points_back_to_the_caps(self, hub, rider):
        day = datetime(2026, 11, 16, 8, 0, tzinfo=SHANGHAI)  # a Monday
        first = ride(hub, rider, "R-1", day)
        second = ride(hub, rider, "R-2", day + timedelta(hours=2))
        assert (first.points, second.points) == (88, 62)  # the day's 150 points are used
        hub.reverse(first.tx_seq, "ride refunded by the operator")
        usage = {u.period: u.points for u in PointsUsage.select().where(PointsUsage.account == rider)}
        assert usage == {"d:2026-11-16": 62, "w:2026-W47": 62, "m:2026-11": 62}
        third = ride(hub, rider, "R-3", day + timedelta(hours=4))
        assert third.points == 88  # room again: 62 + 88 of the day's 150
        assert Ledger.balance(user_points(rider), "pts") == 62 + 88
        assert verify().ok

    def test_caps_apply_to_every_rule_including_plugins(self, make_rule_hub, rider_on):
        hub = make_rule_hub
        account = rider_on(hub)
        behaviour = ride(hub, account, "R-1", datetime(2026, 11, 16, 8, 0, tzinfo=SHANGHAI))
        assert behaviour.points == 150  # 88 + 100 from the plugin, capped at 150
        granted = receipt_points(behaviour.id)
        assert sorted(granted[:2]) == [("config:metro", 88), ("plugin:welcome-ride", 100)]
        assert granted[2] == ("cap:metro:max_per_day", -38)  # the cap comes after every rule

    @pytest.fixture
    def make_rule_hub(self, settings, database_url, clock):
        from hub.core import Hub

        rule = plugin_module("bonus_rule", carbonhub_evaluate_rewards=lambda behaviour: [
            PointGrant(points=100, rule="plugin:welcome-ride")])
        h = Hub(settings, clock=clock, database_url=database_url, extra_plugins=[rule])
        h.init_db()
        return h

    @pytest.fixture
    def rider_on(self):
        def make(hub):
            account, _ = hub.open_account("rider-2")
            hub.set_consent(account.id, "metro", True, at=CONSENT_AT)
            return account.id
        return make


def test_no_caps_and_no_campaigns_keep_the_plain_rule(hub, rider, config_data):
    assert hub.settings.scenarios["metro"].point_caps == {}
    behaviour = ride(hub, rider, "R-1", NOW - timedelta(days=3))
    assert behaviour.points == 88 and PointsUsage.select().count() == 0


# --- config errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("points, key, message", [
    ({"campaigns": [{"multiplier_pct": 1.5, "from": date(2026, 12, 1), "to": date(2026, 12, 31)}]},
     "scenarios.metro.points.campaigns.0.multiplier_pct", "Not a valid integer."),
    ({"campaigns": [{"multiplier_pct": 50, "from": date(2026, 12, 1), "to": date(2026, 12, 31)}]},
     "scenarios.metro.points.campaigns.0.multiplier_pct", "greater than or equal to 100"),
    ({"campaigns": [{"multiplier_pct": 200, "from": date(2026, 12, 31), "to": date(2026, 12, 1)}]},
     "scenarios.metro.points.campaigns.0.to", "Must not be before 'from'."),
    ({"campaigns": [{"multiplier_pct": 200, "from": datetime(2026, 12, 1, 8, 0), "to": date(2026, 12, 31)}]},
     "scenarios.metro.points.campaigns.0.from", "not a date-time"),
    ({"campaigns": [{"multiplier_pct": 200, "to": date(2026, 12, 31)}]},
     "scenarios.metro.points.campaigns.0.from", "Missing data"),
    ({"max_per_day": -1}, "scenarios.metro.points.max_per_day", "greater than or equal to 0"),
    ({"max_per_week": 2.5}, "scenarios.metro.points.max_per_week", "Not a valid integer."),
])
def test_bad_reward_config_names_the_key(points, key, message):
    with pytest.raises(ConfigError) as err:
        load_settings(data={"scenarios": {"metro": {"points": points}}})
    assert [k for k, _ in err.value.errors] == [key]
    assert message in err.value.errors[0][1]


def test_a_campaign_without_id_is_named_by_its_window():
    settings = load_settings(data={"scenarios": {"metro": {"points": {"campaigns": [
        {"multiplier_pct": 200, "from": "2026-12-01", "to": "2026-12-31"}]}}}})
    (campaign,) = settings.scenarios["metro"].campaigns
    assert campaign.id == "2026-12-01..2026-12-31" and campaign.start == date(2026, 12, 1)
