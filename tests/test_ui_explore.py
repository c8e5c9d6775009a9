"""What the web UI's artifact, compare and metrics pages and the run export are built on, without a
browser: the lineage explorer's graph (depth, expansions, the summary past a limit) on every SQL
backend, runs side by side, the metric chart's SVG, streamed artifact files and tars, image
previews, and ``pipeledger ui export`` (its refusals, and a page with no script or outside link);
the artifact, compare and metrics pages' statement counts (bounded) and previews (TestClient).
The pages themselves are opened in a real browser by ``tests/ui/test_ui_explore.py``."""

from __future__ import annotations

import io
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner

from pipeledger import Client, RunView, pipeline, step
from pipeledger.artifacts.download import artifact_file_sizes, iter_file, iter_tar
from pipeledger.artifacts.materializers.builtin import image_type
from pipeledger.cli.main import cli
from pipeledger.comparison import MAX_COMPARED, MetricHistory, side_by_side
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.lineage.explorer import MAX_EXPANDED, neighbourhood, summary
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactRecord, EntityKind, Status
from pipeledger.testing.helpers import finish, make_run, make_step, produce
from pipeledger.ui.export import ExportError, render_export, write_export
from pipeledger.ui.metric_chart import metric_chart
from tests import pipelines as P
from tests.servers import enabled_backends, open_empty_store
from tests.ui.test_ui_bounded import app_for, counted

# --- the lineage explorer ----------------------------------------------------------------------


