"""The `aipress` command line: tokens, tenants, sites (with progress), keys, serve."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key, sign_in_url
from controlplane.kernel.client import ApiError, ControlPlaneClient
from controlplane.kernel.identity import Role
from controlplane.kernel.vocabulary import BulkAction, EventType
from controlplane.settings import Settings, get_settings

app = typer.Typer(help="AIPress: conversational operations for multi-tenant WordPress hosting.")
tenants_app = typer.Typer(help="Tenants (admins).")
sites_app = typer.Typer(help="A tenant's WordPress sites.")
users_app = typer.Typer(help="Users' roles and tenants (admins).")
domains_app = typer.Typer(help="A site's custom domains: claim, prove with a TXT record, remove.")
keys_app = typer.Typer(help="Encryption keys of stored credentials.")
billing_app = typer.Typer(help="Per-tenant costs: aggregation, local metering, reports.")
env_app = typer.Typer(help="A tenant's env vars and secrets, applied to its sites.")
backups_app = typer.Typer(help="Sites' backups: list, back up now, restore, the policy.")
catalogue_app = typer.Typer(help="The platform catalogue: the package zips sites install.")
operations_app = typer.Typer(help="Operations: cancel a bulk.")
bundle_app = typer.Typer(help="The plugins and themes new sites get (a tenant's, the default).")
app.add_typer(tenants_app, name="tenants")
app.add_typer(sites_app, name="sites")
app.add_typer(domains_app, name="domains")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(billing_app, name="billing")
app.add_typer(env_app, name="env")
app.add_typer(backups_app, name="backups")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(operations_app, name="operations")
app.add_typer(bundle_app, name="bundle")
console = Console(soft_wrap=True)
err = Console(stderr=True)

TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="AIPRESS_TOKEN", help="Bearer token to use")
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", envvar="AIPRESS_URL", help="Control-plane URL")
]


def _client(token: str | None, url: str | None) -> ControlPlaneClient:
    settings = get_settings()
    if token is None:
        if settings.provider == "gcp":
            err.print("[red]Set AIPRESS_TOKEN (a Firebase ID token) or pass --token.[/red]")
            raise typer.Exit(2)
        # Whoever can read the local signing key is the machine's admin anyway.
        token = LocalTokenIssuer(settings).issue("cli", Role.ADMIN, ttl_seconds=3600)
    return ControlPlaneClient(url or settings.base_url, token)


def _call(client: ControlPlaneClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return client.request(method, path, **kwargs)
    except ApiError as exc:
        err.print(f"[red]Error {exc.status}:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    except OSError as exc:
        err.print(f"[red]Cannot reach the control plane:[/red] {exc}. Is it running (`make up`)?")
        raise typer.Exit(1) from exc


@app.command()
def token(
    role: Annotated[Role | None, typer.Option(help="admin, operator, viewer or tenant")] = None,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Tenant id (repeat for operators)")
    ] = None,
    sub: Annotated[
        str | None, typer.Option(help="Subject (user id), required: it owns chat threads")
    ] = None,
    email: Annotated[str | None, typer.Option(help="E-mail claim")] = None,
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds")] = None,
) -> None:
    """Mint a locally signed token (embedded default only)."""
    settings = get_settings()
    if settings.provider == "gcp":
        err.print("[red]gcp mode uses Firebase ID tokens; local tokens are refused there.[/red]")
        raise typer.Exit(2)
    if not sub or not sub.strip():
        # One default subject for every token made every tenant's chat threads one owner's.
        err.print("[red]Give --sub <user id> (e.g. --sub alice): a token names its user.[/red]")
        raise typer.Exit(2)
    tenants = list(tenant or [])
    if role is None:
        stored = _stored_user(settings, sub)
        if stored is None:
            err.print(
                f"[red]Give --role: user {sub!r} has no role assigned (aipress users set).[/red]"
            )
            raise typer.Exit(2)
        role, tenants, email = Role(stored["role"]), stored["tenants"], email or stored["email"]
    try:
        typer.echo(
            LocalTokenIssuer(settings).issue(sub, role, tenants, email=email, ttl_seconds=ttl)
        )
    except Exception as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _stored_user(settings: Settings, uid: str) -> dict[str, Any] | None:
    from controlplane.db import make_engine, make_sessionmaker, migrate
    from controlplane.models import User

    engine = make_engine(settings)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        user = session.get(User, uid)
        if user is None:
            return None
        return {"role": user.role, "tenants": list(user.tenants), "email": user.email}


def _local_user_token(settings: Settings, user: str) -> str:
    """An hour's local token for a stored user (their role, tenants and e-mail)."""
    stored = _stored_user(settings, user)
    if stored is None:
        err.print(f"[red]No local user {user!r}; see `aipress users list`.[/red]")
        raise typer.Exit(2)
    return LocalTokenIssuer(settings).issue(
        user, Role(stored["role"]), stored["tenants"], email=stored["email"], ttl_seconds=3600
    )


