"""``pipeledger metadata-store ...``: the shared component verbs plus ``migrate``, ``check``, and
``up``/``down`` for the kubernetes flavor."""

from __future__ import annotations

import click

from pipeledger.cli.components import component_group
from pipeledger.cli.options import yes_option
from pipeledger.cli.output import console, error_console, esc
from pipeledger.exceptions import ConfigError
from pipeledger.metadata_store.flavors.kubernetes.config import KubernetesMetadataStoreConfig
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager, validate_config
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
    try:
        report = check_store(store, deep=deep)
    finally:
        store.close()
    if report.ok:
        console().print(
            f"Metadata store {name}: no problem found ({plural(report.artifacts_checked, 'artifact')} checked)."
        )
        return
    for problem in report.problems:
        error_console().print(f"[bold red]problem:[/bold red] {esc(problem)}", highlight=False, soft_wrap=True)
    raise SystemExit(1)


def _kubernetes_config(manager: StackManager, name: str) -> KubernetesMetadataStoreConfig:
    """The validated configuration of metadata store ``name``; refuses other flavors."""
    entry = manager.get_component(ComponentType.METADATA_STORE, name)
    if entry.flavor != "kubernetes":
        raise ConfigError(
            f"metadata store {name!r} has flavor {entry.flavor}; `up` and `down` deploy only kubernetes "
            "metadata stores (register one with --flavor=kubernetes)"
        )
    flavor = manager.flavors().get(ComponentType.METADATA_STORE, entry.flavor)
    config = validate_config(flavor, name, entry.config, manager.home)
    assert isinstance(config, KubernetesMetadataStoreConfig)
    return config


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
    from pipeledger.metadata_store.flavors.kubernetes.cluster import load_cluster, require_client

    manager = StackManager()
    config = _kubernetes_config(manager, name)
    require_client()
    from pipeledger.metadata_store.flavors.kubernetes import deploy, manifests

    if dry_run:
        click.echo(manifests.to_yaml(manifests.render_all(config, None)), nl=False)
        return
    cluster = load_cluster(config, name)
    try:
        for action in deploy.apply(cluster, config):
            console().print(esc(action))
        if timeout == 0:
            console().print("Applied; not waiting for MySQL to be ready (run `up` again without --timeout=0 to wait).")
            return
        console().print(f"Waiting up to {timeout:g}s for MySQL to be ready...")
        deploy.wait_ready(cluster, config, timeout)
    finally:
        cluster.close()
    manager.build_component(ComponentType.METADATA_STORE, name).close()  # connects and creates the tables
    console().print(
        f"Metadata store [bold]{esc(name)}[/bold] is up (MySQL {esc(config.deployment_name)} in namespace "
        f"{esc(config.namespace)}, {esc(cluster.where)}). Use it: "
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
    from pipeledger.metadata_store.flavors.kubernetes.cluster import load_cluster, require_client

    manager = StackManager()
    config = _kubernetes_config(manager, name)
    require_client()
    from pipeledger.metadata_store.flavors.kubernetes import deploy

    cluster = load_cluster(config, name)  # an unreachable cluster is reported before asking anything
    try:
        if not yes:
            plan = ", ".join(f"{kind} {obj}" for kind, obj in deploy.down_plan(config, keep_data))
            lost = "" if keep_data else " The metadata recorded in it is lost."
            click.confirm(f"Delete {plan} in namespace {config.namespace}?{lost}", abort=True)
        for action in deploy.delete(cluster, config, keep_data):
            console().print(esc(action))
    finally:
        cluster.close()
