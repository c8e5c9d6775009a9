"""The kubernetes metadata-store flavor without a cluster (none can run on this machine).

Exercised here: the manifests as objects of the Kubernetes client's own (validating)
models, the configuration, the CLI's dry run, the down plan, the readiness decisions,
the port-forward relay over real local sockets, and every "no cluster reachable" error.
Not exercised: applying to a real API server, MySQL starting in a pod, a real port-forward.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client as k8s

from pipeledger.cli.main import cli
from pipeledger.exceptions import StoreUnavailableError
from pipeledger.integrations.kubernetes import manifests as m
from pipeledger.integrations.kubernetes.config import Names, default_deployment_name
from pipeledger.integrations.kubernetes.deploy import down_plan, is_ready, pod_problem
from pipeledger.integrations.kubernetes.port_forward import PortForwarder
from pipeledger.metadata_store.flavors.kubernetes import KubernetesMetadataStoreConfig, KubernetesMetadataStoreFlavor
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from tests.k8s_stub_api import StubApi, stub_api_server

MODELS = {
    "Secret": "V1Secret",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Service": "V1Service",
    "StatefulSet": "V1StatefulSet",
}
REQUIRED_LABELS = {
    "app.kubernetes.io/name": "mysql",
    "app.kubernetes.io/instance": "pipeledger-ml",
    "app.kubernetes.io/managed-by": "pipeledger",
    "app.kubernetes.io/component": "metadata-store",
}


def config(**values: object) -> KubernetesMetadataStoreConfig:
    return KubernetesMetadataStoreConfig.model_validate({"deployment_name": "pipeledger-ml", **values})


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def refused(*args: str) -> str:
    """Run a command that must fail: exit 1, one line on stderr, no traceback. Returns the line."""
    code, out, err = invoke(*args)
    assert code == 1, f"`pipeledger {' '.join(args)}` exited {code}: {out}{err}"
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def objects(cfg: KubernetesMetadataStoreConfig | None = None) -> dict[str, Any]:
    return {obj.kind: obj for obj in m.render_all(cfg or config(), m.Credentials.generate())}


# ------------------------------------------------------------------ manifests


def test_manifests_are_valid_objects_of_the_client_models() -> None:
    api = k8s.ApiClient()
    rendered = m.render_all(config(), m.Credentials.generate())
    assert [o.kind for o in rendered] == ["Secret", "PersistentVolumeClaim", "Service", "StatefulSet"]
    for obj in rendered:
        wire = api.sanitize_for_serialization(obj)
        assert wire["apiVersion"] == ("apps/v1" if obj.kind == "StatefulSet" else "v1")
        back = api.deserialize(json.dumps(wire), MODELS[obj.kind], "application/json")
        assert back == obj  # nothing lost on the way to the API server
        # The 37.x models are pydantic models that forbid unknown fields: validate the wire form.
        model = getattr(k8s, MODELS[obj.kind])
        assert model.model_validate(wire) == obj


def test_labels_and_selectors_match() -> None:
    objs = objects()
    sts, service = objs["StatefulSet"], objs["Service"]
    for obj in objs.values():
        assert REQUIRED_LABELS.items() <= obj.metadata.labels.items(), obj.kind
        assert obj.metadata.namespace == "pipeledger"
    pod_labels = sts.spec.template.metadata.labels
    assert REQUIRED_LABELS.items() <= pod_labels.items()
    assert sts.spec.selector.match_labels.items() <= pod_labels.items()
    assert service.spec.selector == sts.spec.selector.match_labels
    assert sts.spec.service_name == service.metadata.name
    container = sts.spec.template.spec.containers[0]
    assert service.spec.ports[0].target_port == container.ports[0].name == "mysql"
    assert service.spec.ports[0].port == container.ports[0].container_port == 3306


def test_probes_and_resources() -> None:
    cfg = config(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="2Gi")
    container = objects(cfg)["StatefulSet"].spec.template.spec.containers[0]
    assert container.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert container.resources.limits == {"cpu": "2", "memory": "2Gi"}
    wire = k8s.ApiClient().sanitize_for_serialization(container)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        # the exec action must survive serialization (37.x silently drops `var_exec=`)
        assert wire[probe]["exec"]["command"], probe
        assert wire[probe]["periodSeconds"] > 0 and wire[probe]["timeoutSeconds"] > 0
    assert wire["livenessProbe"]["exec"]["command"][:2] == ["mysqladmin", "ping"]
    assert "SELECT 1" in wire["readinessProbe"]["exec"]["command"][-1]


def test_secret_passwords_are_generated_and_never_empty_or_static() -> None:
    first, second = objects()["Secret"], objects()["Secret"]
    for secret in (first, second):
        values = secret.string_data
        assert set(values) == {m.PASSWORD_KEY, m.ROOT_PASSWORD_KEY}
        assert all(len(v) >= 32 and v != m.REDACTED for v in values.values())
        assert values[m.PASSWORD_KEY] != values[m.ROOT_PASSWORD_KEY]
    assert first.string_data[m.PASSWORD_KEY] != second.string_data[m.PASSWORD_KEY]
    assert first.string_data[m.ROOT_PASSWORD_KEY] != second.string_data[m.ROOT_PASSWORD_KEY]
    credentials = m.Credentials.generate()
    assert credentials.password not in repr(credentials) and credentials.root_password not in repr(credentials)


def test_mysql_runs_with_a_root_password_and_a_dedicated_user() -> None:
    container = objects()["StatefulSet"].spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert not {"MYSQL_ALLOW_EMPTY_PASSWORD", "MYSQL_RANDOM_ROOT_PASSWORD"} & set(env)
    root = env["MYSQL_ROOT_PASSWORD"].value_from.secret_key_ref
    user = env["MYSQL_PASSWORD"].value_from.secret_key_ref
    assert (root.name, root.key) == ("pipeledger-ml-credentials", m.ROOT_PASSWORD_KEY)
    assert (user.name, user.key) == ("pipeledger-ml-credentials", m.PASSWORD_KEY)
    assert env["MYSQL_USER"].value == "pipeledger" and env["MYSQL_DATABASE"].value == "pipeledger"
    with pytest.raises(ValueError, match="not root"):
        config(username="root")


def test_pvc_from_storage_capacity_and_mounted_by_the_statefulset() -> None:
    objs = objects(config(storage_capacity="25Gi", storage_class="fast-ssd"))
    pvc, sts = objs["PersistentVolumeClaim"], objs["StatefulSet"]
    assert pvc.spec.resources.requests == {"storage": "25Gi"}
    assert pvc.spec.storage_class_name == "fast-ssd" and pvc.spec.access_modes == ["ReadWriteOnce"]
    volume = sts.spec.template.spec.volumes[0]
    assert volume.persistent_volume_claim.claim_name == pvc.metadata.name == "pipeledger-ml-data"
    mount = sts.spec.template.spec.containers[0].volume_mounts[0]
    assert (mount.name, mount.mount_path) == (volume.name, "/var/lib/mysql")
    assert objects()["PersistentVolumeClaim"].spec.resources.requests == {"storage": "10Gi"}


@pytest.mark.parametrize("value", ["10GB", "ten", "", "-1Gi", "0", "1.5.2Gi"])
def test_storage_capacity_must_be_a_positive_quantity(value: str) -> None:
    with pytest.raises(ValueError, match="storage_capacity"):
        config(storage_capacity=value)


def test_default_deployment_name_is_a_valid_dns_label() -> None:
    assert default_deployment_name("ml") == "pipeledger-ml"
    assert default_deployment_name("Team_Store.v2") == "pipeledger-team-store-v2"
    long = default_deployment_name("x" * 64)
    assert len(long) <= 52 and config(deployment_name=long).deployment_name == long
    names = Names.of(config())
    assert (names.secret, names.pvc, names.pod) == (
        "pipeledger-ml-credentials",
        "pipeledger-ml-data",
        "pipeledger-ml-0",
    )


# ------------------------------------------------------------------ CLI, plans, readiness


def test_flavor_list_shows_kubernetes() -> None:
    code, out, _ = invoke("metadata-store", "flavor", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("│ kubernetes "))
    assert "kubernetes" in row.split("│")[2] and "Deploys MySQL as a Kubernetes workload" in out
    assert KubernetesMetadataStoreFlavor.integration == "kubernetes"
    code, out, _ = invoke("metadata-store", "flavor", "describe", "kubernetes")
    assert code == 0 and "storage_capacity" in out and "kubernetes_context" in out


def test_dry_run_prints_the_manifests_without_passwords(home: Path) -> None:
    assert invoke("metadata-store", "register", "ml", "--flavor=kubernetes", "--storage-capacity=5Gi")[0] == 0
    code, out, err = invoke("metadata-store", "up", "ml", "--dry-run")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Secret", "PersistentVolumeClaim", "Service", "StatefulSet"]
    assert set(docs[0]["stringData"].values()) == {m.REDACTED}
    assert "data" not in docs[0]
    assert docs[1]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    for doc in docs:  # the printed YAML is what the client's models accept
        getattr(k8s, MODELS[doc["kind"]]).model_validate(doc)
    assert "password" not in (home / "config.yaml").read_text()


def test_up_and_down_refuse_other_flavors() -> None:
    for command in (("up", "default"), ("down", "default", "--yes")):
        line = refused("metadata-store", *command)
        assert "flavor sqlite" in line and "kubernetes" in line
    assert "no metadata store named 'nope'" in refused("metadata-store", "up", "nope", "--dry-run")


def test_down_plan_keeps_volume_and_secret_with_keep_data() -> None:
    cfg = config()
    assert down_plan(cfg, keep_data=False) == [
        ("StatefulSet", "pipeledger-ml"),
        ("Service", "pipeledger-ml"),
        ("PersistentVolumeClaim", "pipeledger-ml-data"),
        ("Secret", "pipeledger-ml-credentials"),
    ]
    kept = down_plan(cfg, keep_data=True)
    assert kept == [("StatefulSet", "pipeledger-ml"), ("Service", "pipeledger-ml")]


def test_readiness_decisions() -> None:
    def sts(ready: int, generation: int = 2, observed: int = 2) -> k8s.V1StatefulSet:
        rendered = m.render_statefulset(config())
        assert rendered.metadata is not None
        rendered.metadata.generation = generation
        rendered.status = k8s.V1StatefulSetStatus(
            replicas=1, ready_replicas=ready, updated_replicas=1, observed_generation=observed
        )
        return rendered

    assert is_ready(sts(1)) and not is_ready(sts(0)) and not is_ready(sts(1, generation=3))
    assert not is_ready(m.render_statefulset(config()))  # no status yet
    pull = k8s.V1Pod(
        status=k8s.V1PodStatus(
            phase="Pending",
            container_statuses=[
                k8s.V1ContainerStatus(
                    name="mysql",
                    image="mysql:8.0",
                    image_id="",
                    ready=False,
                    restart_count=0,
                    state=k8s.V1ContainerState(
                        waiting=k8s.V1ContainerStateWaiting(reason="ImagePullBackOff", message="not found")
                    ),
                )
            ],
        )
    )
    assert pod_problem(pull) == "container ImagePullBackOff: not found"
    unscheduled = k8s.V1Pod(
        status=k8s.V1PodStatus(
            phase="Pending",
            conditions=[k8s.V1PodCondition(type="PodScheduled", status="False", message="unbound PVC")],
        )
    )
    assert pod_problem(unscheduled) == "pod not scheduled: unbound PVC"
    assert pod_problem(None) == "its pod does not exist yet"


# ------------------------------------------------------------------ no cluster


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "test-ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "test-ctx",
            }
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """KUBECONFIG pointing at 127.0.0.1 on a closed port; a registered kubernetes store ``ml``."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    port = closed_port()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}")))
    assert invoke("metadata-store", "register", "ml", "--flavor=kubernetes")[0] == 0
    return f"127.0.0.1:{port}"


