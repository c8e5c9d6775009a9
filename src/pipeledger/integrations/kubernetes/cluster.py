"""Reaching the Kubernetes API server, and turning its failures into one-line pipeledger errors.

The ``kubernetes`` package is an optional extra: :func:`require_client` imports it and
explains how to install it when it is missing. Every API call made through a
:class:`Cluster` has a short connect timeout, and the client does not retry, so an
unreachable cluster is reported within seconds.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeledger.exceptions import ConfigError, StoreUnavailableError
from pipeledger.integrations.kubernetes.config import KubernetesMetadataStoreConfig

INSTALL_HINT = "pip install 'pipeledger[kubernetes]'"
#: Seconds an API response may take once connected (reads are small; waits poll).
READ_TIMEOUT = 30


def require_client() -> ModuleType:
    """The ``kubernetes`` package.

    Raises:
        ConfigError: it is not installed (the message gives the install command).
    """
    try:
        return importlib.import_module("kubernetes")
    except ImportError as exc:
        raise ConfigError(f"the kubernetes metadata store flavor needs the Kubernetes client: {INSTALL_HINT}") from exc


def in_cluster(config: KubernetesMetadataStoreConfig) -> bool:
    """Whether to use the pod's service account and the Service's DNS name directly: this
    process runs in a pod (``KUBERNETES_SERVICE_HOST`` is set) and no context is configured."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and config.kubernetes_context is None


def kubeconfig_path() -> str:
    """``$KUBECONFIG`` (possibly several files separated by ``:``) or ``~/.kube/config``,
    read now rather than when the client was imported."""
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


@dataclass
class Cluster:
    """An API client bound to one cluster, with what error messages need to name it."""

    api_client: Any
    #: ``context 'kind-dev' at https://127.0.0.1:6443`` or ``in-cluster service account``.
    where: str
    connect_timeout: float
    #: What to check when the server cannot be reached, e.g. ``kubectl --context X cluster-info``.
    check: str = "kubectl cluster-info"

    @property
    def timeout(self) -> tuple[float, float]:
        """``_request_timeout`` for every call: (connect, read)."""
        return (self.connect_timeout, max(float(READ_TIMEOUT), self.connect_timeout))

    def core(self) -> Any:
        """``CoreV1Api``."""
        return require_client().client.CoreV1Api(self.api_client)

    def apps(self) -> Any:
        """``AppsV1Api``."""
        return require_client().client.AppsV1Api(self.api_client)

    def close(self) -> None:
        """Release the client's connection pool."""
        self.api_client.close()


def _unreachable(where: str, reason: str, fix: str) -> StoreUnavailableError:
    return StoreUnavailableError(f"no Kubernetes cluster reachable ({where}): {reason}; {fix}")


def load_cluster(config: KubernetesMetadataStoreConfig, component: str = "NAME") -> Cluster:
    """An API client from the kubeconfig (or the pod's service account, see :func:`in_cluster`),
    checked by asking the server for its version within ``config.connect_timeout`` seconds.

    Raises:
        ConfigError: the Kubernetes client is not installed.
        StoreUnavailableError: no kubeconfig, unknown context, or the API server cannot be
            reached or refuses the credentials (one line saying which, and what to do).
    """
    kubernetes = require_client()
    importlib.import_module("kubernetes.config")
    configuration = kubernetes.client.Configuration()
    set_context = f"`pipeledger metadata-store update {component} --kubernetes-context=CONTEXT`"
    if in_cluster(config):
        where, check = "in-cluster service account", "check the pod's service account"
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException as exc:
            raise _unreachable(where, str(exc), check) from exc
    else:
        path = kubeconfig_path()
        context = config.kubernetes_context
        where = f"kubeconfig {path}" + (f", context {context!r}" if context else "")
        if not any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p):
            fix = "point KUBECONFIG at the kubeconfig of a running cluster (or create ~/.kube/config)"
            raise _unreachable(where, "the kubeconfig file does not exist", fix)
        try:
            contexts, current = kubernetes.config.list_kube_config_contexts(config_file=path)
        except kubernetes.config.ConfigException as exc:
            raise _unreachable(where, f"the kubeconfig has no usable context ({exc})", "fix the kubeconfig") from exc
        known = [c["name"] for c in contexts or []]
        if context is not None and context not in known:
            reason = f"no context {context!r} in the kubeconfig (contexts: {', '.join(known) or 'none'})"
            raise _unreachable(where, reason, f"choose one with {set_context}")
        name = context or (current or {}).get("name", "?")
        try:
            kubernetes.config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
        except kubernetes.config.ConfigException as exc:
            raise _unreachable(where, str(exc), "fix the kubeconfig") from exc
        where = f"context {name!r} at {configuration.host}"
        check = (
            f"start the cluster and check it with `kubectl --context {name} cluster-info`, "
            f"or use another context with {set_context}"
        )
    configuration.retries = 0  # report an unreachable server now, not after urllib3's retries
    cluster = Cluster(kubernetes.client.ApiClient(configuration), where, float(config.connect_timeout), check)
    try:
        kubernetes.client.VersionApi(cluster.api_client).get_code(_request_timeout=cluster.timeout)
    except Exception as exc:
        cluster.close()
        raise translate(exc, cluster, "reaching the API server") from exc
    return cluster


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a client ``ApiException`` (None for other errors)."""
    api_exception = importlib.import_module("kubernetes.client.exceptions").ApiException
    status = getattr(exc, "status", None) if isinstance(exc, api_exception) else None
    return status if isinstance(status, int) else None


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    try:
        message = json.loads(body).get("message") if body else None
    except (ValueError, AttributeError):
        message = None
    return str(message or getattr(exc, "reason", None) or exc)


def translate(exc: BaseException, cluster: Cluster, doing: str) -> Exception:
    """A one-line pipeledger error for a failure of the client while ``doing`` something.

    Connection failures and rejected credentials become "no Kubernetes cluster reachable"
    (with what to check); other API errors name the HTTP status and the server's message.
    """
    status = api_status(exc)
    if status in (401, 403) and doing == "reaching the API server":
        reason = f"the API server refused the credentials (HTTP {status}: {_api_message(exc)})"
        return _unreachable(cluster.where, reason, "renew the credentials in the kubeconfig")
    if status:
        return StoreUnavailableError(
            f"Kubernetes API error while {doing} ({cluster.where}): HTTP {status}: {_api_message(exc)}"
        )
    import urllib3

    if isinstance(exc, (OSError, urllib3.exceptions.HTTPError)) or status == 0:
        return _unreachable(cluster.where, f"{_network_reason(exc)} while {doing}", cluster.check)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return StoreUnavailableError(
        f"unexpected answer from the Kubernetes API server while {doing} ({cluster.where}): "
        f"{type(exc).__name__}: {first}"
    )


def _network_reason(exc: BaseException) -> str:
    """The innermost useful reason of a urllib3/socket error: "Connection refused", "timed out"..."""
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the server's TLS certificate is not trusted"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:200]
