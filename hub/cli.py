"""The ``carbonhub`` command."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .config import ConfigError, load_settings, mask_url
from .plugins import PluginError


def _fail(message: str, code: int = 2) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _hub(ctx: click.Context) -> Any:
    """Build the hub once per command; configuration problems exit with code 2."""
    from .core import Hub
    from .methodology import MethodologyError

    obj = ctx.ensure_object(dict)
    if "hub" not in obj:
        try:
            obj["hub"] = Hub(load_settings(obj.get("config")))
        except (ConfigError, PluginError, MethodologyError) as exc:
            _fail(f"error: {exc}")
    return obj["hub"]


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group()
@click.option("--config", "config", envvar="CARBONHUB_CONFIG", type=click.Path(dir_okay=False),
              help="Config file (default config/hub.toml, or $CARBONHUB_CONFIG).")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """carbonhub: partner behaviours in, audited reductions and points out."""
    ctx.ensure_object(dict)["config"] = config


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Load the demo data first.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, demo: bool) -> None:
    """Run the hub's HTTP API (development server; use gunicorn in production)."""
    from .app import create_app

    hub = _hub(ctx)
    hub.init_db()
    if demo:
        _print_demo(hub)
    app = create_app(hub=hub)
    click.echo(f"carbonhub on http://{host}:{port}/v1 (OpenAPI: /openapi.json), database {hub.database.database}")
    app.run(host=host, port=port, threaded=True)


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Create demo accounts, consents and partner records (safe to repeat)."""
    _print_demo(_hub(ctx))


def _print_demo(hub: Any) -> None:
    from .demo import run_demo
    from .ledger import Ledger, user_carbon, user_points

    summary = run_demo(hub)
    click.echo("Partners:")
    for p in hub.settings.partners.values():
        click.echo(f"  {p.id:<12} {p.name} -> {', '.join(p.scenarios)}")
    click.echo("Batches pushed:")
    for name, s in summary["results"].items():
        click.echo(f"  {name:<24} accepted {s['accepted']}, duplicate {s['duplicate']}, rejected {s['rejected']}"
                   f" {s['reasons'] or ''}")
    click.echo("Accounts:")
    for user, account in summary["accounts"].items():
        click.echo(f"  {user:<11} {account}  {Ledger.balance(user_carbon(account), 'g'):>6} g"
                   f"  {Ledger.balance(user_points(account), 'pts'):>5} pts")
    key = summary["keys"].get("CARBONHUB_KEY_APP") or "<your app key>"
    first = next(iter(summary["accounts"].values()))
    click.echo("\nTry (after `carbonhub serve`):")
    click.echo(f"  curl -s -H 'Authorization: Bearer {key}' http://127.0.0.1:8080/v1/accounts/{first}")
    click.echo(f"  curl -s -H 'Authorization: Bearer {key}' http://127.0.0.1:8080/v1/accounts/{first}/ledger")
    click.echo(f"Secrets for local use are in {hub.settings.secrets_file}.")


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("init")
@click.pass_context
def db_init(ctx: click.Context) -> None:
    """Create missing tables and record the schema version (idempotent)."""
    hub = _hub(ctx)
    version = hub.init_db()
    click.echo(f"schema version {version} ready at {mask_url(hub.settings.database_url)}")


@main.group("config")
def config_group() -> None:
    """Configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config (and the plugins it names); print it with secrets masked."""
    hub = _hub(ctx)
    _echo_json(hub.settings.effective(mask=True))
    unset = [n for n in [p.secret_env for p in hub.settings.partners.values()]
             + [k.key_env for k in hub.settings.api_keys.values()] if hub.settings.secret(n) is None]
    if unset:
        click.echo(f"warning: unset secrets (those partners/keys are inactive): {', '.join(unset)}", err=True)
    unchecked = hub.unchecked_partners()
    if unchecked:
        click.echo(f"warning: partners without a kind, so not checked against their scenarios' partner kinds: "
                   f"{', '.join(unchecked)} (set partners.<id>.kind)", err=True)
    click.echo("config ok", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List plugins: version, hooks, scenarios."""
    from .plugins import describe_plugins

    hub = _hub(ctx)
    rows = describe_plugins(hub.pm, hub.registry)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']} {row['version']} (API {row['api']})")
        click.echo(f"  hooks: {', '.join(row['hooks'])}")
        if row["scenarios"]:
            click.echo(f"  scenarios: {', '.join(row['scenarios'])}")
        if row["methodologies"]:
            click.echo(f"  methodologies: {', '.join(row['methodologies'])}")


@main.group()
def ledger() -> None:
    """The append-only ledger."""


