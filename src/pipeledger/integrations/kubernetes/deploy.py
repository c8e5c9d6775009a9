"""Applying, waiting for and removing a ``kubernetes`` metadata store's objects.

``apply`` is create-or-update and idempotent: an existing Secret is kept as it is (its
passwords are the ones MySQL was initialized with), an existing PVC is kept (a claim's
size cannot simply be changed), the Service is patched and the StatefulSet replaced.
The decisions that need no cluster (:func:`down_plan`, :func:`is_ready`,
:func:`pod_problem`) are pure functions of client models.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeledger.exceptions import ConfigError, StoreUnavailableError
from pipeledger.integrations.kubernetes import manifests as m
from pipeledger.integrations.kubernetes.cluster import Cluster, api_status, translate
from pipeledger.integrations.kubernetes.config import KubernetesMetadataStoreConfig
from pipeledger.text import plural


@dataclass(frozen=True)
class Action:
    """What ``up`` or ``down`` did to one object: ``created``, ``updated``, ``kept``, ``deleted``..."""

    kind: str
    name: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.what}"


def _call(cluster: Cluster, doing: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return method(*args, _request_timeout=cluster.timeout, **kwargs)
    except Exception as exc:
        raise translate(exc, cluster, doing) from exc


def _read(cluster: Cluster, doing: str, method: Callable[..., Any], *args: Any) -> Any | None:
    """The object, or None when it does not exist (HTTP 404)."""
    try:
        return method(*args, _request_timeout=cluster.timeout)
    except Exception as exc:
        if api_status(exc) == 404:
            return None
        raise translate(exc, cluster, doing) from exc


def _delete(cluster: Cluster, doing: str, method: Callable[..., Any], name: str, namespace: str) -> bool:
    """Delete one object; False if it did not exist. The answer is not parsed: servers return the
    object or a Status depending on the kind and version, which the typed models may refuse."""
    try:
        response = method(name, namespace, _request_timeout=cluster.timeout, _preload_content=False)
    except Exception as exc:
        if api_status(exc) == 404:
            return False
        raise translate(exc, cluster, doing) from exc
    release = getattr(response, "release_conn", None)
    if callable(release):
        release()
    return True


def _ensure_namespace(cluster: Cluster, namespace: str) -> Action | None:
    core = cluster.core()
    try:
        core.read_namespace(namespace, _request_timeout=cluster.timeout)
        return None
    except Exception as exc:
        if api_status(exc) == 403:  # users limited to their namespace cannot read it; assume it exists
            return None
        if api_status(exc) != 404:
            raise translate(exc, cluster, f"reading namespace {namespace}") from exc
    body = m.k8s.V1Namespace(api_version="v1", kind="Namespace", metadata=m.k8s.V1ObjectMeta(name=namespace))
    _call(cluster, f"creating namespace {namespace}", core.create_namespace, body)
    return Action("Namespace", namespace, "created")


def _methods(cluster: Cluster) -> dict[str, dict[str, Callable[..., Any]]]:
    """The client methods for each kind: read, create, update, delete."""
    core, apps = cluster.core(), cluster.apps()
    return {
        "Secret": {
            "read": core.read_namespaced_secret,
            "create": core.create_namespaced_secret,
            "delete": core.delete_namespaced_secret,
        },
        "PersistentVolumeClaim": {
            "read": core.read_namespaced_persistent_volume_claim,
            "create": core.create_namespaced_persistent_volume_claim,
            "delete": core.delete_namespaced_persistent_volume_claim,
        },
        "Service": {
            "read": core.read_namespaced_service,
            "create": core.create_namespaced_service,
            "update": core.patch_namespaced_service,  # a patch keeps the allocated cluster IP
            "delete": core.delete_namespaced_service,
        },
        "StatefulSet": {
            "read": apps.read_namespaced_stateful_set,
            "create": apps.create_namespaced_stateful_set,
            "update": apps.replace_namespaced_stateful_set,
            "delete": apps.delete_namespaced_stateful_set,
        },
    }


def object_names(names: m.Names) -> dict[str, str]:
    """Kind -> name of the deployment's objects, in the order ``up`` applies them."""
    return {
        "Secret": names.secret,
        "PersistentVolumeClaim": names.pvc,
        "Service": names.service,
        "StatefulSet": names.statefulset,
    }


def is_owned(obj: Any, config: KubernetesMetadataStoreConfig) -> bool:
    """Whether an existing object was made by pipeledger for this deployment (by its labels)."""
    found = (obj.metadata.labels if obj.metadata else None) or {}
    return all(found.get(key) == value for key, value in m.selector_labels(config).items()) and (
        found.get("app.kubernetes.io/managed-by") == "pipeledger"
    )


