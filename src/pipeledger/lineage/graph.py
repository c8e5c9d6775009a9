"""Lineage graphs: step-run and artifact nodes joined by typed edges.

A :class:`LineageGraph` is what ``ArtifactView.lineage()``, ``StepView.lineage()``
and ``RunView.graph()`` return. Edges always point in the direction data flows:

* ``consumed``: artifact -> step run that read it;
* ``produced``: step run -> artifact it computed;
* ``reused``: cached step run -> the artifact it reused (computed by another step run).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pipeledger.models import (
    ArtifactRecord,
    Direction,
    LineageRecord,
    LineageStep,
    RunRecord,
    Status,
    StepIO,
    StepRunRecord,
    shown_run_status,
    shown_step_status,
)
from pipeledger.models import LineageEdge as LineageEdgeRecord
from pipeledger.text import plural

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore

NodeKind = Literal["step", "artifact"]
EdgeKind = Literal["consumed", "produced", "reused"]


@dataclass(frozen=True)
class LineageNode:
    """A node: ``kind`` is ``step`` (a step run) or ``artifact``; ``attributes`` hold the facts
    shown in pictures and exports (status, run, pipeline, URI, type, content hash...)."""

    id: str
    kind: NodeKind
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short label: ``train`` / ``train.model``."""
        return self.name


@dataclass(frozen=True)
class LineageEdge:
    """A directed edge in the direction data flows, named by the step's input or output."""

    source: str
    target: str
    kind: EdgeKind
    name: str


