"""The one place where database rows become :mod:`pipeledger.models` records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row

from pipeledger.metadata_store.sql.fastpath import FastRead, Rows
from pipeledger.metadata_store.sql.row_shapes import Shape, enum_lookup, plain_record
from pipeledger.metadata_store.sql.schema import metadata_number
from pipeledger.models import (
    DEFAULT_PROJECT,
    ArtifactRecord,
    CacheEntry,
    CacheHit,
    Direction,
    EntityKind,
    LineageEdge,
    LineageRecord,
    LineageStep,
    MetricPoint,
    PipelineRecord,
    RunRecord,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
)


def _values(row: Row | Mapping[str, Any]) -> Mapping[str, Any]:
    """A row's values by column label: a SQLAlchemy Row's mapping, or a dict from the fast path."""
    return row if isinstance(row, Mapping) else cast(Mapping[str, Any], row._mapping)


def pipeline(row: Row) -> PipelineRecord:
    m = row._mapping
    return PipelineRecord(
        id=m["id"], name=m["name"], created_at=m["created_at"], docstring=m["docstring"], project=m["project"]
    )


def run(row: Row | Mapping[str, Any], tags: Sequence[str] = ()) -> RunRecord:
    """A run record from its row (with ``pipeline_name``) and its tags (from the ``tags`` table)."""
    m = _values(row)
    return RunRecord(
        id=m["id"],
        pipeline_id=m["pipeline_id"],
        pipeline_name=m["pipeline_name"],
        name=m["name"],
        number=m["number"],
        status=Status(m["status"]),
        start_time=m["start_time"],
        end_time=m.get("end_time"),
        heartbeat_at=m["heartbeat_at"],
        parameters=m["parameters"],
        config=m["config"],
        environment=m["environment"],
        stack=m["stack"],
        git_sha=m["git_sha"],
        git_dirty=m["git_dirty"],
        code_hash=m["code_hash"],
        error=m.get("error"),
        tags=sorted(tags),
        project=m.get("project") or DEFAULT_PROJECT,
    )


def step_run(row: Row | Mapping[str, Any]) -> StepRunRecord:
    return step_run_from_values(_values(row))


def step_run_from_values(m: Mapping[Any, Any]) -> StepRunRecord:
    """A step run record from column values (a row's mapping, or the values just inserted)."""
    return StepRunRecord(
        id=m["id"],
        run_id=m["run_id"],
        name=m["name"],
        status=Status(m["status"]),
        start_time=m["start_time"],
        end_time=m.get("end_time"),
        entrypoint=m.get("entrypoint"),
        docstring=m.get("docstring"),
        parameters=m["parameters"],
        config=m["config"],
        source_hash=m.get("source_hash"),
        cache_key=m.get("cache_key"),
        cached_from_id=m.get("cached_from_id"),
        error=m.get("error"),
        logs_uri=m.get("logs_uri"),
        cache_components=m.get("cache_components"),
        cache_invalidated_at=m.get("cache_invalidated_at"),
        error_message=m.get("error_message"),
    )


def artifact(row: Row | Mapping[str, Any], prefix: str = "") -> ArtifactRecord:
    m = _values(row)
    return ArtifactRecord(
        id=m[prefix + "id"],
        uri=m[prefix + "uri"],
        type=m[prefix + "type"],
        data_type=m[prefix + "data_type"],
        materializer=m[prefix + "materializer"],
        materializer_version=m[prefix + "materializer_version"],
        content_hash=m[prefix + "content_hash"],
        size=m[prefix + "size"],
        producer_step_run_id=m[prefix + "producer_step_run_id"],
        created_at=m[prefix + "created_at"],
        artifact_store=m[prefix + "artifact_store"],
    )


def cache_entry(row: Row) -> CacheEntry:
    m = row._mapping
    return CacheEntry(
        step_run_id=m["id"],
        step_name=m["name"],
        pipeline_name=m["pipeline_name"],
        run_name=m["run_name"],
        cache_key=m["cache_key"],
        created=m["end_time"],
        invalidated_at=m["cache_invalidated_at"],
    )


def metric_point(row: Row) -> MetricPoint:
    """A point of a metric history from ``(run id, run name, run start, step name, key, value)``."""
    return MetricPoint(*row)


# ------------------------------------------------ records decoded on first access (row_shapes)

RUN_LAZY = ("parameters", "config", "environment", "stack")
STEP_RUN_LAZY = ("parameters", "config", "cache_components", "start_time")
ARTIFACT_LAZY = ("created_at",)
_STATUS = enum_lookup(Status)
_DIRECTION = enum_lookup(Direction)


def _shape(statement: FastRead, kind: str, make: Callable[[list[str]], Shape[Any]]) -> Shape[Any]:
    """The shape of ``kind`` records of ``statement``, made once and kept on the statement (so
    it goes when the statement does)."""
    found = statement.shapes.get(kind)
    if found is None:
        found = statement.shapes[kind] = make(statement.keys())
    return found


def _run_shape(statement: FastRead) -> Shape[RunRecord]:
    return _shape(
        statement,
        "run",
        lambda keys: Shape(RunRecord, keys, lazy=RUN_LAZY, convert={"status": _STATUS}, given=("tags",)),
    )


def _step_run_shape(statement: FastRead) -> Shape[StepRunRecord]:
    return _shape(
        statement, "step_run", lambda keys: Shape(StepRunRecord, keys, lazy=STEP_RUN_LAZY, convert={"status": _STATUS})
    )


def _artifact_shape(statement: FastRead, prefix: str) -> Shape[ArtifactRecord]:
    return _shape(
        statement, f"artifact:{prefix}", lambda keys: Shape(ArtifactRecord, keys, lazy=ARTIFACT_LAZY, prefix=prefix)
    )


def runs_from(statement: FastRead, found: Rows, tags: Mapping[str, Sequence[str]]) -> list[RunRecord]:
    """Run records from the rows of ``statement`` (run columns and ``pipeline_name``), with their
    tags by run id; parameters, configuration, environment and stack decoded on first access."""
    rows, processors = found
    build = _run_shape(statement).builder(processors)
    ids = statement.keys().index("id")
    return [build(row, tags=sorted(tags.get(row[ids], ()))) for row in rows]


def step_runs_from(statement: FastRead, found: Rows) -> list[StepRunRecord]:
    """Step run records from the rows of ``statement`` (the step run columns); parameters,
    configuration, cache-key components and start time decoded on first access."""
    rows, processors = found
    build = _step_run_shape(statement).builder(processors)
    return [build(row) for row in rows]


def edges_from(statement: FastRead, found: Rows) -> list[StepIO]:
    """Edges from the rows of ``statement`` (``step_run_id``, ``direction``, ``io_name`` and the
    artifact's columns); each artifact's creation time decoded on first access."""
    rows, processors = found
    build = _artifact_shape(statement, "").builder(processors)
    step, direction, name = (statement.keys().index(k) for k in ("step_run_id", "direction", "io_name"))
    return [
        plain_record(
            StepIO,
            {
                "step_run_id": row[step],
                "name": row[name],
                "direction": _DIRECTION(row[direction]),
                "artifact": build(row),
            },
        )
        for row in rows
    ]


def cache_hit_from(statement: FastRead, found: Rows) -> CacheHit:
    """The cache hit from the rows of the cache look-up (one per output; the step run and its run's
    name on each, the artifact's columns prefixed ``a_``)."""
    rows, processors = found
    keys = statement.keys()
    io_name, run_name = keys.index("io_name"), keys.index("r_name")
    artifact = _artifact_shape(statement, "a_").builder(processors)
    outputs = {row[io_name]: artifact(row) for row in rows if row[io_name] is not None}
    step = _step_run_shape(statement).builder(processors)(rows[0])
    return CacheHit(step, outputs, rows[0][run_name])


def step_run_values(step: StepRunCreate, status: Status, **extra: Any) -> dict[str, Any]:
    """The column values of a new step run row."""
    return {
        "id": step.id,
        "run_id": step.run_id,
        "name": step.name,
        "status": status.value,
        "entrypoint": step.entrypoint,
        "docstring": step.docstring,
        "parameters": step.parameters,
        "config": step.config,
        "source_hash": step.source_hash,
        "cache_key": step.cache_key,
        "cache_components": step.cache_components,
        "start_time": step.start_time,
        **extra,
    }


_ARTIFACT_FIELDS = tuple(f.name for f in dataclasses.fields(ArtifactRecord))


def artifact_values(record: ArtifactRecord) -> dict[str, Any]:
    """The column values of a new artifact row (a shallow copy: ``dataclasses.asdict`` deep-copies,
    which cost 12% of the time of recording a step)."""
    return {name: getattr(record, name) for name in _ARTIFACT_FIELDS}


def edge_values(step_run_id: str, direction: Direction, edges: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows of ``step_io`` for a step run's inputs or outputs, from ``(name, artifact id)`` pairs."""
    return [
        {"step_run_id": step_run_id, "direction": direction.value, "name": name, "artifact_id": artifact_id}
        for name, artifact_id in edges
    ]


def metadata_values(kind: EntityKind, entity_id: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``metadata`` for one entity's key/value pairs."""
    return [
        {"entity_kind": kind.value, "entity_id": entity_id, "key": k, "value": v, "number": metadata_number(v)}
        for k, v in values.items()
    ]


def _indexes(statement: FastRead, *keys: str) -> list[int]:
    """The positions of the columns ``keys`` in the rows of ``statement``."""
    at = statement.keys()
    return [at.index(key) for key in keys]


def lineage_from(statement: FastRead, found: Rows) -> LineageRecord:
    """The graph from the rows of a lineage statement
    (:func:`~pipeledger.metadata_store.sql.lineage.lineage_statement`: one row per edge of the
    graph's step runs, with the edge's artifact, step run, run, pipeline and the artifact's true
    producer); each artifact's creation time decoded on first access."""
    rows, processors = found
    step_at, direction_at, name_at, artifact_at, ap_step, ap_output, ap_run = _indexes(
        statement, "step_run_id", "direction", "io_name", "a_id", "ap_step", "ap_output", "ap_run"
    )
    s_name, s_status, s_run, r_name, p_name, s_start, s_end, s_cached = _indexes(
        statement,
        "s_name",
        "s_status",
        "s_run_id",
        "r_name",
        "p_name",
        "s_start_time",
        "s_end_time",
        "s_cached_from_id",
    )
    artifact = _artifact_shape(statement, "a_").builder(processors)
    start_time, end_time = processors[s_start], processors[s_end]
    found_artifacts: dict[str, ArtifactRecord] = {}
    steps: dict[str, LineageStep] = {}
    edges: list[LineageEdge] = []
    producers: dict[str, tuple[str, str, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        step_id, artifact_id = row[step_at], row[artifact_at]
        key = (step_id, row[direction_at], row[name_at])
        if key in seen:  # a step run reached through two branches of the walk
            continue
        seen.add(key)
        if row[ap_step] is not None and row[ap_output] is not None:
            producers[artifact_id] = (row[ap_step], row[ap_output], row[ap_run])
        if artifact_id not in found_artifacts:
            found_artifacts[artifact_id] = artifact(row)
        if step_id not in steps:
            started, ended = row[s_start], row[s_end]
            steps[step_id] = plain_record(
                LineageStep,
                {
                    "id": step_id,
                    "name": row[s_name],
                    "status": _STATUS(row[s_status]),
                    "run_id": row[s_run],
                    "run_name": row[r_name],
                    "pipeline_name": row[p_name],
                    "start_time": started if start_time is None else start_time(started),
                    "end_time": ended if end_time is None or ended is None else end_time(ended),
                    "cached_from_id": row[s_cached],
                },
            )
        edges.append(
            plain_record(
                LineageEdge,
                {"step_run_id": step_id, "artifact_id": artifact_id, "direction": _DIRECTION(key[1]), "name": key[2]},
            )
        )
    edges.sort(key=lambda e: (e.step_run_id, e.direction.value, e.name))
    return LineageRecord(found_artifacts, steps, edges, producers)
