"""``pipeledger metadata-store ...``: the shared component verbs plus ``migrate``, ``check``, and
``up``/``down`` for the kubernetes flavor (done by :mod:`pipeledger.integrations.kubernetes.commands`)."""

from __future__ import annotations

import click

from pipeledger.cli.components import component_group
from pipeledger.cli.options import yes_option
from pipeledger.cli.output import console, error_console, esc
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from pipeledger.text import plural

metadata_store_group = component_group(
    ComponentType.METADATA_STORE,
    "mysql",
    "--host=db.internal --database=pipeledger --username=ml --password='${env:MYSQL_PASSWORD}'",
)


@metadata_store_group.command("migrate")
@click.argument("name", required=False)
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
    # The artifact stores of the stacks on this metadata store: the recorded URIs are read through
    # them (their endpoints and credentials); kept referenced while checking.
    artifact_stores = [
        manager.build_component(ComponentType.ARTIFACT_STORE, entry.artifact_store)
        for _stack, entry in manager.list_stacks()[0]
        if entry.metadata_store == name
    ]
    try:
        report = check_store(store, deep=deep)
    finally:
        store.close()
        del artifact_stores
    if report.ok:
        console().print(
            f"Metadata store {name}: no problem found ({plural(report.artifacts_checked, 'artifact')} checked)."
        )
        return
    for problem in report.problems:
        error_console().print(f"[bold red]problem:[/bold red] {esc(problem)}", highlight=False, soft_wrap=True)
    raise SystemExit(1)


@metadata_store_group.command("up")
@click.argument("name")
@click.option(
    "--dry-run", is_flag=True, help="Print the manifests (passwords redacted); change nothing, no cluster needed."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    help="Seconds to wait until MySQL is ready (0: apply and return).",
)
def up(name: str, dry_run: bool, timeout: float) -> None:
    """Deploy the MySQL of kubernetes metadata store NAME and wait until it is ready.

    Applies a Secret (generated passwords, kept on later runs), a PersistentVolumeClaim,
    a Service and a StatefulSet; running it again updates them. Then opens the store
    once (creating its tables). Not recommended for production.

    \b
    Example:
      pipeledger metadata-store up k8s --dry-run
    """
    from pipeledger.integrations.kubernetes import commands

    manager = StackManager()
    config = commands.deployment_config(manager, name)
    if dry_run:
        click.echo(commands.manifests_yaml(config), nl=False)
        return
    result = commands.up(manager, name, config, timeout, lambda line: console().print(esc(line)))
    if not result.ready:
        return
    console().print(
        f"Metadata store [bold]{esc(name)}[/bold] is up (MySQL {esc(config.deployment_name)} in namespace "
        f"{esc(config.namespace)}, {esc(result.where)}). Use it: "
        f"pipeledger stack register {esc(name)} -m {esc(name)} --set"
    )


@metadata_store_group.command("down")
@click.argument("name")
@click.option("--keep-data", is_flag=True, help="Keep the volume and the Secret, so that a later `up` reuses the data.")
@yes_option()
def down(name: str, keep_data: bool, yes: bool) -> None:
    """Remove the MySQL of kubernetes metadata store NAME (its registration stays).

    Deletes the StatefulSet and the Service, and, unless --keep-data, the
    PersistentVolumeClaim (the recorded metadata) and the Secret. The namespace is kept.

    \b
    Example:
      pipeledger metadata-store down k8s --keep-data
    """
    from pipeledger.integrations.kubernetes import commands

    config = commands.deployment_config(StackManager(), name)

    def confirm(question: str) -> None:
        click.confirm(question, abort=True)

    commands.down(name, config, keep_data, lambda line: console().print(esc(line)), None if yes else confirm)
