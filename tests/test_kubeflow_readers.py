"""What Kubeflow Pipelines' and TFX's readers find of runs the ``kubeflow`` flavor recorded, and
the round trip back through ``pipeledger import mlmd``.

KFP's client (``backend/src/v2/metadata/client.go``) finds a run's context by type
``system.PipelineRun`` and name, its pipeline as the parent ``system.Pipeline`` context,
the run's executions by context, an execution's state in ``last_known_state`` (``CANCELED``
is "not triggered", counted as done) and an artifact's name in the first key of its event
path. TFX's ``event_lib`` reads an event path as exactly ``[key, index]``. These tests read
the flavor's records with ML Metadata's own client, over the same gRPC service.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers import skip_without_mlmd_wheel

if sys.version_info >= (3, 12):  # skipped there, or failed where kubeflow is in PIPELEDGER_TEST_BACKENDS
    skip_without_mlmd_wheel()
from click.testing import CliRunner

from pipeledger import Status
from pipeledger.cli.main import cli
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.flavors.kubeflow import KubeflowMetadataStoreConfig, KubeflowMetadataStoreFlavor
from pipeledger.models import ArtifactCreate, EntityKind, RunCreate, StepRunCreate, utcnow
from pipeledger.stack.registry import get_stack
from tests.mlmd_service import MlmdTestService
from tests.test_examples import load_example

pytestmark = pytest.mark.filterwarnings("ignore::pipeledger.PipeledgerWarning")  # the quickstart pickles its model


@pytest.fixture
def mlmd(mlmd_service: MlmdTestService, tmp_path: Path) -> MlmdTestService:
    mlmd_service.reset(tmp_path / "mlmd.db")
    return mlmd_service


@pytest.fixture
def store(mlmd: MlmdTestService) -> Any:
    config = KubeflowMetadataStoreConfig(host="127.0.0.1", port=mlmd.port)
    opened = KubeflowMetadataStoreFlavor().create("kf", config, Path("."))
    yield opened
    opened.close()


@pytest.fixture
def native(mlmd: MlmdTestService) -> Any:
    """ML Metadata's own client on the service, as Kubeflow's tools connect to it."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    return metadata_store.MetadataStore(metadata_store_pb2.MetadataStoreClientConfig(host="127.0.0.1", port=mlmd.port))


