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
    import textwrap

    from .demo import run_demo
    from .ledger import Ledger, user_carbon, user_points

    summary = run_demo(hub)
    click.echo("Partners:")
    for p in hub.settings.partners.values():
        click.echo(f"  {p.id:<12} {p.name} -> {', '.join(p.scenarios)}")
    click.echo("Batches pushed (partner/scenario):")
    for name, s in summary["results"].items():
        reasons = ", ".join(f"{reason} {n}" for reason, n in s["reasons"].items())
        click.echo(f"  {name:<26} accepted {s['accepted']}, duplicate {s['duplicate']}, rejected {s['rejected']}"
                   f"{f'  ({reasons})' if reasons else ''}")
    if summary["rejections"]:
        click.echo(textwrap.fill("Rejected, by reason: " + ", ".join(
            f"{r} {n}" for r, n in summary["rejections"].items()), width=110, subsequent_indent="  "))
    for benefit, left in summary["codes_left"].items():
        click.echo(f"Voucher codes left for {benefit}: {left} (demo codes)")
    click.echo("Accounts (balance; benefits they can redeem now):")
    for user, account in summary["accounts"].items():
        catalogue = hub.exchange.catalogue(account)
        can = [b["id"] for b in catalogue if b["eligibility"]["can_redeem"]]
        cheapest = min(catalogue, key=lambda b: b["cost"], default=None)
        offer = ", ".join(can) if can or not cheapest else \
            f"none yet ({cheapest['id']} costs {cheapest['cost']} pts)"
        click.echo(f"  {user:<11} {account}  {Ledger.balance(user_carbon(account), 'g'):>7} g"
                   f"  {Ledger.balance(user_points(account), 'pts'):>5} pts  {offer}")
    key = summary["keys"].get("CARBONHUB_KEY_APP") or "<your app key>"
    first = next(iter(summary["accounts"].values()))
    click.echo("\nTry (after `carbonhub serve`):")
    if hub.settings.web.demo_sign_in:
        click.echo("  the user page:    http://127.0.0.1:8080/  (pick a demo account)")
    else:
        click.echo("  the user page:    carbonhub web link demo-alice  (prints a sign-in link)")
    console = next((k.key_env for k in hub.settings.api_keys.values() if "admin" in k.scopes), None)
    if console:
        click.echo(f"  the bank console: http://127.0.0.1:8080/console  (key: {summary['keys'].get(console)})")
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
    """List plugins: version, hooks, scenarios, methodologies and connectors."""
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
        if row["connectors"]:
            click.echo(f"  connectors: {', '.join(row['connectors'])}")


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
    """Recompute the hash chain and every balance from postings (the run is recorded for the console)."""
    from .ledger_checks import check_ledger

    report, _ = check_ledger(_hub(ctx), "cli", anchors=anchors)
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
@click.option("--once", is_flag=True, help="Run every job once now, print what each did, and exit "
                                           "(no election: the jobs are safe to run beside a leader).")
@click.option("--standby-retry-s", default=15, show_default=True, type=click.IntRange(1, 3600),
              help="On PostgreSQL, how often a standby worker tries to take the lead.")
@click.pass_context
def worker(ctx: click.Context, once: bool, standby_retry_s: int) -> None:
    """Run the scheduled jobs: pull connectors, points expiry, stale redemption holds, monthly aggregation,
    daily ledger verification.

    With several workers on PostgreSQL, one leads (an advisory lock) and the others wait as standbys.
    """
    import time

    from apscheduler.schedulers.blocking import BlockingScheduler

    from .leader import Leadership
    from .scheduler import build_scheduler

    hub = _hub(ctx)
    if once:
        scheduler = build_scheduler(hub)
        _echo_json({job.id: job.func(*job.args) for job in scheduler.get_jobs()})
        return
    leadership = Leadership(hub.settings.database_url)
    while not leadership.try_acquire():
        click.echo(f"standby: another worker runs the jobs; trying again in {standby_retry_s} s", err=True)
        time.sleep(standby_retry_s)
    scheduler = build_scheduler(hub, BlockingScheduler(timezone=hub.settings.timezone))
    for job in scheduler.get_jobs():
        click.echo(f"job {job.id}: {job.trigger}", err=True)
    try:
        scheduler.start()  # until interrupted
    except (KeyboardInterrupt, SystemExit):
        pass


