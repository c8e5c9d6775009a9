"""Converting between pipeledger's records and MLMD nodes (see :mod:`.types` for the mapping)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeledger.metadata_store.mlmd.types import KFP_RUN_LINK, STATES, TypeIds, step_key
from pipeledger.metadata_store.mlmd.values import (
    Props,
    boolean,
    integer,
    json_value,
    metadata_from_value,
    metadata_value,
    string,
    time_value,
)
from pipeledger.models import (
    JSON,
    ArtifactRecord,
    CacheEntry,
    CacheHit,
    Direction,
    LineageStep,
    MetricPoint,
    PipelineRecord,
    RunCreate,
    RunRecord,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
)


def _set(props: Any, key: str, value: Any) -> None:
    props[key].CopyFrom(value)


def pipeline_context(types: TypeIds, pipeline_id: str, name: str, docstring: str | None, at: datetime) -> Any:
    """A new pipeline context."""
    ctx = mlmd.Context(type_id=types.pipeline, name=name, external_id=pipeline_id)
    _set(ctx.properties, "created_at", time_value(at))
    if docstring is not None:
        _set(ctx.properties, "docstring", string(docstring))
    return ctx


def pipeline_record(ctx: Any) -> PipelineRecord:
    """The pipeline a pipeline context holds."""
    p = Props(ctx)
    created = p.time("created_at")
    assert created is not None
    return PipelineRecord(id=ctx.external_id, name=ctx.name, created_at=created, docstring=p.text("docstring"))


def run_context(types: TypeIds, run: RunCreate, *, name: str, number: int, pipeline_id: str) -> Any:
    """A new run context (status ``running``)."""
    ctx = mlmd.Context(type_id=types.run, name=name, external_id=run.id)
    props = ctx.properties
    _set(props, "pipeline", string(run.pipeline_name))
    _set(props, "pipeline_id", string(pipeline_id))
    _set(props, "number", integer(number))
    _set(props, "status", string(Status.RUNNING.value))
    _set(props, "start_time", time_value(run.start_time))
    _set(props, "heartbeat_at", time_value(run.start_time))
    for key in ("parameters", "config", "environment", "stack", "tags"):
        _set(props, key, json_value(getattr(run, key)))
    if run.git_sha is not None:
        _set(props, "git_sha", string(run.git_sha))
    if run.git_dirty is not None:
        _set(props, "git_dirty", boolean(run.git_dirty))
    if run.code_hash is not None:
        _set(props, "code_hash", string(run.code_hash))
    return ctx


def kfp_run_context(types: TypeIds, run_id: str, name: str) -> Any:
    """The ``system.PipelineRun`` context that shows run ``run_id`` (named ``name``) to KFP readers."""
    ctx = mlmd.Context(type_id=types.kfp_run, name=name)
    _set(ctx.custom_properties, KFP_RUN_LINK, string(run_id))
    return ctx


def kfp_run_link(ctx: Any) -> str | None:
    """The id of the pipeledger run a ``system.PipelineRun`` context shows (None if not one of ours)."""
    if KFP_RUN_LINK not in ctx.custom_properties:
        return None
    return str(ctx.custom_properties[KFP_RUN_LINK].string_value)


def run_record(ctx: Any) -> RunRecord:
    """The run a run context holds."""
    p = Props(ctx)
    start = p.time("start_time")
    assert start is not None
    return RunRecord(
        id=ctx.external_id,
        pipeline_id=p.text("pipeline_id") or "",
        pipeline_name=p.text("pipeline") or "",
        name=ctx.name,
        number=p.number("number") or 0,
        status=Status(p.text("status") or Status.RUNNING.value),
        start_time=start,
        end_time=p.time("end_time"),
        heartbeat_at=p.time("heartbeat_at"),
        parameters=p.document("parameters", {}),
        config=p.document("config", {}),
        environment=p.document("environment", {}),
        stack=p.document("stack", {}),
        git_sha=p.text("git_sha"),
        git_dirty=p.flag("git_dirty"),
        code_hash=p.text("code_hash"),
        error=p.text("error"),
        tags=sorted(set(p.document("tags", []))),
    )


def step_execution(
    types: TypeIds,
    step: StepRunCreate,
    status: Status,
    *,
    cached_from_id: str | None = None,
    end_time: datetime | None = None,
) -> Any:
    """A new step-run execution."""
    ex = mlmd.Execution(type_id=types.step, name=f"{step.run_id}/{step.name}", external_id=step.id)
    props = ex.properties
    _set(props, "run_id", string(step.run_id))
    _set(props, "step", string(step.name))
    _set(props, "step_key", string(step_key(step.name)))
    _set(props, "start_time", time_value(step.start_time))
    _set(props, "parameters", json_value(step.parameters))
    _set(props, "config", json_value(step.config))
    for key in ("entrypoint", "docstring", "source_hash", "cache_key"):
        value = getattr(step, key)
        if value is not None:
            _set(props, key, string(value))
    if step.cache_components is not None:
        _set(props, "cache_components", json_value(step.cache_components))
    if cached_from_id is not None:
        _set(props, "cached_from_id", string(cached_from_id))
    set_status(ex, status, end_time=end_time)
    return ex


def set_status(
    ex: Any,
    status: Status,
    *,
    end_time: datetime | None,
    error: str | None = None,
    error_message: str | None = None,
) -> None:
    """Set a step execution's status, state, end time, error and error message (and its cache
    entry's state)."""
    props = ex.properties
    _set(props, "status", string(Status(status).value))
    ex.last_known_state = STATES[Status(status)]
    for key, value in (
        ("end_time", end_time and time_value(end_time)),
        ("error", error and string(error)),
        ("error_message", error_message and string(error_message)),
    ):
        if value is None:
            if key in props:
                del props[key]
        else:
            _set(props, key, value)
    if status == Status.COMPLETED and "cache_key" in props and "cache_state" not in props:
        _set(props, "cache_state", string("valid"))


