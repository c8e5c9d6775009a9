"""``pipeledger metadata-store ...``: the shared component verbs plus ``migrate``."""

from __future__ import annotations

import click

from pipeledger.cli.components import component_group
from pipeledger.cli.output import console, error_console, esc, handle_errors
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


@metadata_store_group.command("check")
@click.argument("name", required=False)
@click.option("--deep", is_flag=True, help="Also re-hash every artifact's files and compare with the record.")
@handle_errors
def check(name: str | None, deep: bool) -> None:
    """Check a metadata store: referential integrity, artifact files present (and, with
    --deep, unchanged). Changes nothing; exits 1 if a problem is found.

    NAME defaults to the active stack's metadata store.

    \b
    Example:
      pipeledger metadata-store check --deep
    """
    from pipeledger.maintenance import check_store

    manager = StackManager()
    if name is None:
        name = manager.get_stack_entry(manager.active_stack_name()).metadata_store
    store = manager.build_component(ComponentType.METADATA_STORE, name)
    try:
        report = check_store(store, deep=deep)
    finally:
        store.close()
    if report.ok:
        console().print(f"Metadata store {name}: no problem found ({report.artifacts_checked} artifacts checked).")
        return
    for problem in report.problems:
        error_console().print(f"[bold red]problem:[/bold red] {esc(problem)}", highlight=False, soft_wrap=True)
    raise SystemExit(1)
