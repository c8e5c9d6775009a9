"""The reference semantics of search filters: plain Python over records loaded from a store.

``tests/test_search.py`` compares every SQL search with :func:`reference_search` over the same
records. The rules mirror ``docs/searching.md``: a comparison with an absent value is false
(``not`` makes it true), ``params.X``/``metrics.X`` compare with JSON values of the literal's
type only, ``tag != v`` means "has no tag v", runs match ``metrics.X`` when one of their steps
does, lineage walks edges up to ``depth`` steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactRecord, EntityKind, RunRecord, Status, StepIO, StepRunRecord
from pipeledger.search import SearchQuery
from pipeledger.search.ast import And, Compare, Entity, Field, FieldKind, Lineage, Literal, Node, Not, Or, ValueType

MAX_WALK = 1000


@dataclass
class Records:
    """Everything a search reads, loaded through the store contract."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    steps: dict[str, StepRunRecord] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    metadata: dict[tuple[EntityKind, str], dict[str, Any]] = field(default_factory=dict)
    tags: dict[tuple[EntityKind, str], list[str]] = field(default_factory=dict)
    edges: list[StepIO] = field(default_factory=list)
    pipelines: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, store: MetadataStore, artifact_ids: Iterable[str]) -> Records:
        records = cls()
        for run in store.list_runs():
            records.runs[run.id] = run
            for step in store.list_step_runs(run.id):
                records.steps[step.id] = step
        records.edges = store.list_step_io(list(records.steps))
        for artifact_id in artifact_ids:
            records.artifacts[artifact_id] = store.get_artifact(artifact_id)
        for kind, ids in (
            (EntityKind.RUN, list(records.runs)),
            (EntityKind.STEP_RUN, list(records.steps)),
            (EntityKind.ARTIFACT, list(records.artifacts)),
        ):
            for entity_id, values in store.get_metadata(kind, ids).items():
                records.metadata[(kind, entity_id)] = values
            for entity_id, tags in store.get_tags(kind, ids).items():
                records.tags[(kind, entity_id)] = tags
        return records


def like_regex(pattern: str, fold: bool) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    text = "".join(out)
    if fold:
        text = text.lower() if text.isascii() else "".join(ch.lower() if ch.isascii() else ch for ch in text)
    return re.compile(text + r"\Z", re.DOTALL)


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def compare_value(value: Any, op: str, literal: Literal | tuple[Literal, ...] | None) -> bool:
    """``value op literal`` with ``value`` already of the literal's type (None: absent)."""
    if op == "is null":
        return value is None
    if op == "is not null":
        return value is not None
    if value is None:
        return False
    if op in ("in", "not in"):
        assert isinstance(literal, tuple)
        found = any(value == v.value for v in literal)
        return found if op == "in" else not found
    assert isinstance(literal, Literal)
    if op.endswith("like"):
        fold = op.endswith("ilike")
        subject = _ascii_lower(value) if fold else value
        matched = like_regex(str(literal.value), fold).match(subject) is not None
        return not matched if op.startswith("not") else matched
    v = literal.value
    return {
        "=": value == v,
        "!=": value != v,
        "<": value < v,
        "<=": value <= v,
        ">": value > v,
        ">=": value >= v,
    }[op]


def typed(value: Any, kind: ValueType) -> Any:
    """A JSON value as the literal's type wants it, or None."""
    if kind is ValueType.NUMBER or kind is ValueType.DURATION:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind is ValueType.TEXT:
        return value if isinstance(value, str) else None
    if kind is ValueType.BOOLEAN:
        return value if isinstance(value, bool) else None
    return None


_MISSING = object()


