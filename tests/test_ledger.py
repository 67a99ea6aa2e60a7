"""The ledger on a real database: posting, validation, idempotency, reversal,
the hash chain, and :func:`hub.ledger.verify` against direct SQL tampering."""
from __future__ import annotations

import peewee as pw
import pytest

from hub import db
from hub.db import Balance, LedgerHead, LedgerTransaction, Posting, database
from hub.ledger import (AlreadyReversed, IdempotencyConflict, InvalidTransaction, TransactionNotFound, TxRequest,
                        balances_of, chain_hash, user_carbon, user_points, verify)
from hub.records import PostingRecord

ALICE, BOB = user_carbon("acc_alice"), user_carbon("acc_bob")
ALICE_PTS = user_points("acc_alice")
ISSUER = "@issuer:metro"


def credit(key: str, account: str = ALICE, grams: int = 100, points: int = 0, **memo) -> TxRequest:
    postings = [PostingRecord(ISSUER, "g", -grams), PostingRecord(account, "g", grams)]
    if points:
        postings += [PostingRecord(ISSUER, "pts", -points), PostingRecord(ALICE_PTS, "pts", points)]
    return TxRequest(key=key, kind="credit", postings=tuple(postings), memo=memo or {"note": key},
                     methodology="metro-avoided-car@2021.1")


def post_n(ledger, n: int) -> list[int]:
    return [ledger.post(credit(f"k{i}", grams=10 * (i + 1)))[0].seq for i in range(n)]


def tx_count() -> int:
    return LedgerTransaction.select().count()


# --- posting ----------------------------------------------------------------


def test_post_stores_transaction_postings_and_balances(hub):
    tx, created = hub.ledger.post(credit("c1", grams=870, points=87))
    assert created and tx.seq == 1 and tx.kind == "credit"
    assert hub.ledger.balance(ALICE, "g") == 870
    assert hub.ledger.balance(ISSUER, "g") == -870
    assert hub.ledger.balance(ALICE_PTS, "pts") == 87
    assert hub.ledger.balance(ALICE, "pts") == 0  # units are separate balances
    stored = hub.ledger.get(tx.seq)
    assert stored.key == "c1" and stored.memo == {"note": "c1"}
    assert sorted(stored.postings, key=lambda p: (p.unit, p.account)) == sorted(
        tx.postings, key=lambda p: (p.unit, p.account))
    assert stored.created_at == hub.now()
    assert LedgerTransaction.get_by_id(1).methodology == "metro-avoided-car@2021.1"

    hub.ledger.post(credit("c2", grams=30))
    assert hub.ledger.balance(ALICE, "g") == 900
    assert balances_of([ALICE, ISSUER]) == {(ALICE, "g"): 900, (ISSUER, "g"): -900, (ISSUER, "pts"): -87}


def test_get_unknown_seq_is_not_found(hub):
    with pytest.raises(TransactionNotFound):
        hub.ledger.get(42)


@pytest.mark.parametrize("postings, message", [
    (((ALICE, "g", 100), (ISSUER, "g", -99)), "sum to zero"),
    (((ALICE, "g", 100), (ISSUER, "pts", -100)), "sum to zero"),  # balanced overall, not per unit
    (((ALICE, "kg", 1), (ISSUER, "kg", -1)), "unknown unit"),
    (((ALICE, "g", 1.0), (ISSUER, "g", -1.0)), "integers"),
    (((ALICE, "g", True), (ISSUER, "g", -1)), "integers"),
    (((ALICE, "g", 0), (ISSUER, "g", 0)), "integers"),
    (((ALICE, "g", 5), (ISSUER, "g", -5), (BOB, "g", 0)), "integers"),
    ((("alice", "g", 5), (ISSUER, "g", -5)), "bad account"),
    ((("user:acc alice:carbon", "g", 5), (ISSUER, "g", -5)), "bad account"),
    ((("user:acc_alice:cash", "g", 5), (ISSUER, "g", -5)), "bad account"),
    ((("@Issuer", "g", 5), (ISSUER, "g", -5)), "bad account"),
    (((ALICE, "g", 5),), "at least two"),
])
def test_invalid_transactions_are_refused_and_write_nothing(hub, postings, message):
    req = TxRequest(key="bad", kind="credit", postings=tuple(PostingRecord(*p) for p in postings))
    with pytest.raises(InvalidTransaction, match=message) as exc:
        hub.ledger.post(req)
    assert exc.value.status == 422
    assert tx_count() == 0 and Posting.select().count() == 0 and Balance.select().count() == 0
    assert LedgerHead.get_by_id(1).seq == 0


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_idempotency_key_length(hub, key):
    with pytest.raises(InvalidTransaction, match="idempotency key"):
        hub.ledger.post(credit(key))