def step_record(ex: Any) -> StepRunRecord:
    """The step run a step execution holds."""
    p = Props(ex)
    start = p.time("start_time")
    assert start is not None
    return StepRunRecord(
        id=ex.external_id,
        run_id=p.text("run_id") or "",
        name=p.text("step") or "",
        status=Status(p.text("status") or Status.RUNNING.value),
        start_time=start,
        end_time=p.time("end_time"),
        entrypoint=p.text("entrypoint"),
        docstring=p.text("docstring"),
        parameters=p.document("parameters", {}),
        config=p.document("config", {}),
        source_hash=p.text("source_hash"),
        cache_key=p.text("cache_key"),
        cached_from_id=p.text("cached_from_id"),
        error=p.text("error"),
        logs_uri=p.text("logs_uri"),
        cache_components=p.document("cache_components"),
        cache_invalidated_at=p.time("cache_invalidated_at"),
        error_message=p.text("error_message"),
    )


def artifact_node(types: TypeIds, record: ArtifactRecord, metadata: Mapping[str, JSON]) -> Any:
    """A new artifact node for ``record`` with its key/value ``metadata``."""
    node = mlmd.Artifact(type_id=types.artifact, uri=record.uri, external_id=record.id, state=mlmd.Artifact.LIVE)
    props = node.properties
    for key in ("type", "data_type", "materializer", "materializer_version", "content_hash"):
        _set(props, key, string(getattr(record, key)))
    _set(props, "size", integer(record.size))
    _set(props, "created_at", time_value(record.created_at))
    if record.producer_step_run_id is not None:
        _set(props, "producer_step_run_id", string(record.producer_step_run_id))
    if record.artifact_store is not None:
        _set(props, "artifact_store", string(record.artifact_store))
    set_metadata(node, metadata)
    return node


def artifact_record(node: Any) -> ArtifactRecord:
    """The artifact an artifact node holds."""
    p = Props(node)
    created = p.time("created_at")
    assert created is not None
    return ArtifactRecord(
        id=node.external_id,
        uri=node.uri,
        type=p.text("type") or "",
        data_type=p.text("data_type") or "",
        materializer=p.text("materializer") or "",
        materializer_version=p.text("materializer_version") or "",
        content_hash=p.text("content_hash") or "",
        size=p.number("size") or 0,
        producer_step_run_id=p.text("producer_step_run_id"),
        created_at=created,
        artifact_store=p.text("artifact_store"),
    )


