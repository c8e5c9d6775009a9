"""``pipeledger import mlmd``: an MLMD history written through the ``ml_metadata`` library the way
TFX (and ZenML <= 0.13, which ran on TFX's launcher) wrote it, imported into pipeledger."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeledger.cli.main import cli
from pipeledger.client import Client
from pipeledger.importers import MlmdImportError, SqliteSource, import_mlmd
from pipeledger.models import Status
from pipeledger.stack.registry import get_stack
from tests.servers import MYSQL_URL, enabled_backends, scratch_database, skip_without_mlmd_wheel

if sys.version_info >= (3, 12):  # skipped there, or failed where kubeflow is in PIPELEDGER_TEST_BACKENDS
    skip_without_mlmd_wheel()
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

Edge = tuple[str, str, str, str]  # (run name, step name, artifact uri, "input"/"output")


@dataclass
class History:
    """Ids of what :func:`write_tfx_history` recorded in MLMD."""

    store: Any
    artifacts: dict[str, int] = field(default_factory=dict)  # uri -> id
    executions: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (run name, step name)
    cached: set[int] = field(default_factory=set)


def sqlite_config(path: Path) -> Any:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return config


def write_tfx_history(config: Any) -> History:
    """Two runs of a TFX-style pipeline ``taxi`` through the MLMD library.

    Run 1: CsvExampleGen → StatisticsGen → SchemaGen; Trainer consumes examples and schema
    (a fan-in); Evaluator blesses the model. Run 2: a new CsvExampleGen and StatisticsGen,
    SchemaGen is a cache hit (its output event points to run 1's schema), Trainer uses the new
    examples, run 1's schema and external hyperparameters no execution produced, and
    Evaluator fails. Also: an execution outside any run and a context of an unknown type.
    """
    store = metadata_store.MetadataStore(config)
    history = History(store)
    str_, int_ = pb.STRING, pb.INT
    types = {}
    for name, props in {
        "Examples": {"span": int_, "split_names": str_},
        "ExampleStatistics": {"span": int_},
        "Schema": {},
        "HyperParameters": {},
        "Model": {},
        "ModelBlessing": {},
    }.items():
        types[name] = store.put_artifact_type(pb.ArtifactType(name=name, properties=props))
    exec_types = {}
    for component, props in {
        "CsvExampleGen": {"input_base": str_, "output_config": str_},
        "StatisticsGen": {"exclude_splits": str_},
        "SchemaGen": {"infer_feature_shape": int_},
        "Trainer": {"train_args": str_, "module_file": str_},
        "Evaluator": {"eval_config": str_},
        "Pusher": {},
    }.items():
        exec_types[component] = store.put_execution_type(
            pb.ExecutionType(name=f"tfx.components.{component.lower()}.component.{component}", properties=props)
        )
    ctx_types = {n: store.put_context_type(pb.ContextType(name=n)) for n in ("pipeline", "pipeline_run", "node")}
    other_type = store.put_context_type(pb.ContextType(name="experiment"))
    [pipeline_id] = store.put_contexts([pb.Context(type_id=ctx_types["pipeline"], name="taxi")])
    store.put_contexts([pb.Context(type_id=other_type, name="notebook-experiments")])
    nodes = {}
    for component in exec_types:
        [nodes[component]] = store.put_contexts([pb.Context(type_id=ctx_types["node"], name=f"taxi.{component}")])
    pipeline = store.get_contexts_by_id([pipeline_id])[0]

    def artifact(type_name: str, uri: str, **props: Any) -> Any:
        made = pb.Artifact(type_id=types[type_name], uri=uri, state=pb.Artifact.LIVE)
        for key, value in props.items():
            target = made.properties[key]
            if isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = value
        made.custom_properties["tfx_version"].string_value = "1.8.0"
        return made

    def run_component(
        run: Any,
        component: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        *,
        state: int = pb.Execution.COMPLETE,
        props: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        execution = pb.Execution(type_id=exec_types[component], last_known_state=state)
        for key, value in (props or {}).items():
            if isinstance(value, int):
                execution.properties[key].int_value = value
            else:
                execution.properties[key].string_value = value
        execution.custom_properties["__stateful_working_dir_index__"].string_value = "0"
        pairs = []
        for direction, mapping in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs)):
            for key, art in mapping.items():
                event = pb.Event(type=direction)
                event.path.steps.add().key = key
                event.path.steps.add().index = 0
                pairs.append((art, event))
        node = store.get_contexts_by_id([nodes[component]])[0]
        execution_id, artifact_ids, _ = store.put_execution(execution, pairs, [pipeline, run, node])
        history.executions[execution_id] = (run.name, component)
        if state == pb.Execution.CACHED:
            history.cached.add(execution_id)
        stored = store.get_artifacts_by_id(artifact_ids)
        for art in stored:
            history.artifacts[art.uri] = art.id
        return {key: next(a for a in stored if a.uri == art.uri) for key, art in {**inputs, **outputs}.items()}

    [run1_id] = store.put_contexts([pb.Context(type_id=ctx_types["pipeline_run"], name="taxi-2022-06-01")])
    run1 = store.get_contexts_by_id([run1_id])[0]
    got = run_component(
        run1,
        "CsvExampleGen",
        {},
        {"examples": artifact("Examples", "/data/taxi/1/examples", span=1, split_names='["train", "eval"]')},
        props={"input_base": "/data/csv", "output_config": '{"split_config": {}}'},
    )
    examples1 = got["examples"]
    stats1 = run_component(
        run1, "StatisticsGen", {"examples": examples1}, {"statistics": artifact("ExampleStatistics", "/data/1/stats")}
    )["statistics"]
    schema1 = run_component(
        run1, "SchemaGen", {"statistics": stats1}, {"schema": artifact("Schema", "/data/taxi/1/schema")}
    )["schema"]
    model1 = run_component(
        run1,
        "Trainer",
        {"examples": examples1, "schema": schema1},
        {"model": artifact("Model", "/data/taxi/1/model")},
        props={"train_args": '{"num_steps": 100}', "module_file": "taxi_utils.py"},
    )["model"]
    run_component(
        run1, "Evaluator", {"model": model1, "examples": examples1}, {"blessing": artifact("ModelBlessing", "/b/1")}
    )

    [run2_id] = store.put_contexts([pb.Context(type_id=ctx_types["pipeline_run"], name="taxi-2022-06-02")])
    run2 = store.get_contexts_by_id([run2_id])[0]
    examples2 = run_component(run2, "CsvExampleGen", {}, {"examples": artifact("Examples", "/data/taxi/2/ex", span=2)})[
        "examples"
    ]
    stats2 = run_component(
        run2, "StatisticsGen", {"examples": examples2}, {"statistics": artifact("ExampleStatistics", "/data/2/stats")}
    )["statistics"]
    run_component(run2, "SchemaGen", {"statistics": stats2}, {"schema": schema1}, state=pb.Execution.CACHED)
    [hp_id] = store.put_artifacts([artifact("HyperParameters", "/config/hparams.json")])
    history.artifacts["/config/hparams.json"] = hp_id
    hparams = store.get_artifacts_by_id([hp_id])[0]
    model2 = run_component(
        run2,
        "Trainer",
        {"examples": examples2, "schema": schema1, "hyperparameters": hparams},
        {"model": artifact("Model", "/data/taxi/2/model")},
        props={"train_args": '{"num_steps": 200}', "module_file": "taxi_utils.py"},
    )["model"]
    run_component(run2, "Evaluator", {"model": model2}, {}, state=pb.Execution.FAILED)
    # An execution of no run (e.g. written by a notebook): not mapped.
    store.put_execution(pb.Execution(type_id=exec_types["Pusher"], last_known_state=pb.Execution.COMPLETE), [], [])
    return history


def mlmd_lineage(history: History, uri: str, *, skip_cached: bool = False) -> set[Edge]:
    """The edges of MLMD's own upstream lineage subgraph of the artifact at ``uri``.

    With ``skip_cached``, the subgraph is walked again from the artifact following only
    producers that are not cache hits: pipeledger's rule (a reused artifact leads to the
    execution that really produced it, not to the cached executions that reused it).
    """
    options = pb.LineageSubgraphQueryOptions(max_num_hops=50, direction=pb.LineageSubgraphQueryOptions.UPSTREAM)
    options.starting_artifacts.filter_query = f"id = {history.artifacts[uri]}"
    graph = history.store.get_lineage_subgraph(options)
    uris = {a.id: a.uri for a in graph.artifacts}
    edges = {
        (e.execution_id, e.artifact_id, "input" if e.type == pb.Event.INPUT else "output")
        for e in graph.events
        if e.type in (pb.Event.INPUT, pb.Event.OUTPUT)
    }
    if skip_cached:
        kept: set[tuple[int, int, str]] = set()
        pending = [history.artifacts[uri]]
        seen: set[int] = set()
        while pending:
            artifact_id = pending.pop()
            for execution_id, art, direction in edges:
                if art == artifact_id and direction == "output" and execution_id not in history.cached:
                    if execution_id in seen:
                        continue
                    seen.add(execution_id)
                    for edge in edges:
                        if edge[0] == execution_id:
                            kept.add(edge)
                            if edge[2] == "input":
                                pending.append(edge[1])
        edges = kept
    return {(*history.executions[ex], uris[art], direction) for ex, art, direction in edges}


def pipeledger_lineage(uri: str) -> set[Edge]:
    """The edges of pipeledger's upstream lineage of the imported artifact at ``uri``."""
    store = get_stack().metadata_store
    [artifact] = [a for batch in store.iter_artifacts() for a in batch if a.uri == uri]
    graph = store.lineage(artifact_id=artifact.id, direction="upstream")
    return {
        (
            graph.steps[e.step_run_id].run_name,
            graph.steps[e.step_run_id].name,
            graph.artifacts[e.artifact_id].uri,
            str(e.direction),
        )
        for e in graph.edges
    }


