"""Science articles: short explanations of how each scenario's reduction is counted (public)."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from .. import content
from .errors import ApiError
from .routing import PUBLIC, ApiBlueprint

bp = ApiBlueprint("science", __name__, tag="science",
                  description="Articles explaining the methodologies and the science behind them (public).")


class ArticleSummarySchema(Schema):
    slug = fields.String(required=True)
    title = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    scenario = fields.String(allow_none=True, metadata={
        "description": "The scenario whose methodology the article explains, or null for a general article."})


class ArticleSchema(ArticleSummarySchema):
    sources = fields.List(fields.String(), required=True, metadata={"description": "Cited sources."})
    format = fields.String(required=True, metadata={"description": "Format of body: always markdown."})
    body = fields.String(required=True, metadata={"description": "The article text (Markdown)."})


@bp.operation("/science", "GET", summary="List science articles", auth=PUBLIC, response=ArticleSummarySchema,
              many=True, description="Public: no key needed. Every article, sorted by slug; `scenario` names "
                                     "the scenario it explains (see `science` in GET /v1/scenarios).")
def list_articles() -> Any:
    return [a.summary() for a in content.articles().values()]


@bp.operation("/science/<slug>", "GET", summary="Read a science article", auth=PUBLIC, response=ArticleSchema,
              errors={404: "No such article (`not_found`)."},
              description="Public: no key needed. The article's title, tags, sources and Markdown body.")
def get_article(slug: str) -> Any:
    article = content.articles().get(slug)
    if article is None:
        raise ApiError(404, "not_found", f"No article {slug!r}.")
    return article.as_dict()
