"""Importing the records pipeledger's own ``kubeflow`` flavor wrote into an MLMD database.

A database the flavor wrote holds pipeledger's records as nodes of the ``pipeledger.*``
types (:mod:`pipeledger.metadata_store.mlmd.types`), beside their ``system.*`` view for
Kubeflow's readers and, possibly, Kubeflow's or TFX's own runs. Those records are not
guessed from conventions: they are decoded by the flavor's own converters
(:mod:`pipeledger.metadata_store.mlmd.records`), so every field comes back as it was
recorded, and written through the target store's contract the way the runs were
recorded in the first place:

* runs are created in their pipeline's number order (an empty target gives them the same
  numbers), with their ids, names, start times, parameters, configuration, environment,
  stack, git facts, code hash and tags; their metadata, last heartbeat, end, status and
  error follow once their steps are written;
* step runs keep their ids, names, timings, parameters, configuration, entrypoints,
  fingerprints, cache keys, statuses, errors, logs and metadata; a cache hit is recorded
  as one (``record_cached_step``) pointing to the same original; steps are written
  producers first, so every input exists before its consumer;
* artifacts keep their ids, URIs, types, data types, materializers, content hashes,
  sizes and metadata: a step's outputs are written by its ``finish_step``, artifacts no
  step produced (registered external data) by ``register_artifact``;
* a retired cache entry (``pipeledger cache clear``) is retired again, at the same time.

What the target store allocates itself stays the target's: a pipeline's id and creation
time, and a run's number when the target already holds runs of its pipeline. The import
is idempotent (records already in the target, by id, are skipped) and resumes a run an
interrupted import left running.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeledger.exceptions import NotFoundError
from pipeledger.importers.mlmd_source import MlmdSnapshot, Source, open_source
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.mlmd import records
from pipeledger.metadata_store.mlmd.types import (
    ARTIFACT_TYPE,
    KFP_DAG_TYPE,
    KFP_RUN_LINK,
    KFP_RUN_TYPE,
    PIPELINE_TYPE,
    RUN_NUMBER_TYPE,
    RUN_TYPE,
    STEP_TYPE,
)
from pipeledger.models import (
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    Direction,
    EntityKind,
    PipelineRecord,
    RunCreate,
    RunRecord,
    Status,
    StepRunCreate,
    StepRunRecord,
    utcnow,
)
from pipeledger.text import plural

if TYPE_CHECKING:
    from pipeledger.importers.mlmd import ImportSummary

#: Context types only pipeledger writes.
OWN_CONTEXT_TYPES = frozenset({PIPELINE_TYPE, RUN_TYPE, RUN_NUMBER_TYPE})


def holds_own_records(snapshot: MlmdSnapshot) -> bool:
    """Whether ``snapshot`` holds runs the ``kubeflow`` flavor recorded."""
    return any(c.type == RUN_TYPE for c in snapshot.contexts.values())


def without_own_records(snapshot: MlmdSnapshot) -> MlmdSnapshot:
    """``snapshot`` without pipeledger's own nodes and their KFP view (run contexts and root DAG
    executions), for the convention mapping of what other systems wrote (``system.Pipeline``
    contexts, which Kubeflow's runs may share, stay)."""
    contexts = {
        i: c
        for i, c in snapshot.contexts.items()
        if c.type not in OWN_CONTEXT_TYPES and not (c.type == KFP_RUN_TYPE and KFP_RUN_LINK in c.properties)
    }
    executions = {
        i: replace(e, context_ids=tuple(c for c in e.context_ids if c in contexts))
        for i, e in snapshot.executions.items()
        if e.type != STEP_TYPE and not (e.type == KFP_DAG_TYPE and KFP_RUN_LINK in e.custom_properties)
    }
    artifacts = {i: a for i, a in snapshot.artifacts.items() if a.type != ARTIFACT_TYPE}
    events = [e for e in snapshot.events if e.execution_id in executions]
    parents = {c: tuple(p for p in ps if p in contexts) for c, ps in snapshot.parents.items() if c in contexts}
    return replace(
        snapshot, contexts=contexts, executions=executions, artifacts=artifacts, events=events, parents=parents
    )


@dataclass
class OwnStep:
    """A recorded step run with its edges (name → artifact id) and metadata."""

    record: StepRunRecord
    metadata: dict[str, JSON]
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class OwnHistory:
    """Everything the flavor recorded in one MLMD database, as pipeledger records."""

    pipelines: dict[str, PipelineRecord]  # by name
    runs: dict[str, RunRecord]  # by id
    run_metadata: dict[str, dict[str, JSON]]
    steps: dict[str, OwnStep]  # by id
    artifacts: dict[str, ArtifactRecord]  # by id
    artifact_metadata: dict[str, dict[str, JSON]]


def read_own(source: Source) -> OwnHistory:
    """Read the flavor's records at ``source`` with the flavor's own converters."""
    with open_source(source) as (mlmd, _notes):
        pipelines = {p.name: p for p in map(records.pipeline_record, mlmd.get_contexts_by_type(PIPELINE_TYPE))}
        run_nodes = mlmd.get_contexts_by_type(RUN_TYPE)
        step_nodes = mlmd.get_executions_by_type(STEP_TYPE)
        artifact_nodes = {a.id: a for a in mlmd.get_artifacts_by_type(ARTIFACT_TYPE)}
        events: list[Any] = []
        ids = [e.id for e in step_nodes]
        for start in range(0, len(ids), 500):
            events.extend(mlmd.get_events_by_execution_ids(ids[start : start + 500]))
    steps = {e.external_id: OwnStep(records.step_record(e), records.metadata_of(e)) for e in step_nodes}
    by_mlmd_id = {e.id: e.external_id for e in step_nodes}
    for event in events:
        direction, node = records.event_direction(event), artifact_nodes.get(event.artifact_id)
        if direction is None or node is None:
            continue
        step = steps[by_mlmd_id[event.execution_id]]
        edges = step.inputs if direction is Direction.INPUT else step.outputs
        for name in records.event_names(event):
            edges[name] = node.external_id
    return OwnHistory(
        pipelines=pipelines,
        runs={c.external_id: records.run_record(c) for c in run_nodes},
        run_metadata={c.external_id: records.metadata_of(c) for c in run_nodes},
        steps=steps,
        artifacts={a.external_id: records.artifact_record(a) for a in artifact_nodes.values()},
        artifact_metadata={a.external_id: records.metadata_of(a) for a in artifact_nodes.values()},
    )


def import_own(
    source: Source,
    store: MetadataStore,
    summary: ImportSummary,
    *,
    pipeline: str | None = None,
    dry_run: bool = False,
) -> None:
    """Import the flavor's records at ``source`` into ``store``, counting into ``summary``.
    ``pipeline`` limits the import to its runs and the runs that produced what they used."""
    history = read_own(source)
    selected = _selected_runs(history, pipeline)
    _OwnWriter(history, selected, store, summary, dry_run=dry_run).write()


def own_pipelines(source: Source) -> set[str]:
    """Names of the pipelines whose runs the flavor recorded at ``source``."""
    return {r.pipeline_name for r in read_own(source).runs.values()}


def _selected_runs(history: OwnHistory, pipeline: str | None) -> set[str]:
    """Ids of the runs to import: all, or ``pipeline``'s plus, recursively, the runs whose steps
    produced (or first computed) what they used, so lineage stays whole."""
    if pipeline is None:
        return set(history.runs)
    selected = {r.id for r in history.runs.values() if r.pipeline_name == pipeline}
    pending = list(selected)
    steps_of: dict[str, list[OwnStep]] = defaultdict(list)
    for step in history.steps.values():
        steps_of[step.record.run_id].append(step)
    while pending:
        for step in steps_of[pending.pop()]:
            for upstream in _needs(history, step):
                run_id = history.steps[upstream].record.run_id
                if run_id in history.runs and run_id not in selected:
                    selected.add(run_id)
                    pending.append(run_id)
    return selected


def _needs(history: OwnHistory, step: OwnStep) -> set[str]:
    """Ids of the recorded step runs ``step`` needs written before it."""
    needed = {step.record.cached_from_id} if step.record.cached_from_id else set()
    for artifact_id in (*step.inputs.values(), *step.outputs.values()):
        artifact = history.artifacts.get(artifact_id)
        if artifact is not None and artifact.producer_step_run_id is not None:
            needed.add(artifact.producer_step_run_id)
    return {n for n in needed if n in history.steps and n != step.record.id}


class _OwnWriter:
    """Writes the selected runs through the store contract, skipping what the store holds."""

    def __init__(
        self,
        history: OwnHistory,
        selected: set[str],
        store: MetadataStore,
        summary: ImportSummary,
        *,
        dry_run: bool,
    ) -> None:
        self.history = history
        self.selected = selected
        self.store = store
        self.summary = summary
        self.dry_run = dry_run
        self.open_runs: set[str] = set()  # runs whose steps are written now (new, or left running)
        self.recorded = store.recorded_artifact_ids(sorted(history.artifacts)) if history.artifacts else set()
        self.pending: dict[tuple[str, str], list[OwnStep]] = {}  # retired cache entries not yet retired again
        self.kept = 0

    def write(self) -> None:
        runs = sorted(
            (self.history.runs[r] for r in self.selected),
            key=lambda r: (r.pipeline_name, r.number, r.start_time, r.id),
        )
        for name in sorted({r.pipeline_name for r in runs}):
            present = self._pipeline_exists(name)
            self.summary.present["pipelines"] += present
            self.summary.imported["pipelines"] += not present
        for run in runs:
            self._open(run)
        for step in self._order():
            if step.record.run_id in self.open_runs:
                self._write_step(step)
            else:
                self._count_present(step)
        for run in runs:
            if run.id in self.open_runs and not self.dry_run:
                self._close(run)
        self._retire_all()

    def _pipeline_exists(self, name: str) -> bool:
        try:
            self.store.get_pipeline(name)
        except NotFoundError:
            return False
        return True

    def _open(self, run: RunRecord) -> None:
        try:
            existing: RunRecord | None = self.store.get_run(run.id)
        except NotFoundError:
            existing = None
        if existing is not None and existing.id == run.id:
            if existing.status is Status.RUNNING:  # an import stopped half-way, or the run was running then
                self.open_runs.add(run.id)
                if run.status is not Status.RUNNING:
                    self.summary.notes.append(f"run {run.name} was left running by an earlier import: resumed")
            self.summary.present["runs"] += 1
            return
        name = run.name
        if self._name_taken(name):
            name = f"{run.name}-mlmd-{run.id[-8:]}"
            self.summary.notes.append(f"a run named {run.name} exists already: imported as {name}")
        self.open_runs.add(run.id)
        self.summary.imported["runs"] += 1
        self.summary.run_names.append(name)
        if self.dry_run:
            return
        pipeline = self.history.pipelines.get(run.pipeline_name)
        self.store.create_run(
            RunCreate(
                pipeline_name=run.pipeline_name,
                name=name.replace("{n}", "{N}") if "{n}" in name else name,
                parameters=run.parameters,
                config=run.config,
                environment=run.environment,
                stack=run.stack,
                git_sha=run.git_sha,
                git_dirty=run.git_dirty,
                code_hash=run.code_hash,
                pipeline_docstring=pipeline.docstring if pipeline is not None else None,
                tags=list(run.tags),
                id=run.id,
                start_time=run.start_time,
            )
        )
        self.store.heartbeat(run.id, utcnow())  # its start is in the past: do not look crashed meanwhile

    def _name_taken(self, name: str) -> bool:
        try:
            return self.store.get_run(name).name == name
        except NotFoundError:
            return False

    def _close(self, run: RunRecord) -> None:
        metadata = self.history.run_metadata.get(run.id)
        if metadata:
            self.store.put_metadata(EntityKind.RUN, run.id, metadata)
        if run.heartbeat_at is not None:
            self.store.heartbeat(run.id, run.heartbeat_at)
        if run.status is not Status.RUNNING:
            self.store.finish_run(run.id, run.status, end_time=run.end_time or run.start_time, error=run.error)

    def _order(self) -> list[OwnStep]:
        """The selected runs' steps, producers (and cache-hit originals) first, else by start time."""
        steps = {s.record.id: s for s in self.history.steps.values() if s.record.run_id in self.selected}
        waits = {i: {n for n in _needs(self.history, s) if n in steps} for i, s in steps.items()}
        dependents: dict[str, list[str]] = defaultdict(list)
        for step_id, needed in waits.items():
            for other in needed:
                dependents[other].append(step_id)

        def key(step_id: str) -> tuple[datetime, str]:
            return (steps[step_id].record.start_time, step_id)

        ready = [key(i) for i, needed in waits.items() if not needed]
        heapq.heapify(ready)
        order: list[OwnStep] = []
        while ready:
            step_id = heapq.heappop(ready)[1]
            order.append(steps[step_id])
            for dependent in dependents[step_id]:
                waits[dependent].discard(step_id)
                if not waits[dependent]:
                    heapq.heappush(ready, key(dependent))
        done = {s.record.id for s in order}
        order.extend(sorted((s for i, s in steps.items() if i not in done), key=lambda s: key(s.record.id)))
        return order

    def _count_present(self, step: OwnStep) -> None:
        self.summary.present["step runs"] += 1
        self.summary.present["edges"] += len(step.inputs) + len(step.outputs)
        self.summary.present["artifacts"] += sum(
            self.history.artifacts[a].producer_step_run_id == step.record.id
            for a in step.outputs.values()
            if a in self.history.artifacts
        )

    def _write_step(self, step: OwnStep) -> None:
        record = step.record
        existing = self._existing_step(record.id)
        if existing is not None and existing.status is not Status.RUNNING:
            self._count_present(step)
            return
        self._retire_before(step)
        if record.cache_invalidated_at is not None:
            self.pending.setdefault(self._key(step), []).append(step)
        self.summary.imported["edges"] += len(step.inputs) + len(step.outputs)
        create = StepRunCreate(
            run_id=record.run_id,
            name=record.name,
            entrypoint=record.entrypoint,
            docstring=record.docstring,
            parameters=record.parameters,
            config=record.config,
            source_hash=record.source_hash,
            cache_key=record.cache_key,
            cache_components=record.cache_components,
            inputs=self._ready_inputs(step),
            id=record.id,
            start_time=record.start_time,
        )
        if record.cached_from_id is not None and existing is None:
            self.summary.imported["step runs"] += 1
            if not self.dry_run:
                self.store.record_cached_step(create, cached_from_id=record.cached_from_id, outputs=step.outputs)
                self.store.put_metadata(EntityKind.STEP_RUN, record.id, step.metadata)
            return
        if existing is None:
            self.summary.imported["step runs"] += 1
            if not self.dry_run:
                self.store.start_step(create)
        else:
            self.summary.present["step runs"] += 1
        outputs = [self._output(name, a) for name, a in step.outputs.items() if self._produced_by(a, record.id)]
        self.summary.imported["artifacts"] += len(outputs)
        if self.dry_run:
            return
        if record.status is not Status.RUNNING:
            self.store.finish_step(
                record.id,
                record.status,
                end_time=record.end_time or record.start_time,
                outputs=outputs,
                metadata=step.metadata,
                error=record.error,
                error_message=record.error_message,
                logs_uri=record.logs_uri,
            )
        elif step.metadata:
            self.store.put_metadata(EntityKind.STEP_RUN, record.id, step.metadata)

    def _existing_step(self, step_id: str) -> StepRunRecord | None:
        try:
            return self.store.get_step_run(step_id)
        except NotFoundError:
            return None

    def _produced_by(self, artifact_id: str, step_id: str) -> bool:
        artifact = self.history.artifacts.get(artifact_id)
        return artifact is not None and artifact.producer_step_run_id == step_id and artifact_id not in self.recorded

    def _ready_inputs(self, step: OwnStep) -> dict[str, str]:
        """``step``'s inputs, registering those no recorded step produced (external data) first."""
        for artifact_id in step.inputs.values():
            artifact = self.history.artifacts.get(artifact_id)
            if artifact is None or artifact_id in self.recorded:
                continue
            if artifact.producer_step_run_id is None or artifact.producer_step_run_id not in self.history.steps:
                self.recorded.add(artifact_id)
                self.summary.imported["artifacts"] += 1
                if not self.dry_run:
                    self.store.register_artifact(self._output("", artifact_id), at=artifact.created_at)
        return dict(step.inputs)

    def _output(self, name: str, artifact_id: str) -> ArtifactCreate:
        artifact = self.history.artifacts[artifact_id]
        self.recorded.add(artifact_id)
        return ArtifactCreate(
            name=name,
            uri=artifact.uri,
            type=artifact.type,
            data_type=artifact.data_type,
            materializer=artifact.materializer,
            materializer_version=artifact.materializer_version,
            content_hash=artifact.content_hash,
            size=artifact.size,
            artifact_store=artifact.artifact_store,
            metadata=self.history.artifact_metadata.get(artifact_id, {}),
            id=artifact_id,
        )

    def _retire_before(self, step: OwnStep) -> None:
        """Retire the pending retired entries of ``step``'s pipeline and name before ``step`` is
        written if ``step`` is a cache entry that stays valid, or was retired at another time
        (``cache clear`` retires every valid entry, so retired ones come first, by time)."""
        key = self._key(step)
        pending = self.pending.get(key)
        if not pending or step.record.cache_key is None or step.record.status is not Status.COMPLETED:
            return
        if step.record.cache_invalidated_at != pending[0].record.cache_invalidated_at:
            self._retire(key)

    def _key(self, step: OwnStep) -> tuple[str, str]:
        return (self.history.runs[step.record.run_id].pipeline_name, step.record.name)

    def _retire(self, key: tuple[str, str]) -> None:
        """Retire the pending entries of ``key``, as ``cache clear`` did, unless the store holds a
        valid entry of its own there (the contract retires by pipeline and step name)."""
        group = self.pending.pop(key, [])
        at = group[0].record.cache_invalidated_at if group else None
        if at is None or self.dry_run:
            return
        ours = {s.record.id for s in group}
        valid = self.store.list_cache_entries(pipeline=key[0], step=key[1], invalidated=False)
        if any(e.step_run_id not in ours for e in valid):
            self.kept += len(group)
            return
        self.store.invalidate_cache(at=at, pipeline=key[0], step=key[1])

    def _retire_all(self) -> None:
        for key in list(self.pending):
            self._retire(key)
        if self.kept:
            self.summary.notes.append(
                f"{plural(self.kept, 'retired cache entry', 'retired cache entries')} left valid: the store "
                "holds other valid entries of the same steps (`pipeledger cache clear` retires them all)"
            )