def test_same_key_twice_in_one_call_is_refused(hub):
    with pytest.raises(InvalidTransaction, match="twice"):
        with database.atomic():
            hub.ledger.post_many([credit("dup"), credit("dup")])
    assert tx_count() == 0


# --- idempotency --------------------------------------------------------------


def test_same_key_same_content_returns_the_original(hub):
    first, created = hub.ledger.post(credit("ride-1", grams=870, points=87))
    hub.ledger.post(credit("ride-2", grams=5))
    again, created_again = hub.ledger.post(credit("ride-1", grams=870, points=87))
    assert created and not created_again
    assert again.seq == first.seq and again.key == "ride-1" and again.memo == first.memo
    assert sorted(again.postings, key=repr) == sorted(first.postings, key=repr)
    assert tx_count() == 2
    assert hub.ledger.balance(ALICE, "g") == 875
    assert hub.ledger.balance(ALICE_PTS, "pts") == 87
    assert LedgerHead.get_by_id(1).seq == 2


def test_posting_order_does_not_change_content(hub):
    req = credit("ride-1", grams=10)
    hub.ledger.post(req)
    shuffled = TxRequest(key=req.key, kind=req.kind, postings=tuple(reversed(req.postings)), memo=req.memo,
                         methodology=req.methodology)
    tx, created = hub.ledger.post(shuffled)
    assert not created and tx.seq == 1


@pytest.mark.parametrize("change", [
    dict(grams=101), dict(account=BOB), dict(note="other memo"), dict(points=1),
])
def test_same_key_other_content_is_a_conflict(hub, change):
    hub.ledger.post(credit("ride-1", grams=100))
    with pytest.raises(IdempotencyConflict) as exc:
        hub.ledger.post(credit("ride-1", **{"grams": 100, **change}))
    assert exc.value.status == 409 and exc.value.details["seq"] == 1
    assert tx_count() == 1 and hub.ledger.balance(ALICE, "g") == 100


def test_other_methodology_is_a_conflict(hub):
    req = credit("ride-1")
    hub.ledger.post(req)
    with pytest.raises(IdempotencyConflict):
        hub.ledger.post(TxRequest(key=req.key, kind=req.kind, postings=req.postings, memo=req.memo,
                                  methodology="metro-avoided-car@2026.1"))


def test_post_many_mixes_existing_and_new(hub):
    hub.ledger.post(credit("a"))
    with database.atomic():
        results = hub.ledger.post_many([credit("a"), credit("b"), credit("c")])
    assert [(tx.seq, created) for tx, created in results] == [(1, False), (2, True), (3, True)]
    assert hub.ledger.balance(ALICE, "g") == 300


def test_conflict_inside_post_many_writes_nothing(hub):
    hub.ledger.post(credit("a", grams=1))
    with pytest.raises(IdempotencyConflict):
        with database.atomic():
            hub.ledger.post_many([credit("b"), credit("a", grams=2)])
    assert tx_count() == 1 and hub.ledger.balance(ALICE, "g") == 1


def test_new_keys_skips_the_lookup_but_the_unique_key_still_refuses_a_second_post(hub):
    with database.atomic():
        ((tx, created),) = hub.ledger.post_many([credit("fresh")], new_keys=True)
    assert created and tx.seq == 1
    # A caller that wrongly claims a used key is new is stopped by the database, not answered twice.
    with pytest.raises(pw.IntegrityError):
        with database.atomic():
            hub.ledger.post_many([credit("other"), credit("fresh")], new_keys=True)
    assert tx_count() == 1 and hub.ledger.balance(ALICE, "g") == 100
    assert verify().ok


# --- reversal -------------------------------------------------------------------


def test_reversal_negates_postings_and_restores_balances(hub):
    original, _ = hub.ledger.post(credit("ride-1", grams=870, points=87))
    rev, created = hub.ledger.reverse(original.seq, "duplicate ride reported by the operator")
    assert created and rev.seq == 2 and rev.kind == "reversal" and rev.reverses == original.seq
    assert sorted((p.account, p.unit, p.amount) for p in rev.postings) == sorted(
        (p.account, p.unit, -p.amount) for p in original.postings)
    assert rev.memo["reason"] == "duplicate ride reported by the operator"
    for account, unit in [(ALICE, "g"), (ISSUER, "g"), (ALICE_PTS, "pts"), (ISSUER, "pts")]:
        assert hub.ledger.balance(account, unit) == 0
    stored = LedgerTransaction.get_by_id(rev.seq)
    assert stored.reverses == original.seq and stored.methodology == "metro-avoided-car@2021.1"
    assert hub.ledger.get(rev.seq).reverses == original.seq
    assert verify().ok


