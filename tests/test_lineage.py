"""Lineage end to end: real pipelines (on SQLite, MariaDB and PostgreSQL), a diamond DAG, a chain
through cached steps across runs, depth limits, the one-statement walk, exports (JSON, DOT, SVG,
HTML, notebooks), OpenLineage events checked against openlineage-python's generated schema
classes and posted to a local HTTP endpoint, and the CLI (`lineage`, `run show --graph`,
`run export-openlineage`)."""

from __future__ import annotations

import copy
import io
import json
import shutil
import socket
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from openlineage.client.generated import base as ol
from openlineage.client.generated import error_message_run, parent_run, source_code_location_job
from openlineage.client.serde import Serde
from rich.console import Console
from sqlalchemy import event, text
from sqlalchemy.engine import URL

from pipeledger import Client, RunFailedError, RunView, Status, pipeline, step
from pipeledger.cli.lineage import text_tree
from pipeledger.cli.main import cli
from pipeledger.lineage import LineageEdge, LineageGraph, LineageNode
from pipeledger.lineage.openlineage import run_events
from pipeledger.metadata_store.sql.schema import metadata
from pipeledger.testing.helpers import artifact, finish, make_run, make_step
from tests import pipelines as P
from tests.openlineage_spec import SPEC_DIR, OpenLineageSpec, missing_reason
from tests.servers import enabled_backends, open_server_store, server_config

# --- pipelines ---------------------------------------------------------------------------------


@step
def source(n: int = 3) -> Annotated[list, "rows"]:
    return list(range(n))


@step
def double(rows: list) -> Annotated[list, "doubled"]:
    return [2 * r for r in rows]


@step
def square(rows: list) -> Annotated[list, "squared"]:
    return [r * r for r in rows]


@step
def join(left: list, right: list) -> Annotated[dict, "joined"]:
    return {"left": left, "right": right}


@pipeline
def diamond(n: int = 3):
    """source -> double, source -> square, (double, square) -> join."""
    rows = source(n=n)
    join(double(rows), square(rows))


@step
def ingest(n: int = 5) -> Annotated[list, "raw"]:
    return list(range(n))


@step
def clean(raw: list) -> Annotated[list, "clean"]:
    return [r for r in raw if r % 2 == 0]


@step
def fit(clean: list, lr: float = 0.1) -> Annotated[dict, "model"]:
    return {"w": lr * sum(clean)}


@step
def report(model: dict) -> Annotated[str, "report"]:
    return f"w={model['w']}"


@pipeline
def experiment(lr: float = 0.1, n: int = 5):
    """ingest -> clean -> fit(lr) -> report."""
    report(fit(clean(ingest(n=n)), lr=lr))


@step
def start() -> Annotated[int, "value"]:
    return 0


@step
def increment(value: int) -> Annotated[int, "value"]:
    return value + 1


DEEP = 10


@pipeline
def deep():
    """start -> step_2 -> ... -> step_10: a chain of 10 steps."""
    value = start()
    for i in range(2, DEEP + 1):
        value = increment(value, id=f"step_{i}")


DIAMOND_STEPS = {"source", "double", "square", "join"}


# --- backends ----------------------------------------------------------------------------------

needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz is not installed (apt-get install graphviz); .ci/run installs it"
)


def _empty(url: URL, backend: str, home: Path) -> None:
    store = open_server_store(backend, url, home)
    with store.db.transaction() as conn:
        conn.execute(text("UPDATE step_runs SET cached_from_id = NULL"))
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
    store.close()


