"""Configuration of the ``kubernetes`` metadata-store flavor (no dependency on the client)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, ValidationInfo, field_validator

from pipeledger.stack.flavor import FlavorConfig

#: A Kubernetes resource quantity: a decimal number with an optional binary (Ki..Ei), decimal
#: SI (n, u, m, k, M..E) or exponent suffix; the grammar of ``resource.Quantity``.
QUANTITY = re.compile(r"^\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
#: A DNS-1035 label: what Service names must be (and StatefulSet names, to be safe).
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
#: A DNS-1123 label: what namespace names must be.
NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: StatefulSet pods carry a ``controller-revision-hash`` label of ``<name>-<10 chars>``, and a
#: label value has at most 63 characters.
MAX_NAME = 52


def default_deployment_name(component_name: str) -> str:
    """``pipeledger-<component>`` made a valid DNS label (lower case, other characters -> ``-``)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", component_name.lower()).strip("-") or "store"
    return f"pipeledger-{slug}"[:MAX_NAME].rstrip("-")


def _quantity(field: str, value: str, *, positive: bool = True) -> str:
    if not QUANTITY.match(value):
        raise ValueError(f"{field} {value!r} is not a Kubernetes quantity (e.g. 10Gi, 500Mi, 250m, 1)")
    if positive and not re.search(r"[1-9]", value.split("e")[0].split("E")[0]):
        raise ValueError(f"{field} {value!r} must be greater than zero")
    return value


class KubernetesMetadataStoreConfig(FlavorConfig):
    """Where and how ``pipeledger metadata-store up`` deploys MySQL, and how the store reaches it.

    The passwords are not configuration: ``up`` generates them into a Kubernetes Secret,
    and the store reads them from there when it connects.
    """

    kubernetes_context: str | None = Field(
        None, description="kubeconfig context to use; none = the current context (or in-cluster credentials)."
    )
    namespace: str = Field(
        "pipeledger", pattern=NAMESPACE, max_length=63, description="Namespace of the MySQL workload."
    )
    deployment_name: str = Field(
        ...,
        pattern=DNS_LABEL,
        max_length=MAX_NAME,
        description="Name of the StatefulSet and Service (default pipeledger-<component name>).",
    )
    storage_capacity: str = Field("10Gi", description="Size of the PersistentVolumeClaim (Kubernetes quantity).")
    storage_class: str | None = Field(None, description="StorageClass of the volume; none = the cluster default.")
    image: str = Field("mysql:8.0", min_length=1, description="MySQL 8 container image.")
    database: str = Field(
        "pipeledger", pattern=r"^[A-Za-z0-9_]+$", max_length=64, description="Database created in MySQL."
    )
    username: str = Field(
        "pipeledger", pattern=r"^[A-Za-z0-9_]+$", max_length=32, description="MySQL user (never root)."
    )
    cpu_request: str = Field("250m", description="CPU requested for MySQL.")
    memory_request: str = Field("512Mi", description="Memory requested for MySQL.")
    cpu_limit: str = Field("1", description="CPU limit of MySQL.")
    memory_limit: str = Field("1Gi", description="Memory limit of MySQL.")
    connect_timeout: int = Field(
        10, gt=0, le=300, description="Seconds to wait for the Kubernetes API server and for MySQL."
    )

    @field_validator("storage_capacity", "cpu_request", "memory_request", "cpu_limit", "memory_limit")
    @classmethod
    def _check_quantity(cls, value: str, info: ValidationInfo) -> str:
        return _quantity(info.field_name or "quantity", value)

    @field_validator("username")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if value.lower() == "root":
            raise ValueError("the store connects as a dedicated user, not root; choose another username")
        return value


@dataclass(frozen=True)
class Names:
    """The names of a deployment's objects, all derived from ``deployment_name``."""

    namespace: str
    statefulset: str
    service: str
    secret: str
    pvc: str
    pod: str

    @classmethod
    def of(cls, config: KubernetesMetadataStoreConfig) -> Names:
        """The names for ``config``."""
        name = config.deployment_name
        return cls(
            namespace=config.namespace,
            statefulset=name,
            service=name,
            secret=f"{name}-credentials",
            pvc=f"{name}-data",
            pod=f"{name}-0",  # the StatefulSet's only replica
        )