def _anchor(_ctx: Any, _param: Any, values: tuple[str, ...]) -> dict[int, str]:
    anchors = {}
    for value in values:
        seq, sep, digest = value.partition(":")
        if not (sep and seq.isdigit() and len(digest) == 64):
            raise click.BadParameter(f"{value!r} is not SEQ:HASH (a seq and a 64-hex-digit hash)")
        anchors[int(seq)] = digest.lower()
    return anchors


@ledger.command("verify")
@click.option("--anchor", "anchors", multiple=True, callback=_anchor, metavar="SEQ:HASH",
              help="A head printed by an earlier verify and kept outside the hub (repeatable).")
@click.pass_context
def ledger_verify(ctx: click.Context, anchors: dict[int, str]) -> None:
    """Recompute the hash chain and every balance from postings."""
    from .ledger import verify

    _hub(ctx)
    report = verify(anchors=anchors)
    if report.ok:
        click.echo(f"ledger ok: {report.transactions} transactions, {report.accounts} account balances")
        click.echo(f"head {report.head_seq}:{report.head_hash} (keep it outside the hub; pass it as --anchor)")
        return
    click.echo(f"ledger BROKEN at seq {report.first_break}:", err=True)
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@ledger.command("reverse")
@click.argument("seq", type=int)
@click.option("--reason", required=True, help="Why; recorded in the reversal's memo.")
@click.pass_context
def ledger_reverse(ctx: click.Context, seq: int, reason: str) -> None:
    """Correct transaction SEQ by posting its reversal (at most one per transaction)."""
    from .ledger import LedgerError

    hub = _hub(ctx)
    try:
        tx, created = hub.reverse(seq, reason)
    except LedgerError as exc:
        _fail(f"error: {exc.code}: {exc}", 1)
    click.echo(f"{'posted' if created else 'already posted'} reversal seq {tx.seq} of seq {seq}")


@main.command()
@click.argument("partner")
@click.argument("file", type=click.File("rb"))
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="The hub's base URL.")
@click.pass_context
def push(ctx: click.Context, partner: str, file: Any, url: str) -> None:
    """Sign and push a partner batch (JSON: {"records": [...]} or a list) over HTTP.

    Uses the partner's secret from the config's environment variable, as the
    partner's own system would; handy to try the API by hand.
    """
    import requests

    from .signing import encode, signed_headers

    settings = load_settings(ctx.obj.get("config"))
    conf = settings.partners.get(partner)
    if conf is None:
        _fail(f"error: unknown partner {partner!r}")
    secret = settings.secret(conf.secret_env)
    if not secret:
        _fail(f"error: {conf.secret_env} is not set")
    data = json.load(file)
    body = encode({"records": data} if isinstance(data, list) else data)
    try:
        response = requests.post(f"{url.rstrip('/')}/v1/partners/{partner}/events", data=body,
                                 headers=signed_headers(partner, secret, body), timeout=60)
    except requests.RequestException as exc:
        _fail(f"error: cannot reach the hub at {url}: {exc.__class__.__name__}")
    click.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
    if response.status_code >= 400:
        sys.exit(1)


@main.group()
def inbox() -> None:
    """Raw partner records and their results."""


@inbox.command("list")
@click.option("--status", type=click.Choice(["accepted", "duplicate", "rejected"]), default="rejected",
              show_default=True)
@click.option("--reason")
@click.option("--partner")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def inbox_list(ctx: click.Context, status: str, reason: str | None, partner: str | None, limit: int) -> None:
    """Show inbox records, rejected ones by default."""
    from .db import InboxRecord

    _hub(ctx)
    query = InboxRecord.select().where(InboxRecord.status == status)
    if reason:
        query = query.where(InboxRecord.reason == reason)
    if partner:
        query = query.where(InboxRecord.partner == partner)
    rows = list(query.order_by(InboxRecord.received_at.desc()).limit(limit))
    for row in rows:
        detail = (row.detail or {}).get("message", "")
        click.echo(f"{row.id} {row.partner:<12} {row.event_id or '-':<28} {row.status:<9} "
                   f"{row.reason or '':<22} {detail}")
    click.echo(f"{len(rows)} record(s)", err=True)


@inbox.command("replay")
@click.option("--partner")
@click.option("--reason")
@click.option("--id", "ids", multiple=True, help="Inbox id (repeatable).")
@click.pass_context
def inbox_replay(ctx: click.Context, partner: str | None, reason: str | None, ids: tuple[str, ...]) -> None:
    """Re-run rejected records after a fix; never credits an act twice."""
    hub = _hub(ctx)
    result = hub.pipeline.replay(partner=partner, reason=reason, ids=list(ids) or None)
    _echo_json(result.summary())


if __name__ == "__main__":  # pragma: no cover
    main()