@pytest.fixture(params=enabled_backends())
def backend(
    request: pytest.FixtureRequest, server_urls: dict[str, URL], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs record into the default SQLite store, or into an emptied MariaDB/PostgreSQL database
    made the active stack's metadata store with the CLI."""
    name: str = request.param
    if name == "sqlite":
        return name
    url = server_urls[name]
    if url.password:
        monkeypatch.setenv("PIPELEDGER_TEST_DB_PASSWORD", url.password)
    _empty(url, name, tmp_path / "scratch")
    runner = CliRunner()
    options = [f"--{k}={v}" for k, v in server_config(name, url).items()]
    for args in (
        ["metadata-store", "register", "lin", f"--flavor={name}", *options],
        ["stack", "register", "lin", "-m", "lin"],
        ["stack", "set", "lin"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return name


# --- helpers -----------------------------------------------------------------------------------


def names(graph: LineageGraph, kind: str | None = None) -> list[str]:
    return sorted(n.name for n in graph.nodes if kind is None or n.kind == kind)


def labels_of(*runs: RunView) -> dict[str, str]:
    """Artifact id -> ``<step that computed it>.<output>``, from the runs' step runs."""
    return {
        art.id: f"{s.name}.{output}"
        for run in runs
        for s in run.steps.values()
        if not s.is_cached
        for output, art in s.outputs.items()
    }


def edges(graph: LineageGraph, labels: dict[str, str] | None = None) -> set[tuple[str, str, str, str]]:
    """(source, kind, io name, target) of every edge, nodes by name (artifacts by ``labels`` if given);
    asserts there are no duplicates."""

    def label(node_id: str) -> str:
        return (labels or {}).get(node_id) or graph.node(node_id).name

    labelled = [(label(e.source), e.kind, e.name, label(e.target)) for e in graph.edges]
    assert len(labelled) == len(set(labelled)), labelled
    return set(labelled)


def check_typed_edges(graph: LineageGraph) -> None:
    """consumed: artifact -> step; produced/reused: step -> artifact; every end is a node."""
    for e in graph.edges:
        source, target = graph.node(e.source), graph.node(e.target)
        if e.kind == "consumed":
            assert (source.kind, target.kind) == ("artifact", "step"), e
        else:
            assert e.kind in ("produced", "reused") and (source.kind, target.kind) == ("step", "artifact"), e
            assert (e.kind == "produced") == (target.attributes["producer"] == source.id), e


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@contextmanager
def statements_on(engine: Any) -> Iterator[list[str]]:
    """Collect the SQL statements run on ``engine`` (other than transaction control)."""
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not statement.strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


# --- diamond -----------------------------------------------------------------------------------

DIAMOND_EDGES = {
    ("source", "produced", "rows", "source.rows"),
    ("source.rows", "consumed", "rows", "double"),
    ("source.rows", "consumed", "rows", "square"),
    ("double", "produced", "doubled", "double.doubled"),
    ("square", "produced", "squared", "square.squared"),
    ("double.doubled", "consumed", "left", "join"),
    ("square.squared", "consumed", "right", "join"),
    ("join", "produced", "joined", "join.joined"),
}


def test_diamond_upstream_downstream_and_both(backend: str) -> None:
    run = diamond()
    assert run.stack["metadata_store"]["flavor"] == backend
    joined = run.steps["join"].output

    up = joined.lineage()
    assert up.root == joined.id
    assert names(up, "step") == sorted(DIAMOND_STEPS)  # each exactly once
    assert names(up, "artifact") == ["double.doubled", "join.joined", "source.rows", "square.squared"]
    assert edges(up) == DIAMOND_EDGES
    check_typed_edges(up)
    for node in up.steps:
        assert node.attributes["run"] == run.name and node.attributes["pipeline"] == "diamond"
        assert node.attributes["status"] == "completed" and node.attributes["cached"] is False
        assert node.id == run.steps[node.name].id
    for node in up.artifacts:
        assert node.attributes["run"] == run.name
        assert node.attributes["uri"] == Client().get_artifact(node.id).uri

    rows = run.steps["source"].output
    down = rows.lineage(direction="downstream")
    assert names(down, "step") == ["double", "join", "square"]
    assert edges(down, labels_of(run)) == DIAMOND_EDGES - {("source", "produced", "rows", "source.rows")}
    assert edges(rows.lineage(direction="both")) == DIAMOND_EDGES
    assert edges(joined.lineage(direction="both")) == DIAMOND_EDGES

    branch = run.steps["double"].output.lineage(direction="both")
    assert names(branch, "step") == ["double", "join", "source"]  # square is not related to it
    assert ("square.squared", "consumed", "right", "join") not in edges(branch)

    step_view = run.steps["double"].lineage(direction="both")
    assert step_view.root == run.steps["double"].id
    assert names(step_view, "step") == ["double", "join", "source"]
    assert names(run.steps["source"].lineage(), "step") == ["source"]  # only the step itself


def test_diamond_run_graph(backend: str) -> None:
    run = diamond()

    graph = run.graph()

    assert names(graph, "step") == sorted(DIAMOND_STEPS)
    assert edges(graph) == DIAMOND_EDGES
    check_typed_edges(graph)


# --- across runs, through cached steps --------------------------------------------------------


def test_chain_through_cached_steps_leads_to_the_true_producers(backend: str) -> None:
    first = experiment(lr=0.1)
    second = experiment(lr=0.2)
    assert {s.name: s.status for s in second.steps.values()} == {
        "ingest": Status.CACHED,
        "clean": Status.CACHED,
        "fit": Status.COMPLETED,
        "report": Status.COMPLETED,
    }
    final = second.steps["report"].output

    up = final.lineage()

    assert names(up, "step") == ["clean", "fit", "ingest", "report"]
    check_typed_edges(up)
    assert {e.kind for e in up.edges} == {"consumed", "produced"}  # no cached step, no reuse
    runs = {n.name: (n.attributes["run"], n.attributes["status"], n.id) for n in up.steps}
    assert runs == {
        "ingest": (first.name, "completed", first.steps["ingest"].id),
        "clean": (first.name, "completed", first.steps["clean"].id),
        "fit": (second.name, "completed", second.steps["fit"].id),
        "report": (second.name, "completed", second.steps["report"].id),
    }
    artifact_runs = {n.name: n.attributes["run"] for n in up.artifacts}
    assert artifact_runs == {
        "ingest.raw": first.name,
        "clean.clean": first.name,
        "fit.model": second.name,
        "report.report": second.name,
    }
    # the artifact the second run's fit consumed is the one the first run's clean computed
    assert second.steps["fit"].input.id == first.steps["clean"].output.id
    assert edges(up) == {
        ("ingest", "produced", "raw", "ingest.raw"),
        ("ingest.raw", "consumed", "raw", "clean"),
        ("clean", "produced", "clean", "clean.clean"),
        ("clean.clean", "consumed", "clean", "fit"),
        ("fit", "produced", "model", "fit.model"),
        ("fit.model", "consumed", "model", "report"),
        ("report", "produced", "report", "report.report"),
    }

    # Downstream of the shared artifact: both runs' fits and reports.
    down = first.steps["clean"].output.lineage(direction="downstream")
    assert Counter(n.name for n in down.steps) == {"fit": 2, "report": 2}
    assert {n.attributes["run"] for n in down.steps} == {first.name, second.name}

    # The second run's DAG: cached steps keep their place, with reuse edges to the originals.
    graph = second.graph()
    check_typed_edges(graph)
    by_name = {n.name: n for n in graph.steps}
    assert by_name["clean"].attributes["cached"] is True and by_name["clean"].attributes["status"] == "cached"
    assert by_name["clean"].attributes["cached_from"] == first.steps["clean"].id
    assert by_name["fit"].attributes["cached"] is False
    assert ("clean", "reused", "clean", "clean.clean") in edges(graph)
    assert ("ingest", "reused", "raw", "ingest.raw") in edges(graph)
    assert {e.kind for e in graph.edges if graph.node(e.source).name in ("fit", "report")} == {"produced"}

    # Around the cached step run itself: it only reused; upstream leads to the first run.
    around = second.steps["clean"].lineage(direction="both")
    assert around.node(around.root).attributes["cached"] is True
    kinds = {(e.kind, around.node(e.source).attributes.get("run")) for e in around.edges}
    assert ("reused", second.name) in kinds and ("produced", first.name) in kinds
    assert Counter(n.name for n in around.steps) == {"ingest": 1, "clean": 1, "fit": 2, "report": 2}


# --- depth -------------------------------------------------------------------------------------


def test_depth_limits_on_a_chain(backend: str) -> None:
    run = experiment()
    final = run.steps["report"].output

    labels = labels_of(run)

    def artifacts(graph: LineageGraph) -> list[str]:
        return sorted(labels[n.id] for n in graph.artifacts)

    assert [n.id for n in final.lineage(depth=0).nodes] == [final.id]  # just the artifact, no steps
    assert final.lineage(depth=0).edges == []
    assert names(final.lineage(depth=1), "step") == ["report"]
    assert artifacts(final.lineage(depth=1)) == ["fit.model", "report.report"]
    assert names(final.lineage(depth=2), "step") == ["fit", "report"]
    assert artifacts(final.lineage(depth=2)) == ["clean.clean", "fit.model", "report.report"]
    assert names(final.lineage(depth=4)) == names(final.lineage()) == names(final.lineage(depth=99))

    raw = run.steps["ingest"].output
    assert names(raw.lineage(direction="downstream", depth=0), "step") == []
    assert names(raw.lineage(direction="downstream", depth=1), "step") == ["clean"]
    assert names(raw.lineage(direction="downstream", depth=2), "step") == ["clean", "fit"]
    assert names(raw.lineage(direction="downstream", depth=3), "step") == ["clean", "fit", "report"]
    middle = run.steps["clean"].output
    assert names(middle.lineage(direction="both", depth=1), "step") == ["clean", "fit"]


def test_artifacts_are_named_by_their_producer_whatever_the_walk() -> None:
    run = experiment()
    final = run.steps["report"].output

    for graph in (final.lineage(direction="downstream"), final.lineage(depth=0), final.lineage()):
        root = graph.node(final.id)
        assert (root.name, root.attributes["run"]) == ("report.report", run.name)
    assert names(final.lineage(depth=1), "artifact") == ["fit.model", "report.report"]


# --- 10 steps deep, one statement ----------------------------------------------------------------


def test_ten_steps_deep_lineage_is_one_statement(backend: str) -> None:
    run = deep()
    final = run.steps[f"step_{DEEP}"].output
    store = Client().store

    with statements_on(store.db.engine) as statements:  # type: ignore[attr-defined]
        graph = final.lineage()

    assert len(graph.steps) == DEEP and len(graph.artifacts) == DEEP
    assert names(graph, "step") == sorted(["start", *(f"step_{i}" for i in range(2, DEEP + 1))])
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("WITH RECURSIVE")


# --- exports -----------------------------------------------------------------------------------


@needs_graphviz
def test_json_dot_svg_and_html_exports(tmp_path: Path) -> None:
    run = diamond()
    graph = run.steps["join"].output.lineage()

    data = json.loads(graph.to_json())
    assert data["root"] == graph.root
    assert {n["id"]: (n["kind"], n["name"]) for n in data["nodes"]} == {n.id: (n.kind, n.name) for n in graph.nodes}
    assert {(e["source"], e["target"], e["kind"], e["name"]) for e in data["edges"]} == {
        (e.source, e.target, e.kind, e.name) for e in graph.edges
    }
    assert json.loads(graph.to_json(indent=None)) == data

    dot = graph.to_dot()
    assert dot.startswith("digraph lineage {")
    svg = graph.to_svg()  # rendered by Graphviz: the DOT is valid
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    for node in graph.nodes:
        assert node.name in texts, node.name
    assert len([t for t in root.iter() if t.tag.endswith("title") and "->" in (t.text or "")]) == len(graph.edges)

    page = graph.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    for node in graph.nodes:
        assert node.name in page and node.id in page

    fragment = graph._repr_html_()
    ET.fromstring(fragment)  # well-formed
    for node in graph.nodes:
        assert f">{node.name}</text>" in fragment


@needs_graphviz
def test_quoting_in_dot_and_html(tmp_path: Path) -> None:
    nodes = [
        LineageNode('not-run:say "hi"', "step", 'say "hi" <b>&', {"status": "not run", "run": 'r"1'}),
        LineageNode("a1", "artifact", "x\\y", {"type": "Data"}),
    ]
    graph = LineageGraph(nodes, [LineageEdge('not-run:say "hi"', "a1", "produced", 'o"ut')], root="a1")

    texts = {t.text for t in ET.fromstring(graph.to_svg()).iter() if t.tag.endswith("text")}
    assert {'say "hi" <b>&', "x\\y"} <= texts
    fragment = ET.fromstring(graph._repr_html_())
    assert {'say "hi" <b>&', "x\\y"} <= {t.text for t in fragment.iter() if t.tag.endswith("text")}
    assert "say &quot;hi&quot; &lt;b&gt;&amp;" in graph.to_html()
    ET.fromstring(graph.to_html().split("\n", 1)[1].replace("<meta charset='utf-8'>", ""))  # well-formed


@needs_graphviz
def test_entities_and_control_characters_are_drawn_literally(tmp_path: Path) -> None:
    """Graphviz decodes HTML entities in labels, and XML cannot hold most control characters:
    names are drawn as they are, control characters as visible escapes, every output well-formed."""
    nodes = [
        LineageNode("s1", "step", "a<b>&c&amp;", {"status": "completed", "run": "r\x07un"}),
        LineageNode("a1", "artifact", "&lt;x&gt;", {"type": "Data"}),
        LineageNode("s2", "step", "tab\there\x1bbel\x07", {"status": "completed"}),
    ]
    edges = [LineageEdge("s1", "a1", "produced", "&lt;x&gt;"), LineageEdge("a1", "s2", "consumed", "in\x00put")]
    graph = LineageGraph(nodes, edges, root="a1")

    svg = ET.fromstring(graph.to_svg())  # raises if not well-formed
    texts = {t.text for t in svg.iter() if t.tag.endswith("text")}
    assert {"a<b>&c&amp;", "&lt;x&gt;", "tab\\x09here\\x1bbel\\x07", "in\\x00put"} <= texts
    assert "run r\\x07un" in texts
    fragment = ET.fromstring(graph._repr_html_())
    assert {"&lt;x&gt;", "a<b>&c&amp;"} <= {t.text for t in fragment.iter() if t.tag.endswith("text")}
    page = graph.to_html()
    ET.fromstring(page.split("\n", 1)[1].replace("<meta charset='utf-8'>", ""))
    assert "\x07" not in page and "\x00" not in page


def stacked_diamonds(count: int) -> LineageGraph:
    """``count`` diamonds in a row: a path doubles at each, 2**count paths from the last to the first."""
    nodes = [LineageNode("x0", "artifact", "x0", {"type": "Data"})]
    edges_: list[LineageEdge] = []
    for i in range(count):
        for side in ("l", "r"):
            nodes += [
                LineageNode(f"{side}{i}", "step", f"{side}{i}", {"status": "completed"}),
                LineageNode(f"{side}{i}.out", "artifact", f"{side}{i}.out", {"type": "Data"}),
            ]
            edges_ += [
                LineageEdge(f"x{i}", f"{side}{i}", "consumed", "x"),
                LineageEdge(f"{side}{i}", f"{side}{i}.out", "produced", "out"),
            ]
        nodes += [
            LineageNode(f"j{i}", "step", f"j{i}", {"status": "completed"}),
            LineageNode(f"x{i + 1}", "artifact", f"x{i + 1}", {"type": "Data"}),
        ]
        edges_ += [
            LineageEdge(f"l{i}.out", f"j{i}", "consumed", "left"),
            LineageEdge(f"r{i}.out", f"j{i}", "consumed", "right"),
            LineageEdge(f"j{i}", f"x{i + 1}", "produced", "out"),
        ]
    return LineageGraph(nodes, edges_, root=f"x{count}")


def test_text_tree_expands_each_node_once() -> None:
    graph = stacked_diamonds(30)  # 2**30 paths: a tree of paths would never finish

    buffer = io.StringIO()
    Console(file=buffer, width=5000, color_system=None).print(text_tree(graph, downstream=False))
    lines = buffer.getvalue().splitlines()

    assert len(lines) == len(graph.edges) + 1
    assert sum("(see above)" in line for line in lines) == 30  # the second way into each fork
    assert all(any(f" {n.name} " in f"{line} " for line in lines) for n in graph.nodes)
    both = io.StringIO()
    Console(file=both, width=400, color_system=None).print(text_tree(stacked_diamonds(3), False, both=True))
    assert len(both.getvalue().splitlines()) == len(stacked_diamonds(3).edges) + 1  # nothing downstream


def test_pictures_of_very_deep_lineage() -> None:
    """A lineage thousands of nodes deep (e.g. a model fine-tuned run after run) still draws."""
    nodes: list[LineageNode] = []
    edges_: list[LineageEdge] = []
    for i in range(2000):
        nodes += [
            LineageNode(f"s{i}", "step", f"s{i}", {"status": "completed"}),
            LineageNode(f"a{i}", "artifact", f"a{i}", {"type": "Model"}),
        ]
        edges_.append(LineageEdge(f"s{i}", f"a{i}", "produced", "model"))
        if i:
            edges_.append(LineageEdge(f"a{i - 1}", f"s{i}", "consumed", "base"))
    graph = LineageGraph(reversed(nodes), edges_, root="a1999")

    fragment = ET.fromstring(graph._repr_html_())
    assert len(fragment.findall("{http://www.w3.org/2000/svg}g")) == 4000
    tree = text_tree(graph, downstream=False)  # built without recursion
    depth, branch = 0, tree
    while branch.children:
        (branch,) = branch.children
        depth += 1
    assert depth == len(graph.edges) == 3999 and "s0" in str(branch.label)


def test_notebook_html_of_runs_steps_and_graphs() -> None:
    run = diamond()

    run_html = run._repr_html_()
    assert "<svg" in run_html
    for name in DIAMOND_STEPS:
        assert name in run_html
    step_html = run.steps["join"]._repr_html_()
    assert "join" in step_html and "joined" in step_html
    graph_html = run.steps["join"].output.lineage()._repr_html_()
    for name in DIAMOND_STEPS:
        assert f">{name}</text>" in graph_html


def test_html_needs_no_graphviz_and_svg_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = diamond()
    graph = run.steps["join"].output.lineage()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    assert "<svg" in graph.to_html()
    from pipeledger.exceptions import PipeledgerError

    with pytest.raises(PipeledgerError, match=r"Graphviz is not installed.*install graphviz"):
        graph.to_svg()


# --- OpenLineage -------------------------------------------------------------------------------


def official(event: dict[str, Any]) -> ol.RunEvent:
    """The event built with openlineage-python's classes generated from the official schema (their
    validators check the UUIDs, the time and the required fields)."""
    facets = event["run"]["facets"]
    parent = facets["parent"]
    assert set(parent) == {"_producer", "_schemaURL", "run", "job"}
    run_facets: dict[str, ol.RunFacet] = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent["run"]["runId"]),
            job=parent_run.Job(namespace=parent["job"]["namespace"], name=parent["job"]["name"]),
            producer=parent["_producer"],
        )
    }
    if "errorMessage" in facets:
        error = facets["errorMessage"]
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error["message"],
            programmingLanguage=error["programmingLanguage"],
            stackTrace=error["stackTrace"],
            producer=error["_producer"],
        )
    job_facets: dict[str, ol.JobFacet] = {}
    if "sourceCodeLocation" in event["job"]["facets"]:
        location = event["job"]["facets"]["sourceCodeLocation"]
        job_facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
            type=location["type"],
            url=location["url"],
            repoUrl=location.get("repoUrl"),
            path=location.get("path"),
            version=location.get("version"),
            producer=location["_producer"],
        )
    return ol.RunEvent(
        eventType=ol.EventType(event["eventType"]),
        eventTime=event["eventTime"],
        run=ol.Run(runId=event["run"]["runId"], facets=run_facets),
        job=ol.Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets=job_facets),
        inputs=[ol.InputDataset(namespace=d["namespace"], name=d["name"]) for d in event["inputs"]],
        outputs=[ol.OutputDataset(namespace=d["namespace"], name=d["name"]) for d in event["outputs"]],
        producer=event["producer"],
    )


