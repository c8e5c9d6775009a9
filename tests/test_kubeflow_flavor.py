"""The kubeflow flavor end to end, over real gRPC to ML Metadata's real store (tests/mlmd_service.py).

The store contract itself runs on this flavor in ``tests/test_store_contract.py`` (backend ``kubeflow``).
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from tests.servers import skip_without_mlmd_wheel

if sys.version_info >= (3, 12):  # skipped there, or failed where kubeflow is in PIPELEDGER_TEST_BACKENDS
    skip_without_mlmd_wheel()
from click.testing import CliRunner

from pipeledger import Client, Status
from pipeledger.cli.main import cli
from pipeledger.exceptions import StoreUnavailableError, UnsupportedOperationError
from pipeledger.metadata_store.flavors.kubeflow import KubeflowMetadataStoreConfig, KubeflowMetadataStoreFlavor
from pipeledger.models import EntityKind, RunCreate
from tests.mlmd_service import MlmdTestService
from tests.test_examples import load_example

pytestmark = pytest.mark.filterwarnings("ignore::pipeledger.PipeledgerWarning")  # the quickstart pickles its model


@pytest.fixture
def mlmd(mlmd_service: MlmdTestService, tmp_path: Path) -> MlmdTestService:
    """The session's MLMD service, on an empty database."""
    mlmd_service.reset(tmp_path / "mlmd.db")
    return mlmd_service


