"""The ``kubeflow`` flavor: metadata in the ML Metadata (MLMD) gRPC service Kubeflow runs.

Runs recorded here appear beside Kubeflow Pipelines' own in the same MLMD
database (as contexts, executions and artifacts of pipeledger's types, and in
``system.Pipeline`` / ``system.PipelineRun`` contexts where Kubeflow's and TFX's
readers look for runs; see :mod:`pipeledger.metadata_store.mlmd.types`). Any orchestrator can record here:
unlike the original system, this flavor is not tied to the Kubeflow
orchestrator, only to a reachable MLMD service.

Needs ``pip install 'pipeledger[kubeflow]'`` (``ml-metadata``, Python <= 3.11);
this module imports it only when a store is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from pipeledger.exceptions import ConfigError, StoreUnavailableError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor

INSTALL_HINT = "pip install 'pipeledger[kubeflow]'"


class KubeflowMetadataStoreConfig(FlavorConfig):
    """Configuration of the ``kubeflow`` flavor."""

    host: str = Field(
        "metadata-grpc-service.kubeflow",
        min_length=1,
        description="Host of Kubeflow's metadata gRPC service (from outside the cluster, a port-forward's host).",
    )
    port: int = Field(8080, gt=0, lt=65536, description="Port of the metadata gRPC service.")
    timeout: float = Field(10.0, gt=0, description="Seconds each call to the service may take.")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_cert: str | None = Field(None, description="Path of the CA certificate that signed the server's (TLS).")
    client_cert: str | None = Field(None, description="Path of the client certificate (mutual TLS).")
    client_key: str | None = Field(None, description="Path of the client certificate's key (mutual TLS).")

    @model_validator(mode="after")
    def _tls_files(self) -> KubeflowMetadataStoreConfig:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give both client_cert and client_key for mutual TLS, or neither")
        if not self.tls and (self.ca_cert or self.client_cert):
            raise ValueError("certificates are given but tls is off: add --tls=true")
        return self


class KubeflowMetadataStoreFlavor(MetadataStoreFlavor):
    """Metadata in Kubeflow's ML Metadata service, over gRPC."""

    name = "kubeflow"
    integration = "kubeflow"
    description = "Metadata in Kubeflow's ML Metadata (MLMD) gRPC service, beside Kubeflow Pipelines' own."
    config_class = KubeflowMetadataStoreConfig

    def create(self, component_name: str, config: Any, home: Path) -> MetadataStore:
        try:
            from pipeledger.metadata_store.mlmd import MlmdMetadataStore
            from pipeledger.metadata_store.mlmd.connection import MlmdConnection
        except ImportError as exc:
            raise ConfigError(
                f"the kubeflow metadata store needs ML Metadata, which is not installed ({exc}): "
                f"run `{INSTALL_HINT}` (Python <= 3.11)"
            ) from None
        connection = MlmdConnection(
            config.host, config.port, timeout=config.timeout, credentials=_credentials(config) if config.tls else None
        )
        try:
            return MlmdMetadataStore(
                connection, flavor=self.name, describe={"host": config.host, "port": config.port, "tls": config.tls}
            )
        except StoreUnavailableError:
            connection.close()
            raise


def _credentials(config: KubeflowMetadataStoreConfig) -> Any:
    import grpc

    def read(path: str | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} {path!r}: {exc.strerror}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(config.ca_cert, "CA certificate"),
        private_key=read(config.client_key, "client key"),
        certificate_chain=read(config.client_cert, "client certificate"),
    )