def summary_rows(output: str) -> dict[str, list[str]]:
    """The summary table's rows: kind -> [imported, already present, not mapped]."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = cells[1:]
    return rows


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["import", "mlmd", *args])


@pytest.fixture
def tfx_db(tmp_path: Path) -> tuple[Path, History]:
    path = tmp_path / "metadata.sqlite"
    return path, write_tfx_history(sqlite_config(path))


def test_import_maps_runs_steps_artifacts_and_lineage(tfx_db: tuple[Path, History]) -> None:
    path, history = tfx_db
    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert "MLMD import from sqlite:" in result.output
    rows = summary_rows(result.output)
    assert rows["pipelines"] == ["1", "0", "0"]
    assert rows["runs"] == ["2", "0", "0"]
    assert rows["step runs"] == ["10", "0", "1"]  # the execution outside any run is not mapped
    assert rows["artifacts"] == ["9", "0", "0"]
    assert rows["edges"] == ["21", "0", "0"]
    assert "not mapped: 1 step runs: execution belongs to no run context" in result.output
    assert "context type 'experiment' has no pipeledger equivalent" in result.output

    client = Client()
    runs = {r.name: r for r in client.list_runs(pipeline="taxi")}
    assert set(runs) == {"taxi-2022-06-01", "taxi-2022-06-02"}
    first, second = runs["taxi-2022-06-01"], runs["taxi-2022-06-02"]
    assert first.status is Status.COMPLETED and second.status is Status.FAILED
    assert "imported-from-mlmd" in first.tags
    assert first.config["imported_from"]["context_type"] == "pipeline_run"
    assert list(first.steps) == ["CsvExampleGen", "StatisticsGen", "SchemaGen", "Trainer", "Evaluator"]
    trainer = first.steps["Trainer"]
    assert trainer.parameters == {"module_file": "taxi_utils.py", "train_args": '{"num_steps": 100}'}
    assert set(trainer.inputs) == {"examples", "schema"}
    model = trainer.outputs["model"]
    assert (model.type, model.uri, model.data_type) == ("Model", "/data/taxi/1/model", "mlmd:Model")
    examples = first.steps["CsvExampleGen"].outputs["examples"]
    assert examples.metadata["span"] == 1 and examples.metadata["mlmd_state"] == "LIVE"
    schema_gen = second.steps["SchemaGen"]
    assert schema_gen.status is Status.CACHED
    assert schema_gen.outputs["schema"].id == first.steps["SchemaGen"].outputs["schema"].id
    assert second.steps["Evaluator"].status is Status.FAILED
    assert second.steps["Trainer"].inputs["hyperparameters"].uri == "/config/hparams.json"

    # MLMD counts run 2's cache hit of SchemaGen as a second producer of run 1's schema, so its
    # subgraphs reach the cache hit and whatever only it consumed; pipeledger follows a reused
    # artifact to the execution that produced it. Apart from that, the lineages are equal.
    for uri, via_cache_hit in [
        ("/data/taxi/1/model", {"SchemaGen", "StatisticsGen", "CsvExampleGen"}),
        ("/data/taxi/2/model", {"SchemaGen", "StatisticsGen"}),  # the last artifact
    ]:
        ours = pipeledger_lineage(uri)
        assert ours == mlmd_lineage(history, uri, skip_cached=True)
        extra = mlmd_lineage(history, uri) - ours
        assert {(run, step) for run, step, _, _ in extra} == {("taxi-2022-06-02", s) for s in via_cache_hit}
    assert ("taxi-2022-06-01", "SchemaGen", "/data/taxi/1/schema", "output") in pipeledger_lineage("/data/taxi/2/model")


def test_importing_twice_adds_nothing(tfx_db: tuple[Path, History]) -> None:
    path, _ = tfx_db
    assert invoke("--sqlite", str(path)).exit_code == 0
    store = get_stack().metadata_store
    before = sorted(a.id for batch in store.iter_artifacts() for a in batch)
    again = invoke("--sqlite", str(path))
    assert again.exit_code == 0, again.output
    assert "Already imported: nothing new to add." in again.output
    rows = summary_rows(again.output)
    assert rows["runs"] == ["0", "2", "0"] and rows["step runs"] == ["0", "10", "1"]
    assert rows["artifacts"] == ["0", "9", "0"] and rows["edges"] == ["0", "21", "0"]
    assert sorted(a.id for batch in store.iter_artifacts() for a in batch) == before
    assert store.count_runs() == 2
    # The same history copied elsewhere is the same history.
    copy = path.with_name("copy.sqlite")
    copy.write_bytes(path.read_bytes())
    assert "Already imported" in invoke("--sqlite", str(copy)).output


def test_dry_run_writes_nothing(tfx_db: tuple[Path, History]) -> None:
    path, _ = tfx_db
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = invoke("--sqlite", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would import" in result.output and "Dry run: nothing was written." in result.output
    assert get_stack().metadata_store.count_runs() == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the source is opened read-only


def test_pipeline_filter_and_unknown_pipeline(tfx_db: tuple[Path, History]) -> None:
    path, _ = tfx_db
    unknown = invoke("--sqlite", str(path), "--pipeline", "other")
    assert unknown.exit_code == 1 and "no pipeline 'other'" in unknown.output and "taxi" in unknown.output
    assert invoke("--sqlite", str(path), "--pipeline", "taxi").exit_code == 0
    assert get_stack().metadata_store.count_runs(pipeline="taxi") == 2


def test_an_interrupted_import_resumes(tfx_db: tuple[Path, History], monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash half-way (here: the store's 4th finish_step raises) leaves a run `running`; the
    next import finishes it and imports the rest, ending where one clean import ends."""
    path, _ = tfx_db
    store = get_stack().metadata_store
    real = store.finish_step
    calls = []

    def crash_on_fourth(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 4:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "finish_step", crash_on_fourth)
    with pytest.raises(OSError):
        import_mlmd(SqliteSource(path), store)
    monkeypatch.setattr(store, "finish_step", real)
    [left] = store.list_runs()
    assert left.status is Status.RUNNING
    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert "left running by an earlier import: resumed" in result.output
    rows = summary_rows(result.output)
    assert int(rows["step runs"][0]) + int(rows["step runs"][1]) == 10
    assert int(rows["artifacts"][0]) + int(rows["artifacts"][1]) == 9
    assert {r.status for r in store.list_runs()} == {Status.COMPLETED, Status.FAILED}
    assert store.integrity_problems() == []
    assert "Already imported" in invoke("--sqlite", str(path)).output


