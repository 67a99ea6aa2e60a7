"""The daily quiz: today's questions for a user, and answering them for points."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from .. import quiz
from .auth import current_hub
from .errors import ApiError
from .routing import ApiBlueprint

bp = ApiBlueprint("quiz", __name__, tag="quiz",
                  description="A few questions a day per user; a first correct answer earns points.")


class QuizResultSchema(Schema):
    question_id = fields.String(required=True)
    choice = fields.Integer(required=True, metadata={"description": "The choice given first (index from 0)."})
    correct = fields.Boolean(required=True)
    answer = fields.Integer(required=True, metadata={"description": "The right choice (index from 0)."})
    explanation = fields.String(required=True)
    source = fields.String(required=True)
    article = fields.String(allow_none=True, metadata={"description": "A science article to read more, or null."})
    points = fields.Integer(required=True, metadata={"description": "Points awarded (0 when wrong or capped)."})
    day = fields.String(required=True, metadata={"description": "Local day of the first answer (YYYY-MM-DD)."})
    transaction = fields.Integer(allow_none=True, metadata={"description": "Ledger seq of the award, or null."})


class QuizQuestionSchema(Schema):
    id = fields.String(required=True)
    question = fields.String(required=True)
    choices = fields.List(fields.String(), required=True)
    result = fields.Nested(QuizResultSchema, allow_none=True, required=True,
                           metadata={"description": "Null until answered; then the first outcome."})


class QuizSchema(Schema):
    account = fields.String(required=True)
    day = fields.String(required=True, metadata={"description": "The local day of this set (YYYY-MM-DD)."})
    questions = fields.List(fields.Nested(QuizQuestionSchema), required=True)


class QuizAnswerBodySchema(Schema):
    question_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    choice = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100),
                            metadata={"description": "The index (from 0) of the chosen answer."})


class QuizAnswerSchema(QuizResultSchema):
    first = fields.Boolean(required=True, metadata={
        "description": "True for the first answer; false when this repeats it (nothing more is awarded)."})


def _api_error(exc: quiz.QuizError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.fields)


@bp.operation("/accounts/<account_id>/quiz", "GET", summary="Today's quiz", scope="accounts:read",
              response=QuizSchema, errors={404: "No such account (`not_found`)."},
              description="The user's questions of the local day (`[quiz] questions_per_day`, the same all "
                          "day, another set tomorrow), without answers or explanations; an answered question "
                          "carries its outcome in `result`.")
def get_quiz(account_id: str) -> Any:
    try:
        return quiz.today(current_hub(), account_id)
    except quiz.QuizError as exc:
        raise _api_error(exc) from None


@bp.operation("/accounts/<account_id>/quiz/answers", "POST", summary="Answer a quiz question",
              scope="accounts:write", body=QuizAnswerBodySchema, response=QuizAnswerSchema,
              success={201: "First answer: the outcome, explanation and source", 200: "A repeated answer: the "
                       "first outcome again, nothing awarded"},
              errors={404: "No such account (`not_found`) or question (`unknown_question`, with `fields`).",
                      409: "The question is not in the account's quiz of today (`not_in_todays_quiz`).",
                      422: "Invalid body, or `choice` out of range for the question (`validation_error`)."},
              description="Answers a question of today's set. The first answer is final: a correct one earns "
                          "`[quiz] points_per_correct` points (at most `max_points_per_day` a local day) "
                          "through the ledger (key `quiz:<account>:<question>`), and answering again returns "
                          "the first outcome with status 200 and awards nothing.")
def answer_quiz(account_id: str, body: dict[str, Any]) -> Any:
    try:
        result, created = quiz.answer(current_hub(), account_id, body["question_id"], body["choice"])
    except quiz.QuizError as exc:
        raise _api_error(exc) from None
    return {**result, "first": created}, 201 if created else 200
