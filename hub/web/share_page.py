"""Public share pages (no key, no sign-in): ``/s/<token>``, ``/s/<token>.svg`` and ``/s/<token>.png``.

The page shows the frozen card of :mod:`hub.shares` and nothing else about the
user. Nothing is cached (``Cache-Control: no-store``), so a revoked or expired
share stops showing at once; the links hold a secret, so the pages are kept out
of search engines and send no referrer. Errors: the page answers an HTML page
with status 404 (``not_found``) or 410 (``share_revoked``, ``share_expired``);
the images answer the API's JSON error shape.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from markupsafe import Markup

from .. import shares
from ..api.errors import error_response

bp = Blueprint("share_page", __name__, template_folder="templates")

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    # The page and the SVG need no script, font or request of their own.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
}


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _hub() -> Any:
    return current_app.extensions["carbonhub"]


@bp.get("/s/<token>")
def page(token: str) -> Any:
    try:
        card = shares.public(_hub(), token)
    except shares.ShareError as exc:
        return render_template("share.html", card=None, error=exc), exc.status
    links = shares.urls(token)
    return render_template(
        "share.html", card=card, error=None, svg=Markup(shares.render_svg(card)),
        summary=shares.summary_text(card), total=shares.format_grams(int(card["total_g"])),
        top_grams=shares.format_grams(int(card["top_scenario"]["grams"])) if card.get("top_scenario") else None,
        page_url=request.url_root.rstrip("/") + links["url"],
        png_url=request.url_root.rstrip("/") + links["png_url"], svg_url=links["svg_url"],
        width=shares.WIDTH, height=shares.HEIGHT)


def _image(token: str, mimetype: str, render: Any) -> Response:
    try:
        card = shares.public(_hub(), token)
    except shares.ShareError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.fields)
    return Response(render(card), mimetype=mimetype)


@bp.get("/s/<token>.svg")
def svg(token: str) -> Response:
    return _image(token, "image/svg+xml", shares.render_svg)


@bp.get("/s/<token>.png")
def png(token: str) -> Response:
    return _image(token, "image/png", shares.render_png)
