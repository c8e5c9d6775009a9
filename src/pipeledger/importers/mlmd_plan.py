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

from pipeledger.importers import mlmd_names
from pipeledger.importers.mlmd_conventions import (
    INPUT_EVENTS,
    KFP_V2_INPUTS,
    NODE_CONTEXT_TYPES,
    OUTPUT_EVENTS,
    PIPELINE_CONTEXT_TYPES,
    RUN_CONTEXT_TYPES,
    PathKey,
    dag_paths,
    is_dag,
    path_keys,
    pipeline_name,
    split_properties,
    step_name,
    step_status,
)
from pipeledger.importers.mlmd_source import MlmdArtifact, MlmdContext, MlmdExecution, MlmdImportError, MlmdSnapshot
from pipeledger.limits import storable_text
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
    parameters: dict[str, JSON] = field(default_factory=dict)


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
    dags: dict[int, list[MlmdExecution]] = defaultdict(list)
    for execution in sorted(snapshot.executions.values(), key=_time_key):
        in_runs = [c for c in execution.context_ids if contexts[c].type in RUN_CONTEXT_TYPES]
        if is_dag(execution):
            not_mapped["step runs"]["KFP DAG execution: the run's structure, kept in its config"] += 1
            if in_runs:
                dags[in_runs[0]].append(execution)
            continue
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
    originals = {c: pipeline_name(snapshot, contexts[c], execs) for c, execs in members.items()}
    pipelines = {c: mlmd_names.pipeline_name(name) for c, name in originals.items()}
    selected = {c for c in pipelines if pipeline is None or pipeline in (pipelines[c], originals[c])}
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
        paths = dag_paths(dags[context_id])
        for execution in sorted(members[context_id], key=_time_key):
            step = _step(snapshot, execution, context_id, originals[context_id], taken, paths, execution.id in outputs)
            step.inputs = _named_edges(step, "inputs", inputs.get(execution.id, {}))
            for name, artifact_id in _named_edges(step, "outputs", outputs.get(execution.id, {})).items():
                target = step.outputs if producers.get(artifact_id) == execution.id else step.reused
                target[name] = artifact_id
            steps[execution.id] = step
        planned = [steps[e.id] for e in members[context_id]]
        run = _run(snapshot, context, pipelines[context_id], planned, dags[context_id], paths)
        if pipelines[context_id] != originals[context_id]:
            _original_names(run.config)["pipeline"] = originals[context_id]
        runs[context_id] = run
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

    Every (key, index) pair of an event's path is an edge (see :func:`path_keys`); an event
    whose path has no key is named ``input``/``output``. Events of one execution, direction,
    artifact and pair count once (TFX recorded a ``DECLARED_OUTPUT`` and later an ``OUTPUT``
    for the same artifact). What cannot be mapped is counted in ``not_mapped["edges"]``: events
    of executions that are not imported, of other types, to missing artifacts, and a second
    artifact under a (key, index) pair that already has one.
    """
    grouped: dict[tuple[int, bool], list[tuple[str, int | None, int]]] = defaultdict(list)
    for event in snapshot.events:
        pairs = path_keys(event.path)
        count = max(1, len(pairs))
        if event.execution_id not in run_of:
            execution = snapshot.executions.get(event.execution_id)
            if execution is not None and is_dag(execution):
                not_mapped["edges"]["event of a KFP DAG execution (not a step)"] += count
            else:
                not_mapped["edges"]["event of an execution that was not imported"] += count
            continue
        if event.artifact_id not in snapshot.artifacts:
            not_mapped["edges"]["event points to a missing artifact"] += count
            continue
        if event.type not in INPUT_EVENTS | OUTPUT_EVENTS:
            not_mapped["edges"][f"event type {event.type} (not an input or output)"] += count
            continue
        is_input = event.type in INPUT_EVENTS
        edges = grouped[(event.execution_id, is_input)]
        for pair in pairs or [PathKey("input" if is_input else "output", None)]:
            key, index = pair.key, pair.index
            if (key, index, event.artifact_id) in edges:
                continue  # the same edge again (DECLARED_OUTPUT, then OUTPUT)
            if index is not None and any(k == key and i == index for k, i, _ in edges):
                not_mapped["edges"]["a second artifact under the same key and index of an event path"] += 1
                continue
            edges.append((key, index, event.artifact_id))
    inputs: dict[int, dict[str, int]] = {}
    outputs: dict[int, dict[str, int]] = {}
    for (execution_id, is_input), edges in grouped.items():
        (inputs if is_input else outputs)[execution_id] = _edge_names(edges)
    return inputs, outputs


def _edge_names(edges: list[tuple[str, int | None, int]]) -> dict[str, int]:
    """Edge names for (key, index, artifact) triples: the key when it holds one artifact, else
    ``key[index]`` (an event path without an index: the artifact's position under the key)."""
    per_key = Counter(key for key, _, _ in edges)
    positions: Counter[str] = Counter()
    named: dict[str, int] = {}
    ordered = sorted(edges, key=lambda e: (e[0], e[1] is None, e[1] if e[1] is not None else 0, e[2]))
    for key, index, artifact_id in ordered:
        if per_key[key] == 1:
            name = key
        else:
            name = f"{key}[{index if index is not None else positions[key]}]"
            positions[key] += 1
        while name in named:
            name += "'"
        named[name] = artifact_id
    return named


def _named_edges(step: PlannedStep, direction: str, edges: dict[str, int]) -> dict[str, int]:
    """``edges`` with names made valid (:mod:`~pipeledger.importers.mlmd_names`); a changed name
    is kept in ``config["mlmd"]["original_edge_names"][direction]``."""
    named: dict[str, int] = {}
    for name, artifact_id in edges.items():
        valid = mlmd_names.normalise(name)
        while valid in named:
            valid = mlmd_names.normalise(valid + "'")
        if valid != name:
            mlmd = step.config["mlmd"]
            assert isinstance(mlmd, dict)
            originals = mlmd.setdefault("original_edge_names", {})
            assert isinstance(originals, dict)
            originals.setdefault(direction, {})[valid] = name
        named[valid] = artifact_id
    return named


def _original_names(config: dict[str, JSON]) -> dict[str, JSON]:
    imported = config["imported_from"]
    assert isinstance(imported, dict)
    found = imported.setdefault("original_names", {})
    assert isinstance(found, dict)
    return found


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
    paths: dict[int, str],
    has_outputs: bool,
) -> PlannedStep:
    original = step_name(snapshot, execution, pipeline, paths)
    base = mlmd_names.normalise(original)
    name, number = base, 1
    while name in taken:
        number += 1
        name = mlmd_names.normalise(f"{base}-{number}")
    taken.add(name)
    raw_parameters, bookkeeping = split_properties(execution)
    parameters, renamed = valid_keys(raw_parameters)
    status, error = step_status(execution, has_outputs)
    mlmd: dict[str, JSON] = {
        "execution_id": execution.id,
        "execution_type": execution.type,
        "execution_name": execution.name,
        "state": execution.state,
        "contexts": [f"{snapshot.contexts[c].type}:{snapshot.contexts[c].name}" for c in execution.context_ids],
        "properties": bookkeeping,
    }
    if name != original:
        mlmd["original_name"] = original
    if renamed:
        mlmd["original_parameter_names"] = renamed
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
        config={"mlmd": mlmd},
        error=storable_text(error) if error is not None else None,
    )