def kubeflow_stack(port: int) -> None:
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "kf", "--flavor=kubeflow", "--host=127.0.0.1", f"--port={port}"],
        ["stack", "register", "kf", "-m", "kf"],
        ["stack", "set", "kf"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output


def artifact_path(event: Any) -> tuple[str, int]:
    """An event's (key, index) under TFX's ``event_lib`` rule: exactly two steps, a key then an index."""
    steps = event.path.steps
    if len(steps) != 2 or steps[0].WhichOneof("value") != "key" or steps[1].WhichOneof("value") != "index":
        raise ValueError(f"not a [key, index] path: {event.path}")
    return steps[0].key, steps[1].index


def test_kfp_client_finds_the_run_its_steps_states_and_artifact_names(mlmd: MlmdTestService, native: Any) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    kubeflow_stack(mlmd.port)
    run = load_example("quickstart").cancer_classifier()

    run_ctx = native.get_context_by_type_and_name("system.PipelineRun", run.name)
    assert run_ctx is not None and run_ctx.custom_properties["pipeledger_run_id"].string_value == run.id
    (pipeline_ctx,) = native.get_parent_contexts_by_context(run_ctx.id)
    assert (native.get_context_types_by_id([pipeline_ctx.type_id])[0].name, pipeline_ctx.name) == (
        "system.Pipeline",
        "cancer_classifier",
    )
    in_run = native.get_executions_by_context(run_ctx.id)
    (dag,) = [e for e in in_run if e.type == "system.DAGExecution"]  # the root DAG holds the run's state
    assert (dag.name, dag.last_known_state) == (f"run/{run.name}", pb.Execution.COMPLETE)
    assert dag.custom_properties["display_name"].string_value == run.name
    assert dict(dag.custom_properties["inputs"].struct_value) == {"n_estimators": 20.0, "max_depth": 2.0}
    executions = [e for e in in_run if e.type == "pipeledger.Step"]
    assert len(in_run) == 5
    assert sorted(e.properties["step"].string_value for e in executions) == [
        "evaluate",
        "load_data",
        "split",
        "train_model",
    ]
    assert {e.last_known_state for e in executions} == {pb.Execution.COMPLETE}
    # KFP's GetPipelineFromExecution: each execution has one run and one pipeline context of KFP's types.
    kfp_types = {native.get_context_type("system.PipelineRun").id, native.get_context_type("system.Pipeline").id}
    for execution in executions:
        kinds = [c.type_id for c in native.get_contexts_by_execution(execution.id) if c.type_id in kfp_types]
        assert sorted(kinds) == sorted(kfp_types)

    train = next(e for e in executions if e.properties["step"].string_value == "train_model")
    events = native.get_events_by_execution_ids([train.id])
    paths = {(ev.type, artifact_path(ev)) for ev in events}
    assert paths == {(pb.Event.INPUT, ("train", 0)), (pb.Event.OUTPUT, ("model", 0))}
    assert {ev.path.steps[0].key for ev in events} == {"train", "model"}  # KFP's getArtifactName

    # The KFP types stay schemaless, so Kubeflow's own registration of them still succeeds.
    assert native.put_context_type(pb.ContextType(name="system.PipelineRun")) in kfp_types
    # pipeledger reads its own records back as it always did.
    assert [s.name for s in run.steps.values()] == ["load_data", "split", "train_model", "evaluate"]


def test_one_artifact_under_two_names_is_one_event_of_key_index_pairs(store: Any, native: Any) -> None:
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    data = store.register_artifact(_artifact("data"), at=utcnow())
    step = store.start_step(StepRunCreate(run_id=run.id, name="s", inputs={"left": data.id, "right": data.id}))
    (execution,) = [e for e in native.get_executions_by_context(_kfp_run(native, run.name).id) if e.external_id]
    (event,) = native.get_events_by_execution_ids([execution.id])
    path = [(s.WhichOneof("value"), getattr(s, s.WhichOneof("value"))) for s in event.path.steps]
    assert path == [("key", "left"), ("index", 0), ("key", "right"), ("index", 0)]  # TFX's multi-key form
    assert sorted(e.name for e in store.list_step_io([step.id])) == ["left", "right"]


def test_another_process_records_steps_into_the_kfp_view(mlmd: MlmdTestService, store: Any, native: Any) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    config = KubeflowMetadataStoreConfig(host="127.0.0.1", port=mlmd.port)
    other = KubeflowMetadataStoreFlavor().create("kf", config, Path("."))  # knows nothing of the run yet
    step = other.start_step(StepRunCreate(run_id=run.id, name="s"))
    other.finish_step(step.id, Status.COMPLETED, end_time=utcnow())
    other.finish_run(run.id, Status.COMPLETED, end_time=utcnow())
    other.close()
    in_run = native.get_executions_by_context(_kfp_run(native, run.name).id)
    assert sorted((e.type, e.last_known_state) for e in in_run) == [
        ("pipeledger.Step", pb.Execution.COMPLETE),
        ("system.DAGExecution", pb.Execution.COMPLETE),
    ]


def test_a_crashed_step_is_failed_to_kfp_and_crashed_to_pipeledger(store: Any, native: Any) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    marked = store.start_step(StepRunCreate(run_id=run.id, name="marked"))
    finished = store.start_step(StepRunCreate(run_id=run.id, name="finished"))
    store.finish_step(finished.id, Status.CRASHED, end_time=utcnow(), error="killed")
    assert store.mark_crashed(heartbeat_before=utcnow() + timedelta(hours=1), at=utcnow()) == [run.id]

    states = {
        e.properties["step"].string_value: e.last_known_state for e in native.get_executions_by_type("pipeledger.Step")
    }
    assert states == {"marked": pb.Execution.FAILED, "finished": pb.Execution.FAILED}
    (dag,) = native.get_executions_by_type("system.DAGExecution")
    assert dag.last_known_state == pb.Execution.FAILED  # the crashed run, as KFP keeps a run's state
    assert store.get_step_run(marked.id).status is Status.CRASHED
    assert store.get_step_run(finished.id).status is Status.CRASHED


def test_a_skipped_step_is_not_triggered_to_kfp_and_skipped_to_pipeledger(store: Any, native: Any) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    skipped = store.start_step(StepRunCreate(run_id=run.id, name="after_failure"))
    store.finish_step(skipped.id, Status.SKIPPED, end_time=utcnow())

    (execution,) = native.get_executions_by_type("pipeledger.Step")
    assert execution.last_known_state == pb.Execution.CANCELED  # KFP's "not triggered"
    assert store.get_step_run(skipped.id).status is Status.SKIPPED


def test_runs_recorded_before_the_kfp_view_are_read_and_extended(store: Any, native: Any) -> None:
    """A database written by an older pipeledger: ``pipeledger.*`` nodes only, ``[name]`` event paths,
    crashed steps ``CANCELED``."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    old = _old_run(store, native)
    assert native.get_context_by_type_and_name("system.PipelineRun", old["run"].name) is None
    assert store.get_run(old["run"].name).status is Status.RUNNING
    assert store.get_step_run(old["step"]).status is Status.CRASHED
    (edge,) = store.list_step_io([old["step"]])
    assert (edge.name, edge.artifact.id) == ("data", old["artifact"])
    added = store.start_step(StepRunCreate(run_id=old["run"].id, name="later", inputs={"x": old["artifact"]}))
    assert [e.name for e in store.list_step_io([added.id])] == ["x"]
    (later,) = [e for e in native.get_executions_by_type("pipeledger.Step") if e.external_id == added.id]
    assert later.last_known_state == pb.Execution.RUNNING


def test_import_gives_back_the_same_runs(mlmd: MlmdTestService, store: Any, native: Any) -> None:
    """A kubeflow-flavor history imported into a SQLite store, compared record by record."""
    kubeflow_stack(mlmd.port)
    quickstart = load_example("quickstart")
    first = quickstart.cancer_classifier()
    store.invalidate_cache(at=utcnow(), pipeline="cancer_classifier", step="evaluate")
    quickstart.cancer_classifier()  # cached, but for evaluate
    store.put_metadata(EntityKind.RUN, first.id, {"note": "kept", "score": 0.125})
    manual = store.create_run(RunCreate(pipeline_name="hand", name="by-hand", parameters={"a": 1}, tags=["x"]))
    data = store.register_artifact(_artifact("external"), at=utcnow())
    failing = store.start_step(StepRunCreate(run_id=manual.id, name="fails", inputs={"data": data.id}))
    store.finish_step(failing.id, Status.FAILED, end_time=utcnow(), error="boom", logs_uri="/logs/x")
    store.finish_run(manual.id, Status.FAILED, end_time=utcnow(), error="1 step failed")
    old = _old_run(store, native)
    store.mark_crashed(heartbeat_before=utcnow() + timedelta(hours=1), at=utcnow())

    runner = CliRunner()
    assert runner.invoke(cli, ["stack", "set", "default"]).exit_code == 0
    target = get_stack("default").metadata_store
    dry = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path), "--dry-run"])
    assert dry.exit_code == 0 and "runs      │ 4" in dry.output, dry.output
    assert target.list_runs() == []
    result = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path)])
    assert result.exit_code == 0, result.output
    assert "no pipeledger equivalent" not in result.output
    source_runs = store.list_runs()
    assert len(source_runs) == 4 and old["run"].id in {r.id for r in source_runs}
    _assert_same_runs(store, target, [r.id for r in source_runs])
    assert target.list_cache_entries(invalidated=True)[0].step_name == "evaluate"

    again = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path)])
    assert again.exit_code == 0 and "Already imported" in again.output, again.output


def _assert_same_runs(source: MetadataStore, target: MetadataStore, run_ids: list[str]) -> None:
    """Every field of the runs, their steps, edges, artifacts and metadata is equal in both stores
    (but the pipeline ids, which each store gives its pipelines)."""
    for run_id in run_ids:
        ours, theirs = source.get_run(run_id), target.get_run(run_id)
        # every field (records read from SQL decode theirs on first access: not vars())
        assert dataclasses.replace(ours, pipeline_id="") == dataclasses.replace(theirs, pipeline_id="")
        steps = source.list_step_runs(run_id)
        assert steps == target.list_step_runs(run_id)
        ids = [s.id for s in steps]

        def edges(store: MetadataStore) -> list[Any]:
            return sorted(store.list_step_io(ids), key=lambda e: (e.step_run_id, e.direction.value, e.name))  # noqa: B023

        assert edges(source) == edges(target)
        artifact_ids = sorted({e.artifact.id for e in edges(source)})
        for kind, entity_ids in (
            (EntityKind.RUN, [run_id]),
            (EntityKind.STEP_RUN, ids),
            (EntityKind.ARTIFACT, artifact_ids),
        ):
            assert source.get_metadata(kind, entity_ids) == target.get_metadata(kind, entity_ids)


def _artifact(name: str) -> ArtifactCreate:
    return ArtifactCreate(
        name=name,
        uri=f"/data/{name}",
        type="Data",
        data_type="builtins.dict",
        materializer="json",
        materializer_version="1",
        content_hash="ab" * 32,
        size=3,
        metadata={"rows": 3},
    )


def _kfp_run(native: Any, name: str) -> Any:
    return native.get_context_by_type_and_name("system.PipelineRun", name)


def _old_run(store: Any, native: Any) -> dict[str, Any]:
    """A run, a crashed step and its input as pipeledger wrote them before the KFP view."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from pipeledger.metadata_store.mlmd import records

    pipeline_ctx = records.pipeline_context(store.types, "0" * 31 + "1", "legacy", None, utcnow())
    [pipeline_ctx_id] = native.put_contexts([pipeline_ctx])
    create = RunCreate(pipeline_name="legacy", name="legacy-1")
    run_ctx = records.run_context(store.types, create, name=create.name, number=1, pipeline_id="0" * 31 + "1")
    [run_ctx_id] = native.put_contexts([run_ctx])
    native.put_parent_contexts([pb.ParentContext(child_id=run_ctx_id, parent_id=pipeline_ctx_id)])
    artifact = _artifact("old").to_record(None, utcnow())
    [artifact_id] = native.put_artifacts([records.artifact_node(store.types, artifact, {"rows": 3})])
    step = StepRunCreate(run_id=create.id, name="crashed", inputs={"data": artifact.id})
    execution = records.step_execution(store.types, step, Status.CRASHED, end_time=utcnow())
    execution.last_known_state = pb.Execution.CANCELED  # how crashes were written
    event = pb.Event(artifact_id=artifact_id, type=pb.Event.INPUT)
    event.path.steps.add().key = "data"  # a one-step path, as before
    contexts = native.get_contexts_by_id([run_ctx_id, pipeline_ctx_id])
    execution_id, _, _ = native.put_execution(execution, [], contexts, reuse_context_if_already_exist=True)
    event.execution_id = execution_id
    native.put_events([event])
    return {"run": store.get_run(create.id), "step": step.id, "artifact": artifact.id}


def test_kubeflow_and_tfx_runs_beside_ours_are_imported_by_their_conventions(mlmd: MlmdTestService, store: Any) -> None:
    """An MLMD database holding pipeledger's runs and TFX's: ours come back as they were, TFX's
    through the convention mapping, and a pipeline filter finds either."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from tests.test_import_mlmd import write_tfx_history

    run = store.create_run(RunCreate(pipeline_name="ours", name="ours-{n}", parameters={"k": "v"}))
    store.finish_run(run.id, Status.COMPLETED, end_time=utcnow())
    write_tfx_history(pb.MetadataStoreClientConfig(host="127.0.0.1", port=mlmd.port))

    runner = CliRunner()
    only_ours = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path), "--pipeline", "ours"])
    assert only_ours.exit_code == 0, only_ours.output
    target = get_stack("default").metadata_store
    assert [r.name for r in target.list_runs()] == ["ours-1"]
    unknown = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path), "--pipeline", "nope"])
    assert unknown.exit_code != 0 and "no pipeline 'nope'" in unknown.output

    result = runner.invoke(cli, ["import", "mlmd", "--sqlite", str(mlmd.path)])
    assert result.exit_code == 0, result.output
    assert "'pipeledger." not in result.output and "'system." not in result.output  # none of ours "not mapped"
    assert "context type 'experiment' has no pipeledger equivalent" in result.output  # TFX's history's own
    runs = {r.name: r for r in target.list_runs()}
    assert set(runs) == {"ours-1", "taxi-2022-06-01", "taxi-2022-06-02"}
    assert "imported-from-mlmd" in runs["taxi-2022-06-01"].tags
    _assert_same_runs(store, target, [run.id])


def test_an_interrupted_import_of_our_runs_resumes(
    mlmd: MlmdTestService, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeledger.importers import SqliteSource, import_mlmd

    kubeflow_stack(mlmd.port)
    run = load_example("quickstart").cancer_classifier()
    target = get_stack("default").metadata_store
    finish_step = target.finish_step
    calls = []

    def fails_on_the_third(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("the connection dropped")
        return finish_step(*args, **kwargs)

    monkeypatch.setattr(target, "finish_step", fails_on_the_third)
    with pytest.raises(RuntimeError):
        import_mlmd(SqliteSource(mlmd.path), target)
    assert target.get_run(run.id).status is Status.RUNNING
    monkeypatch.setattr(target, "finish_step", finish_step)

    summary = import_mlmd(SqliteSource(mlmd.path), target)
    assert f"run {run.name} was left running by an earlier import: resumed" in summary.notes
    assert (summary.imported["step runs"], summary.present["step runs"]) == (1, 3)
    _assert_same_runs(store, target, [run.id])