def test_reversal_is_idempotent_on_its_key(hub):
    hub.ledger.post(credit("ride-1"))
    first, _ = hub.ledger.reverse(1, "mistake")
    again, created = hub.ledger.reverse(1, "mistake")
    assert not created and again.seq == first.seq
    assert tx_count() == 2 and hub.ledger.balance(ALICE, "g") == 0


def test_second_reversal_is_refused(hub):
    hub.ledger.post(credit("ride-1"))
    hub.ledger.reverse(1, "mistake")
    with pytest.raises(AlreadyReversed) as exc:
        hub.ledger.reverse(1, "mistake", key="another-key")
    assert exc.value.status == 409 and exc.value.details["seq"] == 1
    # Another reason under the default key is a second reversal, not a retry.
    with pytest.raises(AlreadyReversed) as exc:
        hub.ledger.reverse(1, "another reason")
    assert exc.value.details["reversal"] == 2
    assert tx_count() == 2 and hub.ledger.balance(ALICE, "g") == 0


def test_two_reversals_of_one_transaction_in_one_call_are_refused(hub):
    hub.ledger.post(credit("ride-1"))
    postings = tuple(PostingRecord(p.account, p.unit, -p.amount) for p in hub.ledger.postings_of(1))
    reqs = [TxRequest(key=f"rev-{i}", kind="reversal", postings=postings, reverses=1) for i in range(2)]
    with pytest.raises(AlreadyReversed):
        with database.atomic():
            hub.ledger.post_many(reqs)
    assert tx_count() == 1 and hub.ledger.balance(ALICE, "g") == 100


def test_reversing_a_reversal_is_refused(hub):
    hub.ledger.post(credit("ride-1"))
    rev, _ = hub.ledger.reverse(1, "mistake")
    with pytest.raises(InvalidTransaction, match="cannot itself be reversed"):
        hub.ledger.reverse(rev.seq, "undo the undo")
    assert tx_count() == 2


def test_reversing_unknown_seq_is_not_found(hub):
    with pytest.raises(TransactionNotFound) as exc:
        hub.ledger.reverse(7, "nothing there")
    assert exc.value.status == 404 and tx_count() == 0


# --- hash chain ---------------------------------------------------------------


def test_hash_chain_links_each_transaction_to_the_previous(hub, clock):
    for i in range(5):
        hub.ledger.post(credit(f"k{i}", grams=i + 1))
        clock.advance(seconds=1.5)  # fractional seconds must survive the round trip
    rows = list(LedgerTransaction.select().order_by(LedgerTransaction.seq))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == db.GENESIS_HASH
    for prev, row in zip(rows, rows[1:]):
        assert row.prev_hash == prev.hash
    for row in rows:
        assert row.hash == chain_hash(row.prev_hash, row.seq, row.key, row.kind, row.content_hash, row.created_at)
    assert len({r.hash for r in rows}) == 5
    head = LedgerHead.get_by_id(1)
    assert (head.seq, head.hash) == (5, rows[-1].hash)
    report = verify()
    assert report.ok and report.transactions == 5 and report.first_break is None
    assert report.accounts == 2  # ALICE g, ISSUER g


def test_verify_on_empty_ledger(hub):
    report = verify()
    assert report.ok and report.transactions == 0 and report.as_dict()["ok"] is True


def test_verify_ok_with_reversals_and_pages(hub):
    post_n(hub.ledger, 7)
    hub.ledger.reverse(3, "mistake")
    hub.ledger.reverse(5, "mistake")
    report = verify(page=2)  # chain continuity across page boundaries
    assert report.ok, report.problems
    assert report.transactions == 9


def test_post_many_yields_a_contiguous_chain(hub):
    hub.ledger.post(credit("before"))
    reqs = [credit(f"bulk-{i}", account=user_carbon(f"acc_{i % 37}"), grams=i + 1) for i in range(1200)]
    with database.atomic():
        results = hub.ledger.post_many(reqs)
    assert [tx.seq for tx, _ in results] == list(range(2, 1202))
    assert all(created for _, created in results)
    rows = list(LedgerTransaction.select().order_by(LedgerTransaction.seq))
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert Posting.select().count() == 2 * 1201
    assert hub.ledger.balance(ISSUER, "g") == -(100 + sum(range(1, 1201)))
    assert hub.ledger.balance(user_carbon("acc_0"), "g") == sum(i + 1 for i in range(0, 1200, 37))
    report = verify(page=500)
    assert report.ok, report.problems
    assert report.transactions == 1201