def test_a_taken_run_name_gets_a_suffix(tfx_db: tuple[Path, History]) -> None:
    from pipeledger.models import RunCreate

    path, _ = tfx_db
    store = get_stack().metadata_store
    store.create_run(RunCreate(pipeline_name="mine", name="taxi-2022-06-01"))
    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert "a run named taxi-2022-06-01 exists already" in result.output
    renamed = next(
        c.id
        for c in metadata_store.MetadataStore(sqlite_config(path)).get_contexts_by_type("pipeline_run")
        if c.name == "taxi-2022-06-01"
    )
    assert {r.name for r in store.list_runs(pipeline="taxi")} == {f"taxi-2022-06-01-mlmd-{renamed}", "taxi-2022-06-02"}
    assert "Already imported" in invoke("--sqlite", str(path)).output


def test_zenml_legacy_names_parameters_and_materializers(tmp_path: Path) -> None:
    path = tmp_path / "zenml.db"
    store = metadata_store.MetadataStore(sqlite_config(path))
    data = store.put_artifact_type(
        pb.ArtifactType(name="DataArtifact", properties={"datatype": pb.STRING, "materializer": pb.STRING})
    )
    step_type = store.put_execution_type(pb.ExecutionType(name="steps.importer.importer_mnist"))
    pipeline_type = store.put_context_type(pb.ContextType(name="pipeline"))
    run_type = store.put_context_type(pb.ContextType(name="pipeline_run"))
    [pipeline_id, run_id] = store.put_contexts(
        [pb.Context(type_id=pipeline_type, name="mnist"), pb.Context(type_id=run_type, name="mnist-01_Jun_22")]
    )
    contexts = store.get_contexts_by_id([pipeline_id, run_id])
    execution = pb.Execution(type_id=step_type, last_known_state=pb.Execution.COMPLETE)
    execution.custom_properties["zenml-pipeline_parameter_name"].string_value = json.dumps("importer")
    execution.custom_properties["batch_size"].string_value = json.dumps(32)
    files = tmp_path / "artifacts" / "importer" / "output" / "1"
    files.mkdir(parents=True)
    (files / "data.npy").write_bytes(b"0123456789")
    output = pb.Artifact(type_id=data, uri=str(files))
    output.properties["datatype"].string_value = "numpy.ndarray"
    output.properties["materializer"].string_value = "zenml.materializers.numpy_materializer.NumpyMaterializer"
    event = pb.Event(type=pb.Event.OUTPUT)
    event.path.steps.add().key = "output"
    store.put_execution(execution, [(output, event)], contexts)
    del store

    result = invoke("--sqlite", str(path), "--hash-files")
    assert result.exit_code == 0, result.output
    step = Client().get_run("mnist-01_Jun_22").steps["importer"]
    assert step.parameters == {"batch_size": 32}
    artifact = step.outputs["output"]
    assert artifact.data_type == "numpy.ndarray"
    assert artifact.materializer == "zenml.materializers.numpy_materializer.NumpyMaterializer"
    assert artifact.size == 10 and len(artifact.content_hash) == 64  # --hash-files read the files