@main.command()
@click.option("--exchange", required=True, help="An exchange under [aggregation.exchanges].")
@click.option("--period", metavar="YYYY-MM", help="The month of the acts (bank time zone); default: last month.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_context
def aggregate(ctx: click.Context, exchange: str, period: str | None, as_json: bool) -> None:
    """Pool a month of users' reductions for a carbon exchange and write its report (safe to repeat)."""
    from .aggregation import aggregate as run, parse_period, previous_period
    from .ledger import LedgerError

    hub = _hub(ctx)
    period = period or previous_period(hub.now(), hub.settings.timezone)
    try:
        parse_period(period)
        result, created = run(hub, exchange, period)
    except ValueError as exc:
        _fail(f"error: --period: {exc}")
    except LedgerError as exc:
        _fail(f"error: {exc.code}: {exc}", 1)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{'aggregated' if created else 'already aggregated (nothing new)'}: {result['id']}")
    click.echo(f"  {result['behaviours']} behaviours of {result['accounts']} users, {result['grams']} g into "
               f"@pool:{exchange}; adjustments {result['adjustment_grams']} g; net {result['net_tonnes']} t")
    click.echo(f"  {result['points']} points awarded")
    for kind, path in result["files"].items():
        click.echo(f"  {kind}: {path}")


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



# --- points ---------------------------------------------------------------------------------


@main.group()
def points() -> None:
    """Point lots and their expiry."""


@points.command("expire")
@click.pass_context
def points_expire(ctx: click.Context) -> None:
    """Post every expired lot remainder to @expired (what the scheduled job does; safe to repeat)."""
    from .lots import expire_due

    result = expire_due(_hub(ctx))
    click.echo(f"expired {result.points} pts from {result.lots} lot(s)")


@points.command("rebuild")
@click.option("--check", is_flag=True, help="Only compare; exit code 1 when the lots differ from the ledger.")
@click.pass_context
def points_rebuild(ctx: click.Context, check: bool) -> None:
    """Recompute the point lots from the ledger and replace them when they differ."""
    from .lots import rebuild

    _hub(ctx)
    report = rebuild(write=not check)
    for line in report.differences[:50]:
        click.echo(f"  {line}", err=True)
    if report.ok:
        click.echo(f"lots ok: {report.lots} lots from {report.transactions} transactions")
    elif report.written:
        click.echo(f"lots rebuilt: {len(report.differences)} differed; {report.lots} lots from "
                   f"{report.transactions} transactions")
    else:
        click.echo(f"lots DIFFER from the ledger in {len(report.differences)} place(s)", err=True)
        sys.exit(1)


# --- the benefit exchange -------------------------------------------------------------------


@main.group()
def benefits() -> None:
    """The benefit catalogue and its voucher code pools."""


@benefits.command("list")
@click.pass_context
def benefits_list(ctx: click.Context) -> None:
    """Configured benefits: cost, stock taken, codes left."""
    from .codes import codes_left, codes_loaded
    from .db import BenefitStock

    hub = _hub(ctx)
    for bid, conf in sorted(hub.settings.benefits.items()):
        row = BenefitStock.get_or_none(BenefitStock.benefit == bid)
        stock = "unlimited" if conf.stock is None else f"{(row.taken if row else 0)}/{conf.stock} taken"
        pool = f", codes {codes_left(bid)}/{codes_loaded(bid)} left" if codes_loaded(bid) else ""
        state = "on" if conf.enabled else "off"
        click.echo(f"{bid:<24} {state:<3} {conf.cost:>7} pts  partner {conf.partner:<14} {stock}{pool}")


@benefits.command("load-codes")
@click.argument("benefit")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.pass_context
def benefits_load_codes(ctx: click.Context, benefit: str, file: Any) -> None:
    """Add FILE's codes (one per line; blank lines and # comments skipped) to BENEFIT's pool; safe to repeat."""
    from .codes import CodeError, codes_left, load_codes, read_codes

    hub = _hub(ctx)
    if benefit not in hub.registry.benefits:
        _fail(f"error: no plugin registers benefit {benefit!r}")
    try:
        codes = read_codes(file)
    except CodeError as exc:
        _fail(f"error: {file.name}: {exc}")
    added, known = load_codes(benefit, codes, hub.now())
    click.echo(f"loaded {added} code(s) for {benefit} ({known} already there); {codes_left(benefit)} left")
    conf = hub.settings.benefits.get(benefit)
    if conf is not None and conf.stock is not None and conf.stock > codes_left(benefit):
        click.echo(f"warning: benefits.{benefit}.stock allows more redemptions than codes left", err=True)


@main.group()
def redemptions() -> None:
    """Redemptions of benefits and their holds."""


@redemptions.command("void-stale")
@click.pass_context
def redemptions_void_stale(ctx: click.Context) -> None:
    """Void and refund holds past their deadline (what the scheduled job does; safe to repeat)."""
    voided = _hub(ctx).exchange.void_stale()
    for rid in voided:
        click.echo(f"voided {rid}")
    click.echo(f"{len(voided)} hold(s) voided")


@redemptions.command("list")
@click.option("--status", type=click.Choice(["held", "fulfilled", "voided"]), default="held", show_default=True)
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def redemptions_list(ctx: click.Context, status: str, limit: int) -> None:
    """Redemptions in a status, oldest first (held ones are the stuck ones to look at)."""
    from .db import Redemption

    _hub(ctx)
    rows = list(Redemption.select().where(Redemption.status == status)
                .order_by(Redemption.created_at, Redemption.id).limit(limit))
    for r in rows:
        failure = (r.failure or {}).get("code", "")
        click.echo(f"{r.id} {r.account} {r.benefit:<22} {r.cost:>7} pts {r.status:<9} created {r.created_at} "
                   f"deadline {r.deadline_at} attempts {r.attempts} {failure}")
    click.echo(f"{len(rows)} redemption(s)", err=True)


from . import cli_connectors  # noqa: E402,F401  (registers pull and connectors)

from .cli_import import import_command  # noqa: E402  (carbonhub import: docs/import.md)
main.add_command(import_command)
from .cli_plugin import plugin as _plugin_group; main.add_command(_plugin_group)  # noqa: E402,E702
from .cli_web import web as _web_group; main.add_command(_web_group)  # noqa: E402,E702


if __name__ == "__main__":  # pragma: no cover
    main()