def test_failure_after_post_many_rolls_back_everything(hub):
    hub.ledger.post(credit("before", grams=7))
    head_before = LedgerHead.get_by_id(1)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with database.atomic():
            hub.ledger.post_many([credit(f"x{i}") for i in range(10)])
            assert tx_count() == 11  # visible inside the transaction
            raise Boom
    assert tx_count() == 1 and Posting.select().count() == 2
    assert hub.ledger.balance(ALICE, "g") == 7 and hub.ledger.balance(ISSUER, "g") == -7
    head = LedgerHead.get_by_id(1)
    assert (head.seq, head.hash) == (head_before.seq, head_before.hash)
    # The chain carries on from where it was.
    tx, _ = hub.ledger.post(credit("after"))
    assert tx.seq == 2 and verify().ok


# --- tampering ----------------------------------------------------------------


def sql(statement: str, *params) -> None:
    """Alter the store behind the ledger's back, as an attacker with SQL would."""
    if db.is_postgres():
        statement = statement.replace("?", "%s")
    database.execute_sql(statement, params)


def assert_broken_at(seq: int) -> list[str]:
    report = verify()
    assert not report.ok
    assert report.first_break == seq, report.problems
    return report.problems


def first_posting_id(seq: int) -> int:
    return Posting.select(Posting.id).where(Posting.tx_seq == seq).order_by(Posting.id).first().id


def test_tamper_posting_amount(hub):
    post_n(hub.ledger, 5)
    pid = first_posting_id(3)
    sql('UPDATE "posting" SET "amount" = "amount" - 1 WHERE "id" = ?', pid)
    problems = assert_broken_at(3)
    assert any("seq 3: content altered" in p for p in problems)
    assert any(p.startswith("seq 3: postings do not balance") for p in problems)
    assert any(p.startswith("balance ") for p in problems)  # the balance no longer matches postings


def test_tamper_balanced_pair_of_postings(hub):
    """Moving grams between accounts keeps every sum balanced; the content hash still catches it."""
    post_n(hub.ledger, 4)
    sql('UPDATE "posting" SET "amount" = "amount" * 10 WHERE "tx_seq" = ?', 2)
    sql('UPDATE "balance" SET "amount" = ? WHERE "account" = ? AND "unit" = ?',
        hub.ledger.balance(ALICE, "g") + 9 * 20, ALICE, "g")
    sql('UPDATE "balance" SET "amount" = ? WHERE "account" = ? AND "unit" = ?',
        hub.ledger.balance(ISSUER, "g") - 9 * 20, ISSUER, "g")
    problems = assert_broken_at(2)
    assert not any(p.startswith("balance ") for p in problems)
    assert problems == [p for p in problems if p.startswith("seq 2:")]