#: OpenLineage's published JSON schemas, where they are (tests/test_openlineage_conformance.py
#: says so when they are not).
SPEC = OpenLineageSpec(SPEC_DIR) if missing_reason() is None else None


def check_event(event: dict[str, Any]) -> None:
    """The event is valid OpenLineage: the official classes accept it and serialize to it, and it
    passes the official JSON schemas (when they are here)."""
    assert json.loads(json.dumps(event)) == event
    if SPEC is not None:
        SPEC.check(event)
    expected = copy.deepcopy(event)
    custom = expected["run"]["facets"].pop("pipeledger")
    assert custom["_producer"] and custom["_schemaURL"]  # every facet says who made it and its schema
    parent = expected["run"]["facets"]["parent"]
    parent["run"]["facets"] = parent["job"]["facets"] = {}  # defaults of the official classes
    for d in expected["inputs"]:
        d["inputFacets"] = {}
    for d in expected["outputs"]:
        d["outputFacets"] = {}
    assert Serde.to_dict(official(event)) == expected
    moment = datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
    assert moment.utcoffset() is not None, event["eventTime"]  # RFC 3339 needs an offset


def events_by_step(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["run"]["runId"], []).append(e["eventType"])
    return out


def uuid_of(pipeledger_id: str) -> str:
    return str(uuid.UUID(hex=pipeledger_id))