@pytest.mark.parametrize("command", [("up", "ml"), ("down", "ml", "--yes"), ("down", "ml")])
def test_unreachable_api_server_is_one_quick_line(dead_cluster: str, command: tuple[str, ...]) -> None:
    start = time.monotonic()
    line = refused("metadata-store", *command)
    assert time.monotonic() - start < 5
    assert "no Kubernetes cluster reachable" in line and dead_cluster in line and "connection refused" in line
    assert "kubectl --context test-ctx cluster-info" in line


def test_opening_the_store_without_cluster_raises_store_unavailable(dead_cluster: str) -> None:
    with pytest.raises(StoreUnavailableError, match=r"no Kubernetes cluster reachable .*connection refused"):
        StackManager().build_component(ComponentType.METADATA_STORE, "ml")
    assert invoke("stack", "register", "k", "-m", "ml", "--set")[0] == 0
    assert "no Kubernetes cluster reachable" in refused("metadata-store", "migrate")


def test_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    invoke("metadata-store", "register", "ml", "--flavor=kubernetes")
    line = refused("metadata-store", "up", "ml")
    assert "the kubeconfig file does not exist" in line and "KUBECONFIG" in line


def test_unknown_context(dead_cluster: str) -> None:
    invoke("metadata-store", "update", "ml", "--kubernetes-context=staging")
    line = refused("metadata-store", "up", "ml")
    assert "no context 'staging' in the kubeconfig (contexts: test-ctx)" in line
    assert "pipeledger metadata-store update ml --kubernetes-context=" in line