@app.command()
def chat(
    message: Annotated[
        str | None, typer.Argument(help="Send this one message and exit (else interactive)")
    ] = None,
    user: Annotated[str, typer.Option("--as", help="Local user to chat as (embedded)")] = "admin",
    tenant: Annotated[str | None, typer.Option(help="Tenant to act for (operators)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve confirmations")] = False,
    token: TokenOpt = None,
    url: Annotated[
        str | None, typer.Option("--chat-url", envvar="AIPRESS_CHAT_URL", help="Chatbot URL")
    ] = None,
) -> None:
    """Chat with the agent: streamed answers, tool steps, progress and y/n confirmations."""
    from chatbot.terminal import TerminalChat

    settings = get_settings()
    if token is None:
        if settings.provider == "gcp":
            err.print("[red]Set AIPRESS_TOKEN (a Firebase ID token) or pass --token.[/red]")
            raise typer.Exit(2)
        token = _local_user_token(settings, user)

    def answer(question: str) -> str:
        if yes:
            console.print(f"[yellow]{question}[/yellow] yes (--yes)")
            return "yes"
        return str(typer.prompt(question, default="no"))

    try:
        session = TerminalChat(url or settings.chat_url, token, console, answer)
    except (OSError, RuntimeError) as exc:
        err.print(f"[red]Cannot reach the chat service:[/red] {exc}. Is it running (`make up`)?")
        raise typer.Exit(1) from exc
    try:
        if message is not None:
            events = session.send(message, tenant)
            raise typer.Exit(1 if any(e["type"] == "error" for e in events) else 0)
        console.print("[dim]Chatting with AIPress; empty line or Ctrl-D to leave.[/dim]")
        while True:
            try:
                text = console.input("[bold]you>[/bold] ").strip()
            except EOFError:
                break
            if not text:
                break
            session.send(text, tenant)
    finally:
        session.close()


@app.command()
def mcp(
    user: Annotated[str, typer.Option("--as", help="Local user the tools act as (embedded)")],
) -> None:
    """Serve the agent's tools over MCP on stdio, for a desktop client on this machine."""
    from chatbot.mcp.stdio import run_stdio
    from chatbot.settings import get_chat_settings

    settings = get_settings()
    if settings.provider == "gcp":
        err.print("[red]gcp mode: connect MCP clients to the chat service's /mcp URL.[/red]")
        raise typer.Exit(2)
    principal = LocalTokenIssuer(settings).verify(_local_user_token(settings, user))
    run_stdio(get_chat_settings(), principal)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Run the control-plane API (127.0.0.1:8000 by default)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "controlplane.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        access_log=False,
    )


@app.command()
def up() -> None:
    """Start the embedded default (MariaDB, PHP-FPM, nginx, control plane) and say where it is."""
    from controlplane.stack.process import StackError
    from controlplane.up import DEMO_USERS, bring_up

    settings = get_settings()
    if settings.provider != "local":
        err.print("[red]`aipress up` runs the embedded default (AIPRESS_PROVIDER=local).[/red]")
        raise typer.Exit(2)
    try:
        bring_up(settings, say=console.print)
    except StackError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print()
    console.print("[bold green]AIPress is up.[/bold green]")
    console.print(f"  Control-plane API   {settings.base_url}  (OpenAPI: {settings.base_url}/docs)")
    console.print(f"  Chat service        {settings.chat_url}  (WebSocket /v1/chat/ws)")
    console.print(f"  Sites               http://<site>.<tenant>.localhost:{settings.site_port}/")
    console.print(f"  State directory     {settings.home}")
    console.print(f"  Sign in (browser)   {sign_in_url(settings, load_sign_in_key(settings))}")
    console.print("                      (the key after # is this machine's; `aipress signin-url`")
    console.print("                      prints the URL again for whoever can read it)")
    console.print(f"  Demo users          {', '.join(DEMO_USERS)} (tenants acme, globex)")
    console.print("  A token             .venv/bin/aipress token --sub alice")
    console.print(
        "  A site              .venv/bin/aipress sites create acme crumbs "
        "--admin-email alice@acme.example"
    )
    console.print("  Chat as a tenant    .venv/bin/aipress chat --as alice")
    console.print("  Stop everything     .venv/bin/aipress down")


@app.command("signin-url")
def signin_url(
    rotate: Annotated[
        bool, typer.Option(help="Make a new key: browsers holding the old one must sign in again")
    ] = False,
) -> None:
    """Print the browser sign-in URL (it carries the machine's sign-in key; root-only)."""
    settings = get_settings()
    if settings.provider == "gcp":
        err.print("[red]gcp mode signs in with Firebase Auth; there is no local sign-in.[/red]")
        raise typer.Exit(2)
    try:
        key = load_sign_in_key(settings, rotate=rotate)
    except PermissionError as exc:
        err.print(f"[red]Cannot read the sign-in key ({exc.filename}): run this as root.[/red]")
        raise typer.Exit(1) from exc
    console.print(sign_in_url(settings, key))


@app.command()
def down() -> None:
    """Stop everything `aipress up` started."""
    from controlplane.up import bring_down

    stopped = bring_down(get_settings())
    console.print(f"Stopped: {', '.join(stopped) or 'nothing was running'}.")


@app.command()
def status() -> None:
    """Show what runs."""
    from controlplane.up import status as read_status

    table = Table("service", "pid", "state")
    for name, (pid, state) in read_status(get_settings()).items():
        colour = "green" if state in ("running", "healthy") else "red"
        table.add_row(name, str(pid or "-"), f"[{colour}]{state}[/{colour}]")
    console.print(table)


@tenants_app.command("list")
def tenants_list(token: TokenOpt = None, url: UrlOpt = None) -> None:
    """List the tenants you can see."""
    with _client(token, url) as client:
        rows = _call(client, "GET", "/v1/tenants")
    table = Table("id", "name", "status", "created")
    for row in rows:
        table.add_row(row["id"], row["name"], row["status"], row["created_at"][:19])
    console.print(table)


