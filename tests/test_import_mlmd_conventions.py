"""``pipeledger import mlmd`` on histories written with the real ``ml-metadata`` library the way
TFX (``execution_lib``, ``event_lib``) and Kubeflow Pipelines v2 (``backend/src/v2/metadata/
client.go``) write them, checked edge by edge on every backend: events whose path carries
several (key, index) pairs, TFX failure messages, KFP v2's bookkeeping properties, DAG
executions and not-triggered (``CANCELED``) branches, and names that break pipeledger's rules.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from pipeledger.client import Client
from pipeledger.importers import SqliteSource, import_mlmd
from pipeledger.lineage.openlineage import run_events
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind, Status
from tests.servers import enabled_backends, mlmd_enabled, open_empty_store, skip_without_mlmd_wheel

if sys.version_info >= (3, 12):
    skip_without_mlmd_wheel()
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from tests.test_import_mlmd import invoke, sqlite_config, summary_rows

Edge = tuple[str, str, str, str, str]  # (run, step, direction, edge name, artifact uri)


# Every store that keeps imports but ``rest``, whose contract suite covers what an import calls.
@pytest.fixture(params=enabled_backends() + (["kubeflow"] if mlmd_enabled() else []))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MetadataStore:
    """An empty metadata store of each backend to import into."""
    return open_empty_store(request.param, tmp_path, request)


def edges_of(store: MetadataStore) -> set[Edge]:
    """Every recorded edge, by names and URIs."""
    found: set[Edge] = set()
    for run in store.list_runs():
        steps = {s.id: s.name for s in store.list_step_runs(run.id)}
        for edge in store.list_step_io(list(steps)):
            found.add((run.name, steps[edge.step_run_id], str(edge.direction), edge.name, edge.artifact.uri))
    return found


def event(kind: int, *path: str | int) -> Any:
    made = pb.Event(type=kind)
    for step in path:
        if isinstance(step, str):
            made.path.steps.add().key = step
        else:
            made.path.steps.add().index = step
    return made


# --- the name rules on import ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("taxi-2022-06-01", "taxi-2022-06-01"),  # a valid name is kept exactly, % included
        ("100%", "100%"),
        ("a\tb", "a%09b"),
        ("line\r\nbreak", "line%0D%0Abreak"),
        ("bell\x07", "bell%07"),
        ("del\x7f", "del%7F"),
        ("  padded ", "%20%20padded%20"),
        ("tab\t50%", "tab%0950%25"),  # once encoding, % is encoded too: unquote stays exact
        ("{n}-nightly", "%7Bn}-nightly"),  # the run-number placeholder, in a run name
        ("", "(empty)"),
    ],
)
def test_imported_names_are_normalised_reversibly(original: str, expected: str) -> None:
    from pipeledger.importers.mlmd_names import run_name
    from pipeledger.limits import check_name

    name = run_name(original)
    assert name == expected
    check_name("imported name", name)  # obeys the SDK's rules
    if original:
        assert unquote(name) == original


def test_over_long_imported_names_end_with_a_hash_of_the_original() -> None:
    from pipeledger.importers.mlmd_names import normalise, pipeline_name
    from pipeledger.limits import check_name

    for original, limit in [("s" * 300, 255), ("\t" * 200, 255), ("p" * 250, 244)]:
        name = pipeline_name(original) if limit == 244 else normalise(original)
        check_name("imported name", name)
        assert len(name) <= limit and name.endswith("~" + hashlib.sha256(original.encode()).hexdigest()[:8])
        head = name.rsplit("~", 1)[0]
        assert "%" not in head[-2:] and unquote(head) == original[: len(unquote(head))]  # no half escape
    assert normalise("s" * 300) != normalise("s" * 299 + "t")  # distinct names stay distinct


# --- TFX: multi-key events, failure messages, CANCELED, hostile names -------------------------

PIPELINE = "taxi\x07"  # BEL
RUN = "nightly\t2022-06-01\r\n"  # tabs, CR/LF (trailing whitespace)
TRAINER = "Trainer\x07"
EVALUATOR = "Evaluator-" + "x" * 300  # over-long
MODEL_KEY = "model\x07out"
RESULT_MESSAGE = "ValueError: AUC 0.41 is below the threshold 0.5\nsee the Evaluator's logs"


def write_tfx_history(path: Path) -> None:
    """One TFX run: ExampleGen writes two examples under one key (and a third under an index
    already taken); Trainer reads both and writes a model; Evaluator reads the model under two
    keys in ONE event (``['model', 0, 'baseline_model', 0]``, as ``execution_lib`` writes it)
    and fails with an ``__execution_result__``; Pusher fails with only an
    ``__execution_error_msg__``; Transform was CANCELED (TFX: stopped). An execution of no run
    reads an example."""
    store = metadata_store.MetadataStore(sqlite_config(path))
    examples_type = store.put_artifact_type(pb.ArtifactType(name="Examples"))
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model"))
    pipeline_type, run_type, node_type = (
        store.put_context_type(pb.ContextType(name=n)) for n in ("pipeline", "pipeline_run", "node")
    )
    [pipeline_id, run_id] = store.put_contexts(
        [pb.Context(type_id=pipeline_type, name=PIPELINE), pb.Context(type_id=run_type, name=RUN)]
    )
    pipeline, run = store.get_contexts_by_id([pipeline_id, run_id])

    def record(
        component: str, state: int, pairs: list[tuple[Any, Any]], in_run: bool = True, **props: Any
    ) -> list[int]:
        kind = "".join(c for c in component[:20] if c.isalnum())
        type_id = store.put_execution_type(pb.ExecutionType(name=f"tfx.components.{kind}"))
        execution = pb.Execution(type_id=type_id, last_known_state=state)
        for key, value in props.items():
            target = execution.custom_properties[key.replace("_TAB_", "\t")]
            if isinstance(value, float):
                target.double_value = value
            elif isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = value
        contexts = []
        if in_run:
            [node_id] = store.put_contexts([pb.Context(type_id=node_type, name=f"{PIPELINE}.{component}")])
            contexts = [pipeline, run, *store.get_contexts_by_id([node_id])]
        _, artifact_ids, _ = store.put_execution(execution, pairs, contexts)
        return list(artifact_ids)

    def artifact(type_id: int, uri: str) -> Any:
        made = pb.Artifact(type_id=type_id, uri=uri, state=pb.Artifact.LIVE)
        made.custom_properties["split\nnames"].string_value = '["train"]'
        return made

    OUT, IN = pb.Event.OUTPUT, pb.Event.INPUT
    ex_a, ex_b, _ = record(
        "ExampleGen",
        pb.Execution.COMPLETE,
        [
            (artifact(examples_type, "/ex/a"), event(OUT, "examples", 0)),
            (artifact(examples_type, "/ex/b"), event(OUT, "examples", 1)),
            (artifact(examples_type, "/ex/c"), event(OUT, "examples", 0)),  # index 0 is taken
        ],
    )
    a, b = store.get_artifacts_by_id([ex_a, ex_b])
    *_, model_id = record(
        TRAINER,
        pb.Execution.COMPLETE,
        [
            (a, event(IN, "examples", 0)),
            (b, event(IN, "examples", 1)),
            (artifact(model_type, "/model"), event(OUT, MODEL_KEY, 0)),
        ],
        learning_TAB_rate=0.1,
        module_file="taxi_utils.py",
    )
    [model] = store.get_artifacts_by_id([model_id])
    result = json.dumps({"resultMessage": RESULT_MESSAGE, "code": 2}, indent=2)  # MessageToJson's form
    record(
        EVALUATOR,
        pb.Execution.FAILED,
        [(model, event(IN, "model", 0, "baseline_model", 0)), (a, event(IN, "examples", 0))],
        __execution_result__=result,
        __execution_error_code__=2,
    )
    record("Pusher", pb.Execution.FAILED, [(model, event(IN, "model", 0))], __execution_error_msg__="push failed")
    record("Transform", pb.Execution.CANCELED, [(a, event(IN, "examples", 0))])
    record("Notebook", pb.Execution.COMPLETE, [(a, event(IN, "examples", 0))], in_run=False)


def test_tfx_history_edge_by_edge(store: MetadataStore, tmp_path: Path) -> None:
    path = tmp_path / "tfx.sqlite"
    write_tfx_history(path)
    summary = import_mlmd(SqliteSource(path), store)

    run_name = "nightly%092022-06-01%0D%0A"
    trainer = "Trainer%07"
    [run] = store.list_runs()
    assert run.name == run_name and unquote(run.name) == RUN
    assert run.pipeline_name == "taxi%07" and unquote(run.pipeline_name) == PIPELINE
    assert run.config["imported_from"]["original_names"] == {"pipeline": PIPELINE, "run": RUN}
    steps = {s.name: s for s in store.list_step_runs(run.id)}
    [evaluator] = [name for name in steps if name.startswith("Evaluator-")]
    assert len(evaluator) == 255 and evaluator.startswith("Evaluator-xxx")
    assert evaluator.endswith("~" + hashlib.sha256(EVALUATOR.encode()).hexdigest()[:8])
    assert steps[evaluator].config["mlmd"]["original_name"] == EVALUATOR
    assert steps[trainer].config["mlmd"]["original_name"] == TRAINER
    assert set(steps) == {"ExampleGen", trainer, evaluator, "Pusher", "Transform"}

    assert edges_of(store) == {
        (run_name, "ExampleGen", "output", "examples[0]", "/ex/a"),
        (run_name, "ExampleGen", "output", "examples[1]", "/ex/b"),
        (run_name, trainer, "input", "examples[0]", "/ex/a"),
        (run_name, trainer, "input", "examples[1]", "/ex/b"),
        (run_name, trainer, "output", "model%07out", "/model"),
        (run_name, evaluator, "input", "model", "/model"),  # one event, two keys: two edges
        (run_name, evaluator, "input", "baseline_model", "/model"),
        (run_name, evaluator, "input", "examples", "/ex/a"),
        (run_name, "Pusher", "input", "model", "/model"),
        (run_name, "Transform", "input", "examples", "/ex/a"),
    }
    assert steps[trainer].config["mlmd"]["original_edge_names"] == {"outputs": {"model%07out": MODEL_KEY}}
    assert steps[trainer].parameters == {"learning%09rate": 0.1, "module_file": "taxi_utils.py"}
    assert steps[trainer].config["mlmd"]["original_parameter_names"] == {"learning%09rate": "learning\trate"}
    examples = {e.artifact.uri: e.artifact for e in store.list_step_io([steps["ExampleGen"].id])}
    metadata = store.get_metadata(EntityKind.ARTIFACT, [examples["/ex/a"].id])[examples["/ex/a"].id]
    assert metadata["split%0Anames"] == '["train"]' and metadata["mlmd_original_keys"] == {
        "split%0Anames": "split\nnames"
    }

    statuses = {name: (s.status, s.error) for name, s in steps.items()}
    assert statuses["ExampleGen"] == (Status.COMPLETED, None)
    assert statuses[trainer] == (Status.COMPLETED, None)
    assert statuses[evaluator] == (Status.FAILED, RESULT_MESSAGE)  # TFX's message, not "ended FAILED"
    assert steps[evaluator].error_message == RESULT_MESSAGE  # what OpenLineage's errorMessage shows
    assert statuses["Pusher"] == (Status.FAILED, "push failed")
    transform_status, transform_error = statuses["Transform"]
    assert transform_status is Status.FAILED  # TFX's CANCELED: stopped before it finished
    transform_id = steps["Transform"].config["mlmd"]["execution_id"]
    assert transform_error == f"MLMD execution {transform_id} was CANCELED: stopped before it finished"
    assert run.status is Status.FAILED

    assert dict(summary.not_mapped["edges"]) == {
        "a second artifact under the same key and index of an event path": 1,
        "event of an execution that was not imported": 1,
    }
    assert dict(summary.not_mapped["step runs"]) == {"execution belongs to no run context": 1}
    assert dict(summary.not_mapped["artifacts"]) == {"no imported execution consumed or produced it": 1}  # /ex/c
    assert summary.imported["edges"] == 10 and summary.imported["step runs"] == 5
    assert import_mlmd(SqliteSource(path), store).already_imported


def test_the_summary_says_what_was_not_mapped(tmp_path: Path) -> None:
    path = tmp_path / "tfx.sqlite"
    write_tfx_history(path)
    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    rows = summary_rows(result.output)
    assert rows["step runs"] == ["5", "0", "1"] and rows["edges"] == ["10", "0", "2"]
    assert "a second artifact under the same key and index of an event path" in result.output
    assert "event of an execution that was not imported" in result.output
    assert "\x07" not in result.output and "\t" not in result.output


# --- Kubeflow Pipelines v2: bookkeeping, DAGs, not-triggered branches ----------------------------


def write_kfp_v2_run(store: Any, types: dict[str, int], run_id: str, lr: float, cached_from: dict[str, Any]) -> None:
    """One run of pipeline ``churn`` as KFP v2's driver and launcher record it: a root DAG
    ``run/<id>`` with the pipeline's parameters as ``inputs``; ``preprocess`` (a cache hit of the
    first run's when ``cached_from`` holds it); sub-DAG ``condition-1`` whose ``train`` reads the
    dataset under two input names (one event each); sub-DAG ``condition-2`` whose ``deploy`` was
    not triggered (``CANCELED``, no events); loop ``for-loop-2`` runs ``score`` in two iteration
    DAGs. Every execution carries pod, image and cache bookkeeping that differs from run to run."""
    pipeline = pb.Context(type_id=types["system.Pipeline"], name="churn")
    [pipeline_id] = store.put_contexts([pipeline]) if not cached_from else [cached_from["pipeline"]]
    run = pb.Context(type_id=types["system.PipelineRun"], name=run_id)
    run.custom_properties["namespace"].string_value = "kubeflow"
    run.custom_properties["pipeline_root"].string_value = f"minio://mlpipeline/v2/artifacts/churn/{run_id}"
    [context_id] = store.put_contexts([run])
    store.put_parent_contexts([pb.ParentContext(child_id=context_id, parent_id=pipeline_id)])
    contexts = store.get_contexts_by_id([pipeline_id, context_id])
    cached_from["pipeline"] = pipeline_id

    def execution(kind: str, task: str, state: int, parent: int | None, inputs: dict[str, Any], **props: Any) -> Any:
        made = pb.Execution(type_id=types[kind], last_known_state=state)
        made.custom_properties["display_name"].string_value = task
        made.custom_properties["task_name"].string_value = task
        if parent is not None:
            made.custom_properties["parent_dag_id"].int_value = parent
        if kind == "system.ContainerExecution":
            made.custom_properties["pod_name"].string_value = f"churn-{run_id[:5]}-{task}-{len(task)}"
            made.custom_properties["pod_uid"].string_value = f"{run_id}-{task}"
            made.custom_properties["namespace"].string_value = "kubeflow"
            made.custom_properties["image"].string_value = "python:3.9"
            made.custom_properties["cache_fingerprint"].string_value = hashlib.sha256(run_id.encode()).hexdigest()
        for key, value in props.items():
            made.custom_properties[key].string_value = value
        if inputs:  # (MLMD aborts on a property without a value, e.g. an empty struct)
            made.custom_properties["inputs"].struct_value.update(inputs)
        return made

    def put(made: Any, pairs: list[tuple[Any, Any]] | None = None) -> tuple[int, list[int]]:
        execution_id, artifact_ids, _ = store.put_execution(made, pairs or [], contexts)
        return execution_id, list(artifact_ids)

    root = execution("system.DAGExecution", "", pb.Execution.COMPLETE, None, {"lr": lr, "epochs": 3})
    root.name = f"run/{run_id}"
    root_id, _ = put(root)
    if "dataset" in cached_from:  # a cache hit: the output event points to the first run's artifact
        hit = execution(
            "system.ContainerExecution",
            "preprocess",
            pb.Execution.CACHED,
            root_id,
            {"n_rows": 100},
            cached_execution_id=str(cached_from["preprocess"]),
        )
        [dataset] = store.get_artifacts_by_id([cached_from["dataset"]])
        put(hit, [(dataset, event(pb.Event.OUTPUT, "dataset"))])
    else:
        produced = pb.Artifact(
            type_id=types["system.Dataset"], uri=f"minio://churn/{run_id}/dataset", state=pb.Artifact.LIVE
        )
        produced.custom_properties["display_name"].string_value = "dataset"
        made = execution("system.ContainerExecution", "preprocess", pb.Execution.COMPLETE, root_id, {"n_rows": 100})
        cached_from["preprocess"], [cached_from["dataset"]] = put(made, [(produced, event(pb.Event.OUTPUT, "dataset"))])
    [dataset] = store.get_artifacts_by_id([cached_from["dataset"]])
    condition_1, _ = put(execution("system.DAGExecution", "condition-1", pb.Execution.COMPLETE, root_id, {"lr": lr}))
    model = pb.Artifact(type_id=types["system.Model"], uri=f"minio://churn/{run_id}/model", state=pb.Artifact.LIVE)
    put(
        execution("system.ContainerExecution", "train", pb.Execution.COMPLETE, condition_1, {"lr": lr}),
        [
            (dataset, event(pb.Event.INPUT, "train_data")),
            (model, event(pb.Event.OUTPUT, "model")),
        ],
    )
    condition_2, _ = put(execution("system.DAGExecution", "condition-2", pb.Execution.COMPLETE, root_id, {}))
    put(execution("system.ContainerExecution", "deploy", pb.Execution.CANCELED, condition_2, {"target": "prod"}))
    loop = execution("system.DAGExecution", "for-loop-2", pb.Execution.COMPLETE, root_id, {})
    loop.custom_properties["iteration_count"].int_value = 2
    loop_id, _ = put(loop)
    for index in range(2):  # an iteration DAG: the loop's task name, an index, the loop as parent
        iteration = execution("system.DAGExecution", "for-loop-2", pb.Execution.COMPLETE, loop_id, {"shard": index})
        iteration.custom_properties["iteration_index"].int_value = index
        iteration_id, _ = put(iteration)
        put(execution("system.ContainerExecution", "score", pb.Execution.COMPLETE, iteration_id, {"shard": index}))


def write_kfp_v2_history(path: Path) -> tuple[str, str]:
    store = metadata_store.MetadataStore(sqlite_config(path))
    types = {n: store.put_context_type(pb.ContextType(name=n)) for n in ("system.Pipeline", "system.PipelineRun")}
    for name in ("system.DAGExecution", "system.ContainerExecution"):
        types[name] = store.put_execution_type(pb.ExecutionType(name=name))
    for name in ("system.Dataset", "system.Model"):
        types[name] = store.put_artifact_type(pb.ArtifactType(name=name))
    first, second = "3f1c2b7e-0d6a-4d3e-9a51-6b1f0e2d4c11", "8a2e6c90-5b1d-4f7a-8e23-0c9d7b6a5e42"
    shared: dict[str, Any] = {}
    write_kfp_v2_run(store, types, first, 0.1, shared)
    write_kfp_v2_run(store, types, second, 0.2, shared)
    return first, second


def test_kfp_v2_history_edge_by_edge(store: MetadataStore, tmp_path: Path) -> None:
    path = tmp_path / "kfp.sqlite"
    first, second = write_kfp_v2_history(path)
    summary = import_mlmd(SqliteSource(path), store)

    dataset, model_1, model_2 = (
        f"minio://churn/{first}/dataset",
        f"minio://churn/{first}/model",
        f"minio://churn/{second}/model",
    )
    assert edges_of(store) == {
        (first, "preprocess", "output", "dataset", dataset),
        (first, "condition-1/train", "input", "train_data", dataset),
        (first, "condition-1/train", "output", "model", model_1),
        (second, "preprocess", "output", "dataset", dataset),  # the cache hit's reused output
        (second, "condition-1/train", "input", "train_data", dataset),
        (second, "condition-1/train", "output", "model", model_2),
    }
    client = Client(store=store)
    a, b = client.get_run(first), client.get_run(second)
    assert a.pipeline_name == b.pipeline_name == "churn"
    for run in (a, b):
        assert list(run.steps) == [  # no DAG is a step
            "preprocess",
            "condition-1/train",
            "condition-2/deploy",
            "for-loop-2[0]/score",
            "for-loop-2[1]/score",
        ]
        assert run.steps["for-loop-2[1]/score"].parameters == {"shard": 1}
        assert run.status is Status.COMPLETED  # a branch not taken is done, as KFP counts it
        deploy = run.steps["condition-2/deploy"]
        assert deploy.status is Status.SKIPPED and deploy.error is None
        assert deploy.parameters == {"target": "prod"} and deploy.inputs == {} and deploy.outputs == {}
        preprocess = run.steps["preprocess"]
        assert preprocess.parameters == {"n_rows": 100}
        bookkeeping = preprocess.config["mlmd"]["properties"]
        assert {"task_name", "display_name", "pod_name", "pod_uid", "namespace", "image", "cache_fingerprint"} <= set(
            bookkeeping
        )
        assert "parent_dag_id" in bookkeeping and "inputs" not in bookkeeping
        dags = run.config["imported_from"]["dags"]
        paths = ("", "condition-1", "condition-2", "for-loop-2", "for-loop-2[0]", "for-loop-2[1]")
        assert [(d["path"], d["state"]) for d in dags] == [(p, "COMPLETE") for p in paths]
    assert a.parameters == {"lr": 0.1, "epochs": 3} and b.parameters == {"lr": 0.2, "epochs": 3}
    assert a.steps["condition-1/train"].parameters == {"lr": 0.1}
    hit = b.steps["preprocess"]
    assert hit.status is Status.CACHED and hit.cached_from is not None
    assert hit.cached_from.id == a.steps["preprocess"].id
    assert "cached_execution_id" in hit.config["mlmd"]["properties"]

    # Only real differences: the pipeline's parameter and the step parameter that follows it.
    assert {(d.section, d.item, d.a, d.b) for d in a.diff(b)} == {
        ("parameters", "pipeline lr", 0.1, 0.2),
        ("parameters", "condition-1/train lr", 0.1, 0.2),
    }
    # Stable OpenLineage job names; the skipped step has no events.
    jobs = [{e["job"]["name"] for e in run_events(run)} for run in (a, b)]
    expected = {"churn.preprocess", "churn.condition-1/train", "churn.for-loop-2[0]/score", "churn.for-loop-2[1]/score"}
    assert jobs[0] == jobs[1] == expected

    assert dict(summary.not_mapped["step runs"]) == {"KFP DAG execution: the run's structure, kept in its config": 12}
    assert "edges" not in summary.not_mapped
    assert summary.imported["step runs"] == 10 and summary.imported["edges"] == 6
