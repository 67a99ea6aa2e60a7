"""Share cards: a picture of a user's carbon value behind an unguessable, revocable, expiring link.

``create`` freezes a snapshot of the account's credited grams for a period
(``all``, ``YYYY`` or ``YYYY-MM`` of the hub's local calendar, as in
:mod:`hub.summary`): the total, the number of credited behaviours, the top
scenario with its title and grams, the local day it was taken and the hub's
display name if it has one. The snapshot holds figures only: no account id,
bank ref or name, so the public link ``/s/<token>`` shows nothing private.

The token (``secrets.token_urlsafe(24)``: 192 random bits) is returned once;
the store keeps only its sha256 (:class:`hub.db.ShareCard`). A share can be
revoked (idempotent) and expires after ``ttl_days``; the public page then
answers 410 ``share_revoked`` / ``share_expired``. A share of a period with
no credited grams is allowed: the card says "No credited reductions yet".
An account has at most :data:`MAX_ACTIVE` active shares (409 ``too_many_shares``).

:func:`render_svg` and :func:`render_png` draw the same 1200x630 card (the
Open Graph image size), the SVG by hand and the PNG with Pillow.
"""
from __future__ import annotations

import hashlib
import io
import re
import secrets
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from . import db
from .accounts import new_id
from .db import Account, ShareCard, database
from .queries import account_exists
from .summary import credited_by_month

if TYPE_CHECKING:
    from .core import Hub

MAX_ACTIVE = 20  # active (neither revoked nor expired) shares per account
MAX_TTL_DAYS = 365
DEFAULT_TTL_DAYS = 30
TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 URL-safe characters, 192 random bits
PERIOD = re.compile(r"^(all|\d{4}|\d{4}-(0[1-9]|1[0-2]))$")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ACTIVE, REVOKED, EXPIRED = "active", "revoked", "expired"