def set_metadata(node: Any, values: Mapping[str, JSON]) -> None:
    """Write key/value metadata into a node's custom properties (replacing those keys)."""
    for key, value in values.items():
        node.custom_properties[key].CopyFrom(metadata_value(value))


def metadata_of(node: Any) -> dict[str, JSON]:
    """A node's key/value metadata, sorted by key."""
    return {key: metadata_from_value(node.custom_properties[key]) for key in sorted(node.custom_properties)}


def event(artifact_id: int | None, direction: Direction, *names: str) -> Any:
    """An event linking an artifact to an execution under the edge name(s) ``names``.

    The path is TFX's ``[key, index]`` pair per name (the index is 0: an edge name holds
    one artifact), which KFP also reads (its first step's key). MLMD keeps one event per
    (artifact, execution, type); a step that consumes the same artifact under two names
    gets one event whose path holds both pairs, ``[a, 0, b, 0]``.
    """
    ev = mlmd.Event(artifact_id=artifact_id, type=_EVENT_TYPES[direction])
    for name in names:
        ev.path.steps.add().key = name
        ev.path.steps.add().index = 0
    return ev


def events(direction: Direction, edges: Iterable[tuple[str, int]]) -> list[Any]:
    """Events for ``(edge name, MLMD artifact id)`` pairs, one per artifact (see :func:`event`)."""
    names: dict[int, list[str]] = {}
    for name, artifact_id in edges:
        names.setdefault(artifact_id, []).append(name)
    return [event(artifact_id, direction, *keys) for artifact_id, keys in names.items()]


_EVENT_TYPES = {Direction.INPUT: mlmd.Event.INPUT, Direction.OUTPUT: mlmd.Event.OUTPUT}
_DIRECTIONS = {
    mlmd.Event.INPUT: Direction.INPUT,
    mlmd.Event.DECLARED_INPUT: Direction.INPUT,
    mlmd.Event.OUTPUT: Direction.OUTPUT,
    mlmd.Event.DECLARED_OUTPUT: Direction.OUTPUT,
}


def event_direction(ev: Any) -> Direction | None:
    """Whether an event is an input or output edge (None for MLMD's internal kinds)."""
    return _DIRECTIONS.get(ev.type)


def event_names(ev: Any) -> list[str]:
    """The edge names an event's path holds: its keys, whether written ``[name, 0]`` or (by
    older pipeledger) ``[name]`` (``[""]`` if it has none)."""
    return [str(step.key) for step in ev.path.steps if step.WhichOneof("value") == "key"] or [""]


def step_io(step_run_id: str, name: str, direction: Direction, node: Any) -> StepIO:
    """One edge of a step run: an event's name, its direction and the artifact node."""
    return StepIO(step_run_id, name, direction, artifact_record(node))


def cache_hit(step: StepRunRecord, outputs: Mapping[str, ArtifactRecord], run: Any | None) -> CacheHit:
    """A cache hit on ``step``, whose run context is ``run`` (None if it is gone)."""
    return CacheHit(step, dict(outputs), run.name if run is not None else "")


def cache_entry(step: StepRunRecord, run: RunRecord | None) -> CacheEntry:
    """The cache entry of a completed step run with a cache key, in ``run`` (None if it is gone)."""
    return CacheEntry(
        step_run_id=step.id,
        step_name=step.name,
        pipeline_name=run.pipeline_name if run is not None else "",
        run_name=run.name if run is not None else "",
        cache_key=step.cache_key or "",
        created=step.end_time or step.start_time,
        invalidated_at=step.cache_invalidated_at,
    )


def lineage_step(ex: Any, run: Any | None) -> LineageStep:
    """A step of a lineage graph from its execution and its run context (None if it is gone)."""
    record = step_record(ex)
    return LineageStep(
        id=record.id,
        name=record.name,
        status=record.status,
        run_id=record.run_id,
        run_name=run.name if run is not None else "",
        pipeline_name=run.properties["pipeline"].string_value if run is not None else "",
        start_time=record.start_time,
        end_time=record.end_time,
        cached_from_id=record.cached_from_id,
    )


def metric_point(run: RunRecord, step: StepRunRecord, key: str, value: JSON) -> MetricPoint:
    """A point of a metric history: ``key``'s ``value`` logged by ``step`` of ``run``."""
    return MetricPoint(run.id, run.name, run.start_time, step.name, key, value)