def test_older_mlmd_schema_is_upgraded_in_a_copy(tfx_db: tuple[Path, History]) -> None:
    path, _ = tfx_db
    metadata_store.downgrade_schema(sqlite_config(path), 7)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert "temporary copy was upgraded" in result.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert get_stack().metadata_store.count_runs() == 2


def test_refusals_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    literal = invoke("--mysql-host", "127.0.0.1", "--mysql-database", "mlmd", "--mysql-password", "hunter2")
    assert literal.exit_code == 1
    assert "refusing a clear-text MySQL password" in literal.output and "hunter2" not in literal.output
    missing = invoke("--sqlite", str(tmp_path / "nope.db"))
    assert missing.exit_code == 1 and "no MLMD database at" in missing.output
    not_mlmd = tmp_path / "text.db"
    not_mlmd.write_text("not a database")
    assert "cannot read" in invoke("--sqlite", str(not_mlmd)).output
    assert "give either --sqlite FILE or --mysql-host" in invoke().output
    monkeypatch.setitem(__import__("sys").modules, "ml_metadata", None)
    with pytest.raises(MlmdImportError, match=r"pip install 'pipeledger\[kubeflow\]'"):
        import_mlmd(SqliteSource(not_mlmd), get_stack().metadata_store)
    assert "pip install 'pipeledger[kubeflow]'" in invoke("--sqlite", str(not_mlmd)).output