def apply(cluster: Cluster, config: KubernetesMetadataStoreConfig) -> list[Action]:
    """Create or update every object of the deployment; returns what was done to each.

    Raises:
        ConfigError: an object of the same name exists but is not this deployment's (by its
            labels); nothing is changed then.
        StoreUnavailableError: the cluster cannot be reached or refuses a request.
    """
    names = m.Names.of(config)
    ns, methods, wanted = names.namespace, _methods(cluster), object_names(names)
    existing = {
        kind: _read(cluster, f"reading {kind} {name}", methods[kind]["read"], name, ns) for kind, name in wanted.items()
    }
    foreign = [
        f"{kind} {wanted[kind]}" for kind, obj in existing.items() if obj is not None and not is_owned(obj, config)
    ]
    if foreign:
        raise ConfigError(
            f"{', '.join(foreign)} already exist(s) in namespace {ns} and not for this metadata store (labels "
            "differ); choose another deployment_name or namespace"
        )

    actions = [a for a in [_ensure_namespace(cluster, ns)] if a]

    def create(kind: str, body: Any, what: str = "created") -> None:
        _call(cluster, f"creating {kind} {wanted[kind]}", methods[kind]["create"], ns, body)
        actions.append(Action(kind, wanted[kind], what))

    if existing["Secret"] is None:
        create("Secret", m.render_secret(config, m.Credentials.generate()), "created with generated passwords")
    else:
        _decode(existing["Secret"], names)  # refuse a Secret without the passwords now, not at connect time
        actions.append(Action("Secret", names.secret, "kept (existing passwords)"))

    pvc = existing["PersistentVolumeClaim"]
    if pvc is None:
        create("PersistentVolumeClaim", m.render_pvc(config), f"created ({config.storage_capacity})")
    else:
        size = ((pvc.spec.resources.requests if pvc.spec and pvc.spec.resources else None) or {}).get("storage", "?")
        note = "" if size == config.storage_capacity else f"; storage_capacity {config.storage_capacity} not applied"
        actions.append(Action("PersistentVolumeClaim", names.pvc, f"kept ({size}{note})"))

    updates: dict[str, Any] = {"Service": m.render_service(config), "StatefulSet": m.render_statefulset(config)}
    for kind, body in updates.items():
        current = existing[kind]
        if current is None:
            create(kind, body)
            continue
        if kind == "StatefulSet":  # a replace must name the version it replaces
            body.metadata.resource_version = current.metadata.resource_version
        _call(cluster, f"updating {kind} {wanted[kind]}", methods[kind]["update"], wanted[kind], ns, body)
        actions.append(Action(kind, wanted[kind], "updated"))
    return actions


def is_ready(statefulset: Any) -> bool:
    """Whether the StatefulSet's current revision has its one replica ready."""
    status, meta = statefulset.status, statefulset.metadata
    if status is None:
        return False
    current = (status.observed_generation or 0) >= (meta.generation or 0 if meta else 0)
    return bool(current and (status.ready_replicas or 0) >= 1 and (status.updated_replicas or 0) >= 1)


def pod_problem(pod: Any) -> str:
    """Why the MySQL pod is not ready, in a few words, from its status (``pod`` may be None)."""
    if pod is None:
        return "its pod does not exist yet"
    status = pod.status
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"pod not scheduled: {cond.message or cond.reason}"
    for container in (status.container_statuses or []) if status else []:
        state = container.state
        if state and state.waiting and state.waiting.reason not in (None, "ContainerCreating"):
            return f"container {state.waiting.reason}: {state.waiting.message or ''}".rstrip(": ")
        if state and state.terminated:
            return f"container terminated ({state.terminated.reason}, exit code {state.terminated.exit_code})"
        if container.restart_count:
            return f"MySQL restarted {plural(container.restart_count, 'time')}; see its logs"
    phase = status.phase if status else None
    if phase == "Running":
        return "MySQL is starting (its readiness probe does not pass yet)"
    return f"pod phase {phase or 'unknown'}"