@tenants_app.command("create")
def tenants_create(
    tenant_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create a tenant."""
    with _client(token, url) as client:
        row = _call(
            client, "POST", "/v1/tenants", json={"id": tenant_id, "name": name or tenant_id}
        )
    console.print(f"Tenant [bold]{row['id']}[/bold] created.")


@tenants_app.command("delete")
def tenants_delete(tenant_id: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """Delete a tenant that has no sites."""
    with _client(token, url) as client:
        _call(client, "DELETE", f"/v1/tenants/{tenant_id}")
    console.print(f"Tenant [bold]{tenant_id}[/bold] deleted.")


@sites_app.command("list")
def sites_list(tenant_id: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """List a tenant's sites."""
    with _client(token, url) as client:
        rows = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites")
    table = Table("name", "status", "role", "url", "domains", "created", "last cron run")
    for row in rows:
        pending = [f"{d} (pending)" for d in row.get("pending_domains", [])]
        cron = row.get("cron")
        table.add_row(
            row["name"],
            row["status"],
            f"staging of {row['parent']}" if row.get("parent") else row.get("role", "production"),
            row["preview_url"] or "-",
            ", ".join(row["domains"] + pending) or "-",
            row["created_at"][:19],
            f"{cron['status']} {cron['last_run_at'][:19]}" if cron else "-",
        )
    console.print(table)


def _progress_bar() -> Progress:
    """The bar an operation's progress is drawn with: what runs, done/total, time taken."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )


def _follow(client: ControlPlaneClient, operation: dict[str, Any]) -> dict[str, Any]:
    """Show a progress bar driven by the operation's events (a bulk's: one tick per child
    that ended); return its final state."""
    bulk = operation["kind"] == "bulk"
    total = (operation.get("progress") or {}).get("total", 0) if bulk else len(operation["steps"])
    with _progress_bar() as progress:
        subject = operation["site_name"] or f"tenant {operation['tenant_id']}"
        task = progress.add_task(f"{operation['kind']} {subject}", total=total)
        try:
            for event in client.events(operation["id"]):
                kind = event["type"]
                if kind == EventType.STEP_STARTED and not bulk:
                    progress.update(task, description=f"{subject}: {event['step']}")
                elif kind == (EventType.CHILD_FINISHED if bulk else EventType.STEP_FINISHED):
                    described = f"{subject}: {event['message']}" if bulk else None
                    progress.update(task, advance=1, description=described)
                elif kind in (
                    EventType.STEP_RETRYING,
                    EventType.STEP_FAILED,
                    EventType.ROLLBACK_STARTED,
                    EventType.STEP_UNDONE,
                    EventType.CANCEL_REQUESTED,
                ):
                    progress.console.print(f"[yellow]{event['message']}[/yellow]")
        except ApiError as exc:
            err.print(f"[red]Lost the event stream ({exc}); check `aipress sites list`.[/red]")
    result: dict[str, Any] = client.request("GET", f"/v1/operations/{operation['id']}")
    return result


@sites_app.command("create")
def sites_create(
    tenant_id: str,
    name: str,
    email: Annotated[
        str | None, typer.Option("--admin-email", help="WordPress admin e-mail")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Site title")] = None,
    domain: Annotated[str | None, typer.Option(help="Custom domain")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until done")] = True,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the calls a create would make; change nothing")
    ] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create a WordPress site and follow its progress."""
    body = {
        k: v
        for k, v in {"name": name, "admin_email": email, "title": title, "domain": domain}.items()
        if v
    }
    with _client(token, url) as client:
        if plan:
            described = _call(
                client, "POST", f"/v1/tenants/{tenant_id}/sites", json=body,
                params={"dry_run": "true"},
            )  # fmt: skip
            console.print(
                f"[bold]Plan[/bold] for site {described['site']} ({described['provider']} "
                "provider); nothing was created:"
            )
            for number, call in enumerate(described["calls"], 1):
                console.print(
                    f"{number:>2}. [{call['step']}] {call['api']} {call.get('target', '')}"
                )
                details = {k: v for k, v in call.items() if k not in ("step", "api", "target")}
                if details:
                    console.print_json(json.dumps(details), indent=2)
            return
        accepted = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites", json=body)
        if not wait:
            console.print(f"Operation {accepted['operation']['id']} started.")
            return
        final = _follow(client, accepted["operation"])
        if final["status"] != "succeeded":
            err.print(f"[red]{final['status']}:[/red] {final['error']}")
            raise typer.Exit(1)
        site = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{name}")
    console.print(f"Site [bold]{name}[/bold] is ready at {site['preview_url']}")


