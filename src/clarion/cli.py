"""The ``clarion`` command: serve, db, projects, keys, campaigns."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from clarion.audit import service as audit
from clarion.auth import service as auth
from clarion.auth.keys import PREFIXES, SCOPES, display_prefix, find_keys
from clarion.auth.repository import get_project, list_projects
from clarion.campaigns import service as campaigns
from clarion.campaigns.files import load_spec
from clarion.campaigns.schemas import Status
from clarion.config import get_settings
from clarion.credentials import service as credentials
from clarion.credentials.crypto import Box, load_key
from clarion.errors import ClarionError
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.templating import lint as lint_templates
from clarion.triggers import amplification
from clarion.users import file_import, importer
from clarion.webhooks import service as webhooks

app = typer.Typer(no_args_is_help=True, help="Clarion: API-triggered campaigns, self-hosted.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
projects_app = typer.Typer(no_args_is_help=True, help="Projects.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
campaigns_app = typer.Typer(no_args_is_help=True, help="Campaigns as code.")
users_app = typer.Typer(no_args_is_help=True, help="Users: bulk import.")
template_app = typer.Typer(no_args_is_help=True, help="Templates: lint before you save.")
providers_app = typer.Typer(no_args_is_help=True, help="Provider credentials (stored sealed).")
app.add_typer(db_app, name="db")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(users_app, name="users")
app.add_typer(template_app, name="template")
app.add_typer(providers_app, name="providers")
webhooks_app = typer.Typer(no_args_is_help=True, help="Delivery-event webhook endpoints.")
admin_app = typer.Typer(no_args_is_help=True, help="Console accounts.")
app.add_typer(admin_app, name="admin")
app.add_typer(webhooks_app, name="webhooks")


@app.command(
    "plan",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def plan_commands(ctx: typer.Context) -> None:
    """Trigger plans: validate [PATH] [--strict] [--json], init, check (the client SDK's
    `clix-trigger plan ...`, the same code)."""
    from clarion_client.cli import main as client_cli

    raise typer.Exit(code=client_cli(["plan", *ctx.args], prog="clarion"))


@app.command("mcp")
def mcp_server(
    allow_broadcast: Annotated[
        bool,
        typer.Option(
            "--allow-broadcast", help="Let trigger_campaign send without explicit targets."
        ),
    ] = False,
) -> None:
    """Model Context Protocol server over stdio, for coding agents: docs search, campaigns,
    plan checks, dry runs, test sends, delivery explanations. Credentials: CLIX_PROJECT_ID,
    CLIX_API_KEY, CLIX_BASE_URL (as for the client SDK)."""
    from clarion_client import Client
    from clarion_client.config import MissingCredentialsError

    from clarion.mcp_server.server import build

    try:
        client = Client()
    except MissingCredentialsError as exc:
        raise _fail(str(exc)) from None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per call is noise here
    with client:
        build(client, allow_broadcast=allow_broadcast).run("stdio")


# Piped or captured output gets wide lines, so that ids and tables are never folded.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--project", "-p", envvar="CLARION_PROJECT", help="Project id (default: the only one)."
    ),
]


def _db() -> Database:
    settings = get_settings()
    url = settings.resolved_database_url()
    upgrade(url)
    return Database(url)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn an expected failure into a one-line error and exit code 1 (no traceback)."""
    try:
        yield
    except ClarionError as exc:
        raise _fail(exc.message) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")) from None


def _id_column() -> Column:
    return Column("id", no_wrap=True, min_width=36)


def _project(db: Database, project: str | None) -> str:
    if project:
        return project
    with db.read() as session:
        projects = list_projects(session)
    if len(projects) == 1:
        return projects[0].id
    raise _fail(
        "several projects exist; pass --project ID (see `clarion projects list`)"
        if projects
        else "no project yet; create one with `clarion projects create NAME`"
    )


