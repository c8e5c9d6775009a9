"""``pipeledger user ...``: the users and service accounts of a pipeledger server (server
administrators; the library: :class:`pipeledger.metadata_store.rest.identities.IdentityClient`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.options import json_option, server_stack_option
from pipeledger.cli.output import console, esc


def duration_option(*names: str, help: str) -> Any:
    """An option taking a duration (``30d``, ``12h``, ``90m``, ``2w``), parsed to a timedelta."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
        from pipeledger.metadata_store.rest.identities import parse_duration

        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(*names, default=None, callback=parse, help=help)


def print_issued_key(issued: dict[str, Any], whose: str) -> None:
    """Print a key just made: its text on a line of its own, with the warning that it is shown once."""
    info = issued["info"]
    expiry = f", expires {info['expires_at']}" if info.get("expires_at") else ""
    console().print(f"API key {esc(info['id'])} for {esc(whose)}{expiry}. It is shown only now; keep it secret:")
    click.echo(issued["key"])


@click.group("user", cls=PipeledgerGroup)
def user_group() -> None:
    """Manage the users and service accounts of a pipeledger server (server administrators).

    \b
    Example:
      pipeledger user create carol
      pipeledger user create ci-bot --service --key-expires 90d
    """


@user_group.command("create")
@click.argument("name")
@click.option("--service", is_flag=True, help="A service account (API keys only, no password).")
@click.option("--server-admin", is_flag=True, help="Make it a server administrator (every project, every user).")
@click.option("--password", "ask_password", is_flag=True, help="Also set a password (asked twice, hidden).")
@click.option("--no-key", is_flag=True, help="Do not make a first API key.")
@duration_option("--key-expires", help="The first key expires after this long (e.g. 30d, 12h).")
@server_stack_option()
def create(
    name: str,
    service: bool,
    server_admin: bool,
    ask_password: bool,
    no_key: bool,
    key_expires: timedelta | None,
    stack: str | None,
) -> None:
    """Create a user (or with --service a service account) and print its first API key, once.

    \b
    Example:
      pipeledger user create carol --password
    """
    from pipeledger.stack.credentials import open_identity_client

    password = None
    if ask_password:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    client = open_identity_client(stack)
    try:
        made = client.create_user(
            name,
            service=service,
            server_admin=server_admin,
            password=password,
            issue_key=not no_key,
            key_expires=key_expires,
        )
    finally:
        client.close()
    kind = "Service account" if service else "User"
    console().print(f"{kind} {esc(made['principal']['name'])} created.")
    if made.get("key"):
        print_issued_key(made["key"], made["principal"]["name"])


@user_group.command("list")
@json_option()
@server_stack_option()
def list_users(as_json: bool, stack: str | None) -> None:
    """List users and service accounts with their roles.

    \b
    Example:
      pipeledger user list --json
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        found = [json_output.principal(p) for p in client.list_users()]
    finally:
        client.close()
    if as_json:
        json_output.print_json(found)
        return
    table = Table("name", "kind", "server admin", "password", "state", "roles")
    for p in found:
        roles = ", ".join(f"{project}: {role}" for project, role in sorted(p["roles"].items()))
        table.add_row(
            esc(p["name"]),
            p["kind"],
            "yes" if p["server_admin"] else "",
            "yes" if p["has_password"] else "",
            "disabled" if p["disabled"] else "active",
            esc(roles),
        )
    console().print(table)


@user_group.command("disable")
@click.argument("name")
@server_stack_option()
def disable(name: str, stack: str | None) -> None:
    """Disable a user or service account: its keys and password stop working at once.

    \b
    Example:
      pipeledger user disable carol
    """
    _set_disabled(name, True, stack)


@user_group.command("enable")
@click.argument("name")
@server_stack_option()
def enable(name: str, stack: str | None) -> None:
    """Enable a disabled user or service account again.

    \b
    Example:
      pipeledger user enable carol
    """
    _set_disabled(name, False, stack)


def _set_disabled(name: str, disabled: bool, stack: str | None) -> None:
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        client.set_disabled(name, disabled)
    finally:
        client.close()
    console().print(f"{esc(name)} {'disabled' if disabled else 'enabled'}.")