def dataset_name(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path or uri
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def test_openlineage_events_of_a_completed_run(backend: str) -> None:
    run = P.training()

    events = run_events(run)

    assert len(events) == 2 * len(run.steps)
    for e in events:
        check_event(e)
    by_step = events_by_step(events)
    assert by_step == {uuid_of(s.id): ["START", "COMPLETE"] for s in run.steps.values()}
    for step_view in run.steps.values():
        mine = [e for e in events if e["run"]["runId"] == uuid_of(step_view.id)]
        for e in mine:
            assert (e["job"]["namespace"], e["job"]["name"]) == ("pipeledger", f"training.{step_view.name}")
            location = e["job"]["facets"]["sourceCodeLocation"]
            assert location["path"] == "tests/pipelines.py"  # the step's file, in the repository
            if "repoUrl" not in location:  # no remote: the file on this machine
                assert location["url"] == (Path(run.environment["git"]["root"]) / location["path"]).as_uri()
            assert location["version"] == run.git_sha
            parent = e["run"]["facets"]["parent"]
            assert parent["run"] == {"runId": uuid_of(run.id)}
            assert parent["job"] == {"namespace": "pipeledger", "name": "training"}
            assert e["run"]["facets"]["pipeledger"]["runName"] == run.name
            assert "errorMessage" not in e["run"]["facets"]
            inputs = [(d["namespace"], d["name"]) for d in e["inputs"]]
            assert inputs == [dataset_name(a.uri) for a in step_view.inputs.values()]
        start_event, complete = mine
        assert start_event["outputs"] == []
        outputs = [(d["namespace"], d["name"]) for d in complete["outputs"]]
        assert outputs == [dataset_name(a.uri) for a in step_view.outputs.values()]
        assert start_event["eventTime"] <= complete["eventTime"]
    train = [e for e in events if e["job"]["name"] == "training.train"][-1]
    assert {d["name"] for d in train["outputs"]} == {
        dataset_name(run.steps["train"].outputs[o].uri)[1] for o in ("model", "accuracy")
    }
    assert train["inputs"][0]["name"] == dataset_name(run.steps["load"].output.uri)[1]
    # the order is the order things happened: every START before its COMPLETE
    assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)