class ShareError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def token_digest(token: str) -> str:
    """What the store keeps of a token: its sha256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def urls(token: str) -> dict[str, str]:
    """The public paths of a share (relative to the hub's public base URL)."""
    return {"url": f"/s/{token}", "svg_url": f"/s/{token}.svg", "png_url": f"/s/{token}.png"}


# --- periods and figures ------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ShareError:
    return ShareError(422, "validation_error", "The request is invalid; see fields.", {field: [message]})


def check_period(hub: "Hub", period: str) -> str:
    """``period`` if it is ``all``, ``YYYY`` or ``YYYY-MM`` (from 2000, not after the local month)."""
    if not isinstance(period, str) or not PERIOD.match(period):
        raise _invalid("period", "Must be 'all', a year (YYYY) or a month (YYYY-MM).")
    if period != "all":
        today = hub.now().astimezone(hub.settings.timezone).date()
        if period[:4] < "2000" or period > today.strftime("%Y-%m")[:len(period)]:
            raise _invalid("period", f"Must be between 2000 and {today.strftime('%Y-%m')} (no future period).")
    return period


def period_words(period: str) -> str:
    """``all`` -> "all time", ``2026`` -> "2026", ``2026-11`` -> "November 2026"."""
    if period == "all":
        return "all time"
    if len(period) == 4:
        return period
    return f"{MONTHS[int(period[5:7]) - 1]} {period[:4]}"


def format_grams(grams: int) -> str:
    """Grams as the card shows them: ``850 g``, or kg with one decimal, rounded down: ``12.3 kg``."""
    if grams >= 1000:
        return f"{grams // 1000:,}.{grams % 1000 // 100} kg"
    return f"{grams:,} g"


def _scenario_title(hub: "Hub", scenario: str) -> str:
    spec = hub.registry.scenarios.get(scenario)
    return spec.title if spec is not None else scenario


def snapshot(hub: "Hub", account_id: str, period: str) -> dict[str, Any]:
    """The card's figures for ``period``: the account's credited behaviours (as :mod:`hub.summary`
    counts them), by local month of ``occurred_at`` (or ``created_at``). Nothing identifies the user."""
    by_scenario: dict[str, int] = defaultdict(int)
    count = 0
    for scenario, month, grams in credited_by_month(hub, account_id):
        if period == "all" or month[:len(period)] == period:
            by_scenario[scenario] += grams
            count += 1
    top = None
    if by_scenario:
        sid = min(by_scenario, key=lambda s: (-by_scenario[s], s))
        top = {"id": sid, "title": _scenario_title(hub, sid), "grams": by_scenario[sid]}
    # hub_name stays null until the config gives the hub a name users see; the card and page show it then.
    return {"period": period, "period_label": period_words(period), "total_g": sum(by_scenario.values()),
            "behaviours": count, "top_scenario": top, "hub_name": None,
            "as_of": hub.now().astimezone(hub.settings.timezone).date().isoformat()}


# --- shares -------------------------------------------------------------------------------------------


def _require_account(account_id: str) -> None:
    if not account_exists(account_id):
        raise ShareError(404, "not_found", f"No account {account_id!r}.")


def status_of(row: ShareCard, now: datetime) -> str:
    if row.revoked_at is not None:
        return REVOKED
    return EXPIRED if db.to_db(now) >= row.expires_at else ACTIVE


def view(row: ShareCard, now: datetime) -> dict[str, Any]:
    """A share as its owner sees it: never the token (it is not stored)."""
    return {"id": row.id, "period": row.period, "status": status_of(row, now),
            "created_at": db.from_db(row.created_at), "expires_at": db.from_db(row.expires_at),
            "revoked_at": db.from_db(row.revoked_at), "card": row.card}


def _active(account_id: str, now: datetime) -> Any:
    return ((ShareCard.account == account_id) & ShareCard.revoked_at.is_null()
            & (ShareCard.expires_at > db.to_db(now)))


def create(hub: "Hub", account_id: str, period: str = "all", ttl_days: int = DEFAULT_TTL_DAYS) -> dict[str, Any]:
    """Make a share card; the answer holds the token, shown this once, and the public paths."""
    _require_account(account_id)
    period = check_period(hub, period)
    if type(ttl_days) is not int or not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise _invalid("ttl_days", f"Must be a whole number of days from 1 to {MAX_TTL_DAYS}.")
    now = hub.now()
    card = snapshot(hub, account_id, period)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with database.atomic():
        # One creator per account at a time, so the limit holds (SQLite's BEGIN IMMEDIATE already serialises).
        if db.is_postgres():
            Account.select(Account.id).where(Account.id == account_id).for_update().get()
        if ShareCard.select().where(_active(account_id, now)).count() >= MAX_ACTIVE:
            raise ShareError(409, "too_many_shares",
                             f"The account already has {MAX_ACTIVE} active shares; revoke one first.")
        row = ShareCard.create(id=new_id("shr"), account=account_id, token_sha256=token_digest(token),
                               period=period, card=card, created_at=db.to_db(now),
                               expires_at=db.to_db(now + timedelta(days=ttl_days)))
    return {**view(row, now), "token": token, **urls(token)}


def list_for(hub: "Hub", account_id: str) -> list[dict[str, Any]]:
    """The account's shares, newest first, with their status (no tokens: the store has none)."""
    _require_account(account_id)
    now = hub.now()
    rows = (ShareCard.select().where(ShareCard.account == account_id)
            .order_by(ShareCard.created_at.desc(), ShareCard.id.desc()))
    return [view(row, now) for row in rows]


def revoke(hub: "Hub", account_id: str, share_id: str) -> dict[str, Any]:
    """Revoke a share of the account; revoking it again changes nothing and returns it."""
    _require_account(account_id)
    now = hub.now()
    where = (ShareCard.id == share_id) & (ShareCard.account == account_id)
    with database.atomic():
        ShareCard.update(revoked_at=db.to_db(now)).where(where & ShareCard.revoked_at.is_null()).execute()
        row = ShareCard.get_or_none(where)
    if row is None:
        raise ShareError(404, "not_found", f"No share {share_id!r} of account {account_id!r}.")
    return view(row, now)


def public(hub: "Hub", token: str) -> dict[str, Any]:
    """The snapshot behind a public token: 404 ``not_found``, 410 ``share_revoked`` or ``share_expired``."""
    row = ShareCard.get_or_none(ShareCard.token_sha256 == token_digest(token)) if len(token) <= 256 else None
    if row is None:
        raise ShareError(404, "not_found", "No such share: the link is wrong or incomplete.")
    status = status_of(row, hub.now())
    if status == REVOKED:
        raise ShareError(410, "share_revoked", "This share was withdrawn by its owner.")
    if status == EXPIRED:
        raise ShareError(410, "share_expired", "This share has expired.")
    return row.card


# --- rendering ----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 1200, 630
BACKGROUND, PANEL, ACCENT, TEXT, MUTED = "#0b3d2e", "#11513d", "#7ed957", "#ffffff", "#b9d9c8"
LEFT = 96
MAX_TEXT = WIDTH - LEFT - 80  # the widest a line may be, in px
SANS = "Helvetica, Arial, sans-serif"
_QUOTE = {'"': "&quot;"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def layout(card: dict[str, Any]) -> list[tuple[str, int, int, str, str]]:
    """The card's lines, as ``(text, x, baseline y, font size px, colour)``: one layout for SVG and PNG."""
    total = int(card.get("total_g") or 0)
    top = card.get("top_scenario")
    count = int(card.get("behaviours") or 0)
    brand = "carbonhub" + (f" · {_clip(card['hub_name'], 40)}" if card.get("hub_name") else "")
    lines = [(brand, LEFT, 118, 40, ACCENT),
             (f"CO2e reduced · {card.get('period_label') or period_words(card.get('period', 'all'))}",
              LEFT, 232, 40, MUTED),
             (format_grams(total), LEFT, 366, 124, TEXT)]
    if top and total > 0:
        lines.append((f"Top: {_clip(top['title'], 40)} · {format_grams(int(top['grams']))}", LEFT, 450, 38, TEXT))
        acts = f"{count:,} credited low-carbon {'act' if count == 1 else 'acts'}"
        lines.append((acts, LEFT, 508, 32, MUTED))
    else:
        period = card.get("period", "all")
        none = "No credited reductions yet" if period == "all" else f"No credited reductions in {period_words(period)}"
        lines.append((none, LEFT, 450, 38, TEXT))
    footer = "Audited reductions, grams CO2e"
    if card.get("as_of"):
        footer += f" · as of {card['as_of']}"
    lines.append((footer, LEFT, 578, 26, MUTED))
    return lines


def render_svg(card: dict[str, Any]) -> str:
    """The card as a standalone SVG document, 1200x630; every text is XML-escaped."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary_text(card), _QUOTE)}">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{BACKGROUND}"/>',
             f'<rect x="0" y="0" width="24" height="{HEIGHT}" fill="{ACCENT}"/>',
             f'<circle cx="{WIDTH - 150}" cy="150" r="86" fill="{PANEL}"/>',
             f'<circle cx="{WIDTH - 150}" cy="150" r="46" fill="{ACCENT}"/>']
    for text, x, y, size, colour in layout(card):
        parts.append(f'<text x="{x}" y="{y}" font-family="{SANS}" font-size="{size}" fill="{colour}">'
                     f'{escape(text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def summary_text(card: dict[str, Any]) -> str:
    """One sentence for screen readers and the page's description."""
    text = f"{format_grams(int(card.get('total_g') or 0))} CO2e reduced, {card.get('period_label', '')}"
    top = card.get("top_scenario")
    if top and card.get("total_g"):
        text += f"; top: {top['title']} ({format_grams(int(top['grams']))})"
    return text + "."


def render_png(card: dict[str, Any]) -> bytes:
    """The same card drawn with Pillow (its built-in font, no system fonts needed), as PNG bytes."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 23, HEIGHT - 1), fill=ACCENT)
    for r, colour in ((86, PANEL), (46, ACCENT)):
        draw.ellipse((WIDTH - 150 - r, 150 - r, WIDTH - 150 + r, 150 + r), fill=colour)
    for text, x, y, size, colour in layout(card):
        font = ImageFont.load_default(size=size)
        while size > 12 and draw.textlength(text, font=font) > MAX_TEXT:  # a long title: smaller, not cut
            size -= 2
            font = ImageFont.load_default(size=size)
        draw.text((x, y), text, fill=colour, font=font, anchor="ls")
    out = io.BytesIO()
    image.save(out, format="PNG")  # optimize=True saves 4% for 5x the time
    return out.getvalue()