def test_tamper_posting_account(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "posting" SET "account" = ? WHERE "tx_seq" = ? AND "account" = ?', BOB, 2, ALICE)
    assert_broken_at(2)


def test_tamper_memo(hub):
    post_n(hub.ledger, 4)
    sql('UPDATE "ledger_transaction" SET "memo" = ? WHERE "seq" = ?', '{"note":"forged"}', 2)
    problems = assert_broken_at(2)
    assert any("seq 2: content altered" in p for p in problems)


def test_tamper_methodology(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "ledger_transaction" SET "methodology" = ? WHERE "seq" = ?', "metro-avoided-car@2099.1", 3)
    assert_broken_at(3)


def test_tamper_created_at(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "ledger_transaction" SET "created_at" = ? WHERE "seq" = ?', "2020-01-01 00:00:00", 2)
    problems = assert_broken_at(2)
    assert any("seq 2: stored hash" in p for p in problems)


def test_delete_last_transaction(hub):
    post_n(hub.ledger, 5)
    sql('DELETE FROM "ledger_transaction" WHERE "seq" = ?', 5)
    problems = assert_broken_at(5)
    assert any("chain head says seq 5" in p for p in problems)


def test_delete_last_transaction_with_its_postings_and_balances(hub):
    """Even with postings removed and balances fixed up, the chain head still names the lost seq."""
    post_n(hub.ledger, 3)
    sql('DELETE FROM "posting" WHERE "tx_seq" = ?', 3)
    sql('DELETE FROM "ledger_transaction" WHERE "seq" = ?', 3)
    sql('UPDATE "balance" SET "amount" = "amount" - ? WHERE "account" = ?', 30, ALICE)
    sql('UPDATE "balance" SET "amount" = "amount" + ? WHERE "account" = ?', 30, ISSUER)
    problems = assert_broken_at(3)
    assert problems == ["chain head says seq 3 but the last transaction is seq 2 "
                        "(transactions removed or head altered)"]


def test_delete_middle_transaction(hub):
    post_n(hub.ledger, 5)
    sql('DELETE FROM "ledger_transaction" WHERE "seq" = ?', 3)
    problems = assert_broken_at(3)
    assert any("seq 3..3: transactions missing" in p for p in problems)
    assert any(p.startswith("seq 4: prev_hash") for p in problems)


def test_delete_middle_transaction_and_its_postings(hub):
    post_n(hub.ledger, 5)
    sql('DELETE FROM "posting" WHERE "tx_seq" = ?', 2)
    sql('DELETE FROM "ledger_transaction" WHERE "seq" = ?', 2)
    assert_broken_at(2)


def test_delete_first_transaction(hub):
    post_n(hub.ledger, 3)
    sql('DELETE FROM "ledger_transaction" WHERE "seq" = ?', 1)
    assert_broken_at(1)


def test_delete_a_posting(hub):
    post_n(hub.ledger, 3)
    sql('DELETE FROM "posting" WHERE "id" = ?', first_posting_id(2))
    assert_broken_at(2)


def test_insert_a_posting(hub):
    post_n(hub.ledger, 3)
    sql('INSERT INTO "posting" ("tx_seq", "account", "unit", "amount") VALUES (?, ?, ?, ?)', 2, BOB, "g", 0)
    assert_broken_at(2)


def test_orphan_posting_after_the_last_transaction(hub):
    post_n(hub.ledger, 2)
    sql('INSERT INTO "posting" ("tx_seq", "account", "unit", "amount") VALUES (?, ?, ?, ?)', 9, BOB, "g", 5)
    report = verify()
    assert not report.ok and any("belong to no transaction" in p for p in report.problems)


def test_tamper_balance(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "balance" SET "amount" = "amount" + 1000 WHERE "account" = ? AND "unit" = ?', ALICE, "g")
    report = verify()
    assert not report.ok
    assert report.first_break is None  # the chain itself is intact
    assert report.problems == [f"balance {ALICE} g: stored {60 + 1000}, postings sum 60"]


def test_invented_balance(hub):
    post_n(hub.ledger, 1)
    sql('INSERT INTO "balance" ("account", "unit", "amount") VALUES (?, ?, ?)', BOB, "pts", 500)
    report = verify()
    assert report.problems == [f"balance {BOB} pts: stored 500, postings sum 0"]


def test_tamper_hash(hub):
    post_n(hub.ledger, 5)
    sql('UPDATE "ledger_transaction" SET "hash" = ? WHERE "seq" = ?', "f" * 64, 2)
    problems = assert_broken_at(2)
    assert any(p.startswith("seq 2: stored hash") for p in problems)
    assert any(p.startswith("seq 3: prev_hash") for p in problems)


def test_rehashing_the_altered_transaction_still_breaks_the_next(hub):
    """Recomputing the hash of a forged transaction moves the break to its successor's link."""
    post_n(hub.ledger, 4)
    row = LedgerTransaction.get_by_id(2)
    forged = chain_hash(row.prev_hash, row.seq, "forged-key", row.kind, row.content_hash, row.created_at)
    sql('UPDATE "ledger_transaction" SET "key" = ?, "hash" = ? WHERE "seq" = ?', "forged-key", forged, 2)
    problems = assert_broken_at(3)
    assert problems[0].startswith("seq 3: prev_hash")


def test_tamper_last_hash(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "ledger_transaction" SET "hash" = ? WHERE "seq" = ?', "e" * 64, 3)
    assert_broken_at(3)


def test_tamper_prev_hash(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "ledger_transaction" SET "prev_hash" = ? WHERE "seq" = ?', db.GENESIS_HASH, 2)
    assert_broken_at(2)


def test_tamper_head(hub):
    post_n(hub.ledger, 3)
    sql('UPDATE "ledger_head" SET "hash" = ? WHERE "id" = 1', "d" * 64)
    report = verify()
    assert not report.ok and any("chain head" in p for p in report.problems)
