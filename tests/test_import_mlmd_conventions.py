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

from pipeledger.importers import SqliteSource, import_mlmd
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind, Status
from tests.servers import contract_backends, open_empty_store, skip_without_mlmd_wheel

if sys.version_info >= (3, 12):
    skip_without_mlmd_wheel()
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from tests.test_import_mlmd import invoke, sqlite_config, summary_rows

Edge = tuple[str, str, str, str, str]  # (run, step, direction, edge name, artifact uri)


@pytest.fixture(params=contract_backends())
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
