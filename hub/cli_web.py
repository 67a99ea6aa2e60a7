"""``carbonhub web link <user>``: a sign-in link to the user page (docs/web.md)."""
from __future__ import annotations

import click

from .cli import _fail, _hub


@click.group("web")
def web() -> None:
    """The user page (/) and the bank's console (/console)."""


@web.command("link")
@click.argument("user")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True, help="The hub's public address.")
@click.option("--ttl-s", type=click.IntRange(30, 7 * 86_400), help="Seconds the link may be opened "
              "(default: [web] sign_in_link_ttl_s).")
@click.pass_context
def link(ctx: click.Context, user: str, base_url: str, ttl_s: int | None) -> None:
    """Print a link that opens the user page signed in as USER (an account id or a bank_ref)."""
    from . import db
    from .web.sessions import WebNotConfigured, make_sign_in_token

    hub = _hub(ctx)
    row = db.Account.get_or_none((db.Account.id == user) | (db.Account.bank_ref == user))
    if row is None:
        _fail(f"No account with id or bank_ref {user!r}.")
    try:
        token, expires = make_sign_in_token(hub, row.id, ttl_s)
    except WebNotConfigured as exc:
        _fail(str(exc))
    click.echo(f"{base_url.rstrip('/')}/sign-in/{token}")
    click.echo(f"(for {row.bank_ref}, until {expires.isoformat()})", err=True)
