"""``carbonhub pull`` and ``carbonhub connectors``: run and inspect the partners' connectors."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from .cli import _echo_json, _fail, _hub, main


def _since(_ctx: Any, _param: Any, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("an ISO-8601 date-time with its offset, e.g. 2026-11-20T00:00:00+08:00") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give the offset too, e.g. 2026-11-20T00:00:00+08:00")
    return parsed


@main.command()
@click.argument("connector")
@click.option("--since", callback=_since, metavar="ISO", help="Read from here instead of the saved cursor "
                                                               "(the cursor itself never moves back).")
@click.option("--json", "as_json", is_flag=True, help="Print each stream's run as JSON.")
@click.pass_context
def pull(ctx: click.Context, connector: str, since: datetime | None, as_json: bool) -> None:
    """Run every stream of a pull CONNECTOR once now, as the worker's job does."""
    from connectors.http_pull import pull as run_pull

    hub = _hub(ctx)
    try:
        runs = run_pull(hub, connector, since=since)
    except KeyError as exc:
        _fail(f"error: {exc.args[0]}")
    if as_json:
        _echo_json([r.as_dict() for r in runs])
    for r in runs:
        line = (f"{connector}/{r.stream}: {r.status}: {r.pages} page(s), {r.fetched} fetched, {r.skipped} already "
                f"received, {r.accepted} accepted, {r.duplicate} duplicate, {r.rejected} rejected; "
                f"cursor {r.cursor_from or '-'} -> {r.cursor_to or '-'}")
        if r.error:
            line += f"; {r.error['kind']} {r.error['code']}: {r.error['message']}"
        click.echo(line, err=as_json)
    if any(r.status != "ok" for r in runs):
        raise SystemExit(1)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (what GET /v1/admin/connectors "
                                                       "answers).")
@click.pass_context
def connectors(ctx: click.Context, as_json: bool) -> None:
    """Each configured connector: streams, cursor, lag, last run, counts and last error."""
    if ctx.invoked_subcommand is not None:
        return
    from connectors.status import connector_status

    status = connector_status(_hub(ctx))
    if as_json:
        _echo_json(status)
        return
    if not status:
        click.echo("no connectors configured ([connectors.<name>] in config); every partner can push")
    for c in status:
        state = "" if c["enabled"] else " (disabled)"
        every = f", every {c['every_s']} s" if c["every_s"] else ""
        click.echo(f"{c['name']}{state}: {c['mode']} {c['connector']} for {c['partner']}{every}")
        for s in c["streams"]:
            run = s["last_run"]
            last = (f"last run {run['started_at']:%Y-%m-%d %H:%M:%S} {run['status']}: {run['fetched']} fetched, "
                    + ", ".join(f"{v} {k}" for k, v in sorted(run["counts"].items())) if run else "never run")
            lag = f", lag {s['lag_s']} s" if s["lag_s"] is not None else ""
            click.echo(f"  {s['name']}: cursor {s['cursor'] or '-'}{lag}; {last}")
            if s["last_error"]:
                e = s["last_error"]
                click.echo(f"    last error {e['at']:%Y-%m-%d %H:%M:%S}: {e.get('kind')} {e.get('code')}: "
                           f"{e.get('message')}")


@connectors.command("check")
@click.argument("names", nargs=-1)
@click.pass_context
def connectors_check(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Ask each connector (or NAMES) whether it can work: options, secrets, the partner's answer."""
    hub = _hub(ctx)
    bad = 0
    for name in names or sorted(hub.connectors.bound):
        connector = hub.connectors.get(name)
        if connector is None:
            _fail(f"error: no connector {name!r} is configured")
        result = connector.check()
        bad += not result.ok
        reason = f"{result.failure.kind} {result.failure.code}: {result.failure.message}" if result.failure \
            else result.detail
        click.echo(f"{name}: {'ok' if result.ok else 'FAILED'} ({reason})")
    if bad:
        raise SystemExit(1)
