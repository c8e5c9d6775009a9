"""``pipeledger project ...``: the projects of a pipeledger server and their members (the library:
:class:`pipeledger.metadata_store.rest.identities.IdentityClient`)."""

from __future__ import annotations

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.options import json_option, server_stack_option
from pipeledger.cli.output import console, esc

ROLES = click.Choice(["read", "write", "admin"], case_sensitive=False)


@click.group("project", cls=PipeledgerGroup)
def project_group() -> None:
    """Manage the projects of a pipeledger server and who may do what in them.

    \b
    Example:
      pipeledger project create vision
      pipeledger project member add vision carol --role write
    """


@project_group.command("create")
@click.argument("name")
@click.option("--description", default=None, help="What the project is about.")
@server_stack_option()
def create(name: str, description: str | None, stack: str | None) -> None:
    """Create a project (server administrators); it has no members yet.

    \b
    Example:
      pipeledger project create vision --description "image models"
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        client.create_project(name, description)
    finally:
        client.close()
    console().print(f"Project {esc(name)} created; add members with `pipeledger project member add {esc(name)} USER`.")


@project_group.command("list")
@json_option()
@server_stack_option()
def list_projects(as_json: bool, stack: str | None) -> None:
    """List the projects you belong to (every project for a server administrator).

    \b
    Example:
      pipeledger project list --json
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        found = [json_output.project(p) for p in client.list_projects()]
    finally:
        client.close()
    if as_json:
        json_output.print_json(found)
        return
    if not found:
        console().print("No project you belong to; ask an administrator to add you to one.")
        return
    table = Table("project", "description", "created (UTC)")
    for p in found:
        table.add_row(esc(p["name"]), esc(p["description"] or ""), str(p["created_at"])[:19].replace("T", " "))
    console().print(table)


@project_group.group("member", cls=PipeledgerGroup)
def member_group() -> None:
    """Manage a project's members and their roles (the project's admins).

    \b
    Example:
      pipeledger project member list vision
    """


@member_group.command("add")
@click.argument("project")
@click.argument("user")
@click.option("--role", type=ROLES, default="read", show_default=True, help="read, write or admin.")
@server_stack_option()
def add(project: str, user: str, role: str, stack: str | None) -> None:
    """Give USER a role in PROJECT (or change its role).

    read: see; write: also run pipelines, log metadata, tag; admin: also delete, gc, manage members.

    \b
    Example:
      pipeledger project member add vision carol --role write
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        client.set_member(project, user, role.lower())
    finally:
        client.close()
    console().print(f"{esc(user)} is {role.lower()} in project {esc(project)}.")


@member_group.command("remove")
@click.argument("project")
@click.argument("user")
@server_stack_option()
def remove(project: str, user: str, stack: str | None) -> None:
    """Take USER's role in PROJECT away.

    \b
    Example:
      pipeledger project member remove vision carol
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        client.remove_member(project, user)
    finally:
        client.close()
    console().print(f"{esc(user)} removed from project {esc(project)}.")


@member_group.command("list")
@click.argument("project")
@json_option()
@server_stack_option()
def list_members(project: str, as_json: bool, stack: str | None) -> None:
    """List PROJECT's members and their roles.

    \b
    Example:
      pipeledger project member list vision --json
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        found = [json_output.member(m) for m in client.list_members(project)]
    finally:
        client.close()
    if as_json:
        json_output.print_json(found)
        return
    if not found:
        console().print(f"Project {esc(project)} has no members.")
        return
    table = Table("user", "kind", "role")
    for m in found:
        table.add_row(esc(m["user"]), m["kind"], m["role"])
    console().print(table)
