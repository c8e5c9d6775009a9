"""``pipeledger server init|start|stop|status``: the HTTP API in front of a stack's metadata store
(the library: :mod:`pipeledger.server`)."""

from __future__ import annotations

import click

from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.output import console, esc
from pipeledger.exceptions import ConfigError


@click.group("server", cls=PipeledgerGroup)
def server_group() -> None:
    """Serve a stack's metadata store over HTTP to a team (clients use the `rest` flavor).

    \b
    Example:
      pipeledger server start --stack team --port 8237
    """


@server_group.command("start")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8237, show_default=True, type=int, help="TCP port to listen on.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--stack", default=None, help="Stack whose metadata store is served (default: the active stack).")
@click.option("--ssl-certfile", default=None, help="TLS certificate (PEM); serve HTTPS.")
@click.option("--ssl-keyfile", default=None, help="TLS private key (PEM) of --ssl-certfile.")
@click.option("--daemon", is_flag=True, help="Run in the background (stop it with `pipeledger server stop`).")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Allow a non-loopback --host although the store has no users (`pipeledger server init` never ran).",
)
@click.option(
    "--server-name",
    "server_names",
    multiple=True,
    help="A name clients reach the server by (Host header check; loopback names always pass; * any).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="An origin (https://ui.example) whose pages may call the API; none: CORS off.",
)
@click.option(
    "--max-request-bytes",
    type=int,
    default=None,
    help="Largest request body but artifact uploads (default 64 MiB).",
)
@click.option(
    "--audit-retention-days",
    type=int,
    default=None,
    help="Days the audit log keeps events; 0 keeps them all (default 90).",
)
def start(
    host: str,
    port: int,
    workers: int,
    stack: str | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    daemon: bool,
    insecure_no_auth: bool,
    server_names: tuple[str, ...],
    cors_origins: tuple[str, ...],
    max_request_bytes: int | None,
    audit_retention_days: int | None,
) -> None:
    """Serve the metadata store of a stack at /api/v1, with /health and /ready.

    Runs in the foreground with access logs, or with --daemon in the background (its log and
    process id in $PIPELEDGER_HOME/server/).

    \b
    Example:
      pipeledger server start --stack team --daemon
    """
    from pipeledger.server.process import ServerOptions, serve, start_daemon

    options = ServerOptions(
        host,
        port,
        workers,
        stack,
        ssl_certfile,
        ssl_keyfile,
        insecure_no_auth,
        server_names,
        cors_origins,
        max_request_bytes,
        audit_retention_days,
    )
    if daemon:
        state = start_daemon(options)
        where = f"{esc(state.url)} (pid {state.pid}, log {esc(state.log)})"
        console().print(f"Server started in the background at {where}.")
        return
    serve(options)


@server_group.command("init")
@click.option("--stack", default=None, help="Stack whose metadata store the server serves (default: the active stack).")
@click.option("--admin", default="admin", show_default=True, help="Name of the first server administrator.")
def init(stack: str | None, admin: str) -> None:
    """Create the first server administrator and print its API key, once.

    Run on the server's machine, against the served stack's database directly. From then on,
    every request to the server needs an API key (`pipeledger login URL`). Refused when the
    store has users already. There is no default password: the administrator logs in with
    the key, and may make others (`pipeledger user create`, `pipeledger api-key create`).

    \b
    Example:
      pipeledger server init --stack served --admin alice
    """
    from pipeledger.server.app import open_stack
    from pipeledger.server.security.directory import Directory

    built = open_stack(stack)
    store = built.metadata_store
    try:
        principal, issued = Directory.of_store(store).create_first_admin(admin)
    finally:
        store.close()
    console().print(f"Server administrator {esc(principal.name)} created on stack {esc(built.name)!r}.")
    console().print("Its API key is shown only now (only a hash is kept); store it safely:")
    click.echo(issued.key)
    console().print(
        "Every request to the server now needs a key; log in with `pipeledger login URL` and paste it. "
        "The server may now listen beyond loopback."
    )


@server_group.command("stop")
def stop() -> None:
    """Stop the server started with --daemon.

    \b
    Example:
      pipeledger server stop
    """
    from pipeledger.server.process import stop_daemon

    state = stop_daemon()
    if state is None:
        raise ConfigError("no server started with `pipeledger server start --daemon` is running")
    console().print(f"Server at {esc(state.url)} stopped (pid {state.pid}).")


@server_group.command("status")
def status() -> None:
    """Say whether the server started with --daemon runs and is ready; exits 1 if not.

    \b
    Example:
      pipeledger server status
    """
    from pipeledger.server.process import alive, probe, read_state

    state = read_state()
    if state is None or not alive(state.pid):
        raise ConfigError("no server started with `pipeledger server start --daemon` is running")
    answer = probe(state.url)
    if answer is None:
        raise ConfigError(f"the server at {state.url} (pid {state.pid}) runs but is not ready; see {state.log}")
    console().print(
        f"Server at {esc(state.url)} is ready (pid {state.pid}, pipeledger {esc(answer.get('pipeledger'))}, "
        f"API version {esc(answer.get('api_version'))})."
    )