@pytest.fixture(params=enabled_backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MetadataStore:
    opened = open_empty_store(request.param, tmp_path, request)
    request.addfinalizer(opened.close)
    return opened


def sweep(store: MetadataStore, runs: int) -> ArtifactRecord:
    """``runs`` runs whose ``train`` step reads one shared ``data`` artifact and writes a model that
    ``evaluate`` reads: the data's lineage one step downstream has ``runs`` train steps."""
    first = make_run(store, "sweep")
    _, (data,) = produce(store, first, "load", outputs=("data",))
    for _ in range(runs):
        run = make_run(store, "sweep")
        _, (model,) = produce(store, run, "train", inputs={"data": data.id}, outputs=("model",))
        produce(store, run, "evaluate", inputs={"model": model.id}, outputs=("score",))
    return data


def test_explorer_opens_one_step_around_and_grows_by_expansion(store: MetadataStore) -> None:
    data = sweep(store, 3)
    start = neighbourhood(store, data.id)
    kinds = sorted((n.kind, n.name) for n in start.nodes)
    # depth 1, both directions: the producer, the three consumers and what each of them wrote
    assert kinds.count(("step", "train")) == 3
    assert ("step", "load") in kinds
    assert not any(name == "evaluate" for _, name in kinds)
    model = next(n for n in start.artifacts if n.name == "train.model")
    grown = neighbourhood(store, data.id, expanded=[model.id])
    assert len(grown) > len(start)
    assert {n.name for n in grown.steps} >= {"evaluate"}
    deeper = neighbourhood(store, data.id, depth=2)
    assert sum(n.name == "evaluate" for n in deeper.steps) == 3
    assert grown.root == data.id == deeper.root


def test_explorer_ignores_unknown_and_excess_expansions(store: MetadataStore) -> None:
    data = sweep(store, 1)
    start = neighbourhood(store, data.id)
    forged = neighbourhood(store, data.id, expanded=["f" * 32, "not-an-id", data.id])
    assert {n.id for n in forged.nodes} == {n.id for n in start.nodes}
    with pytest.raises(NotFoundError):
        neighbourhood(store, "0" * 32)
    calls = []
    real = store.lineage

    def counting(**kw: object) -> object:
        calls.append(kw)
        return real(**kw)  # type: ignore[arg-type]

    store.lineage = counting  # type: ignore[method-assign]
    neighbourhood(store, data.id, expanded=[n.id for n in start.nodes] * 40)
    assert len(calls) <= 1 + MAX_EXPANDED


def test_isolated_artifact_is_its_own_graph(store: MetadataStore) -> None:
    run = make_run(store, "alone")
    _, (lonely,) = produce(store, run, "load", outputs=("data",))
    graph = neighbourhood(store, lonely.id, depth=0)
    assert [n.id for n in graph.nodes] == [lonely.id]
    assert graph.node(lonely.id).name == "load.data"


def test_summary_groups_by_step_and_output_name(store: MetadataStore) -> None:
    data = sweep(store, 12)
    graph = neighbourhood(store, data.id, depth=2)
    assert len(graph) == 1 + 1 + 12 * 4  # load, data, and per run train, model, evaluate, score
    grouped = summary(graph)
    by_name = {n.name: n for n in grouped.nodes}
    assert grouped.root == data.id and data.id in grouped
    assert by_name["train"].attributes["count"] == 12
    assert by_name["train"].attributes["statuses"] == {"completed": 12}
    assert by_name["train.model"].attributes["count"] == 12
    assert sorted(by_name) == ["evaluate", "evaluate.score", "load", "load.data", "train", "train.model"]
    assert {(e.source, e.target) for e in grouped.edges} >= {
        (data.id, "step:train"),
        ("step:train", "artifact:train.model"),
        ("artifact:train.model", "step:evaluate"),
    }
    assert sorted(len(n.attributes.get("members", [n.id])) for n in grouped.nodes) == [1, 1, 12, 12, 12, 12]


# --- runs side by side -------------------------------------------------------------------------


def test_side_by_side_marks_what_differs(store: MetadataStore) -> None:
    runs = [make_run(store, "cmp", parameters={"lr": lr, "seed": 1}) for lr in (0.1, 0.2, 0.1)]
    for index, run in enumerate(runs):
        step = make_step(store, run, "train", parameters={"depth": 3})
        finish(store, step)
        store.put_metadata(EntityKind.STEP_RUN, step.id, {"accuracy": 0.5 + index / 10, "rows": 10})
    compared = side_by_side(store, runs)
    rows = {(r.section, r.item): r for r in compared.rows}
    assert rows[("parameters", "pipeline lr")].values == [0.1, 0.2, 0.1]
    assert rows[("parameters", "pipeline lr")].differs
    assert not rows[("parameters", "pipeline seed")].differs
    assert not rows[("parameters", "train depth")].differs
    assert rows[("metrics", "train.accuracy")].differs
    assert not rows[("metrics", "train.rows")].differs
    assert {r.item for r in compared.differences} >= {"pipeline lr", "train.accuracy"}
    assert [r.section for r in compared.rows] == sorted(
        (r.section for r in compared.rows),
        key=["parameters", "metrics", "outputs", "steps", "code", "environment"].index,
    )


def test_side_by_side_refuses_too_few_too_many_and_twice(store: MetadataStore) -> None:
    runs = [make_run(store, "cmp") for _ in range(MAX_COMPARED + 1)]
    with pytest.raises(PipeledgerError, match="2 to 10"):
        side_by_side(store, runs[:1])
    with pytest.raises(PipeledgerError, match="2 to 10"):
        side_by_side(store, runs)
    with pytest.raises(PipeledgerError, match="twice"):
        side_by_side(store, [runs[0], runs[0]])
    assert len(side_by_side(store, runs[:MAX_COMPARED]).runs) == MAX_COMPARED


def test_a_step_missing_in_one_run_differs(store: MetadataStore) -> None:
    a, b = make_run(store, "cmp"), make_run(store, "cmp")
    finish(store, make_step(store, a, "only_in_a"))
    row = next(r for r in side_by_side(store, [a, b]).rows if r.item == "only_in_a")
    assert row.section == "steps" and row.values == ["completed", None] and row.differs


# --- the metric chart --------------------------------------------------------------------------


def history(values: list[object], statuses: list[Status] | None = None, column: str = "accuracy") -> MetricHistory:
    records = [
        {"run": f"r-{i}", "start_time": None, column: v, "status": (statuses or [Status.COMPLETED] * len(values))[i]}
        for i, v in enumerate(values)
    ]
    return MetricHistory("p", records, [column])


def test_chart_draws_each_numeric_point_and_marks_failed_runs() -> None:
    svg = metric_chart(
        history([0.5, 0.7, 0.6, "n/a", True], [Status.COMPLETED, Status.FAILED, *[Status.COMPLETED] * 3])
    )
    tree = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    points = [e for e in tree.iter() if "point" in (e.get("class") or "").split()]
    assert [p.get("data-value") for p in points] == ["0.5", "0.7", "0.6"]  # text and booleans are not drawn
    assert [p.get("data-run") for p in points if "failed" in p.get("class", "")] == ["r-1"]
    assert len([e for e in tree.iter(f"{ns}line") if e.get("class") == "failed-run"]) == 1
    assert metric_chart(history(["a", "b"])) == ""


def test_chart_escapes_names() -> None:
    hostile = '<script>alert(1)</script>"onmouseover="x'
    svg = metric_chart(history([1, 2], column=hostile))
    ET.fromstring(svg)  # well-formed: nothing broke out of a text node or an attribute
    assert "<script>" not in svg and 'onmouseover="x' not in svg


def test_chart_draws_one_flat_series_and_one_run() -> None:
    ET.fromstring(metric_chart(history([3.0, 3.0])))
    ET.fromstring(metric_chart(history([3.0])))


# --- artifact files: streamed, bounded to what the artifact holds ------------------------------


@pytest.fixture
def training_run() -> RunView:
    return P.training(lr=0.2)


def test_files_stream_and_tar_round_trips(training_run: RunView) -> None:
    model = training_run.steps["train"].outputs["model"]
    record = Client().store.get_artifact(model.id)
    sizes = artifact_file_sizes(record)
    assert sizes == {"data.json": model.size}
    assert b"".join(iter_file(record, "data.json")) == (Path(model.uri) / "data.json").read_bytes()
    for bad in ("../data.json", "/etc/passwd", "data.json/..", ""):
        with pytest.raises(NotFoundError, match="no file"):
            iter_file(record, bad)
    with tarfile.open(fileobj=io.BytesIO(b"".join(iter_tar(record, "art")))) as archive:
        assert archive.getnames() == ["art/data.json"]
        member = archive.extractfile("art/data.json")
        assert member is not None and member.read() == (Path(model.uri) / "data.json").read_bytes()


def test_image_bytes_are_recognised() -> None:
    assert image_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>") is None
    assert image_type(b"GIF89a") == "image/gif"


# --- the static export -------------------------------------------------------------------------


def test_export_is_self_contained(training_run: RunView, tmp_path: Path) -> None:
    target = write_export(training_run, tmp_path / "report")
    page = target.read_text(encoding="utf-8")
    assert target.name == "index.html" and target.stat().st_mode & 0o077 == 0
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()  # the stylesheet is inline
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and all(link.startswith("#") for link in links), [x for x in links if not x.startswith("#")]
    for step_view in training_run.steps.values():
        assert f'id="step-{step_view.id}"' in page
    assert "<svg" in page and 'class="gantt"' in page


def test_export_refuses_a_non_empty_directory_unless_forced(training_run: RunView, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        write_export(training_run, out)
    write_export(training_run, out, force=True)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "index.html").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        write_export(training_run, a_file)
    with pytest.raises(ExportError, match=r"cannot write .*; choose a directory you can write"):
        write_export(training_run, a_file / "below")


def test_export_command(training_run: RunView, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["ui", "export", training_run.name, "--out", str(tmp_path / "r")])
    assert ok.exit_code == 0, ok.output
    assert "index.html" in ok.output
    again = runner.invoke(cli, ["ui", "export", training_run.name, "--out", str(tmp_path / "r")])
    assert again.exit_code == 1 and "not empty" in again.output and "Traceback" not in again.output
    unknown = runner.invoke(cli, ["ui", "export", "no-such-run", "--out", str(tmp_path / "u")])
    assert unknown.exit_code == 1 and "no run named 'no-such-run'" in unknown.output
    assert not (tmp_path / "u").exists()


def test_export_shows_hostile_names_as_text(tmp_path: Path) -> None:
    run = P.training.with_options(run_name='run <script>alert(1)</script>"onmouseover="x')()
    run.add_tags("javascript:alert(2)")
    page = render_export(run)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert 'href="javascript:' not in page


def test_outputs_in_lineage_edges_are_outputs(store: MetadataStore) -> None:
    """The root node's name comes from its producer's output edge (not an input of the same name)."""
    run = make_run(store, "named")
    _, (data,) = produce(store, run, "load", outputs=("rows",))
    produce(store, run, "use", inputs={"rows": data.id}, outputs=("out",))
    graph = neighbourhood(store, data.id, depth=0)
    assert graph.node(data.id).name == "load.rows"


# --- bounded reads -----------------------------------------------------------------------------


def test_artifact_compare_and_metrics_pages_cost_the_same_statements_at_any_store_size() -> None:
    client = Client()
    http = app_for(client)
    costs: dict[str, list[int]] = {"artifact": [], "compare": [], "metrics": []}
    for index in range(30):
        P.training.with_options(enable_cache=False)(lr=0.1 + index / 100)
        if index + 1 not in (6, 30):
            continue
        model = client.get_run("training-3").steps["train"].outputs["model"]
        for page, path in (
            ("artifact", f"/ui/artifacts/{model.id}"),
            ("compare", "/ui/compare?runs=training-2&runs=training-3"),
            ("metrics", "/ui/pipelines/training/metrics?last=5"),
        ):
            with counted(client.store) as statements:
                answer = http.get(path)
            assert answer.status_code == 200, answer.text[:300]
            costs[page].append(len(statements))
    assert all(first == last for first, last in costs.values()), costs


# --- previews on the artifact page -------------------------------------------------------------


@step
def frames() -> tuple[Annotated[Any, "table"], Annotated[Any, "array"], Annotated[Any, "blob"]]:
    import numpy as np
    import pandas as pd

    table = pd.DataFrame({"name": ["<b>a</b>", "b", "c"], "score": [0.5, 0.25, 1.0]})
    return table, np.arange(12, dtype="float64").reshape(3, 4), b"\xff\x00binary"


@pipeline
def previews():
    frames()


def test_artifact_page_previews_tables_arrays_and_bytes() -> None:
    run = previews()
    http = app_for(Client())
    outputs = run.steps["frames"].outputs
    table = http.get(f"/ui/artifacts/{outputs['table'].id}").text
    assert "3 rows × 2 columns" in table
    assert '<th scope="col">name<br>' in table and "&lt;b&gt;a&lt;/b&gt;" in table and "0.25" in table
    array = http.get(f"/ui/artifacts/{outputs['array'].id}").text
    assert "(3, 4)" in array and "float64" in array and ">11<" in array.replace(".0", "")
    blob = http.get(f"/ui/artifacts/{outputs['blob'].id}").text
    assert "hex ff0062696e617279" in blob