@sites_app.command("delete")
def sites_delete(
    tenant_id: str,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete a site (a backup is taken first)."""
    if not yes and not typer.confirm(f"Delete site {name} of tenant {tenant_id}?"):
        raise typer.Exit(1)
    with _client(token, url) as client:
        accepted = _call(client, "DELETE", f"/v1/tenants/{tenant_id}/sites/{name}")
        final = _follow(client, accepted["operation"])
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)
    console.print(f"Site [bold]{name}[/bold] deleted; backup: {final['backup']}")


def _finished(final: dict[str, Any]) -> None:
    """Exit 1 saying how an operation ended unless it succeeded."""
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)


@sites_app.command("clone")
def sites_clone(
    tenant_id: str,
    site: str,
    name: Annotated[str, typer.Argument(help="The new staging site's name")],
    basic_auth: Annotated[
        bool, typer.Option("--basic-auth", help="Visitors must log in (revealed on demand)")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow progress until done")] = True,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Make a staging copy of a site (a new site, its URLs rewritten, not indexed)."""
    with _client(token, url) as client:
        body = {"name": name, "basic_auth": basic_auth}
        accepted = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/clone", json=body)
        if not wait:
            console.print(f"Clone {name} started (operation {accepted['operation']['id']}).")
            return
        _finished(_follow(client, accepted["operation"]))
        staging = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{name}")
    console.print(
        f"Staging site [bold]{name}[/bold] of {site} is ready at {staging['preview_url']}"
        + (f" (log in: `aipress sites basic-auth {tenant_id} {name}`)" if basic_auth else "")
    )


@sites_app.command("basic-auth")
def sites_basic_auth(tenant_id: str, site: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """Show a staging site's HTTP login (audited)."""
    with _client(token, url) as client:
        path = f"/v1/tenants/{tenant_id}/sites/{site}/basic-auth/reveal"
        login = _call(client, "POST", path)
    console.print(f"username: {login['username']}\npassword: {login['password']}")


def _print_drift(drift: dict[str, Any]) -> None:
    if not drift["changed"]:
        console.print(f"{drift['parent']} has not changed since {drift['since'][:19]} UTC.")
        return
    console.print(f"Since {drift['since'][:19]} UTC, on {drift['parent']}:")
    for sentence in drift["summary"]:
        console.print(f"  - {sentence}")


@sites_app.command("diagnose")
def sites_diagnose(
    tenant_id: str,
    site: str,
    since: Annotated[str, typer.Option(help="A duration ago (15m, 2h, 1d) or ISO time")] = "1h",
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Why a site is slow or broken: the evidence and the verdict."""
    with _client(token, url) as client:
        found = _call(
            client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/diagnosis",
            params={"since": since},
        )  # fmt: skip
    verdict = found["verdict"]
    console.print(f"[bold]{verdict['status'].upper()}[/bold]: {verdict['summary']}")
    if verdict.get("action"):
        console.print(f"What to do: {verdict['action']}")
    table = Table("evidence", "finding")
    probe = found["probe"]
    table.add_row(
        "health probe", "passes" if probe["ok"] else f"{probe['check']}: {probe['detail']}"
    )
    for row in found["cache"]:
        table.add_row(
            f"cache {row['cache']}", f"{row['requests']} requests, p95 {row['p95_ms']} ms"
        )
    for path in found["slowest_paths"]:
        table.add_row(
            "slow path", f"{path['path']}: p95 {path['p95_ms']} ms, {path['requests']} requests"
        )
    for slow in found["slow_requests"]:
        table.add_row("PHP slow log", " <- ".join(slow["trace"][:4]) or slow["script"])
    for problem in found["php_errors"]:
        table.add_row(
            f"PHP {problem['severity'].lower()}", f"{problem['message']} ({problem['count']}x)"
        )
    for query in found["slow_queries"]:
        table.add_row("slow query", f"{query['seconds']} s: {query['query'][:120]}")
    for change in found["changes"]:
        table.add_row("change", f"{change['time'][:19]} {change['label']} ({change['status']})")
    console.print(table)


@sites_app.command("drift")
def sites_drift(tenant_id: str, site: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """What changed on a staging site's production site since the clone."""
    with _client(token, url) as client:
        drift = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/drift")
    _print_drift(drift)


@sites_app.command("promote")
def sites_promote(
    tenant_id: str,
    site: Annotated[str, typer.Argument(help="The staging site to promote")],
    scope: Annotated[str, typer.Option(help="all, database or files")] = "all",
    tables: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite what changed on production")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Put a staging site's copy into its production site (a backup of production first)."""
    with _client(token, url) as client:
        drift = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/drift")
        _print_drift(drift)
        what = ", ".join(tables) if tables else scope
        question = f"Replace {what} of {drift['parent']} with {site}'s?"
        if not yes and not typer.confirm(question):
            raise typer.Exit(1)
        body = {"scope": scope, "tables": tables or None, "force": force}
        accepted = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/promote", json=body)
        _finished(_follow(client, accepted["operation"]))
    console.print(
        f"{site} promoted into [bold]{drift['parent']}[/bold]; roll back with "
        f"`aipress sites rollback {tenant_id} {drift['parent']}` (backup "
        f"{accepted['pre_promote_backup']['id']})."
    )


@sites_app.command("rollback")
def sites_rollback(
    tenant_id: str,
    site: Annotated[str, typer.Argument(help="The production site")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Put a production site back as it was before its last promotion."""
    if not yes and not typer.confirm(f"Put {site} back as it was before its last promotion?"):
        raise typer.Exit(1)
    with _client(token, url) as client:
        accepted = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/rollback")
        _finished(_follow(client, accepted["operation"]))
    console.print(f"Site [bold]{site}[/bold] rolled back to backup {accepted['backup']['id']}.")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


@backups_app.command("list")
def backups_list(
    tenant_id: str,
    site: Annotated[str | None, typer.Argument(help="The site; leave out for --deleted")] = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="The tenant's deleted sites' backups (undelete)")
    ] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """List a site's backups, or the backups of a tenant's deleted sites."""
    if site is None and not deleted:
        err.print("[red]Name a site, or pass --deleted for the deleted sites' backups.[/red]")
        raise typer.Exit(2)
    path = (
        f"/v1/tenants/{tenant_id}/sites/{site}/backups"
        if site is not None
        else f"/v1/tenants/{tenant_id}/backups"
    )
    with _client(token, url) as client:
        rows = _call(client, "GET", path, params={"deleted": "true"} if site is None else None)
    if not rows:
        console.print("No backups.")
        return
    # One line each, never wrapped or shortened: the id is what `restore` takes.
    console.print("id                               site        kind        status     "
                  "created (UTC)        size      added     kept until")  # fmt: skip
    for row in rows:
        console.print(
            f"{row['id']} {row['site_name']:<11} {row['kind']:<11} {row['status']:<10} "
            f"{row['created_at'][:19].replace('T', ' ')}  {_size(row['size_bytes']):>8}  "
            f"{_size(row['added_bytes']):>8}  {(row['kept_until'] or '-')[:10]}"
        )


@backups_app.command("create")
def backups_create(
    tenant_id: str,
    site: str,
    wait: Annotated[bool, typer.Option(help="Follow progress until done")] = True,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Back a site up now and follow its progress."""
    with _client(token, url) as client:
        accepted = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/backups")
        backup_id = accepted["backup"]["id"]
        if not wait:
            console.print(f"Backup {backup_id} started (operation {accepted['operation']['id']}).")
            return
        final = _follow(client, accepted["operation"])
        if final["status"] != "succeeded":
            err.print(f"[red]{final['status']}:[/red] {final['error']}")
            raise typer.Exit(1)
        backup = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/backups/{backup_id}")
    console.print(
        f"Backup [bold]{backup_id}[/bold] of {site}: {_size(backup['size_bytes'])} "
        f"({_size(backup['added_bytes'])} new), verified {backup['verified_at'][:19]}"
    )


@backups_app.command("restore")
def backups_restore(
    tenant_id: str,
    site: str,
    backup_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Restore a backup in place of the live site (a backup of the live site is taken first)."""
    with _client(token, url) as client:
        backup = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/backups/{backup_id}")
        question = (
            f"Replace the database and files of {site} with the backup of "
            f"{backup['created_at'][:19]} UTC ({backup['kind']})?"
        )
        if not yes and not typer.confirm(question):
            raise typer.Exit(1)
        path = f"/v1/tenants/{tenant_id}/sites/{site}/backups/{backup_id}/restore"
        accepted = _call(client, "POST", path)
        final = _follow(client, accepted["operation"])
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)
    console.print(
        f"Site [bold]{site}[/bold] restored from {backup_id}; the site as it was is kept as "
        f"backup {accepted['pre_restore_backup']['id']}."
    )


class _Counted:
    """A file an upload reads: each read advances the upload's progress bar."""

    def __init__(self, path: Path, progress: Progress, task: TaskID) -> None:
        self._file = path.open("rb")
        self._progress, self._task = progress, task

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._progress.advance(self._task, len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


@sites_app.command("import")
def sites_import(
    tenant_id: str,
    site: str,
    old_url: Annotated[str, typer.Option("--old-url", help="The site's old address")],
    archive: Annotated[
        Path | None, typer.Option(help="One .tar.gz: database.sql[.gz] and wp-content/")
    ] = None,
    dump: Annotated[Path | None, typer.Option(help="A .sql or .sql.gz dump")] = None,
    content: Annotated[
        Path | None, typer.Option(help="wp-content as a .tar.gz (with --dump)")
    ] = None,
    admin: Annotated[
        str, typer.Option(help="keep: the imported users stay; reset: the platform's admin too")
    ] = "keep",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Replace a site with one made elsewhere (a backup of the live site is taken first)."""
    files = {"archive": archive, "dump": dump, "content": content}
    chosen = {name: path for name, path in files.items() if path is not None}
    if (archive is None) == (dump is None) or (content is not None and dump is None):
        err.print("[red]Give --archive, or --dump (and optionally --content).[/red]")
        raise typer.Exit(2)
    missing = [str(p) for p in chosen.values() if not p.is_file()]
    if missing:
        err.print(f"[red]No such file:[/red] {', '.join(missing)}")
        raise typer.Exit(2)
    question = (
        f"Replace the database and files of {site} with the site uploaded from "
        f"{', '.join(str(p) for p in chosen.values())} (old address {old_url})?"
    )
    if not yes and not typer.confirm(question):
        raise typer.Exit(1)
    total = sum(p.stat().st_size for p in chosen.values())
    with _client(token, url) as client:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), console=err,
        ) as progress:  # fmt: skip
            task = progress.add_task(f"uploading to {site}", total=total)
            opened = {name: _Counted(path, progress, task) for name, path in chosen.items()}
            try:
                accepted = _call(
                    client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/import",
                    files={name: (chosen[name].name, f) for name, f in opened.items()},
                    data={"old_url": old_url, "admin": admin},
                    # The upload takes its time, and the answer waits for the checks.
                    timeout=httpx.Timeout(60.0, write=None, read=None),
                )  # fmt: skip
            finally:
                for handle in opened.values():
                    handle.close()
        final = _follow(client, accepted["operation"])
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)
    console.print(
        f"Site [bold]{site}[/bold] imported; the site as it was is kept as backup "
        f"{accepted['pre_import_backup']['id']}."
    )


@catalogue_app.command("add")
def catalogue_add(
    file: Annotated[Path, typer.Argument(help="The package's zip (one top directory)")],
    kind: Annotated[str, typer.Option(help="plugin, theme or core")] = "plugin",
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Check a package zip and add it to the catalogue (admins)."""
    if not file.is_file():
        err.print(f"[red]No such file:[/red] {file}")
        raise typer.Exit(2)
    with _client(token, url) as client, file.open("rb") as handle:
        entry = _call(client, "POST", "/v1/catalogue", params={"kind": kind},
                      files={"file": (file.name, handle)},
                      timeout=httpx.Timeout(60.0, write=None, read=None))  # fmt: skip
    console.print(
        f"Added {entry['kind']} [bold]{entry['slug']} {entry['version']}[/bold] "
        f"({entry['name']}, {_size(entry['size_bytes'])}, sha256 {entry['sha256'][:12]})"
    )


@catalogue_app.command("list")
def catalogue_list(token: TokenOpt = None, url: UrlOpt = None) -> None:
    """Every package version the platform holds."""
    with _client(token, url) as client:
        rows = _call(client, "GET", "/v1/catalogue")
    table = Table("kind", "slug", "version", "name", "size", "sha256", "added")
    for row in rows:
        size, sha, added = _size(row["size_bytes"]), row["sha256"][:12], row["added_at"][:19]
        table.add_row(row["kind"], row["slug"], row["version"], row["name"], size, sha, added)
    console.print(table)


@app.command()
def packages(tenant_id: str, site: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """What a site has (read from the site) and the catalogue's newer versions."""
    with _client(token, url) as client:
        listing = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/packages")
    table = Table("kind", "slug", "name", "version", "active", "update to")
    for row in [listing["core"], *listing["plugins"], *listing["themes"]]:
        table.add_row(row["kind"], row["slug"], row["name"], row["version"],
                      "yes" if row["active"] else "-",
                      f"[green]{row['latest']}[/green]" if row["latest"] else "-")  # fmt: skip
    console.print(table)
    console.print(f"{listing['updates_available']} update(s) available.")


def _targets(values: list[str]) -> list[dict[str, str]]:
    """`slug` or `slug@version` as the API's targets."""
    found = []
    for value in values:
        slug, _, version = value.partition("@")
        found.append({"slug": slug, "version": version or "latest"})
    return found


@app.command()
def update(
    tenant_id: str,
    site: str,
    plugin: Annotated[
        list[str] | None, typer.Option("--plugin", help="slug or slug@version (repeatable)")
    ] = None,
    theme: Annotated[
        list[str] | None, typer.Option("--theme", help="slug or slug@version (repeatable)")
    ] = None,
    core: Annotated[str | None, typer.Option("--core", help="a version, or latest")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would change")] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Update a site's core, plugins or themes from the catalogue (none named: everything
    that has an update); a backup first, rolled back by itself if the site breaks."""
    body: dict[str, Any] = {"dry_run": dry_run, "core": core}
    if plugin:
        body["plugins"] = _targets(plugin)
    if theme:
        body["themes"] = _targets(theme)
    with _client(token, url) as client:
        answer = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/updates", json=body,
                       timeout=httpx.Timeout(60.0, read=120.0))  # fmt: skip
        for change in answer["changes"]:
            console.print(f"{change['kind']} {change['slug']}: {change['from_version'] or '-'} "
                          f"-> [bold]{change['to_version']}[/bold]")  # fmt: skip
        if dry_run:
            console.print("Dry run: nothing changed.")
            return
        final = _follow(client, answer["operation"])
    _finished(final)
    console.print(f"Site [bold]{site}[/bold] updated.")


@backups_app.command("policy")
def backups_policy(
    tenant_id: str,
    site: str,
    hour: Annotated[int | None, typer.Option(help="UTC hour of the daily backup, 0-23")] = None,
    keep_daily: Annotated[int | None, typer.Option(help="Daily backups kept")] = None,
    keep_weekly: Annotated[int | None, typer.Option(help="Weekly backups kept")] = None,
    keep_monthly: Annotated[int | None, typer.Option(help="Monthly backups kept")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Scheduled backups on or off")
    ] = None,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show a site's backup policy, or change it with the options given."""
    changes = {
        k: v
        for k, v in {"hour": hour, "keep_daily": keep_daily, "keep_weekly": keep_weekly,
                     "keep_monthly": keep_monthly, "enabled": enabled}.items()
        if v is not None
    }  # fmt: skip
    path = f"/v1/tenants/{tenant_id}/sites/{site}/backup-policy"
    with _client(token, url) as client:
        policy = _call(client, "PUT", path, json=changes) if changes else _call(client, "GET", path)
    state = "on" if policy["enabled"] else "off"
    origin = "" if policy["customized"] else " (the defaults)"
    console.print(
        f"Backups of {site}: {state}, daily at {policy['hour']:02d}:00 UTC; keep "
        f"{policy['keep_daily']} daily, {policy['keep_weekly']} weekly, "
        f"{policy['keep_monthly']} monthly{origin}"
    )


@env_app.command("list")
def env_list(tenant_id: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """List a tenant's env vars (secret values masked)."""
    with _client(token, url) as client:
        rows = _call(client, "GET", f"/v1/tenants/{tenant_id}/env")
    table = Table("name", "value", "secret", "updated", "by")
    for row in rows:
        secret = "yes" if row["secret"] else ""
        table.add_row(row["name"], row["value"], secret, row["updated_at"][:19], row["updated_by"])
    console.print(table)


def _applied(client: ControlPlaneClient, accepted: dict[str, Any], wait: bool) -> None:
    """Follow the apply_env operation of an env change and say how it ended."""
    operation = accepted["operation"]
    if not wait:
        console.print(f"Saved; operation {operation['id']} applies it to the sites.")
        return
    final = _follow(client, operation)
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)
    console.print("Saved and applied to the tenant's sites.")


@env_app.command("set")
def env_set(
    tenant_id: str,
    name: str,
    value: Annotated[
        str | None, typer.Option(help="The value (asked for, hidden, when left out)")
    ] = None,
    secret: Annotated[bool, typer.Option("--secret", help="Store encrypted, never shown")] = False,
    wait: Annotated[bool, typer.Option(help="Follow until the sites have it")] = True,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create or replace an env var and apply it to the tenant's running sites."""
    if value is None:
        value = typer.prompt(f"Value of {name}", hide_input=secret)
    with _client(token, url) as client:
        accepted = _call(
            client, "PUT", f"/v1/tenants/{tenant_id}/env/{name}",
            json={"value": value, "secret": secret},
        )  # fmt: skip
        _applied(client, accepted, wait)


@env_app.command("unset")
def env_unset(
    tenant_id: str,
    name: str,
    wait: Annotated[bool, typer.Option(help="Follow until the sites lost it")] = True,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Remove an env var from the tenant and its running sites."""
    with _client(token, url) as client:
        accepted = _call(client, "DELETE", f"/v1/tenants/{tenant_id}/env/{name}")
        _applied(client, accepted, wait)


def _print_claim(claim: dict[str, Any]) -> None:
    record = claim["verification"]
    console.print(f"[bold]{claim['domain']}[/bold]: {claim['status']}")
    if claim["status"] != "verified":
        console.print(f'  create: {record["name"]}  {record["type"]}  "{record["value"]}"')
    if claim.get("last_error"):
        console.print(f"  [yellow]last check: {claim['last_error']}[/yellow]")


@domains_app.command("list")
def domains_list(tenant_id: str, site: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """A site's custom domains and, for pending ones, the TXT record to create."""
    with _client(token, url) as client:
        claims = _call(client, "GET", f"/v1/tenants/{tenant_id}/sites/{site}/domains")
    for claim in claims:
        _print_claim(claim)
    if not claims:
        console.print(f"Site {site} has no custom domains.")


@domains_app.command("add")
def domains_add(
    tenant_id: str, site: str, domain: str, token: TokenOpt = None, url: UrlOpt = None
) -> None:
    """Claim a domain; prints the TXT record that proves you control it."""
    with _client(token, url) as client:
        claim = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{site}/domains",
                      json={"domain": domain})  # fmt: skip
    _print_claim(claim)
    console.print(claim["instructions"])


@domains_app.command("verify")
def domains_verify(
    tenant_id: str, site: str, domain: str, token: TokenOpt = None, url: UrlOpt = None
) -> None:
    """Check the TXT record; once proven, the site serves the domain."""
    with _client(token, url) as client:
        path = f"/v1/tenants/{tenant_id}/sites/{site}/domains/{domain}/verify"
        change = _call(client, "POST", path)
        final = _follow(client, change["operation"])
    if final["status"] != "succeeded":
        err.print(f"[red]{final['status']}:[/red] {final['error']}")
        raise typer.Exit(1)
    console.print(f"[bold]{domain}[/bold] is verified and served by {site}.")


@domains_app.command("remove")
def domains_remove(
    tenant_id: str, site: str, domain: str, token: TokenOpt = None, url: UrlOpt = None
) -> None:
    """Drop a domain claim; a served domain stops being served."""
    with _client(token, url) as client:
        change = _call(client, "DELETE", f"/v1/tenants/{tenant_id}/sites/{site}/domains/{domain}")
        if change["operation"] is not None:
            final = _follow(client, change["operation"])
            if final["status"] != "succeeded":
                err.print(f"[red]{final['status']}:[/red] {final['error']}")
                raise typer.Exit(1)
    console.print(f"{domain} removed from {site}.")


@sites_app.command("login")
def sites_login(tenant_id: str, name: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """Print a one-click wp-admin link for the site's admin (valid 60 s, usable once)."""
    with _client(token, url) as client:
        login = _call(client, "POST", f"/v1/tenants/{tenant_id}/sites/{name}/admin-login")
    typer.echo(login["url"])  # plain, unwrapped: for a browser or `xdg-open "$(...)"`
    err.print(f"Valid until {login['expires_at'][:19]} UTC, once.")


@users_app.command("list")
def users_list(token: TokenOpt = None, url: UrlOpt = None) -> None:
    """List users with a role."""
    with _client(token, url) as client:
        rows = _call(client, "GET", "/v1/users")
    table = Table("uid", "role", "tenants", "email")
    for row in rows:
        table.add_row(
            row["uid"], row["role"], ", ".join(row["tenants"]) or "-", row["email"] or "-"
        )
    console.print(table)


@users_app.command("set")
def users_set(
    uid: str,
    role: Annotated[Role, typer.Option(help="admin, operator, viewer or tenant")],
    tenant: Annotated[list[str] | None, typer.Option(help="Tenant id (repeat)")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Assign a user's role and tenants."""
    body: dict[str, Any] = {"role": role.value, "tenants": list(tenant or [])}
    if email:
        body["email"] = email
    with _client(token, url) as client:
        _call(client, "PUT", f"/v1/users/{uid}", json=body)
    console.print(f"User [bold]{uid}[/bold] is now {role.value}.")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new active encryption key and re-encrypt every stored credential with it."""
    from controlplane.credentials import reencrypt_all
    from controlplane.crypto import KeyringError, add_local_key, load_keyring
    from controlplane.db import make_engine, make_sessionmaker, migrate

    settings = get_settings()
    try:
        keyring = (
            add_local_key(settings) if not settings.encryption_keys else load_keyring(settings)
        )
    except KeyringError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    engine = make_engine(settings)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        changed = reencrypt_all(session, keyring)
    console.print(f"Active key is {keyring.active_key_id}; {changed} ciphertext(s) re-encrypted.")


def _quiet_settings() -> Settings:
    """Settings for a command that works in-process: its log lines go to the log file
    (the progress display is the terminal's)."""
    from controlplane.kernel.logs import configure_logging

    settings = get_settings()
    log_file = settings.log_file or settings.home / "logs" / "cli.log"
    configure_logging(settings.log_level, log_file, settings.log_json)
    return settings


DateOpt = Annotated[
    datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="A day, YYYY-MM-DD")
]


@billing_app.command("aggregate")
def billing_aggregate(
    since: DateOpt = None,
    until: Annotated[
        datetime.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day NOT included (default: tomorrow)"),
    ] = None,
) -> None:
    """Re-aggregate the billing export into per-tenant daily costs (default: trailing window)."""
    from controlplane.billing.jobs import aggregate
    from controlplane.platform import build_platform

    platform = build_platform(_quiet_settings())
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as bar:  # fmt: skip
            task = bar.add_task("starting", total=None)
            result = aggregate(
                platform,
                since=since.date() if since else None,
                until=until.date() if until else None,
                progress=lambda message: bar.update(task, description=message),
            )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        platform.close()
    scanned = f", {result.bytes_scanned:,} bytes scanned" if result.bytes_scanned else ""
    console.print(
        f"Aggregated {result.since} to {result.until - datetime.timedelta(days=1)}: "
        f"{result.rows} cost lines{scanned}."
    )


@billing_app.command("meter")
def billing_meter(
    hours: Annotated[int, typer.Option(min=1, max=24 * 31, help="Whole hours back")] = 1,
) -> None:
    """Meter the local sites' use of the last hours into export-shaped rows (embedded)."""
    from controlplane.billing.jobs import meter
    from controlplane.platform import build_platform

    platform = build_platform(_quiet_settings())
    try:
        rows = meter(platform, hours)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        platform.close()
    console.print(f"Metered {hours} hour(s): {rows} export rows written.")


@app.command("bulk")
def bulk(
    action: Annotated[BulkAction, typer.Argument(help="What to do to each site")],
    sites: Annotated[
        list[str] | None,
        typer.Argument(help="Site names (with --tenant), else TENANT/SITE; or --all"),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every site the action applies to now")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=8, help="Sites at once")] = 2,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="The tenant; without it, across tenants")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress until done")] = True,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """One action on many sites: one child operation per site, a few at a time."""
    names = list(sites or [])
    if every == bool(names):
        err.print("[red]Name the sites, or pass --all (not both).[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"action": action.value, "concurrency": concurrency}
    with _client(token, url) as client:
        if tenant is not None:
            body["sites"] = "all" if every else names
            accepted = _call(client, "POST", f"/v1/tenants/{tenant}/bulk", json=body)
            parents = [accepted["operation"]]
        else:
            if not every and not all("/" in name for name in names):
                err.print("[red]Without --tenant, name each site as TENANT/SITE.[/red]")
                raise typer.Exit(2)
            body["sites"] = "all" if every else [
                {"tenant_id": name.split("/", 1)[0], "site": name.split("/", 1)[1]}
                for name in names
            ]  # fmt: skip
            parents = _call(client, "POST", "/v1/bulk", json=body)["operations"]
        for parent in parents:
            console.print(f"Bulk {action.value} of {parent['tenant_id']}: operation {parent['id']}"
                          f" (cancel: aipress operations cancel {parent['id']})")  # fmt: skip
        if not wait:
            return
        ends = [_follow(client, parent) for parent in parents]
    failed = False
    for end in ends:
        counts = end.get("progress") or {}
        line = (f"{end['tenant_id']}: {end['status']}, {counts.get('done', 0)} of "
                f"{counts.get('total', 0)} done, {counts.get('failed', 0)} failed")  # fmt: skip
        if counts.get("cancelled"):
            line += f", {counts['cancelled']} cancelled"
        console.print(line)
        if end["error"]:
            err.print(f"[red]{end['error']}[/red]")
        failed = failed or end["status"] != "succeeded" or bool(counts.get("failed"))
    if failed:
        raise typer.Exit(1)


@operations_app.command("cancel")
def operations_cancel(operation_id: str, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """Cancel a bulk: its sites not started are left as they are; running ones finish."""
    with _client(token, url) as client:
        op = _call(client, "POST", f"/v1/operations/{operation_id}/cancel")
    counts = op.get("progress") or {}
    console.print(
        f"Bulk {operation_id}: {counts.get('cancelled', 0)} cancelled, "
        f"{counts.get('running', 0)} still running."
    )


@billing_app.command("show")
def billing_show(
    tenant_id: str,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD")] = None,
    group_by: Annotated[str, typer.Option(help="day, service or site")] = "service",
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """A tenant's costs, as the API reports them."""
    params = {"group_by": group_by}
    if start:
        params["from"] = start
    if end:
        params["to"] = end
    with _client(token, url) as client:
        body = _call(client, "GET", f"/v1/tenants/{tenant_id}/billing", params=params)
    table = Table(title=f"{tenant_id}: {body['from']} to {body['to']} by {group_by}")
    for column in (group_by, "kind", "currency", "net"):
        table.add_column(column)
    for line in body["lines"]:
        table.add_row(line["key"], line["kind"], line["currency"], f"{float(line['net']):.6f}")
    console.print(table)
    for total in body["totals"]:
        cost, credits = float(total["cost"]), float(total["credits"])
        console.print(
            f"Total {total['currency']}: {float(total['net']):.4f} "
            f"(cost {cost:.4f}, credits {credits:.4f})"
        )
    console.print(f"[dim]Refreshed {body['refreshed_at'] or 'never'} from {body['source']}[/dim]")


TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="The tenant's bundle (else the platform default)")
]


def _bundle_path(tenant: str | None) -> str:
    return f"/v1/tenants/{tenant}/bundle" if tenant else "/v1/bundle"


def _print_bundle(body: dict[str, Any]) -> None:
    owner = f"tenant {body['tenant_id']}" if body["tenant_id"] else "the platform default"
    note = " (inherited: the platform default)" if body["inherited"] else ""
    table = Table("kind", "slug", "version", title=f"Bundle of {owner}{note}")
    for kind in ("plugins", "themes"):
        for target in body[kind]:
            table.add_row(kind.removesuffix("s"), target["slug"], target["version"])
    console.print(table)
    if body.get("updated_by"):
        console.print(f"[dim]Set by {body['updated_by']} at {body['updated_at'][:19]}[/dim]")


@bundle_app.command("show")
def bundle_show(tenant: TenantOpt = None, token: TokenOpt = None, url: UrlOpt = None) -> None:
    """A tenant's bundle (or the default it inherits), or the platform default."""
    with _client(token, url) as client:
        _print_bundle(_call(client, "GET", _bundle_path(tenant)))


@bundle_app.command("set")
def bundle_set(
    plugin: Annotated[
        list[str] | None, typer.Option("--plugin", help="slug or slug@version (repeatable)")
    ] = None,
    theme: Annotated[str | None, typer.Option("--theme", help="slug or slug@version")] = None,
    tenant: TenantOpt = None,
    platform: Annotated[
        bool, typer.Option("--platform", help="Set the platform default (admins)")
    ] = False,
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Replace a bundle: what new sites get installed and activated (checked against the
    catalogue; sites that exist keep what they have)."""
    if platform == (tenant is not None):
        err.print("Give either --tenant T or --platform.")
        raise typer.Exit(2)
    body = {"plugins": _targets(plugin or []), "themes": _targets([theme] if theme else [])}
    with _client(token, url) as client:
        _print_bundle(_call(client, "PUT", _bundle_path(tenant), json=body))


@bundle_app.command("clear")
def bundle_clear(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant")],
    token: TokenOpt = None,
    url: UrlOpt = None,
) -> None:
    """Drop a tenant's own bundle: its new sites get the platform default again."""
    with _client(token, url) as client:
        _print_bundle(_call(client, "DELETE", _bundle_path(tenant)))