@pytest.fixture
def stub_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubApi]:
    """KUBECONFIG pointing at a stub of the API's REST surface (not a cluster: see tests/k8s_stub_api.py)
    and a registered kubernetes store ``ml``."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with stub_api_server() as (url, api):
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", url)))
        assert invoke("metadata-store", "register", "ml", "--flavor=kubernetes", "--namespace=ml-ns")[0] == 0
        yield api


NS = "/api/v1/namespaces/ml-ns"
PATHS = {
    "Namespace": NS,
    "Secret": f"{NS}/secrets/pipeledger-ml-credentials",
    "PersistentVolumeClaim": f"{NS}/persistentvolumeclaims/pipeledger-ml-data",
    "Service": f"{NS}/services/pipeledger-ml",
    "StatefulSet": "/apis/apps/v1/namespaces/ml-ns/statefulsets/pipeledger-ml",
}


def test_up_applies_the_objects_and_keeps_the_secret_when_run_again(stub_cluster: StubApi) -> None:
    code, out, err = invoke("metadata-store", "up", "ml", "--timeout=0")
    assert code == 0, err
    assert set(PATHS.values()) <= set(stub_cluster.objects)
    for kind in MODELS:  # what reached the API server is what was rendered
        getattr(k8s, MODELS[kind]).model_validate(stub_cluster.objects[PATHS[kind]])
    passwords = dict(stub_cluster.objects[PATHS["Secret"]]["data"])
    assert len(passwords) == 2 and "Secret pipeledger-ml-credentials: created with generated passwords" in out
    assert all(value not in out for value in passwords.values())

    stub_cluster.requests.clear()
    code, out, err = invoke("metadata-store", "up", "ml", "--timeout=0")
    assert code == 0, err
    assert stub_cluster.objects[PATHS["Secret"]]["data"] == passwords  # the data opens with the same passwords
    assert "kept (existing passwords)" in out and "PersistentVolumeClaim pipeledger-ml-data: kept (10Gi)" in out
    writes = [(method, path) for method, path in stub_cluster.requests if method != "GET"]
    assert writes == [("PATCH", PATHS["Service"]), ("PUT", PATHS["StatefulSet"])]


def test_up_reports_why_mysql_is_not_ready(stub_cluster: StubApi) -> None:
    line = refused("metadata-store", "up", "ml", "--timeout=0.2")
    assert "MySQL pipeledger-ml in namespace ml-ns is not ready after 0.2s: its pod does not exist yet" in line
    assert "kubectl -n ml-ns describe pod pipeledger-ml-0" in line
    with pytest.raises(StoreUnavailableError, match="is not ready"):
        StackManager().build_component(ComponentType.METADATA_STORE, "ml")


def test_down_deletes_and_keep_data_keeps_the_volume_and_secret(stub_cluster: StubApi) -> None:
    assert invoke("metadata-store", "up", "ml", "--timeout=0")[0] == 0
    code, out, err = invoke("metadata-store", "down", "ml", "--keep-data", "--yes")
    assert code == 0, err
    left = set(stub_cluster.objects)
    assert {PATHS["PersistentVolumeClaim"], PATHS["Secret"], PATHS["Namespace"]} <= left
    assert not {PATHS["StatefulSet"], PATHS["Service"]} & left
    assert "PersistentVolumeClaim pipeledger-ml-data: kept (--keep-data)" in out

    result = CliRunner().invoke(cli, ["metadata-store", "down", "ml"], input="n\n")
    assert result.exit_code == 1 and PATHS["Secret"] in stub_cluster.objects  # declined: nothing deleted
    code, out, err = invoke("metadata-store", "down", "ml", "--yes")
    assert code == 0, err
    assert set(stub_cluster.objects) == {PATHS["Namespace"]}  # the namespace may hold more: kept
    assert "StatefulSet pipeledger-ml: absent" in out and "Secret pipeledger-ml-credentials: deleted" in out


def test_objects_of_someone_else_are_never_changed(stub_cluster: StubApi) -> None:
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pipeledger-ml", "resourceVersion": "7",
               "labels": {"app": "theirs"}}}  # fmt: skip
    stub_cluster.objects[PATHS["Service"]] = foreign
    line = refused("metadata-store", "up", "ml")
    assert "Service pipeledger-ml already exist(s) in namespace ml-ns and not for this metadata store" in line
    assert {method for method, _ in stub_cluster.requests} == {"GET"}  # nothing written, not even the namespace
    code, out, _ = invoke("metadata-store", "down", "ml", "--yes")
    assert code == 0 and "Service pipeledger-ml: left alone" in out
    assert stub_cluster.objects[PATHS["Service"]] == foreign


def test_store_not_deployed_names_the_up_command(stub_cluster: StubApi) -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        StackManager().build_component(ComponentType.METADATA_STORE, "ml")
    message = str(caught.value)
    assert "'ml' is not deployed" in message and "`pipeledger metadata-store up ml`" in message


def test_flavor_imports_without_the_kubernetes_client() -> None:
    script = """