def wait_ready(
    cluster: Cluster,
    config: KubernetesMetadataStoreConfig,
    timeout: float,
    *,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until MySQL is ready.

    Raises:
        StoreUnavailableError: not ready after ``timeout`` seconds, naming the pod's problem
            (unschedulable, image pull failure, crash...) and the kubectl command to look closer.
    """
    names = m.Names.of(config)
    apps, core = cluster.apps(), cluster.core()
    deadline = time.monotonic() + timeout
    while True:
        sts = _read(
            cluster,
            f"reading StatefulSet {names.statefulset}",
            apps.read_namespaced_stateful_set_status,
            names.statefulset,
            names.namespace,
        )
        if sts is not None and is_ready(sts):
            return
        if time.monotonic() >= deadline:
            pod = _read(
                cluster, f"reading pod {names.pod}", core.read_namespaced_pod_status, names.pod, names.namespace
            )
            raise StoreUnavailableError(
                f"MySQL {names.statefulset} in namespace {names.namespace} is not ready after {timeout:g}s: "
                f"{pod_problem(pod)}; look closer with `kubectl -n {names.namespace} describe pod {names.pod}`"
            )
        sleep(poll)


def down_plan(config: KubernetesMetadataStoreConfig, keep_data: bool) -> list[tuple[str, str]]:
    """The ``(kind, name)`` objects ``down`` deletes, in order. ``keep_data`` keeps the PVC and the
    Secret: the data on the volume only opens with the passwords it was initialized with."""
    names = m.Names.of(config)
    plan = [("StatefulSet", names.statefulset), ("Service", names.service)]
    if not keep_data:
        plan += [("PersistentVolumeClaim", names.pvc), ("Secret", names.secret)]
    return plan


def delete(cluster: Cluster, config: KubernetesMetadataStoreConfig, keep_data: bool) -> list[Action]:
    """Delete the objects of :func:`down_plan` that belong to this deployment (objects of the same
    name with other labels are left alone); the namespace is kept (it may hold more)."""
    names = m.Names.of(config)
    methods = _methods(cluster)
    actions = []
    for kind, name in down_plan(config, keep_data):
        current = _read(cluster, f"reading {kind} {name}", methods[kind]["read"], name, names.namespace)
        if current is None:
            actions.append(Action(kind, name, "absent"))
        elif not is_owned(current, config):
            actions.append(Action(kind, name, "left alone (not made by pipeledger for this store)"))
        else:
            deleted = _delete(cluster, f"deleting {kind} {name}", methods[kind]["delete"], name, names.namespace)
            actions.append(Action(kind, name, "deleted" if deleted else "absent"))
    if keep_data:
        actions += [
            Action("PersistentVolumeClaim", names.pvc, "kept (--keep-data)"),
            Action("Secret", names.secret, "kept (--keep-data)"),
        ]
    return actions


def _not_deployed(component: str, names: m.Names, cluster: Cluster, missing: str) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"kubernetes metadata store {component!r} is not deployed: no {missing} in namespace {names.namespace} "
        f"({cluster.where}); run `pipeledger metadata-store up {component}`"
    )


def _decode(secret: Any, names: m.Names) -> m.Credentials:
    data = secret.data or {}
    try:
        values = {k: base64.b64decode(data[k]).decode() for k in (m.PASSWORD_KEY, m.ROOT_PASSWORD_KEY)}
    except (KeyError, ValueError) as exc:
        raise StoreUnavailableError(
            f"Secret {names.secret} in namespace {names.namespace} lacks the keys {m.PASSWORD_KEY} and "
            f"{m.ROOT_PASSWORD_KEY}; delete it (with its volume) and run `pipeledger metadata-store up` again"
        ) from exc
    return m.Credentials(password=values[m.PASSWORD_KEY], root_password=values[m.ROOT_PASSWORD_KEY])


def connect_info(cluster: Cluster, config: KubernetesMetadataStoreConfig, component: str) -> m.Credentials:
    """Check that the deployment is ready and return its passwords (read from the Secret).

    Raises:
        StoreUnavailableError: not deployed (naming ``pipeledger metadata-store up``), not ready
            (naming the pod's problem), or the Secret is unusable.
    """
    names = m.Names.of(config)
    apps, core = cluster.apps(), cluster.core()
    sts = _read(
        cluster,
        f"reading StatefulSet {names.statefulset}",
        apps.read_namespaced_stateful_set_status,
        names.statefulset,
        names.namespace,
    )
    if sts is None:
        raise _not_deployed(component, names, cluster, f"StatefulSet {names.statefulset}")
    if not is_ready(sts):
        pod = _read(cluster, f"reading pod {names.pod}", core.read_namespaced_pod_status, names.pod, names.namespace)
        raise StoreUnavailableError(
            f"kubernetes metadata store {component!r}: MySQL {names.statefulset} in namespace {names.namespace} "
            f"is not ready ({pod_problem(pod)}); `pipeledger metadata-store up {component}` waits until it is"
        )
    secret = _read(
        cluster, f"reading Secret {names.secret}", core.read_namespaced_secret, names.secret, names.namespace
    )
    if secret is None:
        raise _not_deployed(component, names, cluster, f"Secret {names.secret}")
    return _decode(secret, names)
