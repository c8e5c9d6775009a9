"""Mapping an MLMD history onto pipeledger's records, without writing anything.

:func:`plan_import` turns an :class:`~pipeledger.importers.mlmd_source.MlmdSnapshot`
into an :class:`ImportPlan`: runs, step runs in a write order where every producer
comes before its consumers, artifacts, edges, and what could not be mapped and why.
How MLMD's contexts, executions and events are read is in
:mod:`~pipeledger.importers.mlmd_conventions`.

An artifact's **producer** is the first non-cached execution with an output edge to it.
A ``CACHED`` execution all of whose outputs another execution produced becomes a cached
step run pointing to that producer (pipeledger's own cache-hit record); another
execution's output edge to an artifact it did not produce is not mapped. An artifact
consumed but produced by no imported execution is registered as external data. With a
pipeline filter, the runs that produced what the selected runs used are imported too.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipeledger.importers.mlmd_conventions import (
    INPUT_EVENTS,
    NODE_CONTEXT_TYPES,
    OUTPUT_EVENTS,
    PIPELINE_CONTEXT_TYPES,
    RUN_CONTEXT_TYPES,
    edge_names,
    pipeline_name,
    split_properties,
    step_name,
    step_status,
)
from pipeledger.importers.mlmd_source import MlmdArtifact, MlmdContext, MlmdExecution, MlmdImportError, MlmdSnapshot
from pipeledger.models import JSON, Status, utcnow
from pipeledger.text import agree, plural


@dataclass
class PlannedStep:
    """One execution as a step run; ``inputs``/``outputs`` map edge names to MLMD artifact ids.

    ``outputs`` are the artifacts this step produces; ``reused`` the outputs another
    execution produced (a cached step records them as edges; any other step cannot).
    """

    execution_id: int
    run_context_id: int
    id: str
    name: str
    status: Status
    start: datetime
    end: datetime
    parameters: dict[str, JSON]
    config: dict[str, JSON]
    error: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    cached_from: int | None = None


@dataclass
class PlannedRun:
    """A run context as a run, with its step runs in write order."""

    context_id: int
    id: str
    name: str
    pipeline: str
    start: datetime
    end: datetime
    status: Status
    error: str | None
    config: dict[str, JSON]
    steps: list[PlannedStep] = field(default_factory=list)


@dataclass
class ImportPlan:
    """What an import writes: ``sequence`` is every step in write order (producers first).

    ``artifact_ids`` maps MLMD artifact ids to pipeledger ids, ``producers`` an artifact to
    the execution that produces it. ``not_mapped[kind][reason]`` counts what is left out.
    """

    snapshot: MlmdSnapshot
    runs: dict[int, PlannedRun]
    sequence: list[PlannedStep]
    steps: dict[int, PlannedStep]
    artifact_ids: dict[int, str]
    producers: dict[int, int]
    not_mapped: dict[str, Counter[str]]
    notes: list[str]

    def artifact(self, mlmd_id: int) -> MlmdArtifact:
        """The MLMD artifact with this id."""
        return self.snapshot.artifacts[mlmd_id]


def derived_id(source_id: str, kind: str, mlmd_id: int, ms: int) -> str:
    """The pipeledger id of an MLMD record: stable across imports of the same history.

    Like :func:`pipeledger.models.new_id`, 12 hex digits of milliseconds (the record's
    creation time) then 20 digits, here of a digest of the source, kind and MLMD id.
    """
    digest = hashlib.sha256(f"mlmd:{source_id}:{kind}:{mlmd_id}".encode()).hexdigest()
    return f"{max(ms, 0) % (1 << 48):012x}{digest[:20]}"


def to_time(ms: int) -> datetime:
    """MLMD milliseconds since the epoch as a UTC datetime (now when MLMD recorded 0)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc) if ms > 0 else utcnow()