import sys
sys.modules["kubernetes"] = None  # as if the extra were not installed
from pipeledger.metadata_store.flavors.kubernetes import KubernetesMetadataStoreFlavor
from pipeledger.integrations.kubernetes.cluster import require_client
flavor = KubernetesMetadataStoreFlavor()
flavor.config_class.model_validate(flavor.default_config("ml", None))
try:
    require_client()
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "ConfigError" in result.stdout and "pip install 'pipeledger[kubernetes]'" in result.stdout


# ------------------------------------------------------------------ port-forward relay


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP server echoing what it receives (stands for the pod's port)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[:2]
    listener.close()


def test_port_forwarder_relays_each_connection(echo_server: tuple[str, int]) -> None:
    opened = []

    def open_remote() -> tuple[socket.socket, object]:
        remote = socket.create_connection(echo_server)
        opened.append(remote)
        return remote, remote.close

    forwarder = PortForwarder(open_remote, "echo")  # type: ignore[arg-type]
    try:
        for payload in (b"hello", b"x" * 200_000):
            with socket.create_connection((forwarder.host, forwarder.port), timeout=5) as conn:
                conn.sendall(payload)
                received = b""
                while len(received) < len(payload):
                    received += conn.recv(65536)
                assert received == payload
        assert len(opened) == 2  # one remote connection per local one
    finally:
        forwarder.close()
    time.sleep(0.6)
    with pytest.raises(OSError):
        socket.create_connection((forwarder.host, forwarder.port), timeout=1).close()


def test_port_forwarder_reports_a_failed_remote() -> None:
    def open_remote() -> tuple[socket.socket, object]:
        raise ConnectionRefusedError("pod is gone")

    forwarder = PortForwarder(open_remote, "nowhere")  # type: ignore[arg-type]
    try:
        with socket.create_connection((forwarder.host, forwarder.port), timeout=5) as conn:
            assert conn.recv(1) == b""  # closed at once
        assert forwarder.last_error == "ConnectionRefusedError: pod is gone"
    finally:
        forwarder.close()
