"""The daily quiz: a deterministic set per user and day, answers scored once, points through the ledger."""
from __future__ import annotations

from datetime import date

import pytest
from api_helpers import auth, error_of, open_account

from hub import ledger, quiz


def today_set(client, account):
    response = client.get(f"/v1/accounts/{account}/quiz", headers=auth("reader"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def answer(client, account, qid, choice, key="app"):
    return client.post(f"/v1/accounts/{account}/quiz/answers", json={"question_id": qid, "choice": choice},
                       headers=auth(key))


def points(client, account):
    return client.get(f"/v1/accounts/{account}/points", headers=auth("app")).get_json()


def right(qid):
    return quiz.questions()[qid].answer


def wrong(qid):
    return (right(qid) + 1) % len(quiz.questions()[qid].choices)


def test_daily_set_has_no_answers_and_is_stable(client, hub):
    acc = open_account(client, "quiz-1")
    body = today_set(client, acc)
    assert body["day"] == "2026-11-21" and len(body["questions"]) == hub.settings.quiz.questions_per_day == 3
    for q in body["questions"]:
        assert set(q) == {"id", "question", "choices", "result"} and q["result"] is None
    text = str(body)
    for q in body["questions"]:
        assert quiz.questions()[q["id"]].explanation not in text
    assert today_set(client, acc) == body


def test_another_day_or_user_gets_another_set(client, clock):
    acc, other = open_account(client, "quiz-2"), open_account(client, "quiz-3")
    first = [q["id"] for q in today_set(client, acc)["questions"]]
    days = [[q.id for q in quiz.daily_set(acc, date(2026, 11, d), 3)] for d in range(22, 29)]
    assert any(d != first for d in days)
    clock.advance(days=1)
    tomorrow = today_set(client, acc)
    assert tomorrow["day"] == "2026-11-22" and [q["id"] for q in tomorrow["questions"]] == days[0]
    others = [[q.id for q in quiz.daily_set(u, date(2026, 11, 21), 3)] for u in (other, "x1", "x2", "x3")]
    assert any(o != first for o in others)


def test_correct_answer_awards_points_once(client, hub):
    acc = open_account(client, "quiz-4")
    qid = today_set(client, acc)["questions"][0]["id"]
    response = answer(client, acc, qid, right(qid))
    assert response.status_code == 201
    out = response.get_json()
    q = quiz.questions()[qid]
    assert out["correct"] and out["first"] and out["points"] == 10 and out["answer"] == q.answer
    assert out["explanation"] == q.explanation and out["source"] == q.source and out["transaction"]
    assert points(client, acc)["balance"] == 10
    again = answer(client, acc, qid, wrong(qid))  # a retry, even with another choice, repeats the first outcome
    assert again.status_code == 200
    assert {**again.get_json(), "first": True} == out
    assert points(client, acc)["balance"] == 10
    listed = today_set(client, acc)["questions"][0]["result"]
    assert listed["correct"] and listed["points"] == 10
    assert ledger.verify().ok


def test_wrong_answer_awards_nothing_and_is_final(client):
    acc = open_account(client, "quiz-5")
    qid = today_set(client, acc)["questions"][0]["id"]
    out = answer(client, acc, qid, wrong(qid)).get_json()
    assert not out["correct"] and out["points"] == 0 and out["transaction"] is None and out["explanation"]
    retry = answer(client, acc, qid, right(qid))
    assert retry.status_code == 200 and not retry.get_json()["correct"]
    assert points(client, acc)["balance"] == 0


def test_daily_cap(client, hub, config_data):
    hub.settings.quiz = type(hub.settings.quiz)(questions_per_day=3, points_per_correct=10, max_points_per_day=25)
    acc = open_account(client, "quiz-6")
    got = [answer(client, acc, q["id"], right(q["id"])).get_json()["points"]
           for q in today_set(client, acc)["questions"]]
    assert got == [10, 10, 5]
    assert points(client, acc)["balance"] == 25
    assert ledger.verify().ok


def test_points_are_a_lot_from_the_quiz_issuer(client, hub):
    acc = open_account(client, "quiz-7")
    qid = today_set(client, acc)["questions"][0]["id"]
    seq = answer(client, acc, qid, right(qid)).get_json()["transaction"]
    from hub.db import LedgerTransaction, PointLot, Posting

    row = LedgerTransaction.get(LedgerTransaction.seq == seq)
    assert row.key == f"quiz:{acc}:{qid}" and row.kind == "quiz_reward" and row.memo["quiz"] == qid
    assert {(p.account, p.amount) for p in Posting.select().where(Posting.tx_seq == seq)} == {
        ("@issuer:quiz", -10), (f"user:{acc}:points", 10)}
    assert PointLot.get((PointLot.account == acc) & (PointLot.seq == seq)).remaining == 10


def test_question_not_in_todays_set_is_409(client):
    acc = open_account(client, "quiz-8")
    todays = {q["id"] for q in today_set(client, acc)["questions"]}
    qid = next(q for q in sorted(quiz.questions()) if q not in todays)
    response = answer(client, acc, qid, 0)
    assert response.status_code == 409 and error_of(response)["code"] == "not_in_todays_quiz"


@pytest.mark.parametrize("body, status, field", [
    ({"question_id": "no-such-question", "choice": 0}, 404, "question_id"),
    ({"choice": 0}, 422, "question_id"),
    ({"question_id": "x"}, 422, "choice"),
    ({"question_id": "x", "choice": "1"}, 422, "choice"),
    ({"question_id": "x", "choice": -1}, 422, "choice"),
])
def test_bad_bodies(client, body, status, field):
    acc = open_account(client, "quiz-9")
    response = client.post(f"/v1/accounts/{acc}/quiz/answers", json=body, headers=auth("app"))
    assert response.status_code == status
    assert field in error_of(response)["fields"]


def test_choice_out_of_range_is_422(client):
    acc = open_account(client, "quiz-10")
    qid = today_set(client, acc)["questions"][0]["id"]
    response = answer(client, acc, qid, len(quiz.questions()[qid].choices))
    assert response.status_code == 422 and "choice" in error_of(response)["fields"]
    assert today_set(client, acc)["questions"][0]["result"] is None


def test_unknown_account_and_scopes(client):
    assert client.get("/v1/accounts/acc_nope/quiz", headers=auth("app")).status_code == 404
    response = answer(client, "acc_nope", "co2e-meaning", 1)
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    acc = open_account(client, "quiz-11")
    qid = today_set(client, acc)["questions"][0]["id"]
    assert answer(client, acc, qid, 0, key="reader").status_code == 403
    assert client.get(f"/v1/accounts/{acc}/quiz").status_code == 401


def test_shipped_banks_are_valid():
    bank = quiz.questions()
    assert len(bank) >= 10
    for q in bank.values():
        assert q.source and q.explanation and 0 <= q.answer < len(q.choices)
