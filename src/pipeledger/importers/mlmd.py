"""Importing an ML Metadata (MLMD) history into a pipeledger metadata store.

:func:`import_mlmd` reads an MLMD database (:mod:`~pipeledger.importers.mlmd_source`),
maps it (:mod:`~pipeledger.importers.mlmd_plan`) and writes the result through the
public :class:`~pipeledger.metadata_store.base.MetadataStore` contract, the way a real
run is recorded: ``create_run``, then per execution ``start_step`` + ``finish_step``
(or ``record_cached_step`` for a cache hit), ``register_artifact`` for external data,
and ``finish_run`` after a run's last step. Steps are written producers first, so every
input exists before its consumer.

The import is idempotent: every id is derived from the history's identity and the MLMD
id, and records already in the store are skipped, so importing twice adds nothing. An
import that stopped half-way resumes: a run left ``running`` gets its missing steps and
is finished. Imported runs carry the tag ``imported-from-mlmd`` and their MLMD origin in
``config["imported_from"]``.

Artifacts keep their URI and MLMD type; their content hash is empty and size 0 (MLMD
records neither) unless ``hash_files`` hashes the files that are reachable.

A database pipeledger's own ``kubeflow`` flavor wrote is recognised by its
``pipeledger.PipelineRun`` contexts: those records are imported as they were recorded, with
their ids, by :mod:`~pipeledger.importers.mlmd_own` (a round trip gives back the same
runs), and only what other systems wrote beside them goes through the mapping above.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import ModuleType

from pipeledger.exceptions import NotFoundError
from pipeledger.importers import mlmd_names
from pipeledger.importers.mlmd_conventions import IMPORT_TAG, ZENML_DATATYPE, ZENML_MATERIALIZER
from pipeledger.importers.mlmd_plan import (
    ImportPlan,
    PlannedRun,
    PlannedStep,
    plan_import,
    to_time,
    valid_keys,
)
from pipeledger.importers.mlmd_source import MlmdImportError, MlmdSnapshot, Source, read_snapshot
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import JSON, ArtifactCreate, RunCreate, RunRecord, Status, StepRunCreate, utcnow
from pipeledger.text import plural

KINDS = ("pipelines", "runs", "step runs", "artifacts", "edges")


@dataclass
class ImportSummary:
    """What an import wrote (``imported``), found already there (``present``) and left out.

    Each of ``imported``/``present`` counts :data:`KINDS`; ``not_mapped[kind]`` counts
    reasons. With ``dry_run``, ``imported`` is what an import would write.
    """

    source: str
    dry_run: bool
    imported: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    not_mapped: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    notes: list[str] = field(default_factory=list)
    run_names: list[str] = field(default_factory=list)

    @property
    def already_imported(self) -> bool:
        """True when nothing was (or would be) written and the history is already in the store."""
        return not any(self.imported.values()) and any(self.present.values())


def import_mlmd(
    source: Source,
    store: MetadataStore,
    *,
    pipeline: str | None = None,
    dry_run: bool = False,
    hash_files: bool = False,
) -> ImportSummary:
    """Import the MLMD history at ``source`` into ``store`` and say what was imported.

    ``pipeline`` limits the import to that pipeline's runs (plus the runs that produced
    artifacts they used, so lineage stays whole). ``dry_run`` writes nothing. ``hash_files``
    computes the content hash and size of artifacts whose files can be read.

    Raises:
        MlmdImportError: the source cannot be read, or ``ml_metadata`` is not installed.
    """
    snapshot = read_snapshot(source)
    own = _own_records(snapshot)
    if own is None:
        plan = plan_import(snapshot, pipeline=pipeline)
    else:  # pipeledger's kubeflow flavor wrote (some of) it: its records are imported as they are
        snapshot = own.without_own_records(snapshot)
        plan = _plan_beside_own(own, source, snapshot, pipeline)
    summary = ImportSummary(source=plan.snapshot.description, dry_run=dry_run, notes=list(plan.notes))
    for kind, reasons in plan.not_mapped.items():
        summary.not_mapped[kind].update(reasons)
    if own is not None:
        own.import_own(source, store, summary, pipeline=pipeline, dry_run=dry_run)
    _Writer(plan, store, summary, dry_run=dry_run, hash_files=hash_files).write()
    return summary


def _own_records(snapshot: MlmdSnapshot) -> ModuleType | None:
    """:mod:`~pipeledger.importers.mlmd_own` if ``snapshot`` holds runs pipeledger's ``kubeflow``
    flavor recorded, else None."""
    from pipeledger.importers import mlmd_own

    return mlmd_own if mlmd_own.holds_own_records(snapshot) else None


def _plan_beside_own(own: ModuleType, source: Source, snapshot: MlmdSnapshot, pipeline: str | None) -> ImportPlan:
    """The plan for what other systems wrote beside pipeledger's own records (empty if the
    ``pipeline`` asked for is only among pipeledger's own runs)."""
    try:
        return plan_import(snapshot, pipeline=pipeline)
    except MlmdImportError:
        if pipeline is None or pipeline not in own.own_pipelines(source):
            raise
    empty = dataclasses.replace(snapshot, contexts={}, executions={}, artifacts={}, events=[], parents={})
    return plan_import(empty)