def _long_lived() -> None:
    """Everything a server or worker has built by now (the app, SQLAlchemy's metadata,
    compiled statements) lives for the whole process: move it out of the collector's sight
    so that full collections stay short, and collect the young generation less often (a
    request, and a delivery step, allocate a lot). For the API, full collections were the 2%
    of trigger requests near 100 ms in bench/trigger.py; for a worker process delivering a
    broadcast, the collector took 6.5% of its instructions, and these settings took 6.6% off
    the total (callgrind, delivering 20,000 messages: 2.89 against 3.10 billion)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (CLARION_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (CLARION_PORT).")] = None,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker.")] = True,
    demo: Annotated[
        bool | None, typer.Option(help="Seed and print the demo (CLARION_DEMO).")
    ] = None,
) -> None:
    """Migrate, then serve the API (and the embedded worker) until interrupted."""
    import uvicorn

    from clarion.app import create_app
    from clarion.demo_data.seed import curl_command, ensure_demo
    from clarion.runner.helpers import default_count
    from clarion.runner.worker import EngineUnavailable

    settings = get_settings()
    settings.host = host or settings.host
    settings.port = port or settings.port
    settings.embedded_worker = worker and settings.embedded_worker
    # The API's event loop, the commit thread and the embedded worker share one GIL. Hand it
    # over every millisecond instead of every 5 so that a busy worker cannot hold a request
    # back for long (measured in bench/trigger.py: p99 latency).
    sys.setswitchinterval(0.001)
    upgrade(settings.resolved_database_url())
    try:
        processes = settings.worker_processes
        application = create_app(
            settings, worker_processes=default_count() if processes is None else processes
        )
    except EngineUnavailable as exc:
        out.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    base = f"http://{settings.host}:{settings.port}"
    if settings.demo if demo is None else demo:
        info = ensure_demo(application, application.state.clarion.db)
        out.print(
            f"\n[bold]Clarion[/bold] on {base}  (database: {settings.display_database_url()})"
        )
        out.print(f"Demo project id: [bold]{info.project_id}[/bold]")
        out.print(
            f"Demo secret key: [bold]{info.secret_key}[/bold]  (shown once; a new one each start)"
        )
        out.print(f"Demo campaign:   New pickup order, id [bold]{info.campaign_id}[/bold]\n")
        out.print("Trigger it (paste into another terminal):\n")
        out.print(curl_command(base, info), markup=False, highlight=False, soft_wrap=True)
        out.print(
            "\nThen read the message log: GET /api/v1/triggers/<trigger_id>/messages "
            "with the same two headers.\n"
        )
    if token := application.state.console_setup_token:
        out.print(f"No console admin yet. Create one: {base}/console/setup?token={token}\n")
    _long_lived()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",  # a failing start-up stops the server instead of running workerless
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Worker threads (CLARION_WORKER_THREADS).", min=1, max=64)
    ] = None,
    drain_seconds: Annotated[
        float, typer.Option(help="On SIGTERM, how long to let held jobs finish.")
    ] = 30.0,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics on this port (0: no).")
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics port binds.")] = (
        "127.0.0.1"
    ),
    helper_of: Annotated[int, typer.Option(hidden=True)] = 0,
) -> None:
    """Run a worker without the API: it delivers what the API nodes accept (run those with
    `clarion serve --no-worker`). SIGTERM or Ctrl-C drains: no new jobs are claimed, and the
    jobs held are finished before it exits."""
    import signal
    import threading

    from clarion.delivery.providers.registry import build_registry
    from clarion.runner.helpers import die_with
    from clarion.runner.worker import EngineUnavailable, build_worker

    # --helper-of PID: a worker process of the `clarion serve` PID (runner.helpers), which
    # dies with it and leaves resuming a dead server's jobs to the next server.
    if helper_of and not die_with(helper_of):
        raise typer.Exit(1)
    settings = get_settings()
    url = settings.resolved_database_url()
    if not helper_of:
        upgrade(url)
    db = Database(url, settings.database_lock_timeout_seconds, background_checkpoints=True)
    if db.is_sqlite and not helper_of:
        out.print("SQLite: run one worker in all (this one, beside `clarion serve --no-worker`);"
                  " several workers need PostgreSQL.")  # fmt: skip
    box = Box(load_key(settings))
    providers = build_registry(settings, db, box)
    concurrency = concurrency or settings.worker_threads
    try:
        running = build_worker(settings, db, box, providers, concurrency, helper=bool(helper_of))
    except EngineUnavailable as exc:
        out.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if metrics_port:
        from prometheus_client import start_http_server

        from clarion import metrics

        metrics.watch_queue(db, running.engine.name)
        start_http_server(metrics_port, metrics_host, registry=metrics.REGISTRY)
        out.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _long_lived()
    running.start()
    out.print(f"worker running ({running.engine.name} engine, concurrency {concurrency}, "
              f"database: {settings.display_database_url()}); SIGTERM drains and stops "
              "it")  # fmt: skip
    while not stop.wait(0.5):  # a timed wait, so that the signal handlers run promptly
        if helper_of and os.getppid() != helper_of:
            break  # the server is gone (where the kernel does not kill helpers with it)
    out.print("draining: finishing the jobs held, claiming no more")
    running.stop(drain_seconds)
    providers.close()
    db.dispose()
    out.print("worker stopped")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations."""
    upgrade(get_settings().resolved_database_url())
    out.print("database is at the latest revision")


SchemesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--url-scheme",
        help="The app's own deep-link scheme (myshop for myshop://...), allowed in URL "
        "fields besides https. Repeat for several.",
    ),
]


@projects_app.command("create")
def projects_create(name: str, url_scheme: SchemesOpt = None) -> None:
    """Create a project with one secret and one public key."""
    db = _db()
    with _reported(), db.write() as session:
        project = auth.create_project(session, name, url_scheme or [])
        secret = auth.create_key(session, project.id, "secret", "initial secret key", SCOPES)
        public = auth.create_key(session, project.id, "public", "initial public key")
    out.print(f"project id:  {project.id}")
    out.print(f"secret key:  {secret.plaintext}   (server calls, every scope; shown once)")
    out.print(f"public key:  {public.plaintext}   (mobile SDKs; shown once)")


@projects_app.command("list")
def projects_list() -> None:
    db = _db()
    with db.read() as session:
        for p in list_projects(session):
            schemes = ", ".join(p.url_schemes or []) or "-"
            out.print(f"{p.id}  {p.name}  (deep-link schemes: {schemes})")


@projects_app.command("set-rate-limit")
def projects_set_rate_limit(
    limit: Annotated[int | None, typer.Argument(help="requests/s; omit for the default")] = None,
    project: ProjectOpt = None,
) -> None:
    """The project's API rate limit (token bucket with a one-second burst)."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        auth.set_rate_limit(session, project_id, limit)
    default = get_settings().rate_limit_per_second
    out.print(f"rate limit: {limit if limit is not None else default} requests/s"
              + ("" if limit is not None else " (the default)"))  # fmt: skip


@projects_app.command("set-frequency-cap")
def projects_set_frequency_cap(
    channel: Annotated[str, typer.Option(help="push, in_app, email or webhook")] = "push",
    max_messages: Annotated[
        int | None, typer.Option("--max", help="messages per user ... (omit: no cap)")
    ] = None,
    per_hours: Annotated[float, typer.Option(help="... per this many hours")] = 24.0,
    project: ProjectOpt = None,
) -> None:
    """At most N messages of a channel per user per period, across campaigns (transactional
    campaigns are exempt unless they opt in)."""
    _change_delivery(project, lambda d: _with_cap(d, channel, max_messages, per_hours))


@projects_app.command("set-quiet-hours")
def projects_set_quiet_hours(
    start: Annotated[str | None, typer.Option(help="HH:MM local (omit both: none)")] = None,
    end: Annotated[str | None, typer.Option(help="HH:MM local")] = None,
    action: Annotated[str, typer.Option(help="delay (until it ends) or drop")] = "delay",
    project: ProjectOpt = None,
) -> None:
    """No sends in this window of the device's local time (urgent campaigns go through)."""
    window = {"start": start, "end": end, "action": action} if start or end else None
    _change_delivery(project, lambda d: {**d, "quiet_hours": window})