def test_openlineage_fail_event_has_the_error(backend: str) -> None:
    with pytest.raises(RunFailedError) as failed:
        P.failing()
    run = Client().get_run(failed.value.run_name)

    events = run_events(run)

    for e in events:
        check_event(e)
    by_job = {e["job"]["name"]: [] for e in events}
    for e in events:
        by_job[e["job"]["name"]].append(e)
    # after_failure never ran (it is recorded skipped): no events
    assert set(by_job) == {"failing.load", "failing.explode", "failing.independent"}
    assert [e["eventType"] for e in by_job["failing.explode"]] == ["START", "FAIL"]
    assert [e["eventType"] for e in by_job["failing.load"]] == ["START", "COMPLETE"]
    error = by_job["failing.explode"][1]["run"]["facets"]["errorMessage"]
    assert error["message"] == "boom"  # the exception's message; its type and traceback are in stackTrace
    assert error["programmingLanguage"] == "python"
    assert "Traceback" in error["stackTrace"] and "ValueError: boom" in error["stackTrace"]
    assert error["_schemaURL"] == error_message_run.ErrorMessageRunFacet._get_schema()
    assert by_job["failing.explode"][1]["outputs"] == []

    # the run's DAG (with the step that never ran) exports the steps that did
    graph_events = run.graph().to_openlineage()
    assert sorted(json.dumps(e, sort_keys=True) for e in graph_events) == sorted(
        json.dumps(e, sort_keys=True) for e in events
    )


