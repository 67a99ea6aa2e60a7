"""The benefit exchange: catalogue, two-phase redemptions on the ledger, refusals, retries, stale holds.

A scripted lab benefit stands for the partner (tests/exchange_helpers.py); the
real partners' benefits are tested in test_benefit_partners.py.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from api_helpers import auth, error_of, openapi_check
from conftest import NOW
from exchange_helpers import LAB_GIFT, benefit_config, credit_points, lab_benefits, points_of, scripted
from plugin_helpers import SHANGHAI, metro_ride, plugin_module

from hub.config import ConfigError
from hub.db import BenefitStock, LedgerTransaction, PointLot, Redemption
from hub.exchange import ESCROW, ExchangeError, UnknownBenefit, sink
from hub.ledger import Ledger, verify
from hub.lots import EXPIRED, NotReversible, rebuild
from hub.records import BenefitSpec, Fulfilment

PATH = "/v1/accounts/{}/redemptions"
ALL = (LAB_GIFT, "lab-daily", "lab-green", "lab-off", "lab-later", "lab-over", "lab-welcome")


@pytest.fixture
def config_data(config_data):
    config_data["benefits"] = {
        LAB_GIFT: benefit_config(stock=3),
        "lab-daily": benefit_config(cost=10, limit_per_user=2, limit_period="day"),
        "lab-green": benefit_config(cost=10, requires_green_record=True),
        "lab-off": benefit_config(enabled=False),
        "lab-later": benefit_config(**{"from": date(2026, 12, 1)}),
        "lab-over": benefit_config(to=date(2026, 11, 20)),
        "lab-welcome": benefit_config(cost=0, welcome=True, limit_per_user=1),
    }
    config_data["redemptions"] = {"fulfil_attempts": 3, "fulfil_backoff_ms": 100, "hold_deadline_s": 600}
    return config_data


@pytest.fixture
def lab():
    return lab_benefits(benefits=ALL)


@pytest.fixture
def extra_plugins(lab):
    return [lab]


@pytest.fixture
def sleeps(hub):
    slept = []
    hub.exchange.sleep = slept.append
    return slept


@pytest.fixture
def acc(hub):
    account, _ = hub.open_account("redeemer-1")
    return account.id


def redeem(client, account, benefit=LAB_GIFT, key="k-1", details=None, headers=None):
    body = {"benefit": benefit}
    if details is not None:
        body["details"] = details
    return client.post(PATH.format(account), json=body,
                       headers={**auth("app"), **({"Idempotency-Key": key} if key else {}), **(headers or {})})


def lots_of(account):
    return {lot.seq: (lot.remaining, lot.expires_at) for lot in PointLot.select().where(PointLot.account == account)}


def assert_books_balance():
    assert verify().ok
    assert rebuild().ok
    assert Ledger.balance(ESCROW, "pts") == sum(
        r.cost for r in Redemption.select().where(Redemption.status == "held"))


# --- the happy path ----------------------------------------------------------------------------


def test_a_redemption_holds_then_posts_to_the_partner(client, hub, acc, lab):
    late = credit_points(hub, acc, 80, "c-late", expires=datetime(2027, 6, 1, tzinfo=SHANGHAI))
    soon = credit_points(hub, acc, 50, "c-soon", expires=datetime(2027, 1, 1, tzinfo=SHANGHAI))
    response = redeem(client, acc)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"{PATH.format(acc)}/{body['id']}"
    assert body["status"] == "fulfilled" and body["cost"] == 100 and body["attempts"] == 1
    assert body["fulfilment"] == {"code": f"LAB-{body['id']}", "reference": "ref-1", "detail": {}}
    assert body["failure"] is None
    hold = LedgerTransaction.get_by_id(body["transactions"]["hold"])
    post = LedgerTransaction.get_by_id(body["transactions"]["resolve"])
    assert (hold.key, hold.kind, post.key, post.kind) == (
        f"redeem:{body['id']}:hold", "redemption_hold", f"redeem:{body['id']}:post", "redemption_post")
    assert hold.memo["lots"]["spend"] == [[soon, 50], [late, 50]]  # first-expiring first
    assert sorted((p.account, p.amount) for p in Ledger.postings_of(post.seq)) == sorted([
        (ESCROW, -100), (sink("lab"), 100)])
    assert points_of(acc) == 30 and Ledger.balance(sink("lab"), "pts") == 100
    assert lots_of(acc)[late][0] == 30 and lots_of(acc)[soon][0] == 0
    assert BenefitStock.get_by_id(LAB_GIFT).taken == 1
    (call,) = lab.calls
    assert (call.id, call.account_id, call.benefit, call.partner, call.cost, call.attempt) == (
        body["id"], acc, LAB_GIFT, "lab", 100, 1)
    assert client.get(f"/v1/accounts/{acc}/points", headers=auth("reader")).get_json()["balance"] == 30
    assert_books_balance()


def test_plugins_hear_of_the_hold_and_the_post(settings, database_url, clock):
    from hub.core import Hub

    seen = []
    recorder = plugin_module("recorder", carbonhub_transaction_posted=lambda transaction: seen.append(transaction.kind))
    lab = lab_benefits(benefits=ALL)
    hub = Hub(settings, clock=clock, database_url=database_url, extra_plugins=[lab, recorder])
    hub.init_db()
    account = hub.open_account("r")[0].id
    credit_points(hub, account, 100, "c")
    view, created = hub.exchange.redeem(account, LAB_GIFT, "k")
    assert created and view["status"] == "fulfilled"
    assert seen == ["redemption_hold", "redemption_post"]  # the credit above went straight to the ledger


# --- idempotency -------------------------------------------------------------------------------


def test_the_same_key_and_body_returns_the_same_redemption_and_spends_once(client, hub, acc, lab):
    credit_points(hub, acc, 500, "c")
    first = redeem(client, acc)
    again = redeem(client, acc)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert points_of(acc) == 400 and len(lab.calls) == 1 and Redemption.select().count() == 1


def test_the_same_key_with_another_body_is_a_conflict(client, hub, acc):
    credit_points(hub, acc, 500, "c")
    assert redeem(client, acc).status_code == 201
    response = redeem(client, acc, benefit="lab-daily")
    assert response.status_code == 409 and error_of(response)["code"] == "idempotency_conflict"
    other = client.post(PATH.format(acc), json={"benefit": LAB_GIFT, "details": {"x": "1"}},
                        headers={**auth("app"), "Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert points_of(acc) == 400


def test_keys_belong_to_one_account(client, hub, acc):
    other = hub.open_account("redeemer-2")[0].id
    credit_points(hub, acc, 100, "c-1")
    credit_points(hub, other, 100, "c-2")
    assert redeem(client, acc, key="same").status_code == 201
    assert redeem(client, other, key="same").status_code == 201


@pytest.mark.parametrize("key, problem", [(None, "Missing header"), ("has space", "printable ASCII"),
                                          ("x" * 101, "printable ASCII")])
def test_an_idempotency_key_is_required(client, hub, acc, key, problem):
    credit_points(hub, acc, 100, "c")
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post(PATH.format(acc), json={"benefit": LAB_GIFT}, headers={**auth("app"), **headers})
    err = error_of(response)
    assert response.status_code == 422 and err["code"] == "validation_error"
    assert problem in err["fields"]["Idempotency-Key"][0]
    assert Redemption.select().count() == 0


# --- refusals ----------------------------------------------------------------------------------


def test_not_enough_points_is_refused_and_nothing_is_taken(client, hub, acc):
    credit_points(hub, acc, 99, "c")
    response = redeem(client, acc)
    err = error_of(response)
    assert response.status_code == 409 and err["code"] == "insufficient_points"
    assert "99" in err["message"]
    assert points_of(acc) == 99 and Redemption.select().count() == 0
    assert BenefitStock.get_or_none(BenefitStock.benefit == LAB_GIFT) is None


def test_out_of_stock(client, hub):
    accounts = [hub.open_account(f"u-{i}")[0].id for i in range(4)]
    for i, account in enumerate(accounts):
        credit_points(hub, account, 100, f"c-{i}")
    codes = [redeem(client, a, key="k").status_code for a in accounts]
    assert codes == [201, 201, 201, 409]
    assert error_of(redeem(client, accounts[3], key="k2"))["code"] == "out_of_stock"
    assert points_of(accounts[3]) == 100


def test_the_per_user_limit_counts_per_local_day(client, hub, acc, clock):
    credit_points(hub, acc, 100, "c")
    assert [redeem(client, acc, "lab-daily", key=f"k{i}").status_code for i in range(3)] == [201, 201, 409]
    assert error_of(redeem(client, acc, "lab-daily", key="k9"))["code"] == "limit_reached"
    clock.advance(hours=12)  # 00:00 the next day in Shanghai
    assert redeem(client, acc, "lab-daily", key="k10").status_code == 201
    clock.current = NOW


@pytest.mark.parametrize("benefit, message", [("lab-off", "switched off"), ("lab-later", "opens on 2026-12-01"),
                                              ("lab-over", "closed on 2026-11-20")])
def test_a_closed_benefit_is_refused(client, hub, acc, benefit, message):
    credit_points(hub, acc, 100, "c")
    response = redeem(client, acc, benefit)
    err = error_of(response)
    assert response.status_code == 409 and err["code"] == "benefit_closed" and message in err["message"]


def test_a_green_record_is_required_where_configured(client, hub, acc):
    credit_points(hub, acc, 100, "c")
    response = redeem(client, acc, "lab-green")
    assert response.status_code == 409 and error_of(response)["code"] == "not_eligible"
    hub.set_consent(acc, "metro", True, at=datetime(2019, 1, 1, tzinfo=SHANGHAI))
    hub.pipeline.ingest("szmetro", [metro_ride(acc, "R-1", NOW - timedelta(hours=3))])
    assert redeem(client, acc, "lab-green", key="k-2").status_code == 201


def test_unknown_and_welcome_benefits(client, hub, acc):
    credit_points(hub, acc, 100, "c")
    response = redeem(client, acc, "no-such-thing")
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_benefit"
    response = redeem(client, acc, "lab-welcome", key="k-2")
    assert response.status_code == 409 and error_of(response)["code"] == "benefit_closed"
    assert redeem(client, "acc_nobody").status_code == 404
    with pytest.raises(ExchangeError) as err:  # the service checks too (plugins call it through ctx.benefits)
        hub.ctx.benefits.grant("acc_nobody", LAB_GIFT, "welcome:acc_nobody")
    assert (err.value.status, err.value.code) == (404, "not_found")


def test_details_are_checked_against_what_the_benefit_asks(settings, database_url, clock):
    from hub.app import create_app
    from hub.core import Hub

    lab = lab_benefits(benefits=ALL, details=("member_id",))
    hub = Hub(settings, clock=clock, database_url=database_url, extra_plugins=[lab])
    hub.init_db()
    client = create_app(hub=hub).test_client()
    account = hub.open_account("d")[0].id
    credit_points(hub, account, 300, "c")
    missing = redeem(client, account)
    assert missing.status_code == 422
    assert error_of(missing)["fields"] == {"details": {"member_id": ["Missing data for required field."]}}
    extra = redeem(client, account, details={"member_id": "M1", "seat": "1A"})
    assert set(error_of(extra)["fields"]["details"]) == {"seat"}
    ok = redeem(client, account, details={"member_id": " M1 "})
    assert ok.status_code == 201 and ok.get_json()["details"] == {"member_id": "M1"}
    assert lab.calls[0].details == {"member_id": "M1"}


# --- failures, retries, voids ------------------------------------------------------------------


def test_a_refusal_voids_at_once_and_refunds_into_the_same_lots(client, hub, acc, lab, sleeps):
    a = credit_points(hub, acc, 60, "c-a", expires=datetime(2027, 1, 1, tzinfo=SHANGHAI))
    b = credit_points(hub, acc, 60, "c-b")
    before = lots_of(acc)
    scripted(lab, "refuse")
    body = redeem(client, acc).get_json()
    assert body["status"] == "voided" and body["attempts"] == 1 and sleeps == []
    assert body["failure"] == {"code": "unknown_member", "message": "the lab partner does not know this member",
                               "retryable": False}
    assert body["fulfilment"] is None
    void = LedgerTransaction.get_by_id(body["transactions"]["resolve"])
    assert void.key == f"redeem:{body['id']}:void" and void.memo["lots"]["restore"] == [[a, 60], [b, 40]]
    assert lots_of(acc) == before and points_of(acc) == 120
    assert BenefitStock.get_by_id(LAB_GIFT).taken == 0
    assert lab.cancels == []  # the partner refused: nothing to undo there
    assert_books_balance()


def test_a_retryable_error_is_retried_with_backoff(client, hub, acc, lab, sleeps):
    credit_points(hub, acc, 100, "c")
    scripted(lab, "retry", "retry")
    body = redeem(client, acc).get_json()
    assert body["status"] == "fulfilled" and body["attempts"] == 3
    assert sleeps == [0.1, 0.2]
    assert [c.attempt for c in lab.calls] == [1, 2, 3] and len({c.id for c in lab.calls}) == 1
    assert body["fulfilment"]["reference"] == "ref-3"


def test_retries_are_bounded_then_the_hold_is_voided_and_the_partner_told(client, hub, acc, lab, sleeps):
    credit_points(hub, acc, 100, "c")
    scripted(lab, "retry", "retry", "retry", "ok")
    body = redeem(client, acc).get_json()
    assert body["status"] == "voided" and body["attempts"] == 3 and sleeps == [0.1, 0.2]
    assert body["failure"]["code"] == "partner_timeout" and body["failure"]["retryable"] is True
    (cancel,) = lab.cancels
    assert cancel.id == body["id"] and cancel.fulfilment is None
    assert points_of(acc) == 100
    assert_books_balance()


@pytest.mark.parametrize("step, code", [("crash", "fulfilment_failed"), ("junk", "fulfilment_failed"),
                                        ("none", "not_fulfilled")])
def test_a_broken_fulfilment_voids(client, hub, acc, lab, step, code):
    credit_points(hub, acc, 100, "c")
    scripted(lab, step)
    body = redeem(client, acc).get_json()
    assert body["status"] == "voided" and body["failure"]["code"] == code
    assert len(lab.cancels) == (0 if step == "none" else 1)
    assert points_of(acc) == 100


def test_a_lot_that_expired_during_the_hold_is_not_refunded(hub, acc, clock):
    doomed = credit_points(hub, acc, 70, "c-doomed", expires=NOW + timedelta(minutes=5))
    safe = credit_points(hub, acc, 50, "c-safe")
    row, created, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k", "h", {}, 100)
    clock.advance(minutes=10)
    assert hub.exchange.resolve(row.id, None, {"code": "x", "message": "y", "retryable": False}) == "voided"
    assert points_of(acc) == 50 and Ledger.balance(EXPIRED, "pts") == 70
    assert lots_of(acc)[doomed][0] == 0 and lots_of(acc)[safe][0] == 50
    clock.current = NOW
    assert_books_balance()


def test_the_expiry_job_never_takes_held_points(hub, acc, clock):
    from hub.lots import expire_due

    lot = credit_points(hub, acc, 150, "c", expires=NOW + timedelta(minutes=5))
    row, _, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k", "h", {}, 100)
    clock.advance(minutes=10)
    assert expire_due(hub).points == 50  # only what was not held
    assert hub.exchange.resolve(row.id, Fulfilment(code="C"), None) == "fulfilled"
    assert points_of(acc) == 0 and lots_of(acc)[lot][0] == 0
    clock.current = NOW
    assert_books_balance()


# --- exactly once ------------------------------------------------------------------------------


def test_a_hold_resolves_exactly_once(hub, acc):
    credit_points(hub, acc, 100, "c")
    row, _, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k", "h", {}, 100)
    assert hub.exchange.resolve(row.id, Fulfilment(code="C"), None) == "fulfilled"
    assert hub.exchange.resolve(row.id, None, {"code": "late", "message": "", "retryable": False}) is None
    assert hub.exchange.resolve(row.id, Fulfilment(code="D"), None) is None
    assert Redemption.get_by_id(row.id).fulfilment["code"] == "C"
    assert LedgerTransaction.select().where(LedgerTransaction.key.startswith(f"redeem:{row.id}")).count() == 2
    assert_books_balance()


def test_the_stale_holds_job_voids_holds_past_their_deadline(hub, acc, lab, clock):
    credit_points(hub, acc, 300, "c")
    stuck, _, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k-1", "h", {}, 100)  # a crash after
    clock.advance(seconds=300)
    fresh, _, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k-2", "h", {}, 100)
    clock.advance(seconds=301)
    assert hub.exchange.void_stale() == [stuck.id]
    row = Redemption.get_by_id(stuck.id)
    assert row.status == "voided" and row.failure["code"] == "hold_timeout"
    assert [c.id for c in lab.cancels] == [stuck.id]  # its fulfilment's fate is unknown
    assert points_of(acc) == 200 and Redemption.get_by_id(fresh.id).status == "held"
    assert hub.exchange.void_stale() == []
    # the original request finally gets an answer: too late, it is undone at the partner
    view = hub.exchange.complete(stuck.id)
    assert view["status"] == "voided" and len(lab.calls) == 0  # a resolved hold is never fulfilled again
    clock.current = NOW


def test_a_fulfilment_that_arrives_after_the_stale_void_is_cancelled(hub, acc, lab, clock):
    credit_points(hub, acc, 100, "c")
    row, _, _ = hub.exchange._hold(acc, hub.exchange.benefit(LAB_GIFT), "k", "h", {}, 100)

    def stale_job_meanwhile(redemption):  # the partner is slow; the stale-holds job runs
        clock.advance(seconds=601)
        assert hub.exchange.void_stale() == [redemption.id]

    scripted(lab, stale_job_meanwhile)
    view = hub.exchange.complete(row.id)
    assert view["status"] == "voided" and view["failure"]["code"] == "hold_timeout"
    # told twice: by the job (outcome unknown), then with what the partner did deliver
    assert [(c.id, c.fulfilment.code if c.fulfilment else None) for c in lab.cancels] == [
        (row.id, None), (row.id, f"LAB-{row.id}")]
    assert points_of(acc) == 100
    clock.current = NOW
    assert_books_balance()


def test_exchange_transactions_cannot_be_reversed_by_hand(client, hub, acc):
    credit_points(hub, acc, 100, "c")
    body = redeem(client, acc).get_json()
    for seq in body["transactions"].values():
        with pytest.raises(NotReversible, match="never reversed by hand"):
            hub.reverse(seq, "undo it")
    assert points_of(acc) == 0 and verify().ok


# --- reading -----------------------------------------------------------------------------------


def test_list_and_read_redemptions(client, hub, acc, lab):
    credit_points(hub, acc, 1000, "c")
    scripted(lab, "ok", "refuse", "ok")
    ids = [redeem(client, acc, "lab-daily" if i else LAB_GIFT, key=f"k{i}").get_json()["id"] for i in range(3)]
    page = client.get(f"{PATH.format(acc)}?limit=2", headers=auth("reader")).get_json()
    assert [r["id"] for r in page["redemptions"]] == [ids[2], ids[1]] and page["next"]
    rest = client.get(f"{PATH.format(acc)}?limit=2&before={page['next']}", headers=auth("reader")).get_json()
    assert [r["id"] for r in rest["redemptions"]] == [ids[0]] and rest["next"] is None
    voided = client.get(f"{PATH.format(acc)}?status=voided", headers=auth("reader")).get_json()
    assert [r["id"] for r in voided["redemptions"]] == [ids[1]]
    one = client.get(f"{PATH.format(acc)}/{ids[0]}", headers=auth("reader")).get_json()
    assert one["status"] == "fulfilled" and one["benefit"] == LAB_GIFT
    other = hub.open_account("someone-else")[0].id
    assert client.get(f"{PATH.format(other)}/{ids[0]}", headers=auth("reader")).status_code == 404
    assert redeem(client, acc, key="k9", headers=auth("reader")).status_code == 403


def test_the_catalogue_and_eligibility(client, hub, acc):
    credit_points(hub, acc, 50, "c")
    listed = client.get("/v1/benefits", headers=auth("reader")).get_json()
    assert [b["id"] for b in listed] == ["lab-daily", LAB_GIFT, "lab-green"]  # open, not welcome gifts
    gift = listed[1]
    assert gift["stock"] == {"total": 3, "left": 3} and gift["cost"] == 100 and "eligibility" not in gift
    mine = {b["id"]: b["eligibility"] for b in
            client.get(f"/v1/benefits?account={acc}", headers=auth("reader")).get_json()}
    assert mine[LAB_GIFT]["code"] == "insufficient_points" and not mine[LAB_GIFT]["can_redeem"]
    assert mine["lab-daily"] == {"can_redeem": True, "code": None, "message": None}
    assert mine["lab-green"]["code"] == "not_eligible"
    assert client.get("/v1/benefits?account=acc_nobody", headers=auth("reader")).status_code == 404
    assert client.get("/v1/benefits?acount=x", headers=auth("reader")).status_code == 422


# --- config ------------------------------------------------------------------------------------


def test_a_configured_benefit_no_plugin_registers_stops_the_hub(settings, database_url, clock):
    from hub.core import Hub

    with pytest.raises(ConfigError) as err:
        Hub(settings, clock=clock, database_url=database_url)  # without the lab plugin
    assert ("benefits.lab-gift", "No plugin registers benefit 'lab-gift'.") in err.value.errors


@pytest.mark.parametrize("conf, key", [
    ({"cost": 10}, "benefits.x.partner"),
    ({"partner": "p", "cost": -1}, "benefits.x.cost"),
    ({"partner": "p", "cost": 1.5}, "benefits.x.cost"),
    ({"partner": "p", "cost": 1, "limit_period": "year"}, "benefits.x.limit_period"),
    ({"partner": "p", "cost": 1, "from": date(2026, 2, 1), "to": date(2026, 1, 1)}, "benefits.x.to"),
    ({"partner": "p", "cost": 1, "stok": 5}, "benefits.x.stok"),
])
def test_bad_benefit_config_names_the_key(conf, key):
    from hub.config import load_settings

    with pytest.raises(ConfigError) as err:
        load_settings(data={"benefits": {"x": conf}})
    assert key in [k for k, _ in err.value.errors]


def test_only_the_owning_plugin_fulfils(settings, database_url, clock):
    from hub.core import Hub

    greedy = plugin_module("greedy", carbonhub_register_benefits=lambda: [BenefitSpec("greedy-thing", "G")],
                           carbonhub_fulfil_benefit=lambda redemption: Fulfilment(code="STOLEN"))
    lab = lab_benefits(benefits=ALL)
    hub = Hub(settings, clock=clock, database_url=database_url, extra_plugins=[greedy, lab])
    hub.init_db()
    account = hub.open_account("o")[0].id
    credit_points(hub, account, 100, "c")
    view, _ = hub.exchange.redeem(account, LAB_GIFT, "k")
    assert view["fulfilment"]["code"].startswith("LAB-")
    with pytest.raises(UnknownBenefit):
        hub.exchange.redeem(account, "greedy-thing", "k2")  # registered but not configured by the bank


# --- the commands ------------------------------------------------------------------------------

VOUCHERS = """
    from hub.hookspecs import hookimpl
    from hub.records import BenefitSpec, Fulfilment

    CARBONHUB_API = "1.0"

    @hookimpl
    def carbonhub_register_benefits(ctx):
        return [BenefitSpec(id="test-voucher", title="Test voucher")]

    @hookimpl
    def carbonhub_fulfil_benefit(ctx, redemption):
        return Fulfilment(code=ctx.benefits.take_code("test-voucher", redemption.id))
