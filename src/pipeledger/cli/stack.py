"""``pipeledger stack ...``: register, list, describe, activate and delete stacks."""

from __future__ import annotations

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option
from pipeledger.cli.output import compact_json, console, esc
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager


@click.group("stack")
def stack_group() -> None:
    """Register stacks (an orchestrator, an artifact store and a metadata store) and pick one.

    \b
    Example:
      pipeledger stack register prod -o default -a default -m prod-db
    """


@stack_group.command("register")
@click.argument("name")
@click.option("--orchestrator", "-o", default="default", show_default=True, help="Orchestrator name.")
@click.option("--artifact-store", "-a", default="default", show_default=True, help="Artifact store name.")
@click.option("--metadata-store", "-m", default="default", show_default=True, help="Metadata store name.")
@click.option("--set", "activate", is_flag=True, help="Also make it the active stack.")
def register(name: str, orchestrator: str, artifact_store: str, metadata_store: str, activate: bool) -> None:
    """Register a stack NAME from registered components.

    \b
    Example:
      pipeledger stack register prod -o default -a default -m prod-db --set
    """
    manager = StackManager()
    manager.register_stack(name, orchestrator, artifact_store, metadata_store)
    console().print(f"Registered stack [bold]{esc(name)}[/bold].")
    if activate:
        manager.set_active_stack(name)
        console().print(f"Active stack: [bold]{esc(name)}[/bold].")


@stack_group.command("list")
@json_option()
def list_stacks(as_json: bool) -> None:
    """List stacks; the active one is marked.

    \b
    Example:
      pipeledger stack list
    """
    stacks, active = StackManager().list_stacks()
    if as_json:
        json_output.print_json(
            [
                json_output.stack_summary(name, {t: entry.component(t) for t in ComponentType}, name == active)
                for name, entry in stacks
            ]
        )
        return
    table = Table("active", "stack", "orchestrator", "artifact store", "metadata store")
    for name, entry in stacks:
        table.add_row(
            "*" if name == active else "",
            esc(name),
            esc(entry.orchestrator),
            esc(entry.artifact_store),
            esc(entry.metadata_store),
        )
    console().print(table)


@stack_group.command("describe")
@click.argument("name", required=False)
@json_option()
def describe(name: str | None, as_json: bool) -> None:
    """Show a stack's components with their flavors and configuration (secrets hidden).

    Without NAME, the active stack.

    \b
    Example:
      pipeledger stack describe prod
    """
    info = StackManager().describe_stack(name)
    if as_json:  # configurations without secrets (run records keep the same snapshot)
        json_output.print_json(info)
        return
    table = Table("component", "name", "flavor", "configuration")
    for type_ in ComponentType:
        part = info[type_.value]
        table.add_row(type_.human, esc(part["name"]), esc(part["flavor"]), compact_json(part["config"], 400))
    suffix = " (active)" if info["active"] else ""
    console().print(f"[bold]stack {esc(info['name'])}[/bold]{suffix}")
    console().print(table)


@stack_group.command("set")
@click.argument("name")
def set_active(name: str) -> None:
    """Make NAME the active stack: runs and `Client()` use it from now on.

    \b
    Example:
      pipeledger stack set prod
    """
    StackManager().set_active_stack(name)
    console().print(f"Active stack: [bold]{esc(name)}[/bold].")


@stack_group.command("get")
def get_active() -> None:
    """Print the active stack's name.

    \b
    Example:
      pipeledger stack get
    """
    click.echo(StackManager().active_stack_name())


@stack_group.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete a stack's registration (its components stay). The default and the active stack
    cannot be deleted.

    \b
    Example:
      pipeledger stack delete staging
    """
    StackManager().delete_stack(name)
    console().print(f"Deleted stack [bold]{esc(name)}[/bold].")
