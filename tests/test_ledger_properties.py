"""Property tests of the ledger: for any sequence of balanced transfers the books
balance, retries change nothing, reversals undo exactly, and any altered amount
is found at its transaction."""
from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import db
from hub.db import Balance, LedgerHead, LedgerTransaction, Posting, database
from hub.ledger import TxRequest, user_carbon, user_points, verify
from hub.records import PostingRecord

ACCOUNTS = {
    "g": [user_carbon("acc_a"), user_carbon("acc_b"), "@issuer:metro", "@retired", "@pool:cneeex"],
    "pts": [user_points("acc_a"), user_points("acc_b"), "@issuer:metro", "@escrow:redemptions", "@expired"],
}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def transfer(draw):
    unit = draw(st.sampled_from(sorted(ACCOUNTS)))
    source, target = draw(st.lists(st.sampled_from(ACCOUNTS[unit]), min_size=2, max_size=2, unique=True))
    amount = draw(st.integers(min_value=1, max_value=10**12))
    return (PostingRecord(source, unit, -amount), PostingRecord(target, unit, amount))


@st.composite
def requests(draw, min_size=1, max_size=12):
    """Balanced transactions of one to three transfers each, with unique keys."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for i in range(n):
        transfers = draw(st.lists(transfer(), min_size=1, max_size=3))
        postings = tuple(p for pair in transfers for p in pair)
        memo = draw(st.fixed_dictionaries({}, optional={"note": st.text(max_size=20), "n": st.integers()}))
        out.append(TxRequest(key=f"tx-{i}", kind="transfer", postings=postings, memo=memo))
    return out


def reset_ledger() -> None:
    """Empty the ledger between examples (test code only: the ledger never deletes)."""
    with database.atomic():
        Posting.delete().execute()
        LedgerTransaction.delete().execute()
        Balance.delete().execute()
        db.PointLot.delete().execute()  # the lots index the ledger (hub.lots)
        LedgerHead.update(seq=0, hash=db.GENESIS_HASH).where(LedgerHead.id == 1).execute()


def post_in_chunks(ledger, reqs, sizes):
    """Post through ``post`` and ``post_many`` alike, in chunks of the given sizes."""
    results, i, sizes = [], 0, list(sizes) or [1]
    while i < len(reqs):
        size = sizes[len(results) % len(sizes)]
        chunk = reqs[i:i + size]
        if len(chunk) == 1:
            results.append(ledger.post(chunk[0]))
        else:
            with database.atomic():
                results.extend(ledger.post_many(chunk))
        i += len(chunk)
    return results


def stored_balances() -> dict[tuple[str, str], int]:
    return {(b.account, b.unit): b.amount for b in Balance.select()}


def posting_sums() -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for account, unit, amount in Posting.select(Posting.account, Posting.unit, Posting.amount).tuples():
        sums[(account, unit)] += amount
    return dict(sums)


def expected_balances(reqs) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for req in reqs:
        for p in req.postings:
            sums[(p.account, p.unit)] += p.amount
    return {k: v for k, v in sums.items() if v}


def non_zero(balances):
    return {k: v for k, v in balances.items() if v}


@PROPERTY
@given(reqs=requests(), sizes=st.lists(st.integers(min_value=1, max_value=5), max_size=4))
def test_books_balance_for_any_transfers(hub, reqs, sizes):
    reset_ledger()
    results = post_in_chunks(hub.ledger, reqs, sizes)
    assert [tx.seq for tx, _ in results] == list(range(1, len(reqs) + 1))
    balances = stored_balances()
    for unit in ACCOUNTS:
        assert sum(v for (_, u), v in balances.items() if u == unit) == 0
    assert non_zero(balances) == non_zero(posting_sums()) == expected_balances(reqs)
    report = verify()
    assert report.ok, report.problems
    assert report.transactions == len(reqs)


@PROPERTY
@given(reqs=requests(), sizes=st.lists(st.integers(min_value=1, max_value=5), max_size=4),
       retry_sizes=st.lists(st.integers(min_value=1, max_value=5), max_size=4))
def test_posting_the_same_requests_twice_creates_nothing(hub, reqs, sizes, retry_sizes):
    reset_ledger()
    first = post_in_chunks(hub.ledger, reqs, sizes)
    balances = stored_balances()
    head = LedgerHead.get_by_id(1)
    again = post_in_chunks(hub.ledger, reqs, retry_sizes)
    assert [tx.seq for tx, _ in again] == [tx.seq for tx, _ in first]
    assert all(created for _, created in first) and not any(created for _, created in again)
    assert [tx.memo for tx, _ in again] == [dict(r.memo) for r in reqs]
    assert LedgerTransaction.select().count() == len(reqs)
    assert stored_balances() == balances
    assert (LedgerHead.get_by_id(1).seq, LedgerHead.get_by_id(1).hash) == (head.seq, head.hash)
    assert verify().ok


@PROPERTY
@given(data=st.data(), reqs=requests())
def test_reversing_a_subset_undoes_exactly_those(hub, data, reqs):
    reset_ledger()
    seqs = [tx.seq for tx, _ in post_in_chunks(hub.ledger, reqs, [3])]
    chosen = data.draw(st.sets(st.sampled_from(seqs)), label="reversed seqs")
    order = data.draw(st.permutations(sorted(chosen)), label="reversal order")
    for seq in order:
        rev, created = hub.ledger.reverse(seq, "property test")
        assert created and rev.reverses == seq
    kept = [r for r, seq in zip(reqs, seqs) if seq not in chosen]
    assert non_zero(stored_balances()) == expected_balances(kept)
    report = verify()
    assert report.ok, report.problems
    assert report.transactions == len(reqs) + len(chosen)


@PROPERTY
@given(data=st.data(), reqs=requests(),
       delta=st.integers(min_value=-10**6, max_value=10**6).filter(bool))
def test_any_altered_amount_is_found_at_its_transaction(hub, data, reqs, delta):
    reset_ledger()
    post_in_chunks(hub.ledger, reqs, [4])
    assert verify().ok
    ids = [pid for (pid,) in Posting.select(Posting.id).order_by(Posting.id).tuples()]
    target = Posting.get_by_id(data.draw(st.sampled_from(ids), label="posting"))
    Posting.update(amount=Posting.amount + delta).where(Posting.id == target.id).execute()
    report = verify()
    assert not report.ok
    assert report.first_break == target.tx_seq, report.problems