"""

CLI_CONFIG = """
[hub]
timezone = "Asia/Shanghai"

[benefits.test-voucher]
partner = "tester"
cost = 10
stock = 2
"""


def test_benefit_and_redemption_commands(tmp_path, monkeypatch, database_url):
    from click.testing import CliRunner
    from plugin_helpers import install_entry_point_plugin

    from hub import db
    from hub.cli import main
    from hub.config import load_settings
    from hub.context import FixedClock
    from hub.core import Hub

    install_entry_point_plugin(tmp_path, "vouchers", VOUCHERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "hub.toml"
    config.write_text(CLI_CONFIG, encoding="utf-8")
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("# batch 7\nV-1\n\nV-2\n  V-3  \nV-2\n", encoding="utf-8")
    env = {"CARBONHUB_DATABASE_URL": database_url}
    runner = CliRunner()

    def run(*args, code=0):
        out = runner.invoke(main, ["--config", str(config), *args], env=env, catch_exceptions=False)
        assert out.exit_code == code, out.output
        return out.output

    assert "schema version" in run("db", "init")
    assert "loaded 3 code(s) for test-voucher (0 already there); 3 left" in run(
        "benefits", "load-codes", "test-voucher", str(codes_file))
    assert "loaded 0 code(s) for test-voucher (3 already there); 3 left" in run(
        "benefits", "load-codes", "test-voucher", str(codes_file))
    assert "no plugin registers benefit 'nope'" in run("benefits", "load-codes", "nope", str(codes_file), code=2)

    # a hold left behind by a crash, an hour old
    settings = load_settings(config, environ=env)
    clock = FixedClock(NOW - timedelta(hours=1))
    hub = Hub(settings, clock=clock, database_url=database_url)
    account = hub.open_account("cli-user")[0].id
    credit_points(hub, account, 50, "c")
    row, _, _ = hub.exchange._hold(account, hub.exchange.benefit("test-voucher"), "k", "h", {}, 10)
    view, _ = hub.exchange.redeem(account, "test-voucher", "k2")
    assert view["fulfilment"]["code"] == "V-1"
    db.database.close()

    listed = run("benefits", "list")
    assert "test-voucher" in listed and "2/2 taken" in listed and "codes 2/3 left" in listed
    assert row.id in run("redemptions", "list")
    out = run("redemptions", "void-stale")
    assert f"voided {row.id}" in out and "1 hold(s) voided" in out
    assert "0 hold(s) voided" in run("redemptions", "void-stale")
    assert row.id in run("redemptions", "list", "--status", "voided")
    db.bind(database_url)
    assert points_of(account) == 40 and verify().ok and rebuild().ok


def test_answers_match_the_openapi_document(client, hub, acc, lab):
    spec = client.get("/openapi.json").get_json()
    check = openapi_check(spec)
    credit_points(hub, acc, 150, "c", expires=NOW + timedelta(days=30))
    scripted(lab, "ok", "refuse")
    base = "/v1/accounts/{account_id}/redemptions"
    check(redeem(client, acc), base, "post", "201")
    check(redeem(client, acc), base, "post", "200")
    check(redeem(client, acc, "lab-daily", key="k-2"), base, "post", "201")  # voided
    check(redeem(client, acc, "lab-off", key="k-3"), base, "post", "409")
    check(redeem(client, acc, key=None), base, "post", "422")
    check(client.get(PATH.format(acc), headers=auth("reader")), base, "get", "200")
    rid = Redemption.select().first().id
    check(client.get(f"{PATH.format(acc)}/{rid}", headers=auth("reader")), base + "/{redemption_id}", "get", "200")
    check(client.get(f"/v1/accounts/{acc}/points", headers=auth("reader")), "/v1/accounts/{account_id}/points",
          "get", "200")
    check(client.get(f"/v1/benefits?account={acc}", headers=auth("reader")), "/v1/benefits", "get", "200")
    header = [p for p in spec["paths"][base]["post"]["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Idempotency-Key"] and header[0]["required"]
