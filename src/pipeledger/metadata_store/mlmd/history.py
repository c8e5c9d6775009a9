"""Lineage and metric histories on MLMD.

Lineage walks the same graph as the SQL store's recursive statement (see
:mod:`pipeledger.metadata_store.sql.lineage`), level by level: upstream from an
artifact to its true producer (the ``producer_step_run_id`` property, so an
artifact a cached step reused leads to the step run that computed it) and that
step run's inputs; downstream from an artifact to the step runs that consumed
it and their outputs. Each level costs a few batched MLMD calls, whatever its
width.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.core import MlmdCore
from pipeledger.metadata_store.mlmd.values import outside_default, quote
from pipeledger.models import Direction, LineageEdge, LineageRecord, LineageStep, MetricPoint

_Edge = tuple[Direction, str, str]  # direction, edge name, artifact id


class _Graph:
    """The part of the MLMD graph a walk has loaded, by pipeledger id."""

    def __init__(self, core: MlmdCore) -> None:
        self.core = core
        self.artifacts: dict[str, Any] = {}
        self.steps: dict[str, Any] = {}
        self.edges: dict[str, list[_Edge]] = {}

    def load_artifacts(self, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in self.artifacts]
        if missing:
            self.artifacts.update(self.core.artifacts_by_external_id(missing))

    def load_edges(self, step_ids: Iterable[str]) -> None:
        missing = [s for s in dict.fromkeys(step_ids) if s not in self.edges]
        if not missing:
            return
        found = self.core.executions_by_external_id(missing)
        self.steps.update(found)
        for step_id in missing:
            self.edges[step_id] = []
        by_mlmd = {ex.id: ex.external_id for ex in found.values()}
        self._add_events(self.core.events_of_executions(by_mlmd), by_mlmd)

    def _add_events(self, events: list[Any], step_of: dict[int, str]) -> None:
        nodes = self.core.artifacts_by_id({ev.artifact_id for ev in events})
        for node in nodes.values():
            if node.type_id == self.core.types.artifact:
                self.artifacts.setdefault(node.external_id, node)
        for ev in events:
            direction, node = records.event_direction(ev), nodes.get(ev.artifact_id)
            if direction is None or node is None or node.type_id != self.core.types.artifact:
                continue
            edges = self.edges[step_of[ev.execution_id]]
            edges.extend((direction, name, node.external_id) for name in records.event_names(ev))

    def consumers(self, artifact_ids: Sequence[str]) -> list[str]:
        """Ids of the step runs that consumed any of ``artifact_ids``."""
        self.load_artifacts(artifact_ids)
        mlmd_ids = [self.artifacts[a].id for a in artifact_ids if a in self.artifacts]
        inputs = [
            ev for ev in self.core.events_of_artifacts(mlmd_ids) if records.event_direction(ev) == Direction.INPUT
        ]
        executions = self.core.executions_by_id({ev.execution_id for ev in inputs})
        return list(dict.fromkeys(ex.external_id for ex in executions.values() if ex.type_id == self.core.types.step))

    def producer(self, artifact_id: str) -> str | None:
        node = self.artifacts.get(artifact_id)
        if node is None or "producer_step_run_id" not in node.properties:
            return None
        return str(node.properties["producer_step_run_id"].string_value)


class MlmdHistory(MlmdCore):
    """Lineage graphs and metric histories."""

    def _lineage(
        self, *, artifact_id: str | None, step_run_id: str | None, direction: str, depth: int | None
    ) -> LineageRecord:
        graph = _Graph(self)
        if step_run_id is not None:
            graph.load_edges([step_run_id])
        wanted: set[tuple[str, Direction, str, str]] = set()

        def seeds(kind: Direction) -> dict[str, int]:
            if artifact_id is not None:
                return {artifact_id: 0}
            return {a: 0 for d, _n, a in graph.edges.get(step_run_id or "", []) if d == kind}

        def take(step: str, keep: Any) -> None:
            wanted.update((step, d, n, a) for d, n, a in graph.edges.get(step, []) if keep(d, a))

        if direction in ("upstream", "both"):
            up = _walk_up(graph, seeds(Direction.INPUT), depth)
            for step in up.steps:
                take(step, lambda d, a: d == Direction.INPUT or a in up.reached)
            if step_run_id is not None:
                take(step_run_id, lambda d, a: d == Direction.INPUT)
        if direction in ("downstream", "both"):
            down = _walk_down(graph, seeds(Direction.OUTPUT), depth)
            for step in down.steps:
                take(step, lambda d, a: d == Direction.OUTPUT or a in down.reached)
            if step_run_id is not None:
                take(step_run_id, lambda d, a: d == Direction.OUTPUT)
        return self._lineage_record(graph, wanted)

    def _lineage_record(self, graph: _Graph, wanted: set[tuple[str, Direction, str, str]]) -> LineageRecord:
        artifact_ids = {a for _s, _d, _n, a in wanted}
        producers = {a: p for a in artifact_ids if (p := graph.producer(a)) is not None}
        graph.load_edges(list(producers.values()))
        step_ids = {s for s, _d, _n, _a in wanted} | {p for p in producers.values() if p in graph.steps}
        run_ids = {graph.steps[s].properties["run_id"].string_value for s in step_ids if s in graph.steps}
        runs = self.contexts_by_external_id(sorted(run_ids))
        steps: dict[str, LineageStep] = {}
        for step_id in sorted({s for s, _d, _n, _a in wanted}):
            ex = graph.steps[step_id]
            steps[step_id] = records.lineage_step(ex, runs.get(ex.properties["run_id"].string_value))
        named: dict[str, tuple[str, str, str]] = {}
        for artifact, producer in producers.items():
            ex = graph.steps.get(producer)
            output = next(
                (n for d, n, a in graph.edges.get(producer, []) if d == Direction.OUTPUT and a == artifact), None
            )
            if ex is None or output is None:
                continue
            run = runs.get(ex.properties["run_id"].string_value)
            named[artifact] = (ex.properties["step"].string_value, output, run.name if run is not None else "")
        edges = sorted(
            (LineageEdge(s, a, d, n) for s, d, n, a in wanted), key=lambda e: (e.step_run_id, e.direction.value, e.name)
        )
        found = {a: records.artifact_record(graph.artifacts[a]) for a in sorted(artifact_ids) if a in graph.artifacts}
        return LineageRecord(found, steps, edges, named)

    def metric_history(
        self,
        pipeline: str,
        *,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[MetricPoint]:
        if outside_default(projects):
            return []
        found = self.pipeline_named(pipeline)
        if found is None:
            return []
        runs = sorted(
            (
                records.run_record(c)
                for c in self.runs_where(f"properties.pipeline_id.string_value = {quote(found.external_id)}")
            ),
            key=lambda r: (r.start_time, r.id),
        )
        if limit is not None:
            runs = runs[-limit:] if limit > 0 else []
        by_id = {r.id: r for r in runs}
        query = f"contexts_a.id = {found.id}"
        steps = [(records.step_record(e), e) for e in self.steps_where(query) if e.custom_properties]
        order = {r.id: i for i, r in enumerate(runs)}
        steps = [(s, e) for s, e in steps if s.run_id in by_id]
        steps.sort(key=lambda pair: (order[pair[0].run_id], pair[0].start_time))
        wanted = set(keys) if keys is not None else None
        points = []
        for step, ex in steps:
            run = by_id[step.run_id]
            for key, value in records.metadata_of(ex).items():
                if wanted is None or key in wanted:
                    points.append(records.metric_point(run, step, key, value))
        return points


class _Reach:
    def __init__(self, reached: dict[str, int], steps: dict[str, int]) -> None:
        self.reached = reached
        self.steps = steps


def _walk_up(graph: _Graph, seeds: dict[str, int], depth: int | None) -> _Reach:
    reached, steps = dict(seeds), {}
    frontier = list(seeds)
    while frontier:
        graph.load_artifacts(frontier)
        level: dict[str, int] = {}
        for artifact in frontier:
            if depth is not None and reached[artifact] >= depth:
                continue
            producer = graph.producer(artifact)
            if producer is not None and producer not in steps:
                level.setdefault(producer, reached[artifact])
        steps.update(level)
        graph.load_edges(level)
        frontier = []
        for step, d in level.items():
            for kind, _name, artifact in graph.edges.get(step, []):
                if kind == Direction.INPUT and artifact not in reached:
                    reached[artifact] = d + 1
                    frontier.append(artifact)
    return _Reach(reached, steps)


def _walk_down(graph: _Graph, seeds: dict[str, int], depth: int | None) -> _Reach:
    reached, steps = dict(seeds), {}
    frontier = list(seeds)
    while frontier:
        eligible = [a for a in frontier if depth is None or reached[a] < depth]
        if not eligible:
            break
        d = reached[eligible[0]]
        level = {s: d for s in graph.consumers(eligible) if s not in steps}
        steps.update(level)
        graph.load_edges(level)
        frontier = []
        for step in level:
            for kind, _name, artifact in graph.edges.get(step, []):
                if kind == Direction.OUTPUT and artifact not in reached:
                    reached[artifact] = d + 1
                    frontier.append(artifact)
    return _Reach(reached, steps)