@pytest.mark.server
@pytest.mark.skipif("mysql" not in enabled_backends(), reason="MySQL/MariaDB backend not enabled")
def test_import_from_mlmd_on_mysql(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.engine import make_url

    with scratch_database("mysql") as url:
        config = pb.ConnectionConfig()
        config.mysql.host = url.host or "127.0.0.1"
        config.mysql.port = url.port or 3306
        config.mysql.database = str(url.database)
        config.mysql.user = url.username or "root"
        if url.password:
            config.mysql.password = url.password
        args = ["--mysql-host", config.mysql.host, "--mysql-port", str(config.mysql.port)]
        args += ["--mysql-database", config.mysql.database, "--mysql-user", config.mysql.user]
        if make_url(MYSQL_URL).password:
            monkeypatch.setenv("MLMD_TEST_PASSWORD", str(url.password))
            args += ["--mysql-password", "${env:MLMD_TEST_PASSWORD}"]
        empty = invoke(*args)  # refused before ml_metadata could create its tables there
        assert empty.exit_code == 1 and "is not an MLMD database" in empty.output
        history = write_tfx_history(config)
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert "mysql://" in result.output
        last = "/data/taxi/2/model"
        assert pipeledger_lineage(last) == mlmd_lineage(history, last, skip_cached=True)
        assert "Already imported" in invoke(*args).output


def test_kfp_v1_and_legacy_tfx_conventions(tmp_path: Path) -> None:
    """KFP v1: a ``KfpRun`` context with a ``pipeline_name`` property, no pipeline context,
    ``component_id`` execution properties. Legacy TFX: no ``last_known_state`` but a ``state``
    property, and a ``DECLARED_OUTPUT`` event before the ``OUTPUT`` of the same artifact."""
    path = tmp_path / "kfp.db"
    store = metadata_store.MetadataStore(sqlite_config(path))
    run_type = store.put_context_type(
        pb.ContextType(name="KfpRun", properties={"pipeline_name": pb.STRING, "run_id": pb.STRING})
    )
    exec_type = store.put_execution_type(
        pb.ExecutionType(name="components.train", properties={"component_id": pb.STRING, "state": pb.STRING})
    )
    art_type = store.put_artifact_type(pb.ArtifactType(name="system.Model"))
    run = pb.Context(type_id=run_type, name="wf-abc12")
    run.properties["pipeline_name"].string_value = "churn"
    [run_id] = store.put_contexts([run])
    run = store.get_contexts_by_id([run_id])[0]
    execution = pb.Execution(type_id=exec_type)
    execution.properties["component_id"].string_value = "train-7f2"
    execution.properties["state"].string_value = "complete"
    execution.custom_properties["epochs"].int_value = 3
    model = pb.Artifact(type_id=art_type, uri="gs://bucket/model")
    declared, produced = pb.Event(type=pb.Event.DECLARED_OUTPUT), pb.Event(type=pb.Event.OUTPUT)
    for event in (declared, produced):
        event.path.steps.add().key = "model"
    execution_id, [model_id], _ = store.put_execution(execution, [(model, declared)], [run])
    produced.execution_id, produced.artifact_id = execution_id, model_id
    store.put_events([produced])
    pending = pb.Event(type=pb.Event.PENDING_OUTPUT, execution_id=execution_id, artifact_id=model_id)
    store.put_events([pending])
    del store

    result = invoke("--sqlite", str(path))
    assert result.exit_code == 0, result.output
    assert "event type PENDING_OUTPUT (not an input or output)" in result.output
    run_view = Client().get_run("wf-abc12")
    assert run_view.pipeline_name == "churn" and run_view.status is Status.COMPLETED
    step = run_view.steps["train-7f2"]
    assert step.status is Status.COMPLETED and step.parameters == {"epochs": 3}
    assert step.config["mlmd"]["properties"] == {"component_id": "train-7f2", "state": "complete"}
    assert step.outputs["model"].uri == "gs://bucket/model"