@pytest.fixture
def kubeflow_stack(mlmd: MlmdTestService) -> CliRunner:
    """The active stack records into the MLMD service (registered through the CLI)."""
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "kf", "--flavor=kubeflow", "--host=127.0.0.1", f"--port={mlmd.port}"],
        ["stack", "register", "kf", "-m", "kf"],
        ["stack", "set", "kf"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return runner


def test_quickstart_runs_twice_over_grpc_and_reads_back(kubeflow_stack: CliRunner, mlmd: MlmdTestService) -> None:
    quickstart = load_example("quickstart")
    first = quickstart.cancer_classifier()
    second = quickstart.cancer_classifier()

    assert first.stack["metadata_store"]["flavor"] == "kubeflow"
    assert [s.status for s in second.steps.values()] == [Status.CACHED] * 4
    recorded = Client().get_run(first.name)
    assert list(recorded.steps) == ["load_data", "split", "train_model", "evaluate"]
    accuracy = recorded.steps["evaluate"].metadata["accuracy"]
    assert 0.8 < accuracy <= 1.0
    assert recorded.steps["evaluate"].output.read() == accuracy
    assert Client().get_run(second.name).steps["evaluate"].metadata["accuracy"] == accuracy
    model = recorded.steps["train_model"].outputs["model"]
    graph = model.lineage()
    assert {n.name for n in graph.steps} >= {"load_data", "split", "train_model"}
    assert {"PutExecution", "GetExecutionsByType"} <= set(mlmd.calls)  # it went through the service

    listed = kubeflow_stack.invoke(cli, ["run", "list", "--pipeline", "cancer_classifier"])
    assert listed.exit_code == 0, listed.output
    assert first.name in listed.stdout and second.name in listed.stdout
    shown = kubeflow_stack.invoke(cli, ["run", "show", second.name, "--cache"])
    assert shown.exit_code == 0, shown.output
    assert first.name in shown.stdout  # each cached step names the run it reused


def test_runs_appear_to_mlmd_clients_as_kubeflow_would_show_them(
    kubeflow_stack: CliRunner, mlmd: MlmdTestService
) -> None:
    """What MLMD's own client (Kubeflow's UI and SDK use it) sees of a pipeledger run."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    run = load_example("quickstart").cancer_classifier()
    config = metadata_store_pb2.MetadataStoreClientConfig(host="127.0.0.1", port=mlmd.port)
    native = metadata_store.MetadataStore(config)

    (run_ctx,) = native.get_contexts_by_type("pipeledger.PipelineRun")
    assert run_ctx.name == run.name and run_ctx.properties["status"].string_value == "completed"
    (pipeline_ctx,) = native.get_parent_contexts_by_context(run_ctx.id)
    assert pipeline_ctx.name == "cancer_classifier"
    executions = native.get_executions_by_context(run_ctx.id)
    assert sorted(e.properties["step"].string_value for e in executions) == [
        "evaluate",
        "load_data",
        "split",
        "train_model",
    ]
    assert {e.last_known_state for e in executions} == {metadata_store_pb2.Execution.COMPLETE}
    train = next(e for e in executions if e.properties["step"].string_value == "train_model")
    events = native.get_events_by_execution_ids([train.id])
    kinds = {(ev.type, ev.path.steps[0].key) for ev in events}
    assert kinds == {(metadata_store_pb2.Event.INPUT, "train"), (metadata_store_pb2.Event.OUTPUT, "model")}
    (model,) = native.get_artifacts_by_id([ev.artifact_id for ev in events if ev.type == ev.OUTPUT])
    recorded = Client().get_run(run.name).steps["train_model"].outputs["model"]
    assert model.uri == recorded.uri and model.external_id == recorded.id
    assert model.properties["materializer"].string_value == recorded.materializer


def test_metadata_keys_and_values_round_trip_exactly(mlmd: MlmdTestService) -> None:
    store = _open(mlmd.port)
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    values = {
        "dotted.key": 1,
        "with space": "x",
        "ünïcode": [1, 2.5, None],
        "third": 1 / 3,
        "big": 2**70,
        "flag": True,
        "none": None,
    }
    store.put_metadata(EntityKind.RUN, run.id, values)
    store.put_metadata(EntityKind.RUN, run.id, {"third": 0.25})
    assert store.get_metadata(EntityKind.RUN, [run.id]) == {run.id: {**values, "third": 0.25}}
    store.close()


def test_unreachable_service_fails_fast_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        _open(port, timeout=2)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"ML Metadata service at 127.0.0.1:{port}" in message and "\n" not in message


def test_run_list_on_an_unreachable_service_is_a_one_line_cli_error(mlmd: MlmdTestService) -> None:
    runner = CliRunner()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["metadata-store", "register", "gone", "--flavor=kubeflow", "--host=127.0.0.1", f"--port={port}"]
    assert runner.invoke(cli, [*args, "--timeout=2"]).exit_code == 0
    assert runner.invoke(cli, ["stack", "register", "gone", "-m", "gone"]).exit_code == 0
    assert runner.invoke(cli, ["stack", "set", "gone"]).exit_code == 0
    result = runner.invoke(cli, ["run", "list"])
    assert result.exit_code != 0
    assert "cannot reach the ML Metadata service" in result.output
    assert "Traceback" not in result.output


def test_deleting_a_run_is_refused_with_the_reason(kubeflow_stack: CliRunner) -> None:
    run = load_example("quickstart").cancer_classifier()
    with pytest.raises(UnsupportedOperationError, match="ML Metadata has no delete API"):
        Client().delete_run(run.name)
    result = kubeflow_stack.invoke(cli, ["run", "delete", run.name, "--yes"])
    assert result.exit_code != 0
    assert "ML Metadata has no delete API" in result.output and "Traceback" not in result.output
    assert Client().get_run(run.name).status is Status.COMPLETED  # nothing was lost

    # The store has no id: its files are in stores/shared/, which gc never collects from.
    uris = [a.uri for s in Client().get_run(run.name).steps.values() for a in s.outputs.values()]
    assert uris and all("/stores/shared/" in u for u in uris)
    result = kubeflow_stack.invoke(cli, ["gc", "--yes"])
    assert result.exit_code == 0 and "Nothing to collect." in result.output, result.output
    assert all(Path(u).exists() for u in uris)


def test_config_refuses_half_configured_tls() -> None:
    with pytest.raises(ValueError, match="both client_cert and client_key"):
        KubeflowMetadataStoreConfig(tls=True, client_cert="/c.pem")
    with pytest.raises(ValueError, match="tls is off"):
        KubeflowMetadataStoreConfig(ca_cert="/ca.pem")
    defaults = KubeflowMetadataStoreConfig()
    assert (defaults.host, defaults.port) == ("metadata-grpc-service.kubeflow", 8080)


def test_flavor_list_shows_every_seed_flavor() -> None:
    result = CliRunner().invoke(cli, ["metadata-store", "flavor", "list"])
    assert result.exit_code == 0, result.output
    for name in ("sqlite", "mysql", "postgresql", "kubeflow", "kubernetes"):
        assert name in result.stdout


def _open(port: int, timeout: float = 10):  # type: ignore[no-untyped-def]
    config = KubeflowMetadataStoreConfig(host="127.0.0.1", port=port, timeout=timeout)
    return KubeflowMetadataStoreFlavor().create("kf", config, Path("."))
