"""The verbs shared by the three component nouns (``metadata-store``, ``artifact-store``,
``orchestrator``): register, list, describe, update, delete, flavor list/describe/register.

Each noun's module calls :func:`component_group` with its type and examples.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.options import json_option
from pipeledger.cli.output import console, esc
from pipeledger.exceptions import ConfigError
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager, describe_fields
from pipeledger.text import article

_EXTRA_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


def parse_key_values(args: tuple[str, ...]) -> dict[str, Any]:
    """``--key=value``, ``--key value`` and bare ``--flag`` (true) into a dict (dashes -> underscores).

    Raises:
        ConfigError: an argument that is not an option, or an option given twice.
    """
    values: dict[str, Any] = {}
    items = list(args)
    while items:
        item = items.pop(0)
        if not item.startswith("--") or len(item) < 3:
            raise ConfigError(f"unexpected argument {item!r}: configuration is given as --key=value")
        key, sep, value = item[2:].partition("=")
        if not sep:
            value = items.pop(0) if items and not items[0].startswith("--") else "true"
        key = key.replace("-", "_")
        if key in values:
            raise ConfigError(f"option --{key.replace('_', '-')} is given twice")
        values[key] = value
    return values


def _show_mapping(title: str, values: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in values.items():
        table.add_row(esc(key), "" if value is None else esc(value))
    console().print(f"[bold]{esc(title)}[/bold]")
    console().print(table)


def component_group(type_: ComponentType, example_flavor: str, example_args: str) -> click.Group:
    """The click group for one component type."""
    noun = type_.label
    title = type_.human

    @click.group(
        noun,
        help=f"""Register and inspect {title}s.

    \b
    Example:
      pipeledger {noun} register mine --flavor={example_flavor} {example_args}
    """,
    )
    def group() -> None:
        pass

    @group.command(
        "register",
        context_settings=_EXTRA_ARGS,
        help=f"""Register {article(title)} NAME of flavor F,
    configured with --key=value options (see `pipeledger {noun} flavor describe F` for the fields).

    Secret fields take a reference, never the secret itself: '${{env:VARIABLE}}'
    or '${{file:/path/to/secret}}'.

    \b
    Example:
      pipeledger {noun} register mine --flavor={example_flavor} {example_args}
    """,
    )
    @click.argument("name")
    @click.option("--flavor", "-f", required=True, help="The flavor (see `flavor list`).")
    @click.argument("options", nargs=-1, type=click.UNPROCESSED)
    def register(name: str, flavor: str, options: tuple[str, ...]) -> None:
        StackManager().register_component(type_, name, flavor, parse_key_values(options))
        console().print(f"Registered {title} [bold]{esc(name)}[/bold] (flavor {esc(flavor)}).")

    @group.command(
        "list",
        help=f"""List registered {title}s.

    \b
    Example:
      pipeledger {noun} list
    """,
    )
    @json_option()
    def list_(as_json: bool) -> None:
        manager = StackManager()
        active = manager.get_stack_entry(manager.active_stack_name()).component(type_)
        if as_json:
            json_output.print_json(
                [
                    {"name": name, "flavor": entry.flavor, "in_active_stack": name == active}
                    for name, entry in manager.list_components(type_)
                ]
            )
            return
        table = Table("name", "flavor", "in active stack")
        for name, entry in manager.list_components(type_):
            table.add_row(esc(name), esc(entry.flavor), "yes" if name == active else "")
        console().print(table)

    @group.command(
        "describe",
        help=f"""Show {article(title)}'s flavor, configuration (secrets as
    references only) and the stacks using it.

    \b
    Example:
      pipeledger {noun} describe default
    """,
    )
    @click.argument("name")
    @json_option()
    def describe(name: str, as_json: bool) -> None:
        info = StackManager().describe_component(type_, name)
        if as_json:  # secrets as their references only
            json_output.print_json(info)
            return
        _show_mapping(
            f"{title} {name}",
            {"flavor": info["flavor"], **info["config"], "stacks": ", ".join(info["stacks"]) or "-"},
        )

    @group.command(
        "update",
        context_settings=_EXTRA_ARGS,
        help=f"""Change configuration values of a
    registered {title}.

    \b
    Example:
      pipeledger {noun} update mine {example_args}
    """,
    )
    @click.argument("name")
    @click.argument("options", nargs=-1, type=click.UNPROCESSED)
    def update(name: str, options: tuple[str, ...]) -> None:
        values = parse_key_values(options)
        if not values:
            raise ConfigError("nothing to update: give --key=value options")
        StackManager().update_component(type_, name, values)
        console().print(f"Updated {title} [bold]{esc(name)}[/bold].")

    @group.command(
        "delete",
        help=f"""Delete {article(title)}'s registration (its data is kept). Refused
    while a stack uses it.

    \b
    Example:
      pipeledger {noun} delete mine
    """,
    )
    @click.argument("name")
    def delete(name: str) -> None:
        StackManager().delete_component(type_, name)
        console().print(f"Deleted {title} [bold]{esc(name)}[/bold].")

    @group.group(
        "flavor",
        help=f"""Flavors of {title}s: built-in, from packages, registered.

    \b
    Example:
      pipeledger {noun} flavor list
    """,
    )
    def flavor() -> None:
        pass

    @flavor.command(
        "list",
        help=f"""List the {title} flavors.

    \b
    Example:
      pipeledger {noun} flavor list
    """,
    )
    @json_option()
    def flavor_list(as_json: bool) -> None:
        table = Table("flavor", "integration", "description")
        shown = []
        for info, flavor_obj in StackManager().list_flavors(type_):
            integration = flavor_obj.integration if info.origin == "built-in" else info.origin
            shown.append(
                {
                    "name": info.name,
                    "integration": integration,
                    "origin": info.origin,
                    "source": info.source,
                    "description": flavor_obj.description,
                }
            )
            table.add_row(esc(info.name), esc(integration), esc(flavor_obj.description))
        if as_json:
            json_output.print_json(shown)
            return
        console().print(table)

    @flavor.command(
        "describe",
        help=f"""Show {article(title)} flavor's configuration fields.

    \b
    Example:
      pipeledger {noun} flavor describe {example_flavor}
    """,
    )
    @click.argument("name")
    @json_option()
    def flavor_describe(name: str, as_json: bool) -> None:
        flavor_obj = StackManager().flavors().get(type_, name)
        model = flavor_obj.config_class
        if as_json:
            fields = json_output.flavor_fields(model)
            json_output.print_json(
                {"name": name, "type": type_.value, "description": flavor_obj.description, "fields": fields}
            )
            return
        console().print(f"[bold]{esc(name)}[/bold]: {esc(flavor_obj.description)}")
        table = Table("field", "type", "default", "description")
        for (field_name, field), described in zip(
            model.model_fields.items(), describe_fields(model).split(", "), strict=False
        ):
            default = "" if field.is_required() else repr(field.default)
            type_text = described.partition(" (")[2].rstrip(")")
            table.add_row(field_name, type_text, default, field.description or "")
        console().print(table)

    @flavor.command(
        "register",
        help=f"""Register a custom {title} flavor by its import path
    (module.path:FlavorClass). The class is imported and checked now.

    \b
    Example:
      pipeledger {noun} flavor register my_package.flavors:MyFlavor
    """,
    )
    @click.argument("source")
    def flavor_register(source: str) -> None:
        cls = StackManager().register_flavor(type_, source)
        console().print(f"Registered {title} flavor [bold]{esc(cls.name)}[/bold] from {esc(source)}.")

    return group