def _with_cap(
    current: dict[str, Any], channel: str, max_messages: int | None, per_hours: float
) -> dict[str, Any]:
    caps = dict(current.get("frequency_caps") or {})
    caps.pop(channel, None)
    if max_messages is not None:
        caps[channel] = {"max": max_messages, "per_hours": per_hours}
    return {**current, "frequency_caps": caps}


def _change_delivery(
    project: str | None, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    from pydantic import ValidationError

    from clarion.delivery import controls

    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        current = controls.project_settings(session, project_id).model_dump(mode="json")
        try:
            wanted = controls.ProjectDelivery.model_validate(change(current))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _fail(f"{where}: {first['msg']}") from None
        saved = controls.save_project_settings(session, project_id, wanted, audit.CLI)
    out.print(json.dumps(saved.model_dump(mode="json"), indent=2))


@projects_app.command("set-broadcast-limit")
def projects_set_broadcast_limit(
    multiplier: Annotated[
        float | None, typer.Argument(help="times the device count per 15 min; omit: default")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """How much broadcasts may send per 15 minutes, as a multiple of the device count."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        amplification.set_multiplier(session, project_id, multiplier)
    value = multiplier if multiplier is not None else get_settings().broadcast_multiplier
    out.print(f"broadcasts may reach {value:g} x the device count per 15 minutes"
              + ("" if multiplier is not None else " (the default)"))  # fmt: skip


@projects_app.command("set-url-schemes")
def projects_set_url_schemes(project: ProjectOpt = None, url_scheme: SchemesOpt = None) -> None:
    """Replace the project's deep-link schemes (none given: https only)."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        row = get_project(session, project_id)
        if row is None:
            raise _fail(f"no project {project_id!r} (see `clarion projects list`)")
        auth.set_url_schemes(session, row, url_scheme or [])
        schemes = ", ".join(row.url_schemes) or "none (https only)"
    out.print(f"deep-link schemes: {schemes}")


ScopeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="What a secret key may do: trigger, ingest, read, admin. Repeat for several; "
        "none given: trigger only (least privilege). Public keys have ingest alone.",
    ),
]


@keys_app.command("create")
def keys_create(
    project: ProjectOpt = None,
    kind: Annotated[str, typer.Option(help="secret or public")] = "secret",
    name: Annotated[str, typer.Option(help="A label for listings.")] = "",
    scope: ScopeOpt = None,
) -> None:
    if kind not in ("secret", "public"):
        raise _fail("--kind must be secret or public")
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        key = auth.create_key(
            session, project_id, "secret" if kind == "secret" else "public", name, scope
        )
        scopes = ", ".join(key.row.scopes)
    out.print(f"key id: {key.row.id}")
    out.print(f"key:    {key.plaintext}   (shown once; stored only as a hash)")
    out.print(f"scopes: {scopes}")


@keys_app.command("list")
def keys_list(project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    table = Table(_id_column(), "kind", "scopes", "prefix", "name", "created", "last used",
                  "state")  # fmt: skip
    with db.read() as session:
        for k in auth.list_keys(session, project_id):
            table.add_row(
                k.id,
                k.kind,
                ",".join(k.scopes),
                k.prefix,
                k.name,
                f"{k.created_at:%Y-%m-%d %H:%M}",
                f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
                if k.revoked_at
                else f"expires {k.expires_at:%Y-%m-%d %H:%M}"
                if k.expires_at
                else "active",
            )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        auth.revoke_key(session, project_id, key_id)
    out.print(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    project: ProjectOpt = None,
    overlap_hours: Annotated[
        float, typer.Option(help="How long the old key keeps working (0: it stops now).")
    ] = 24,
) -> None:
    """Make a new key like KEY_ID (kind, name, scopes); the old one ends after the overlap."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        new = auth.rotate_key(session, project_id, key_id, timedelta(hours=overlap_hours))
        ends = auth.key_ends(session, key_id)
    out.print(f"key id: {new.row.id}")
    out.print(f"key:    {new.plaintext}   (shown once; stored only as a hash)")
    out.print(f"the old key {key_id} works until {ends:%Y-%m-%d %H:%M:%S} UTC")


@keys_app.command("scan")
def keys_scan(files: list[Path]) -> None:
    """Find Clarion keys in files, offline, by their checksum (exit 1 if any is found). It
    says which file and line, and the key's first characters, never the whole key."""
    found = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise _fail(f"{path}: {exc.strerror}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            for key in find_keys(line):
                found += 1
                kind = "secret" if key.startswith(PREFIXES["secret"]) else "public"
                out.print(f"{path}:{number}: a Clarion {kind} key ({display_prefix(key)})")
    if found:
        out.print(f"{found} key(s) found: revoke them (clarion keys revoke) and make new ones")
        raise typer.Exit(1)
    out.print("no Clarion key found")


@campaigns_app.command("apply")
def campaigns_apply(file: Path, project: ProjectOpt = None) -> None:
    """Create or update (by name) the campaign described by a YAML or JSON file."""
    db = _db()
    project_id = _project(db, project)
    with _reported():
        spec = load_spec(file)
        with db.write() as session:
            campaign, created = campaigns.apply(session, project_id, spec)
    verb = "created" if created else "updated"
    out.print(f"{verb} {campaign.name!r} (version {campaign.version}, {campaign.status})")
    out.print(campaign.id)


@campaigns_app.command("list")
def campaigns_list(project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    table = Table(_id_column(), "name", "channel", "type", "status", "version")
    with db.read() as session:
        for c in campaigns.list_campaigns(session, project_id):
            table.add_row(c.id, c.name, c.channel, c.type, c.status, str(c.version))
    out.print(table)


@campaigns_app.command("show")
def campaigns_show(campaign_id: str, project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.read() as session:
        campaign = campaigns.to_out(session, campaigns.get(session, project_id, campaign_id))
    out.print_json(json.dumps(campaign.model_dump(mode="json")))


def _set_status(campaign_id: str, project: str | None, status: Status) -> None:
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        campaign = campaigns.get(session, project_id, campaign_id)
        campaigns.set_status(session, campaign, status)
    out.print(f"{campaign.name!r} is now {status}")


@campaigns_app.command("activate")
def campaigns_activate(campaign_id: str, project: ProjectOpt = None) -> None:
    _set_status(campaign_id, project, "active")


@campaigns_app.command("pause")
def campaigns_pause(campaign_id: str, project: ProjectOpt = None) -> None:
    _set_status(campaign_id, project, "paused")


@campaigns_app.command("archive")
def campaigns_archive(campaign_id: str, project: ProjectOpt = None) -> None:
    _set_status(campaign_id, project, "archived")


def _box() -> Box:
    return Box(load_key(get_settings()))


@providers_app.command("set-fcm")
def providers_set_fcm(
    service_account: Annotated[Path, typer.Argument(help="The service-account JSON file.")],
    project: ProjectOpt = None,
) -> None:
    """Store FCM credentials for the project (encrypted; never shown again)."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        saved = credentials.set_fcm(session, _box(), project_id, service_account.read_bytes())
    shown = ", ".join(f"{k}={v}" for k, v in saved.settings.items())
    out.print(f"fcm configured ({shown})")


@providers_app.command("set-apns")
def providers_set_apns(
    key_file: Annotated[Path, typer.Argument(help="The APNs auth key (.p8 file).")],
    key_id: Annotated[str, typer.Option(help="The key's 10-character id.")],
    team_id: Annotated[str, typer.Option(help="The Apple developer team id.")],
    topic: Annotated[str, typer.Option(help="The app's bundle id.")],
    project: ProjectOpt = None,
) -> None:
    """Store APNs credentials for the project (encrypted; never shown again)."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        key = key_file.read_text(encoding="utf-8")
        saved = credentials.set_apns(session, _box(), project_id, key, key_id, team_id, topic)
    shown = ", ".join(f"{k}={v}" for k, v in saved.settings.items())
    out.print(f"apns configured ({shown})")


@providers_app.command("set-smtp")
def providers_set_smtp(
    host: Annotated[str, typer.Option(help="The relay's name or address.")],
    from_address: Annotated[str, typer.Option(help="The sender's address.")],
    port: Annotated[int, typer.Option(help="587 for STARTTLS, 465 for TLS.")] = 587,
    security: Annotated[str, typer.Option(help="starttls | tls | none")] = "starttls",
    username: Annotated[str, typer.Option(help="Empty: no login.")] = "",
    from_name: Annotated[str, typer.Option(help="The sender's display name.")] = "",
    project: ProjectOpt = None,
) -> None:
    """Store the project's SMTP relay; the password is read from SMTP_PASSWORD (never from
    the command line, where other users and the shell history could see it)."""
    import os

    settings = {"host": host, "port": port, "security": security, "username": username,
                "password": os.environ.get("SMTP_PASSWORD", ""), "from_address": from_address,
                "from_name": from_name}  # fmt: skip
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        saved = credentials.set_smtp(session, _box(), project_id, settings)
    shown = ", ".join(f"{k}={v}" for k, v in saved.settings.items())
    out.print(f"smtp configured ({shown})")


@providers_app.command("set-webhook-secret")
def providers_set_webhook_secret(
    secret: Annotated[str | None, typer.Option(help="whsec_...; omit for a new one.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Set (or make) the secret that signs the webhook channel's requests; printed once."""
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        _, made = credentials.set_webhook_secret(session, _box(), project_id, secret)
    out.print(f"webhook channel signing secret (shown once): {made}")


@providers_app.command("list")
def providers_list(project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with db.read() as session:
        for item in credentials.describe(session, project_id):
            shown = ", ".join(f"{k}={v}" for k, v in item.settings.items()) or "-"
            out.print(
                f"{item.provider}: {'configured' if item.configured else 'not set'} ({shown})"
            )


@providers_app.command("remove")
def providers_remove(provider: str, project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        credentials.remove(session, project_id, provider)
    out.print(f"{provider} credentials removed")


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="The admin's e-mail address (the sign-in name).")],
) -> None:
    """Create a console admin. The password is read from CLARION_ADMIN_PASSWORD, or asked
    for (hidden, twice); it is stored as an argon2id hash."""
    import os

    from clarion.console import accounts

    password = os.environ.get("CLARION_ADMIN_PASSWORD") or typer.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    settings = get_settings()
    upgrade(settings.resolved_database_url())
    db = _db()
    with _reported(), db.write() as session:
        made = accounts.create_admin(session, email, password)
    out.print(f"admin {made.email} created; sign in at /console")


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    event: Annotated[
        list[str] | None, typer.Option(help="An event type to send (repeat); none: all.")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="A static header, Name=value (repeat).")
    ] = None,
    description: str = "",
    project: ProjectOpt = None,
) -> None:
    """Add an endpoint; prints its signing secret, once."""
    headers = dict(h.split("=", 1) for h in header or [] if "=" in h)
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        made = webhooks.create(
            session, _box(), project_id, url=url, event_types=event or [], headers=headers,
            description=description, allowed=get_settings().allowed_networks(),
        )  # fmt: skip
    out.print(f"webhook {made.id} -> {made.url}")
    out.print(f"signing secret (shown once): {made.secret}")


@webhooks_app.command("list")
def webhooks_list(project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with db.read() as session:
        for e in webhooks.list_endpoints(session, project_id):
            out.print(f"{e.id}  {e.url}  {', '.join(e.event_types) or 'all events'}")


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: str, project: ProjectOpt = None) -> None:
    db = _db()
    project_id = _project(db, project)
    with _reported(), db.write() as session:
        webhooks.remove(session, project_id, endpoint_id)
    out.print(f"webhook {endpoint_id} removed")


@template_app.command("lint")
def template_lint(
    files: Annotated[list[Path], typer.Argument(help="Campaign files or template files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Findings as JSON.")] = False,
    url_scheme: SchemesOpt = None,
) -> None:
    """Check templates as a save would: syntax (file:line:col), filters, variables, URL
    schemes; warnings for outputs that render empty. Exit 0 when clean (warnings allowed),
    1 on an error, 2 on a usage error (such as a file that cannot be read)."""
    findings = []
    for path in files:
        try:
            findings += lint_templates.lint(path, tuple(url_scheme or ()))
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[red]error:[/red] {path}: {getattr(exc, 'strerror', None) or exc}")
            raise typer.Exit(code=2) from None
    if as_json:
        print(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        for finding in findings:
            out.print(str(finding), markup=False, highlight=False)
        errors = sum(f.severity == "error" for f in findings)
        out.print(f"{len(files)} file(s): {errors} error(s), {len(findings) - errors} warning(s)")
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(code=1)


@users_app.command("import")
def users_import(
    file: Path,
    project: ProjectOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the suffix)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=20000)] = 2000,
    show_rejects: Annotated[int, typer.Option(help="How many rejected rows to list.")] = 20,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=file_import.MAX_WORKERS,
            help="Processes that read and write the file (default: one per core, up to "
            f"{file_import.MAX_WORKERS}, for files of {file_import.PARALLEL_MIN:,} rows or more).",
        ),
    ] = None,
) -> None:
    """Import users with properties and devices from JSONL or CSV. Bad rows are reported with
    their line numbers and skipped; the good ones are imported. Running it again is harmless."""
    if fmt not in (None, "jsonl", "csv"):
        raise _fail(f"--format must be jsonl or csv, not {fmt!r}")
    db = _db()
    project_id = _project(db, project)
    with db.read() as session:
        if get_project(session, project_id) is None:
            raise _fail(f"no project {project_id!r} (see `clarion projects list`)")
    with _reported():
        total = importer.count_rows(file)
        with Progress(
            TextColumn("[bold]importing[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=not err.is_terminal,
        ) as bar:
            task = bar.add_task("rows", total=total)
            report = file_import.import_file(
                db,
                project_id,
                file,
                "csv" if fmt == "csv" else "jsonl" if fmt else None,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
                workers=workers,
                records=total,
            )
    out.print(
        f"imported {report.rows:,} users ({report.users_created:,} new, "
        f"{report.users_updated:,} updated) and {report.devices:,} devices in "
        f"{report.seconds:.1f} s: {report.rate:,.0f} users/s"
        + (
            f" (value indexes built after the load, in {report.index_seconds:.1f} s)"
            if report.bulk_load
            else ""
        )
    )
    if report.rejected_total:
        out.print(f"[yellow]rejected {report.rejected_total:,} rows[/yellow]:")
        shown = report.rejected[:show_rejects]
        for line, reason in shown:
            out.print(f"  line {line}: {reason}")
        if report.rejected_total > len(shown):
            out.print(f"  ... and {report.rejected_total - len(shown):,} more")
        raise typer.Exit(code=2)


if __name__ == "__main__":
    app()
