"""``pipeledger metadata-store ...``: the shared component verbs plus ``migrate``."""

from __future__ import annotations

import click

from pipeledger.cli.components import component_group
from pipeledger.cli.output import console, handle_errors
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager

metadata_store_group = component_group(
    ComponentType.METADATA_STORE,
    "mysql",
    "--host=db.internal --database=pipeledger --username=ml --password='${env:MYSQL_PASSWORD}'",
)


@metadata_store_group.command("migrate")
@click.argument("name", required=False)
@handle_errors
def migrate(name: str | None) -> None:
    """Upgrade a metadata store's database schema to this pipeledger's version.

    NAME defaults to the active stack's metadata store. Back the database up
    first; migrations run in transactions where the database allows it.

    \b
    Example:
      pipeledger metadata-store migrate prod
    """
    before, after = StackManager().migrate_metadata_store(name)
    if before == after:
        console().print(f"Schema already at revision {after}; nothing to do.")
    else:
        console().print(f"Schema upgraded from revision {before or '(empty)'} to {after}.")