def dig(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return _MISSING
        document = document[key]
    return document


def json_compare(value: Any, node: Compare) -> bool:
    """A comparison of a JSON value (``_MISSING`` when absent)."""
    if node.op == "is null":
        return value is _MISSING or value is None
    if node.op == "is not null":
        return value is not _MISSING and value is not None
    if value is _MISSING:
        return False
    first = node.value[0] if isinstance(node.value, tuple) else node.value
    assert first is not None
    kind = ValueType.TEXT if node.op.endswith("like") else first.kind
    if kind is ValueType.BOOLEAN:
        assert isinstance(node.value, Literal)
        wanted = node.value.value if node.op == "=" else not node.value.value
        return isinstance(value, bool) and value == wanted
    return compare_value(typed(value, kind), node.op, _numbers(node.value) if kind is ValueType.NUMBER else node.value)


def _numbers(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(Literal(float(v.value), v.kind, v.pos) for v in value)
    return Literal(float(value.value), value.kind, value.pos)


class Reference:
    """Evaluates checked filters over :class:`Records`."""

    def __init__(self, records: Records) -> None:
        self.r = records
        self.steps_of: dict[str, list[StepRunRecord]] = {}
        for step in records.steps.values():
            self.steps_of.setdefault(step.run_id, []).append(step)

    # ------------------------------------------------------------------ rows

    def rows(self, entity: Entity) -> list[Any]:
        if entity is Entity.RUN:
            return list(self.r.runs.values())
        if entity is Entity.STEP:
            return list(self.r.steps.values())
        return list(self.r.artifacts.values())

    def attribute(self, entity: Entity, row: Any, name: str) -> Any:
        if name == "duration":
            return None if row.end_time is None else (row.end_time - row.start_time).total_seconds()
        if entity is Entity.RUN:
            return {
                "id": row.id,
                "name": row.name,
                "pipeline": row.pipeline_name,
                "status": row.status.value,
                "started": row.start_time,
                "ended": row.end_time,
                "git.sha": row.git_sha,
                "git.dirty": row.git_dirty,
                "number": row.number,
            }[name]
        if entity is Entity.STEP:
            run = self.r.runs[row.run_id]
            return {
                "id": row.id,
                "step": row.name,
                "run": run.name,
                "pipeline": run.pipeline_name,
                "status": row.status.value,
                "started": row.start_time,
                "ended": row.end_time,
                "cached": row.status is Status.CACHED,
                "cache_key": row.cache_key,
            }[name]
        producer = self.r.steps.get(row.producer_step_run_id) if row.producer_step_run_id else None
        run = self.r.runs[producer.run_id] if producer else None
        return {
            "id": row.id,
            "type": row.type,
            "data_type": row.data_type,
            "size": row.size,
            "content_hash": row.content_hash,
            "producer": producer.name if producer else None,
            "run": run.name if run else None,
            "pipeline": run.pipeline_name if run else None,
            "created": row.created_at,
            "uri": row.uri,
        }[name]

    def kind(self, entity: Entity) -> EntityKind:
        return {Entity.RUN: EntityKind.RUN, Entity.STEP: EntityKind.STEP_RUN, Entity.ARTIFACT: EntityKind.ARTIFACT}[
            entity
        ]

    # ------------------------------------------------------------- evaluation

    def matches(self, entity: Entity, row: Any, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.matches(entity, row, item) for item in node.items)
        if isinstance(node, Or):
            return any(self.matches(entity, row, item) for item in node.items)
        if isinstance(node, Not):
            return not self.matches(entity, row, node.item)
        if isinstance(node, Lineage):
            return row.id in self.lineage(entity, node)
        assert isinstance(node, Compare) and isinstance(node.field, Field)
        f = node.field
        if f.kind is FieldKind.TAG:
            return self.tag(self.r.tags.get((self.kind(entity), row.id), []), node)
        if f.kind is FieldKind.PARAM:
            return json_compare(dig(row.parameters, f.path), node)
        if f.kind is FieldKind.METRIC:
            return self.metric(entity, row, node)
        value = self.attribute(entity, row, f.name)
        if f.name == "cached":
            assert isinstance(node.value, Literal)
            return value == node.value.value if node.op == "=" else value != node.value.value
        return compare_value(value, node.op, node.value)

    def tag(self, tags: list[str], node: Compare) -> bool:
        op = node.op
        if op == "is null":
            return not tags
        if op == "is not null":
            return bool(tags)
        positive = op.removeprefix("not ").replace("!=", "=")
        found = any(compare_value(t, positive, node.value) for t in tags)
        return not found if op in ("!=", "not in", "not like", "not ilike") else found

    def metric(self, entity: Entity, row: Any, node: Compare) -> bool:
        f = node.field
        assert isinstance(f, Field)
        if entity is Entity.RUN:
            sources = [
                self.r.metadata.get((EntityKind.STEP_RUN, s.id), {})
                for s in self.steps_of.get(row.id, [])
                if len(f.path) == 1 or s.name == f.path[0]
            ]
        else:
            sources = [self.r.metadata.get((self.kind(entity), row.id), {})]
        key = f.path[-1]
        if node.op == "is null":
            return not any(key in m and m[key] is not None for m in sources)
        return any(key in m and json_compare(m[key], node) for m in sources)

    def lineage(self, entity: Entity, node: Lineage) -> set[str]:
        depth = node.depth if node.depth is not None else MAX_WALK
        downstream = node.direction == "downstream"
        near, far = ("input", "output") if downstream else ("output", "input")
        by_artifact: dict[str, list[StepIO]] = {}
        by_step: dict[str, list[StepIO]] = {}
        for edge in self.r.edges:
            by_artifact.setdefault(edge.artifact.id, []).append(edge)
            by_step.setdefault(edge.step_run_id, []).append(edge)
        if node.artifact_id not in self.r.artifacts:
            return set()
        walk: set[tuple[str, int]] = {(node.artifact_id, 0)}
        frontier = [(node.artifact_id, 0)]
        while frontier:
            following = []
            for artifact_id, steps in frontier:
                if steps >= depth:
                    continue
                for edge in by_artifact.get(artifact_id, []):
                    if edge.direction.value != near:
                        continue
                    for out in by_step.get(edge.step_run_id, []):
                        if out.direction.value == far and (out.artifact.id, steps + 1) not in walk:
                            walk.add((out.artifact.id, steps + 1))
                            following.append((out.artifact.id, steps + 1))
            frontier = following
        steps_reached = {
            edge.step_run_id
            for artifact_id, steps in walk
            if steps < depth
            for edge in by_artifact.get(artifact_id, [])
            if edge.direction.value == near
        }
        if entity is Entity.ARTIFACT:
            return {a for a, steps in walk if steps > 0}
        if entity is Entity.STEP:
            return steps_reached
        return {self.r.steps[s].run_id for s in steps_reached}

    # ---------------------------------------------------------------- order

    def sort_value(self, entity: Entity, row: Any, f: Field) -> Any:
        if f.kind is FieldKind.ATTRIBUTE:
            return self.attribute(entity, row, f.name)
        if f.kind is FieldKind.PARAM:
            return (
                typed(dig(row.parameters, f.path), ValueType.NUMBER)
                if dig(row.parameters, f.path) is not _MISSING
                else None
            )
        if entity is Entity.RUN:
            values = [
                typed(self.r.metadata.get((EntityKind.STEP_RUN, s.id), {}).get(f.path[-1]), ValueType.NUMBER)
                for s in self.steps_of.get(row.id, [])
                if len(f.path) == 1 or s.name == f.path[0]
            ]
        else:
            values = [typed(self.r.metadata.get((self.kind(entity), row.id), {}).get(f.path[0]), ValueType.NUMBER)]
        numbers = [v for v in values if v is not None]
        return max(numbers) if numbers else None

    def search(self, query: SearchQuery) -> list[str]:
        """The ids a search returns, all pages, in order."""
        rows = [
            r for r in self.rows(query.entity) if query.filter is None or self.matches(query.entity, r, query.filter)
        ]
        last_descending = query.order[-1].descending if query.order else False
        rows.sort(key=lambda r: r.id, reverse=last_descending)
        for key in reversed(query.order):
            present = [r for r in rows if self.sort_value(query.entity, r, key.field) is not None]
            absent = [r for r in rows if self.sort_value(query.entity, r, key.field) is None]
            present.sort(key=lambda r: _sortable(self.sort_value(query.entity, r, key.field)), reverse=key.descending)
            rows = present + absent
        return [r.id for r in rows]


def _sortable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    return value
