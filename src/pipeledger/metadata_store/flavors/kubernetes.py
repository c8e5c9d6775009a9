"""The ``kubernetes`` flavor: a MySQL that pipeledger deploys on Kubernetes, used like ``mysql``.

A thin adapter: ``pipeledger metadata-store up NAME`` deploys the MySQL with
:mod:`pipeledger.integrations.kubernetes`; opening the store then reads the generated
password from the Kubernetes Secret, reaches MySQL (through the Service's DNS name inside
the cluster, through a port-forward outside it) and builds the connection with the
``mysql`` flavor's code. This module imports only the integration's configuration; the
rest of it, and the ``kubernetes`` package, are imported when a store is opened, so
listing flavors works without the extra installed.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from pipeledger.exceptions import StoreUnavailableError
from pipeledger.integrations.kubernetes.config import (
    KubernetesMetadataStoreConfig,
    Names,
    default_deployment_name,
)
from pipeledger.metadata_store.flavors.mysql import MySQLMetadataStoreConfig, MySQLMetadataStoreFlavor
from pipeledger.metadata_store.flavors.sql_flavor import SqlFlavor
from pipeledger.metadata_store.sql import Database, SqlMetadataStore

if TYPE_CHECKING:
    from pipeledger.integrations.kubernetes.port_forward import PortForwarder

__all__ = ["KubernetesMetadataStoreConfig", "KubernetesMetadataStoreFlavor", "KubernetesSqlMetadataStore"]


class KubernetesSqlMetadataStore(SqlMetadataStore):
    """The SQL store, plus the port-forward (if any) it reaches MySQL through; closed together."""

    def __init__(self, database: Database, forwarder: PortForwarder | None, **kwargs: Any) -> None:
        self.forwarder = forwarder
        super().__init__(database, **kwargs)

    def close(self) -> None:
        super().close()
        if self.forwarder is not None:
            self.forwarder.close()


class KubernetesMetadataStoreFlavor(SqlFlavor):
    """Metadata in a MySQL that ``pipeledger metadata-store up`` deploys on a Kubernetes cluster."""

    name = "kubernetes"
    description = (
        "Deploys MySQL as a Kubernetes workload (`pipeledger metadata-store up NAME`) and stores "
        "metadata in it. Not recommended for production."
    )
    integration = "kubernetes"
    config_class = KubernetesMetadataStoreConfig

    def default_config(self, component_name: str, home: Path) -> dict[str, Any]:
        return {"deployment_name": default_deployment_name(component_name)}

    def database(self, component_name: str, config: Any, home: Path) -> Database:
        database, forwarder = self.connect(component_name, config, home)
        if forwarder is not None:
            weakref.finalize(database, forwarder.close)
        return database

    def create(self, component_name: str, config: Any, home: Path) -> SqlMetadataStore:
        database, forwarder = self.connect(component_name, config, home)
        names = Names.of(config)
        try:
            return KubernetesSqlMetadataStore(
                database,
                forwarder,
                flavor=self.name,
                auto_upgrade=False,
                migrate_command=f"pipeledger metadata-store migrate {component_name}",
                describe={"namespace": names.namespace, "statefulset": names.statefulset},
            )
        except BaseException:
            database.dispose()
            if forwarder is not None:
                forwarder.close()
            raise

    def connect(
        self, component_name: str, config: KubernetesMetadataStoreConfig, home: Path
    ) -> tuple[Database, PortForwarder | None]:
        """Check the deployment is ready, read its password and connect.

        Raises:
            ConfigError: the Kubernetes client is not installed.
            StoreUnavailableError: no cluster reachable, not deployed (naming
                ``pipeledger metadata-store up NAME``), not ready, or MySQL refuses the connection.
        """
        from pipeledger.integrations.kubernetes.cluster import in_cluster, load_cluster
        from pipeledger.integrations.kubernetes.deploy import connect_info
        from pipeledger.integrations.kubernetes.manifests import MYSQL_PORT
        from pipeledger.integrations.kubernetes.port_forward import PortForwarder, pod_port_opener

        names = Names.of(config)
        cluster = load_cluster(config, component_name)
        forwarder: PortForwarder | None = None
        try:
            credentials = connect_info(cluster, config, component_name)
            if in_cluster(config):
                host, port = f"{names.service}.{names.namespace}.svc", MYSQL_PORT
            else:
                opener = pod_port_opener(cluster, names.namespace, names.pod, MYSQL_PORT)
                forwarder = PortForwarder(opener, f"pod {names.namespace}/{names.pod}:{MYSQL_PORT}")
                host, port = forwarder.host, forwarder.port
            mysql = MySQLMetadataStoreConfig(
                host=host,
                port=port,
                database=config.database,
                username=config.username,
                password=SecretStr(credentials.password),
                connect_timeout=config.connect_timeout,
                create_database=False,  # the image created it, and the user may not create others
            )
            where = (
                f"kubernetes metadata store {component_name!r} "
                f"(MySQL {names.statefulset} in namespace {names.namespace}, {cluster.where})"
            )
            try:
                database = MySQLMetadataStoreFlavor().database(component_name, mysql, home)
            except StoreUnavailableError as exc:
                detail = f"; port-forward: {forwarder.last_error}" if forwarder and forwarder.last_error else ""
                raise StoreUnavailableError(f"{where}: {exc}{detail}") from exc
            database.display_name = where
        except BaseException:
            if forwarder is not None:
                forwarder.close()
            cluster.close()
            raise
        if forwarder is None:
            cluster.close()  # the port-forward keeps using the client; otherwise it is done
        return database, forwarder