def plan_import(snapshot: MlmdSnapshot, *, pipeline: str | None = None) -> ImportPlan:
    """Map ``snapshot`` (only runs of ``pipeline`` and the runs that produced their inputs, if
    given) to the records an import writes. Reads nothing else and writes nothing."""
    not_mapped: dict[str, Counter[str]] = defaultdict(Counter)
    notes = list(snapshot.notes)
    contexts = snapshot.contexts
    for context in contexts.values():
        if context.type not in RUN_CONTEXT_TYPES | PIPELINE_CONTEXT_TYPES | NODE_CONTEXT_TYPES:
            not_mapped["contexts"][f"context type {context.type!r} has no pipeledger equivalent"] += 1

    run_of: dict[int, int] = {}
    for execution in sorted(snapshot.executions.values(), key=_time_key):
        in_runs = [c for c in execution.context_ids if contexts[c].type in RUN_CONTEXT_TYPES]
        if not in_runs:
            not_mapped["step runs"]["execution belongs to no run context"] += 1
            continue
        if len(in_runs) > 1:
            in_contexts = plural(len(in_runs), "run context")
            notes.append(f"execution {execution.id} is in {in_contexts}: imported into {in_runs[0]}")
        run_of[execution.id] = in_runs[0]
    members: dict[int, list[MlmdExecution]] = defaultdict(list)
    for execution_id, context_id in run_of.items():
        members[context_id].append(snapshot.executions[execution_id])
    for context in contexts.values():
        if context.type in RUN_CONTEXT_TYPES and context.id not in members:
            not_mapped["runs"]["run context without executions"] += 1

    inputs, outputs = _edges(snapshot, run_of, not_mapped)
    producers = _producers(snapshot, outputs)
    pipelines = {c: pipeline_name(snapshot, contexts[c], execs) for c, execs in members.items()}
    selected = set(members) if pipeline is None else {c for c, name in pipelines.items() if name == pipeline}
    if pipeline is not None and not selected:
        known = ", ".join(sorted(set(pipelines.values()))[:10]) or "none"
        raise MlmdImportError(f"no pipeline {pipeline!r} in {snapshot.description}; its pipelines: {known}")
    selected = _with_upstream(selected, members, [inputs, outputs], producers, run_of)

    source = snapshot.source_id
    steps: dict[int, PlannedStep] = {}
    runs: dict[int, PlannedRun] = {}
    for context_id in sorted(selected, key=lambda c: (min(e.create_ms for e in members[c]), c)):
        context = contexts[context_id]
        taken: set[str] = set()
        for execution in sorted(members[context_id], key=_time_key):
            step = _step(snapshot, execution, context_id, pipelines[context_id], taken, execution.id in outputs)
            step.inputs = dict(inputs.get(execution.id, {}))
            for name, artifact_id in outputs.get(execution.id, {}).items():
                target = step.outputs if producers.get(artifact_id) == execution.id else step.reused
                target[name] = artifact_id
            steps[execution.id] = step
        runs[context_id] = _run(snapshot, context, pipelines[context_id], [steps[e.id] for e in members[context_id]])
    for step in steps.values():
        if step.reused and not step.outputs and step.status is Status.CACHED:
            step.cached_from = producers[step.reused[min(step.reused)]]
        elif step.reused:
            not_mapped["edges"]["output edge to an artifact another execution produced"] += len(step.reused)
            step.reused = {}
    sequence = _write_order(steps, runs, producers)
    for step in sequence:
        runs[step.run_context_id].steps.append(step)
    used = {a for s in steps.values() for a in (*s.inputs.values(), *s.outputs.values(), *s.reused.values())}
    if pipeline is None:
        unused = len(snapshot.artifacts) - len(used)
        if unused:
            not_mapped["artifacts"]["no imported execution consumed or produced it"] += unused
    artifact_ids = {a: derived_id(source, "artifact", a, snapshot.artifacts[a].create_ms) for a in sorted(used)}
    return ImportPlan(snapshot, runs, sequence, steps, artifact_ids, producers, not_mapped, notes)


def _time_key(execution: MlmdExecution) -> tuple[int, int]:
    return (execution.create_ms, execution.id)


