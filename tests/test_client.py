"""The post-execution API: navigation, paging in the store, errors that list what exists."""

from __future__ import annotations

import pytest

from pipeledger import ArtifactNotFoundError, Client, NotFoundError, PipeledgerError
from tests import pipelines as P


def test_navigation_and_reprs() -> None:
    run = P.training()
    client = Client()
    pipeline = client.get_pipeline("training")
    assert repr(pipeline) == "Client().get_pipeline('training')"
    assert pipeline.docstring == "Load, train, evaluate."
    assert repr(run) == "Client().get_run('training-1')"
    step = run.steps["train"]
    assert repr(step) == "Client().get_run('training-1')['train']"
    model = step.outputs["model"]
    assert repr(model) == f"Client().get_artifact({model.id!r})"
    # every repr is code that reads the same object back
    for view in (pipeline, run, step, model):
        again = eval(repr(view), {"Client": Client})
        assert (type(again), again.id) == (type(view), view.id)
    assert step.run.id == run.id
    assert run.pipeline.name == "training"
    assert [p.name for p in client.list_pipelines()] == ["training"]
    assert client.get_artifact(step.outputs["model"].id).read() == {"w": 0.01, "n": 4}
    assert client.get_step_run(step.id).name == "train"


def test_every_level_says_its_parent_and_children() -> None:
    run = P.training()
    pipeline = Client().get_pipeline("training")
    step = run["train"]
    model = step["model"]
    assert pipeline.parent is None
    assert run.parent.name == "training"
    assert step.parent.id == run.id
    assert model.parent is not None and model.parent.id == step.id
    assert pipeline["training-1"].id == run.id
    assert [s.name for s in run] == run.step_names
    assert [a.id for a in step] == [a.id for a in step.outputs.values()]
    assert [r.name for r in pipeline] == ["training-1"]
    assert list(model) == []
    assert "train" in run and "nope" not in run and "model" in step and 3 not in step
    with pytest.raises(KeyError, match="no step named 'nope' in run 'training-1'; steps: load, train, evaluate"):
        run["nope"]
    with pytest.raises(KeyError, match="no output named 'nope' in step 'train'; outputs: model"):
        step["nope"]
    with pytest.raises(KeyError, match="an artifact is a leaf"):
        model["x"]
    with pytest.raises(KeyError, match="nope"):
        pipeline["nope"]


def test_runs_sequence_is_paged_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeledger.client.views import RunSequence

    monkeypatch.setattr(RunSequence, "PAGE", 2)
    for lr in (0.1, 0.2, 0.3, 0.4, 0.5):
        P.training(lr=lr)
    runs = Client().get_pipeline("training").runs
    assert len(runs) == 5
    assert [r.parameters["lr"] for r in runs] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert runs[0].name == "training-1" and runs[-1].name == "training-5"
    assert [r.name for r in runs[1:3]] == ["training-2", "training-3"]
    with pytest.raises(IndexError):
        runs[5]
    p = Client().get_pipeline("training")
    assert p.latest_run.name == "training-5"
    assert p.get_run_names(limit=2) == ["training-5", "training-4"]


def test_list_runs_filters_and_pages() -> None:
    for _ in range(3):
        P.training()
    with pytest.raises(PipeledgerError):
        P.failing()
    client = Client()
    assert [r.name for r in client.list_runs(limit=2)] == ["failing-1", "training-3"]
    assert [r.name for r in client.list_runs(limit=2, offset=2)] == ["training-2", "training-1"]
    assert [r.name for r in client.list_runs(status="failed")] == ["failing-1"]
    assert len(client.list_runs(pipeline="training")) == 3
    first = client.get_run("training-1")
    assert [r.name for r in client.list_runs(since=first.start_time, pipeline="training")][-1] == "training-1"
    later = client.get_run("training-3").start_time
    assert {r.name for r in client.list_runs(since=later)} == {"training-3", "failing-1"}