class LineageGraph:
    """Nodes and edges of a lineage, with exports.

    Example::

        g = artifact.lineage(direction="upstream")
        [n.name for n in g.nodes if n.kind == "step"]
        g.to_dot(); g.to_json(); g.to_openlineage()
    """

    def __init__(
        self,
        nodes: Iterable[LineageNode],
        edges: Iterable[LineageEdge],
        root: str | None = None,
        store: MetadataStore | None = None,
    ):
        self._nodes = {n.id: n for n in nodes}
        self.edges: list[LineageEdge] = list(edges)
        self.root = root
        #: The store the graph was read from (used by :meth:`to_openlineage`).
        self.store = store

    @property
    def nodes(self) -> list[LineageNode]:
        """Every node, steps and artifacts."""
        return list(self._nodes.values())

    def node(self, node_id: str) -> LineageNode:
        """The node with this id (KeyError if absent)."""
        return self._nodes[node_id]

    @property
    def steps(self) -> list[LineageNode]:
        """The step-run nodes."""
        return [n for n in self._nodes.values() if n.kind == "step"]

    @property
    def artifacts(self) -> list[LineageNode]:
        """The artifact nodes."""
        return [n for n in self._nodes.values() if n.kind == "artifact"]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        counts = [
            plural(len(self.steps), "step"),
            plural(len(self.artifacts), "artifact"),
            plural(len(self.edges), "edge"),
        ]
        return f"<LineageGraph {', '.join(counts)}>"

    # ----------------------------------------------------------------- exports

    def to_dict(self) -> dict[str, Any]:
        """``{"root", "nodes": [...], "edges": [...]}`` (JSON-compatible)."""
        return {
            "root": self.root,
            "nodes": [asdict(n) for n in self._nodes.values()],
            "edges": [asdict(e) for e in self.edges],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The graph as JSON (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, default=str, ensure_ascii=False)

    def to_dot(self) -> str:
        """The graph in Graphviz's DOT language: steps as boxes colored by status (cached ones
        dashed), artifacts as ellipses, grouped in one cluster per run."""
        from pipeledger.lineage.render import to_dot

        return to_dot(self)

    def to_html(self) -> str:
        """A self-contained HTML page with the graph drawn as SVG (no Graphviz needed)."""
        from pipeledger.lineage.render import to_html

        return to_html(self)

    def to_svg(self) -> str:
        """The graph as SVG rendered by Graphviz (raises if ``dot`` is not installed)."""
        from pipeledger.lineage.render import render_graphviz

        return render_graphviz(self.to_dot(), "svg").decode()

    def to_openlineage(self, namespace: str = "pipeledger") -> list[dict[str, Any]]:
        """OpenLineage ``RunEvent``s (START and COMPLETE/FAIL) of every step run in the graph."""
        from pipeledger.lineage.openlineage import graph_events

        return graph_events(self, namespace)

    def _repr_html_(self) -> str:
        from pipeledger.lineage.render import to_svg_fragment

        return to_svg_fragment(self)


def _shown(step: LineageStep, store: MetadataStore | None) -> LineageStep:
    if step.status is not Status.RUNNING or store is None:
        return step
    run = store.get_run(step.run_id)
    shown = shown_step_status(step.status, shown_run_status(run.status, run.heartbeat_at))
    return dataclasses.replace(step, status=shown)


def step_node(step: LineageStep) -> LineageNode:
    """The node of a step run."""
    return LineageNode(
        step.id,
        "step",
        step.name,
        {
            "status": step.status.value,
            "run": step.run_name,
            "run_id": step.run_id,
            "pipeline": step.pipeline_name,
            "cached": step.status is Status.CACHED,
            "cached_from": step.cached_from_id,
            "start_time": step.start_time.isoformat(),
            "end_time": step.end_time.isoformat() if step.end_time else None,
        },
    )


def artifact_node(artifact: ArtifactRecord, name: str, run: str | None) -> LineageNode:
    """The node of an artifact, named ``<producer step>.<output>``."""
    return LineageNode(
        artifact.id,
        "artifact",
        name,
        {
            "uri": artifact.uri,
            "type": artifact.type,
            "data_type": artifact.data_type,
            "content_hash": artifact.content_hash,
            "size": artifact.size,
            "producer": artifact.producer_step_run_id,
            "run": run,
        },
    )


def from_record(
    record: LineageRecord,
    root: str | None = None,
    extra: Iterable[LineageNode] = (),
    store: MetadataStore | None = None,
) -> LineageGraph:
    """Build a graph from a store's lineage record (plus nodes the caller knows, e.g. the root).

    Steps recorded ``running`` show the status every read shows (``crashed`` once their run's
    heartbeat is stale, see :func:`~pipeledger.models.shown_run_status`; needs ``store``)."""
    steps = {sid: step_node(_shown(s, store)) for sid, s in record.steps.items()}
    names: dict[str, tuple[str, str | None]] = {
        aid: (f"{step}.{output}", run) for aid, (step, output, run) in record.producers.items()
    }
    edges: list[LineageEdge] = []
    for edge in record.edges:
        step = record.steps[edge.step_run_id]
        artifact = record.artifacts[edge.artifact_id]
        if edge.direction is Direction.INPUT:
            edges.append(LineageEdge(edge.artifact_id, edge.step_run_id, "consumed", edge.name))
            continue
        true_producer = artifact.producer_step_run_id == edge.step_run_id
        edges.append(
            LineageEdge(edge.step_run_id, edge.artifact_id, "produced" if true_producer else "reused", edge.name)
        )
        if edge.artifact_id not in names:  # no true producer recorded: name it after the reusing step
            names[edge.artifact_id] = (f"{step.name}.{edge.name}", step.run_name)
    nodes: list[LineageNode] = list(steps.values())
    for aid, artifact in record.artifacts.items():
        name, run = names.get(aid, (artifact.data_type.rpartition(".")[2], None))
        nodes.append(artifact_node(artifact, name, run))
    known = {n.id for n in nodes}
    nodes.extend(n for n in extra if n.id not in known)
    return LineageGraph(nodes, edges, root, store)


def step_artifacts(step: StepRunRecord, io: Iterable[StepIO], direction: Direction) -> dict[str, ArtifactRecord]:
    """The artifacts ``step`` consumed (``INPUT``) or produced (``OUTPUT``) by name, in the order
    its configuration lists them (names it does not list last, by name). ``io`` holds its edges."""
    items = {e.name: e.artifact for e in io if e.step_run_id == step.id and e.direction is direction}
    order = list(step.config.get("outputs" if direction is Direction.OUTPUT else "inputs") or [])
    return dict(sorted(items.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def lineage_step(record: StepRunRecord, run: RunRecord) -> LineageStep:
    """A step run as a lineage step, with the status every read shows."""
    return LineageStep(
        id=record.id,
        name=record.name,
        status=shown_step_status(record.status, shown_run_status(run.status, run.heartbeat_at)),
        run_id=run.id,
        run_name=run.name,
        pipeline_name=run.pipeline_name,
        start_time=record.start_time,
        end_time=record.end_time,
        cached_from_id=record.cached_from_id,
    )


def run_graph(
    run: RunRecord, step_runs: Iterable[StepRunRecord], io: Iterable[StepIO], store: MetadataStore | None = None
) -> LineageGraph:
    """A run's DAG: its step runs with the artifacts they consumed and produced (``io``: their
    edges), plus a ``not run`` node for each step of its recorded step graph that has no step
    run; those and the ``skipped`` step runs (which have no edges) are joined to their upstream
    steps."""
    steps: dict[str, LineageStep] = {}
    arts: dict[str, ArtifactRecord] = {}
    edges: list[LineageEdgeRecord] = []
    grouped: dict[str, list[StepIO]] = {}
    for edge in io:
        grouped.setdefault(edge.step_run_id, []).append(edge)
    for record in step_runs:
        steps[record.id] = lineage_step(record, run)
        for edge in grouped.get(record.id, []):
            arts[edge.artifact.id] = edge.artifact
            edges.append(LineageEdgeRecord(record.id, edge.artifact.id, edge.direction, edge.name))
    graph = from_record(LineageRecord(arts, steps, edges), store=store)
    recorded = {s.name for s in steps.values()}
    configured: dict[str, Any] = dict(run.config.get("steps") or {})
    missing = [
        LineageNode(f"not-run:{name}", "step", name, {"status": "not run", "run": run.name})
        for name in configured
        if name not in recorded
    ]
    by_name = {n.name: n.id for n in graph.steps}
    by_name.update({n.name: n.id for n in missing})
    extra_edges = []
    skipped = [s.name for s in steps.values() if s.status is Status.SKIPPED]
    for name in [*(n.name for n in missing), *skipped]:
        if name not in configured:
            continue
        for upstream in configured[name].get("upstream", []):
            if upstream in by_name:
                extra_edges.append(LineageEdge(by_name[upstream], by_name[name], "consumed", "not run"))
    return LineageGraph([*graph.nodes, *missing], [*graph.edges, *extra_edges], None, store)