def valid_keys(values: dict[str, JSON]) -> tuple[dict[str, JSON], dict[str, JSON]]:
    """``values`` with keys made valid names, and ``{new key: original key}`` for those changed."""
    valid: dict[str, JSON] = {}
    renamed: dict[str, JSON] = {}
    for key, value in values.items():
        name = mlmd_names.normalise(key)
        while name in valid:
            name = mlmd_names.normalise(name + "'")
        if name != key:
            renamed[name] = key
        valid[name] = value
    return valid, renamed


def _run(
    snapshot: MlmdSnapshot,
    context: MlmdContext,
    pipeline: str,
    steps: list[PlannedStep],
    dags: list[MlmdExecution],
    paths: dict[int, str],
) -> PlannedRun:
    """The run of ``context``: its status from its steps' (failed if one failed, crashed if one
    never finished, else completed: skipped steps count as done, as KFP counts them), its
    parameters from its KFP v2 root DAG's ``inputs``, its DAGs in its config."""
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
    parameters: dict[str, JSON] = {}
    if dags:
        structure: list[JSON] = []
        for dag in dags:
            inputs, bookkeeping = split_properties(dag)
            root = paths.get(dag.id) == ""
            if root and not parameters:
                parameters, renamed = valid_keys(inputs)
                if renamed:
                    _original_names(config)["parameters"] = renamed
            structure.append(
                {
                    "execution_id": dag.id,
                    "path": paths.get(dag.id, ""),
                    "state": dag.state,
                    KFP_V2_INPUTS: inputs,
                    "properties": bookkeeping,
                }
            )
        imported = config["imported_from"]
        assert isinstance(imported, dict)
        imported["dags"] = structure
    name = mlmd_names.run_name(context.name) if context.name else f"mlmd-run-{context.id}"
    if context.name and name != context.name:
        _original_names(config)["run"] = context.name
    return PlannedRun(
        context_id=context.id,
        id=derived_id(snapshot.source_id, "run", context.id, context.create_ms or int(start.timestamp() * 1000)),
        name=name,
        pipeline=pipeline,
        start=start,
        end=max(s.end for s in steps),
        status=status,
        error=error,
        config=config,
        parameters=parameters,
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
