"""The daily quiz: a few questions a day per user, points for a first correct answer.

Questions are content files (``content/quiz/*.toml``, see ``docs/content.md``).
Each user gets ``[quiz] questions_per_day`` of them per local day (the hub's
time zone), chosen deterministically from sha256 of ``account:day:question``,
so the set is stable all day and differs from day to day and user to user.

A user's first answer to a question is stored (:class:`hub.db.QuizAnswer`) and
is the outcome every retry returns. A correct first answer earns
``points_per_correct`` points, at most ``max_points_per_day`` a local day,
posted through the ledger from ``@issuer:quiz`` to the user's points with the
idempotency key ``quiz:<account>:<question>``: a lot like any other points
(:mod:`hub.lots`), expiring by ``[rewards]``.
"""
from __future__ import annotations

import functools
import hashlib
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peewee as pw

from . import content, db, lots
from .db import Account, QuizAnswer, database
from .ledger import TxRequest, user_points
from .records import PostingRecord

if TYPE_CHECKING:
    from .core import Hub

ISSUER = "@issuer:quiz"
KIND = "quiz_reward"
_ID = content.SLUG


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    explanation: str
    source: str
    article: str | None = None

    def public(self) -> dict[str, Any]:
        """What a user sees before answering: never the answer or the explanation."""
        return {"id": self.id, "question": self.question, "choices": list(self.choices)}


class QuizError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def parse_bank(data: dict[str, Any], source: str) -> list[Question]:
    """The questions of one bank file (``[[questions]]`` tables)."""
    items = data.get("questions")
    if not isinstance(items, list) or not items:
        raise content.ContentError(f"{source}: needs at least one [[questions]] table")
    out = []
    for n, q in enumerate(items, 1):
        where = f"{source}: question {n}"
        unknown = set(q) - {"id", "question", "choices", "answer", "explanation", "source", "article"}
        if unknown:
            raise content.ContentError(f"{where}: unknown keys {sorted(unknown)}")
        qid, choices, answer = q.get("id"), q.get("choices"), q.get("answer")
        if not isinstance(qid, str) or not _ID.match(qid):
            raise content.ContentError(f"{where}: id must be a slug (a-z, 0-9, '-')")
        for key in ("question", "explanation", "source"):
            if not isinstance(q.get(key), str) or not q[key].strip():
                raise content.ContentError(f"{where} ({qid}): {key} must be non-empty text")
        if not isinstance(choices, list) or not 2 <= len(choices) <= 6 or \
                not all(isinstance(c, str) and c.strip() for c in choices):
            raise content.ContentError(f"{where} ({qid}): choices must be 2-6 non-empty texts")
        if type(answer) is not int or not 0 <= answer < len(choices):
            raise content.ContentError(f"{where} ({qid}): answer must be the index (from 0) of a choice")
        out.append(Question(id=qid, question=q["question"].strip(), choices=tuple(c.strip() for c in choices),
                            answer=answer, explanation=q["explanation"].strip(), source=q["source"].strip(),
                            article=q.get("article")))
    return out