def test_openlineage_of_a_lineage_graph_across_runs(backend: str) -> None:
    first = experiment(lr=0.1)
    second = experiment(lr=0.2)
    graph = second.steps["report"].output.lineage()

    events = graph.to_openlineage(namespace="team-a")

    for e in events:
        check_event(e)
        assert e["job"]["namespace"] == "team-a"
        assert e["run"]["facets"]["parent"]["job"] == {"namespace": "team-a", "name": "experiment"}
    assert set(events_by_step(events)) == {uuid_of(n.id) for n in graph.steps}
    assert all(types == ["START", "COMPLETE"] for types in events_by_step(events).values())
    parents = {e["job"]["name"]: e["run"]["facets"]["parent"]["run"]["runId"] for e in events}
    assert parents == {
        "experiment.ingest": uuid_of(first.id),
        "experiment.clean": uuid_of(first.id),
        "experiment.fit": uuid_of(second.id),
        "experiment.report": uuid_of(second.id),
    }
    # cached step runs are exported as completed, saying where their outputs come from
    cached = [e for e in run_events(second) if e["job"]["name"] == "experiment.clean"]
    assert [e["eventType"] for e in cached] == ["START", "COMPLETE"]
    facet = cached[-1]["run"]["facets"]["pipeledger"]
    assert facet["status"] == "cached" and facet["cachedFrom"] == uuid_of(first.steps["clean"].id)
    assert [d["name"] for d in cached[-1]["outputs"]] == [dataset_name(first.steps["clean"].output.uri)[1]]
    for e in run_events(second):
        check_event(e)


def test_openlineage_of_recorded_steps_times_states_and_dataset_names(backend: str) -> None:
    """Steps recorded directly in the store: a timestamp on a whole second still sorts before a later
    one; crashed steps ABORT, running ones have only START; remote URIs give scheme://authority
    namespaces."""
    store = Client().store
    run = make_run(store, "recorded")
    second = datetime(2024, 5, 17, 12, 0, 0, tzinfo=timezone.utc)
    done = make_step(store, run, "done", start_time=second)
    finish(
        store,
        done,
        [artifact("local", uri="/data/local"), artifact("remote", uri="s3://bucket/models/m1")],
        end_time=second + timedelta(milliseconds=500),
    )
    crashed = make_step(store, run, "crashed", start_time=second + timedelta(seconds=1))
    finish(store, crashed, status=Status.CRASHED, end_time=second + timedelta(seconds=2))
    running = make_step(store, run, "running", start_time=second + timedelta(seconds=3))

    events = run_events(RunView(store.get_run(run.id), store))

    for e in events:
        check_event(e)
    assert [(e["job"]["name"], e["eventType"], e["eventTime"]) for e in events] == [
        ("recorded.done", "START", "2024-05-17T12:00:00.000000Z"),
        ("recorded.done", "COMPLETE", "2024-05-17T12:00:00.500000Z"),
        ("recorded.crashed", "START", "2024-05-17T12:00:01.000000Z"),
        ("recorded.crashed", "ABORT", "2024-05-17T12:00:02.000000Z"),
        ("recorded.running", "START", "2024-05-17T12:00:03.000000Z"),
    ]
    assert [(d["namespace"], d["name"]) for d in events[1]["outputs"]] == [
        ("file", "/data/local"),
        ("s3://bucket", "models/m1"),
    ]
    assert events[-1]["run"]["runId"] == uuid_of(running.id)