def _edges(
    snapshot: MlmdSnapshot, run_of: dict[int, int], not_mapped: dict[str, Counter[str]]
) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Input and output edges of the mapped executions: ``{execution: {edge name: artifact}}``.

    Events of one execution, direction and artifact count once (TFX recorded a
    ``DECLARED_OUTPUT`` and later an ``OUTPUT`` for the same artifact).
    """
    grouped: dict[tuple[int, bool], dict[int, tuple[str | int, ...]]] = defaultdict(dict)
    for event in snapshot.events:
        if event.execution_id not in run_of:
            continue
        if event.artifact_id not in snapshot.artifacts:
            not_mapped["edges"]["event points to a missing artifact"] += 1
            continue
        if event.type not in INPUT_EVENTS | OUTPUT_EVENTS:
            not_mapped["edges"][f"event type {event.type} (not an input or output)"] += 1
            continue
        edges = grouped[(event.execution_id, event.type in INPUT_EVENTS)]
        if event.artifact_id not in edges or not event.type.startswith("DECLARED"):
            edges[event.artifact_id] = event.path
    inputs: dict[int, dict[str, int]] = {}
    outputs: dict[int, dict[str, int]] = {}
    for (execution_id, is_input), edges in grouped.items():
        named = edge_names(edges, "input" if is_input else "output")
        (inputs if is_input else outputs)[execution_id] = named
    return inputs, outputs


def _producers(snapshot: MlmdSnapshot, outputs: dict[int, dict[str, int]]) -> dict[int, int]:
    """artifact id → the execution producing it: the first non-cached one with an output edge."""
    candidates: dict[int, list[MlmdExecution]] = defaultdict(list)
    for execution_id, edges in outputs.items():
        for artifact_id in edges.values():
            candidates[artifact_id].append(snapshot.executions[execution_id])
    producers: dict[int, int] = {}
    for artifact_id, executions in candidates.items():
        ordered = sorted(executions, key=lambda e: (e.state == "CACHED", *_time_key(e)))
        producers[artifact_id] = ordered[0].id
    return producers


def _with_upstream(
    selected: set[int],
    members: dict[int, list[MlmdExecution]],
    edges: list[dict[int, dict[str, int]]],
    producers: dict[int, int],
    run_of: dict[int, int],
) -> set[int]:
    """``selected`` runs plus, recursively, the runs that produced artifacts they consumed (or,
    for cached executions, reused)."""
    result = set(selected)
    pending = list(selected)
    while pending:
        for execution in members[pending.pop()]:
            for artifact_id in (a for kind in edges for a in kind.get(execution.id, {}).values()):
                producer = producers.get(artifact_id)
                run = run_of.get(producer) if producer is not None else None
                if run is not None and run not in result:
                    result.add(run)
                    pending.append(run)
    return result


def _step(
    snapshot: MlmdSnapshot,
    execution: MlmdExecution,
    run_context_id: int,
    pipeline: str,
    taken: set[str],
    has_outputs: bool,
) -> PlannedStep:
    base = step_name(snapshot, execution, pipeline)
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    taken.add(name)
    parameters, bookkeeping = split_properties(execution)
    status, error = step_status(execution, has_outputs)
    config: dict[str, JSON] = {
        "mlmd": {
            "execution_id": execution.id,
            "execution_type": execution.type,
            "execution_name": execution.name,
            "state": execution.state,
            "contexts": [f"{snapshot.contexts[c].type}:{snapshot.contexts[c].name}" for c in execution.context_ids],
            "properties": bookkeeping,
        }
    }
    start = to_time(execution.create_ms)
    return PlannedStep(
        execution_id=execution.id,
        run_context_id=run_context_id,
        id=derived_id(snapshot.source_id, "execution", execution.id, execution.create_ms),
        name=name,
        status=status,
        start=start,
        end=max(start, to_time(execution.update_ms)),
        parameters=parameters,
        config=config,
        error=error,
    )


def _run(snapshot: MlmdSnapshot, context: MlmdContext, pipeline: str, steps: list[PlannedStep]) -> PlannedRun:
    statuses = {s.status for s in steps}
    failed = [s.name for s in steps if s.status is Status.FAILED]
    if failed:
        status, error = Status.FAILED, f"{agree(len(failed), 'step')} {', '.join(failed)} failed"
    elif Status.CRASHED in statuses:
        status, error = Status.CRASHED, "the run had executions that never finished when it was imported"
    else:
        status, error = Status.COMPLETED, None
    start = min([s.start for s in steps] + ([to_time(context.create_ms)] if context.create_ms > 0 else []))
    pipeline_contexts = [c for c in snapshot.parents.get(context.id, ()) if c in snapshot.contexts]
    config: dict[str, JSON] = {
        "imported_from": {
            "format": "mlmd",
            "source": snapshot.description,
            "source_id": snapshot.source_id,
            "context_id": context.id,
            "context_type": context.type,
            "context_name": context.name,
            "parent_context_ids": pipeline_contexts,
            "properties": context.properties,
        }
    }
    return PlannedRun(
        context_id=context.id,
        id=derived_id(snapshot.source_id, "run", context.id, context.create_ms or int(start.timestamp() * 1000)),
        name=context.name.replace("{n}", "{N}") or f"mlmd-run-{context.id}",
        pipeline=pipeline,
        start=start,
        end=max(s.end for s in steps),
        status=status,
        error=error,
        config=config,
    )


def _write_order(
    steps: dict[int, PlannedStep], runs: dict[int, PlannedRun], producers: dict[int, int]
) -> list[PlannedStep]:
    """Steps in an order where producers come first, runs kept together in start order where
    the lineage allows (Kahn's algorithm with a priority); steps in a cycle, if MLMD holds
    one, come last in time order."""
    run_rank = {c: rank for rank, c in enumerate(sorted(runs, key=lambda c: (runs[c].start, c)))}
    waits: dict[int, set[int]] = {}
    dependents: dict[int, list[int]] = defaultdict(list)
    for execution_id, step in steps.items():
        needed = {producers[a] for a in (*step.inputs.values(), *step.reused.values()) if a in producers}
        needed = {p for p in needed if p in steps and p != execution_id}
        waits[execution_id] = needed
        for producer in needed:
            dependents[producer].append(execution_id)

    def key(execution_id: int) -> tuple[int, datetime, int]:
        step = steps[execution_id]
        return (run_rank[step.run_context_id], step.start, execution_id)

    ready = [key(e) for e, needed in waits.items() if not needed]
    heapq.heapify(ready)
    order: list[PlannedStep] = []
    while ready:
        execution_id = heapq.heappop(ready)[2]
        order.append(steps[execution_id])
        for dependent in dependents[execution_id]:
            waits[dependent].discard(execution_id)
            if not waits[dependent]:
                heapq.heappush(ready, key(dependent))
    done = {s.execution_id for s in order}
    order.extend(sorted((s for e, s in steps.items() if e not in done), key=lambda s: key(s.execution_id)))
    return order
