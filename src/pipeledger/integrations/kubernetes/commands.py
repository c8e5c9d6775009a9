"""What ``pipeledger metadata-store up`` and ``down`` do for a ``kubernetes`` metadata store.

The CLI (:mod:`pipeledger.cli.metadata_store`) parses the options, prints and asks for
confirmation; these functions do the rest and report progress through a ``say`` callback
(plain text, one line per call). Importing this module does not import the ``kubernetes``
client: each function imports it (through :func:`.cluster.require_client`) when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeledger.exceptions import ConfigError
from pipeledger.integrations.kubernetes.cluster import load_cluster, require_client
from pipeledger.integrations.kubernetes.config import KubernetesMetadataStoreConfig
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager, validate_config

#: Receives one line of progress (an object applied or deleted, a wait starting...).
Say = Callable[[str], None]


@dataclass(frozen=True)
class UpResult:
    """What :func:`up` did."""

    #: The cluster, as messages name it: ``context 'kind-dev' at https://127.0.0.1:6443``.
    where: str
    #: Whether ``up`` waited until MySQL was ready and opened the store (not with timeout 0).
    ready: bool


def deployment_config(manager: StackManager, name: str) -> KubernetesMetadataStoreConfig:
    """The validated configuration of metadata store ``name``.

    Raises:
        ComponentNotFoundError: no metadata store of that name.
        ConfigError: it is not of the ``kubernetes`` flavor (``up`` and ``down`` deploy only
            those), or its configuration is invalid.
    """
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


def manifests_yaml(config: KubernetesMetadataStoreConfig) -> str:
    """The objects ``up`` would apply, as YAML with the passwords redacted (``up --dry-run``);
    needs the client but no cluster.

    Raises:
        ConfigError: the Kubernetes client is not installed.
    """
    require_client()
    from pipeledger.integrations.kubernetes import manifests

    return manifests.to_yaml(manifests.render_all(config, None))


def up(manager: StackManager, name: str, config: KubernetesMetadataStoreConfig, timeout: float, say: Say) -> UpResult:
    """Apply the deployment of metadata store ``name``; unless ``timeout`` is 0, wait up to
    ``timeout`` seconds until MySQL is ready and open the store once (creating its tables).

    Raises:
        ConfigError: the Kubernetes client is not installed, or an object of the same name
            exists that is not this deployment's.
        StoreUnavailableError: no cluster reachable, a request refused, MySQL not ready in time
            (naming the pod's problem), or the store cannot be opened.
    """
    require_client()
    from pipeledger.integrations.kubernetes import deploy

    cluster = load_cluster(config, name)
    try:
        for action in deploy.apply(cluster, config):
            say(str(action))
        if timeout == 0:
            say("Applied; not waiting for MySQL to be ready (run `up` again without --timeout=0 to wait).")
            return UpResult(cluster.where, ready=False)
        say(f"Waiting up to {timeout:g}s for MySQL to be ready...")
        deploy.wait_ready(cluster, config, timeout)
    finally:
        cluster.close()
    manager.build_component(ComponentType.METADATA_STORE, name).close()  # connects and creates the tables
    return UpResult(cluster.where, ready=True)


def down(
    name: str,
    config: KubernetesMetadataStoreConfig,
    keep_data: bool,
    say: Say,
    confirm: Callable[[str], None] | None = None,
) -> None:
    """Delete the deployment of metadata store ``name`` (``keep_data``: not its volume and Secret).

    The cluster is reached first, so an unreachable one is reported before ``confirm`` is
    called with the question (it raises to refuse; None: do not ask).

    Raises:
        ConfigError: the Kubernetes client is not installed.
        StoreUnavailableError: no cluster reachable, or a request refused.
    """
    require_client()
    from pipeledger.integrations.kubernetes import deploy

    cluster = load_cluster(config, name)
    try:
        if confirm is not None:
            plan = ", ".join(f"{kind} {obj}" for kind, obj in deploy.down_plan(config, keep_data))
            lost = "" if keep_data else " The metadata recorded in it is lost."
            confirm(f"Delete {plan} in namespace {config.namespace}?{lost}")
        for action in deploy.delete(cluster, config, keep_data):
            say(str(action))
    finally:
        cluster.close()