@functools.lru_cache(maxsize=8)
def _questions(root: Path) -> dict[str, Question]:
    out: dict[str, Question] = {}
    for path in sorted((root / "quiz").glob("*.toml")):
        with open(path, "rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise content.ContentError(f"{path}: {exc}") from None
        for q in parse_bank(data, str(path)):
            if q.id in out:
                raise content.ContentError(f"{path}: question id {q.id!r} is used twice")
            out[q.id] = q
    return out


def questions(root: Path | None = None) -> dict[str, Question]:
    """Every question of every bank, by id (read once per process)."""
    return _questions(root or content.content_dir())


def local_day(hub: "Hub") -> date:
    return hub.now().astimezone(hub.settings.timezone).date()


def daily_set(account_id: str, day: date, count: int, bank: dict[str, Question] | None = None) -> list[Question]:
    """The ``count`` questions of ``account_id`` on ``day``: deterministic, different per user and day."""
    bank = questions() if bank is None else bank

    def rank(qid: str) -> str:
        return hashlib.sha256(f"{account_id}:{day.isoformat()}:{qid}".encode()).hexdigest()

    return [bank[qid] for qid in sorted(bank, key=rank)[:count]]


def outcome(q: Question, row: QuizAnswer) -> dict[str, Any]:
    """What a user learns after answering: the result, the right choice, the explanation and its source."""
    return {"question_id": q.id, "choice": row.choice, "correct": bool(row.correct), "answer": q.answer,
            "explanation": q.explanation, "source": q.source, "article": q.article, "points": row.points,
            "day": row.day, "transaction": row.seq}


def _require_account(account_id: str) -> None:
    if not Account.select(Account.id).where(Account.id == account_id).exists():
        raise QuizError(404, "not_found", f"No account {account_id!r}.")


def today(hub: "Hub", account_id: str) -> dict[str, Any]:
    """The user's questions of today, each with the outcome once answered."""
    _require_account(account_id)
    day = local_day(hub)
    qs = daily_set(account_id, day, hub.settings.quiz.questions_per_day)
    answered = {r.question: r for r in QuizAnswer.select().where(
        (QuizAnswer.account == account_id) & (QuizAnswer.question.in_([q.id for q in qs])))} if qs else {}
    return {"account": account_id, "day": day.isoformat(),
            "questions": [{**q.public(), "result": outcome(q, answered[q.id]) if q.id in answered else None}
                          for q in qs]}


def answer(hub: "Hub", account_id: str, question_id: str, choice: int) -> tuple[dict[str, Any], bool]:
    """Answer a question of today's set; returns ``(outcome, created)``.

    Answering again returns the first outcome (``created`` False) and awards nothing.
    """
    _require_account(account_id)
    q = questions().get(question_id)
    if q is None:
        raise QuizError(404, "unknown_question", f"No quiz question {question_id!r}.",
                        {"question_id": ["Unknown question."]})
    existing = QuizAnswer.get_or_none((QuizAnswer.account == account_id) & (QuizAnswer.question == q.id))
    if existing is not None:
        return outcome(q, existing), False
    settings = hub.settings.quiz
    day = local_day(hub)
    if q not in daily_set(account_id, day, settings.questions_per_day):
        raise QuizError(409, "not_in_todays_quiz", f"Question {q.id!r} is not in today's quiz of this account.",
                        {"question_id": ["Not in today's set."]})
    if not 0 <= choice < len(q.choices):
        raise QuizError(422, "validation_error", "The choice is out of range; see fields.",
                        {"choice": [f"Must be between 0 and {len(q.choices) - 1}."]})
    now = hub.now()
    posted = None
    with database.atomic():
        db.lock_ledger()  # answers of one user are serialised: the daily cap and the first answer hold
        existing = QuizAnswer.get_or_none((QuizAnswer.account == account_id) & (QuizAnswer.question == q.id))
        if existing is not None:
            return outcome(q, existing), False
        points = 0
        if choice == q.answer:
            earned = (QuizAnswer.select(pw.fn.COALESCE(pw.fn.SUM(QuizAnswer.points), 0))
                      .where((QuizAnswer.account == account_id) & (QuizAnswer.day == day.isoformat())).scalar())
            points = max(0, min(settings.points_per_correct, settings.max_points_per_day - int(earned or 0)))
        seq = None
        if points:
            memo = {"quiz": q.id, "account": account_id, "day": day.isoformat(), "points": points,
                    **lots.expiry_memo(hub.settings, now)}
            req = TxRequest(key=f"quiz:{account_id}:{q.id}", kind=KIND, memo=memo, postings=(
                PostingRecord(ISSUER, "pts", -points), PostingRecord(user_points(account_id), "pts", points)))
            ((posted, _),) = hub.ledger.post_many([req])
            seq = posted.seq
        row = QuizAnswer.create(account=account_id, question=q.id, day=day.isoformat(), choice=choice,
                                correct=choice == q.answer, points=points, seq=seq, answered_at=db.to_db(now))
    if posted is not None:
        hub.notify("carbonhub_transaction_posted", transaction=posted)
    return outcome(q, row), True