class _Writer:
    """Writes one plan through the store contract, skipping what is already recorded."""

    def __init__(
        self, plan: ImportPlan, store: MetadataStore, summary: ImportSummary, *, dry_run: bool, hash_files: bool
    ) -> None:
        self.plan = plan
        self.store = store
        self.summary = summary
        self.dry_run = dry_run
        self.hash_files = hash_files
        ids = list(plan.artifact_ids.values())
        self.recorded: set[str] = set()
        for start in range(0, len(ids), 500):
            self.recorded |= store.recorded_artifact_ids(ids[start : start + 500])
        self.counted: set[int] = set()  # MLMD artifacts counted as already present
        self.remaining = Counter(s.run_context_id for s in plan.sequence)
        self.existing: dict[int, RunRecord | None] = {}
        self.resuming: set[int] = set()
        self.hash_failures = 0

    def write(self) -> None:
        """Write every planned step (and its run, artifacts and edges) in plan order."""
        pipelines = {run.pipeline for run in self.plan.runs.values()}
        for name in sorted(pipelines):
            self.summary.present["pipelines"] += self._pipeline_exists(name)
            self.summary.imported["pipelines"] += not self._pipeline_exists(name)
        for step in self.plan.sequence:
            run = self.plan.runs[step.run_context_id]
            if self._open_run(run):
                self._write_step(run, step)
            else:
                self._count_present(step)
            self.remaining[run.context_id] -= 1
            if self.remaining[run.context_id] == 0 and self._open_run(run) and not self.dry_run:
                self.store.finish_run(run.id, run.status, end_time=run.end, error=run.error)
        if self.hash_failures:
            self.summary.notes.append(
                f"{plural(self.hash_failures, 'artifact')} could not be hashed: content hash left empty"
            )

    def _pipeline_exists(self, name: str) -> bool:
        try:
            self.store.get_pipeline(name)
        except NotFoundError:
            return False
        return True

    def _open_run(self, run: PlannedRun) -> bool:
        """Whether ``run``'s steps are to be written: it is new (created now) or was left running."""
        if run.context_id not in self.existing:
            record = self._find_run(run.id)
            self.existing[run.context_id] = record
            if record is None:
                self._create_run(run)
            elif record.status is Status.RUNNING:
                self.resuming.add(run.context_id)
                self.summary.notes.append(f"run {record.name} was left running by an earlier import: resumed")
            else:
                self.summary.present["runs"] += 1
        record = self.existing[run.context_id]
        return record is None or run.context_id in self.resuming

    def _find_run(self, run_id: str) -> RunRecord | None:
        try:
            found = self.store.get_run(run_id)
        except NotFoundError:
            return None
        return found if found.id == run_id else None

    def _create_run(self, run: PlannedRun) -> None:
        name = run.name
        taken = self._find_run_by_name(name)
        if taken is not None:
            name = mlmd_names.run_name(f"{run.name}-mlmd-{run.context_id}")
            self.summary.notes.append(f"a run named {run.name} exists already: imported as {name}")
        self.summary.imported["runs"] += 1
        self.summary.run_names.append(name)
        if self.dry_run:
            return
        create = RunCreate(
            pipeline_name=run.pipeline,
            name=name,
            parameters=run.parameters,
            config=run.config,
            tags=[IMPORT_TAG],
            id=run.id,
            start_time=run.start,
        )
        self.store.create_run(create)
        self.store.heartbeat(run.id, utcnow())  # its start is in the past: do not look crashed meanwhile

    def _find_run_by_name(self, name: str) -> RunRecord | None:
        try:
            found = self.store.get_run(name)
        except NotFoundError:
            return None
        return found if found.name == name else None

    def _count_present(self, step: PlannedStep) -> None:
        self.summary.present["step runs"] += 1
        edges = len(step.inputs) + len(step.outputs) + len(step.reused)
        self.summary.present["edges"] += edges
        for artifact_id in (*step.outputs.values(), *step.inputs.values()):
            produced_here = artifact_id in step.outputs.values()
            if (produced_here or artifact_id not in self.plan.producers) and artifact_id not in self.counted:
                self.counted.add(artifact_id)  # its own output, or external data: present once
                self.summary.present["artifacts"] += 1

    def _write_step(self, run: PlannedRun, step: PlannedStep) -> None:
        if run.context_id in self.resuming:
            try:
                existing = self.store.get_step_run(step.id)
            except NotFoundError:
                existing = None
            if existing is not None and existing.status is not Status.RUNNING:
                self._count_present(step)
                return
            if existing is not None:  # started, never finished: finish it below
                self.summary.present["step runs"] += 1
                self.summary.present["edges"] += len(step.inputs)
                self._finish(step)
                return
        inputs = self._ready_inputs(step)
        create = StepRunCreate(
            run_id=run.id,
            name=step.name,
            parameters=step.parameters,
            config=step.config,
            inputs={name: self.plan.artifact_ids[a] for name, a in inputs.items()},
            id=step.id,
            start_time=step.start,
        )
        self.summary.imported["step runs"] += 1
        self.summary.imported["edges"] += len(inputs)
        if step.cached_from is not None:
            outputs = {name: self.plan.artifact_ids[a] for name, a in step.reused.items()}
            self.summary.imported["edges"] += len(outputs)
            if not self.dry_run:
                cached_from = self.plan.steps[step.cached_from].id
                self.store.record_cached_step(create, cached_from_id=cached_from, outputs=outputs)
            return
        if not self.dry_run:
            self.store.start_step(create)
        self._finish(step)

    def _ready_inputs(self, step: PlannedStep) -> dict[str, int]:
        """``step``'s inputs that exist once external ones are registered (a producer that has not
        been written, possible only in a cycle, drops the edge)."""
        ready: dict[str, int] = {}
        for name, artifact_id in step.inputs.items():
            pipeledger_id = self.plan.artifact_ids[artifact_id]
            producer = self.plan.producers.get(artifact_id)
            if pipeledger_id not in self.recorded:
                if producer is not None and producer in self.plan.steps:
                    self.summary.not_mapped["edges"]["input produced later (a cycle in MLMD's lineage)"] += 1
                    continue
                self._register(artifact_id)
            ready[name] = artifact_id
        return ready

    def _register(self, artifact_id: int) -> None:
        artifact = self._artifact(artifact_id, "")
        self.recorded.add(artifact.id)
        self.summary.imported["artifacts"] += 1
        if not self.dry_run:
            self.store.register_artifact(artifact, at=to_time(self.plan.artifact(artifact_id).create_ms))

    def _finish(self, step: PlannedStep) -> None:
        outputs: list[ArtifactCreate] = []
        for name, artifact_id in step.outputs.items():
            if self.plan.artifact_ids[artifact_id] in self.recorded:
                self.summary.not_mapped["edges"]["output already recorded as external data"] += 1
                continue
            outputs.append(self._artifact(artifact_id, name))
            self.recorded.add(outputs[-1].id)
        self.summary.imported["artifacts"] += len(outputs)
        self.summary.imported["edges"] += len(outputs)
        if not self.dry_run:
            self.store.finish_step(
                step.id, step.status, end_time=step.end, outputs=outputs, error=step.error, error_message=step.error
            )

    def _artifact(self, artifact_id: int, edge_name: str) -> ArtifactCreate:
        """The pipeledger artifact for MLMD artifact ``artifact_id``, output under ``edge_name``."""
        artifact = self.plan.artifact(artifact_id)
        properties: dict[str, JSON] = {**artifact.custom_properties, **artifact.properties}
        data_type = properties.pop(ZENML_DATATYPE, None)
        materializer = properties.pop(ZENML_MATERIALIZER, None)
        type_name = mlmd_names.normalise(artifact.type)
        marker = f"mlmd:{type_name}"
        valid, renamed = valid_keys(properties)
        metadata: dict[str, JSON] = {
            **valid,
            "mlmd_id": artifact.id,
            "mlmd_state": artifact.state,
            "mlmd_name": artifact.name,
        }
        if type_name != artifact.type:
            metadata["mlmd_type"] = artifact.type
        if renamed:
            metadata["mlmd_original_keys"] = renamed
        create = ArtifactCreate(
            name=edge_name,
            uri=artifact.uri,
            type=type_name,
            data_type=data_type if isinstance(data_type, str) and data_type else marker,
            materializer=materializer if isinstance(materializer, str) and materializer else marker,
            materializer_version="",
            content_hash="",
            size=0,
            metadata=metadata,
            id=self.plan.artifact_ids[artifact_id],
        )
        if self.hash_files and artifact.uri and not self.dry_run:
            create = self._hashed(create)
        return create

    def _hashed(self, create: ArtifactCreate) -> ArtifactCreate:
        from pipeledger.artifacts.store import hash_artifact, uri_exists

        try:
            if not uri_exists(create.uri):
                return create
            content_hash, size = hash_artifact(create.uri)
        except Exception:  # an unreachable or unsupported filesystem: keep the record unhashed
            self.hash_failures += 1
            return create
        return dataclasses.replace(create, content_hash=content_hash, size=size)