def test_missing_names_list_what_exists() -> None:
    run = P.training()
    client = Client()
    with pytest.raises(KeyError, match="no pipeline named 'nope'; known pipelines: training"):
        client.get_pipeline("nope")
    with pytest.raises(NotFoundError, match="no run named 'nope'; latest runs: training-1"):
        client.get_run("nope")
    with pytest.raises(KeyError, match="no step named 'x' in run 'training-1'; steps: load, train, evaluate"):
        run.steps["x"]
    with pytest.raises(KeyError, match="no output named 'x' in step 'train'; outputs: model, accuracy"):
        run.steps["train"].outputs["x"]
    with pytest.raises(PipeledgerError, match="step 'train' has 2 outputs \\(model, accuracy\\)"):
        _ = run.steps["train"].output
    with pytest.raises(NotFoundError, match="pipeline 'nope' has no run"):
        from pipeledger.client.views import PipelineView
        from pipeledger.models import PipelineRecord, utcnow

        _ = PipelineView(PipelineRecord("x", "nope", utcnow()), client.store).latest_run
    assert run.steps["load"].output.read() == {"x": [0, 1, 2, 3]}
    assert run.steps["train"].input.producer.name == "load"


def test_reading_an_artifact_whose_files_are_gone() -> None:
    import shutil

    run = P.training()
    artifact = run.steps["train"].outputs["model"]
    shutil.rmtree(artifact.uri)
    with pytest.raises(ArtifactNotFoundError, match=f"missing at {artifact.uri}"):
        artifact.read()


def test_run_view_loads_step_edges_in_one_query_per_kind() -> None:
    from sqlalchemy import event

    P.training()
    client = Client()
    run = client.get_run("training-1")
    statements: list[str] = []
    engine = client.store.db.engine  # type: ignore[attr-defined]
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        for step in run.steps.values():
            _ = dict(step.inputs), dict(step.outputs), step.metadata
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # get_run_steps: the run, its tags, its step runs, their edges with artifacts; then the
    # steps' metadata. Never a query per step.
    assert len(selects) == 5, selects


def test_every_read_shows_a_killed_run_as_crashed_before_anything_marks_it() -> None:
    """A run recorded ``running`` whose heartbeat is stale (its process was killed) reads
    ``crashed`` everywhere, with nothing written yet: pipeline list, run list/show, the API's
    status filters, run graphs, lineage (text, JSON) and OpenLineage events."""
    import json
    from datetime import timedelta

    from click.testing import CliRunner

    from pipeledger import Status
    from pipeledger.cli.main import cli
    from pipeledger.lineage.openlineage import run_events
    from pipeledger.models import RunCreate, StepRunCreate, utcnow

    done = P.training()
    store = Client().store
    long_ago = utcnow() - timedelta(hours=1)
    killed = store.create_run(RunCreate(pipeline_name="training", name="killed"))  # the latest run
    store.heartbeat(killed.id, at=long_ago)
    data = done.steps["load"].output
    store.start_step(StepRunCreate(run_id=killed.id, name="train", inputs={"data": data.id}))
    assert store.get_run(killed.id).status is Status.RUNNING  # as the killed process left it

    def cli_output(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    listed = cli_output("pipeline", "list")
    assert "killed" in listed and "crashed" in listed and "running" not in listed
    run = Client().get_run("killed")
    assert run.status is Status.CRASHED and run.steps["train"].status is Status.CRASHED
    graph = {n.name: n.attributes["status"] for n in run.graph().steps}
    assert graph["train"] == "crashed"
    assert {n.name: n.attributes["status"] for n in run.steps["train"].lineage().steps}["train"] == "crashed"
    downstream = {(n.name, n.attributes["run"]): n.attributes["status"] for n in data.lineage("downstream").steps}
    assert downstream[("train", "killed")] == "crashed"
    exported = json.loads(cli_output("lineage", data.id, "--downstream", "--format", "json"))
    nodes = [n for n in exported["nodes"] if n["kind"] == "step"]
    statuses = {(n["name"], n["attributes"]["run"]): n["attributes"]["status"] for n in nodes}
    assert statuses[("train", "killed")] == "crashed"
    assert [e["eventType"] for e in run_events(run)] == ["START", "ABORT"]
    assert store.get_run(killed.id).status is Status.RUNNING  # every read above only derived it

    # Filtering by status agrees with the status shown (the filter marks stale runs first).
    assert [r.name for r in Client().list_runs(status="running")] == []
    assert [r.name for r in Client().list_runs(status=Status.CRASHED)] == ["killed"]
    assert store.get_run(killed.id).status is Status.CRASHED