class _Collector(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def lineage_endpoint() -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server recording the bodies POSTed to it (``.received``); answers ``.status``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    server.status = 201  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_export_openlineage_posts_every_event(
    lineage_endpoint: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = P.training()
    port = lineage_endpoint.server_address[1]
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "k-123")

    result = invoke("run", "export-openlineage", run.name, "--url", f"http://127.0.0.1:{port}")

    assert result.exit_code == 0, result.output
    received = lineage_endpoint.received  # type: ignore[attr-defined]
    assert f"Posted {len(received)} OpenLineage events" in result.stdout
    assert [path for path, _, _ in received] == ["/api/v1/lineage"] * len(received)
    assert all(h["Authorization"] == "Bearer k-123" and h["Content-Type"] == "application/json" for _, h, _ in received)
    assert [body for _, _, body in received] == run_events(run)
    for _, _, body in received:
        check_event(body)

    # -o writes the same events; --namespace renames the jobs' namespace
    out = tmp_path / "events.json"
    written = invoke("run", "export-openlineage", run.name, "--namespace", "prod", "-o", str(out))
    assert written.exit_code == 0, written.output
    assert json.loads(out.read_text()) == run_events(run, "prod")
    printed = invoke("run", "export-openlineage", run.name)
    assert json.loads(printed.stdout) == run_events(run)


def test_export_openlineage_errors_are_one_line(lineage_endpoint: ThreadingHTTPServer) -> None:
    run = P.training()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    refused = one_line_error(invoke("run", "export-openlineage", run.name, "--url", f"http://127.0.0.1:{port}"))
    assert f"cannot post OpenLineage events to http://127.0.0.1:{port}/api/v1/lineage" in refused

    lineage_endpoint.status = 400  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{lineage_endpoint.server_address[1]}/api/v1/lineage"
    rejected = one_line_error(invoke("run", "export-openlineage", run.name, "--url", url))
    assert f"{url} refused event 1 of {2 * len(run.steps)}: HTTP 400" in rejected


# --- CLI pictures ------------------------------------------------------------------------------


@pytest.fixture
def diamond_run() -> RunView:
    return diamond()


@needs_graphviz
def test_cli_lineage_formats(diamond_run: RunView, tmp_path: Path) -> None:
    joined = diamond_run.steps["join"].output
    graph = joined.lineage()

    svg_file = tmp_path / "lineage.svg"
    result = invoke("lineage", joined.id, "--format", "svg", "-o", str(svg_file))
    assert result.exit_code == 0, result.output
    assert f"Wrote {svg_file}" in result.stdout
    svg = svg_file.read_text()
    ET.fromstring(svg)
    for node in graph.nodes:
        assert node.name in svg

    png_file = tmp_path / "lineage.png"
    assert invoke("lineage", joined.id, "--format", "png", "-o", str(png_file)).exit_code == 0
    assert png_file.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    html_file = tmp_path / "lineage.html"
    assert invoke("lineage", joined.id, "-f", "html", "-o", str(html_file)).exit_code == 0
    page = html_file.read_text()
    assert "<svg" in page and all(n.name in page for n in graph.nodes)

    printed = invoke("lineage", joined.id, "--format", "json")
    assert json.loads(printed.stdout) == json.loads(graph.to_json())
    dot = invoke("lineage", joined.id, "--format", "dot").stdout
    assert dot == graph.to_dot()
    svg_out = invoke("lineage", joined.id, "--format", "svg").stdout
    assert svg_out.lstrip().startswith("<?xml") and "join.joined" in svg_out
    events = json.loads(invoke("lineage", joined.id, "--format", "openlineage").stdout)
    assert len(events) == 2 * len(DIAMOND_STEPS)
    for e in events:
        check_event(e)

    text_file = tmp_path / "lineage.txt"
    assert invoke("lineage", joined.id, "-o", str(text_file)).exit_code == 0
    tree = invoke("lineage", joined.id).stdout
    for output in (tree, text_file.read_text()):
        for node in graph.nodes:
            assert node.name in output

    binary = one_line_error(invoke("lineage", joined.id, "--format", "png"))
    assert "--format png is binary" in binary and "-o FILE" in binary
    missing = one_line_error(invoke("lineage", "0" * 32))
    assert "0" * 32 in missing


@pipeline(name="slashes")
def slashes(step_id: str = "c"):
    source(id=step_id)


def test_run_show_lists_artifact_ids_and_lineage_takes_run_step_output(diamond_run: RunView) -> None:
    """Issue 14: `lineage` needs an artifact id but `run show` printed none; RUN/STEP/OUTPUT works too."""
    cached_run = diamond()  # every step a cache hit
    assert all(s.is_cached for s in cached_run.steps.values())
    shown = invoke("run", "show", cached_run.name)
    assert shown.exit_code == 0
    for step_view in cached_run.steps.values():
        for name, output in step_view.outputs.items():
            assert f"{step_view.name}.{name}  {output.id}  " in shown.stdout

    joined = diamond_run.steps["join"].output
    by_id = invoke("lineage", joined.id, "--format", "json")
    for reference in (
        f"{diamond_run.name}/join/joined",
        f"{cached_run.name}/join/joined",
        f"{diamond_run.id}/join/joined",
    ):
        by_name = invoke("lineage", reference, "--format", "json")
        assert by_name.exit_code == 0, by_name.output
        assert json.loads(by_name.stdout) == json.loads(by_id.stdout)  # a cached output is the reused artifact
    tree = invoke("lineage", f"{cached_run.name}/source/rows", "--downstream").stdout
    assert f"join step, cached, run {cached_run.name}" in tree and "(cached)" not in tree  # was "cached (cached)"
    assert Client().get_artifact(f"{cached_run.name}/square/squared").id == diamond_run.steps["square"].output.id

    # Names may hold "/": every split is tried; one that names two outputs is refused.
    in_a = slashes.with_options(run_name="a")(step_id="b/c")
    assert Client().get_artifact("a/b/c/rows").id == in_a.steps["b/c"].output.id
    in_ab = slashes.with_options(run_name="a/b")(step_id="c")
    ambiguous = one_line_error(invoke("lineage", "a/b/c/rows"))
    assert "'a/b/c/rows' is ambiguous" in ambiguous and "use an artifact id" in ambiguous
    assert Client().get_artifact(in_ab.steps["c"].output.id).id == in_ab.steps["c"].output.id

    for reference, message in [
        ("nope/join/joined", "no run named 'nope'"),
        (f"{diamond_run.name}/nope/joined", "no step named 'nope' in run"),
        (f"{diamond_run.name}/join/nope", "no output named 'nope' in step 'join'; outputs: joined"),
        (f"{diamond_run.name}/join", "give an artifact id or RUN/STEP/OUTPUT"),
        ("0" * 32, "give an artifact id (`pipeledger run show RUN`) or RUN/STEP/OUTPUT"),
    ]:
        assert message in one_line_error(invoke("lineage", reference)), reference


def test_cli_lineage_directions_and_depth(diamond_run: RunView) -> None:
    rows = diamond_run.steps["source"].output
    joined = diamond_run.steps["join"].output

    def steps_in(*args: str) -> set[str]:
        result = invoke("lineage", *args, "--format", "json")
        assert result.exit_code == 0, result.output
        return {n["name"] for n in json.loads(result.stdout)["nodes"] if n["kind"] == "step"}

    assert steps_in(joined.id) == DIAMOND_STEPS
    assert steps_in(rows.id, "--downstream") == {"double", "square", "join"}
    assert steps_in(diamond_run.steps["double"].output.id, "--both") == {"source", "double", "join"}
    assert steps_in(joined.id, "--depth", "1") == {"join"}
    assert steps_in(joined.id, "--depth", "0") == set()
    assert steps_in(rows.id, "--downstream", "--depth", "1") == {"double", "square"}

    down_tree = invoke("lineage", rows.id, "--downstream").stdout
    assert all(name in down_tree for name in ("double", "square", "join"))
    both_tree = invoke("lineage", diamond_run.steps["double"].output.id, "--both").stdout
    assert all(name in both_tree for name in ("source", "double", "join"))
    assert "left → join step" in both_tree and "doubled ← double step" in both_tree  # both directions
    up_tree = invoke("lineage", joined.id).stdout
    assert up_tree.count("source step") == 1 and up_tree.count("(see above)") == 1  # the fork, once


@needs_graphviz
def test_cli_run_show_graph(diamond_run: RunView, tmp_path: Path) -> None:
    for suffix in ("svg", "html", "png", "dot", "json"):
        target = tmp_path / f"dag.{suffix}"
        result = invoke("run", "show", diamond_run.name, "--graph", str(target))
        assert result.exit_code == 0, result.output
        assert f"Wrote {target}" in result.stdout
    svg = (tmp_path / "dag.svg").read_text()
    page = (tmp_path / "dag.html").read_text()
    for name in DIAMOND_STEPS:
        assert name in svg and name in page
    assert (tmp_path / "dag.png").read_bytes().startswith(b"\x89PNG")
    assert {n["name"] for n in json.loads((tmp_path / "dag.json").read_text())["nodes"]} >= DIAMOND_STEPS

    bad = one_line_error(invoke("run", "show", diamond_run.name, "--graph", str(tmp_path / "dag.txt")))
    assert ".svg, .png, .html, .dot or .json" in bad


def test_cli_run_show_graph_marks_steps_that_did_not_run(tmp_path: Path) -> None:
    with pytest.raises(RunFailedError):
        P.failing()
    target = tmp_path / "failed.json"
    assert invoke("run", "show", "failing-1", "--graph", str(target)).exit_code == 0
    nodes = {
        n["name"]: n["attributes"]["status"] for n in json.loads(target.read_text())["nodes"] if n["kind"] == "step"
    }
    assert nodes == {"load": "completed", "explode": "failed", "after_failure": "skipped", "independent": "completed"}
    graph = json.loads(target.read_text())
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    waits = {(names[e["source"]], names[e["target"]]) for e in graph["edges"] if e["name"] == "not run"}
    assert waits == {("explode", "after_failure")}  # the skipped step, joined to the step it waited for
    html_file = tmp_path / "failed.html"
    assert invoke("run", "show", "failing-1", "--graph", str(html_file)).exit_code == 0
    assert "after_failure" in html_file.read_text()


def test_cli_pictures_without_graphviz(diamond_run: RunView, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    joined = diamond_run.steps["join"].output
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    for args in (
        ["lineage", joined.id, "--format", "svg", "-o", str(tmp_path / "l.svg")],
        ["lineage", joined.id, "--format", "png", "-o", str(tmp_path / "l.png")],
        ["run", "show", diamond_run.name, "--graph", str(tmp_path / "dag.svg")],
    ):
        message = one_line_error(invoke(*args))
        assert "Graphviz is not installed" in message and "apt-get install graphviz" in message, message
        assert "--format html" in message
    assert not (tmp_path / "l.svg").exists() and not (tmp_path / "dag.svg").exists()

    assert invoke("lineage", joined.id, "--format", "html", "-o", str(tmp_path / "l.html")).exit_code == 0
    assert "join.joined" in (tmp_path / "l.html").read_text()
    assert invoke("run", "show", diamond_run.name, "--graph", str(tmp_path / "dag.html")).exit_code == 0
    assert "<svg" in (tmp_path / "dag.html").read_text()
    assert invoke("lineage", joined.id, "--format", "dot").exit_code == 0
