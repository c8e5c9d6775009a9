"""Read-only views of what the metadata store recorded: Pipeline -> Run -> Step -> Artifact.

Each view is a :class:`~pipeledger.client.base.View` (parent, children by name, a repr
that reads it back). Views are lazy: each loads what it shows on first access, and a run loads the
inputs, outputs and metadata of all its steps in one query each (no query per
step). Names that do not exist raise :class:`~pipeledger.exceptions.NotFoundError`
(a ``KeyError``) listing those that do.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

from pipeledger.artifacts.materializers import default_registry
from pipeledger.artifacts.store import preview_artifact, read_artifact, read_text
from pipeledger.client.base import NamedMapping, View
from pipeledger.client.html_repr import run_html, step_html
from pipeledger.client.tags import Taggable
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.lineage.graph import (
    LineageGraph,
    artifact_node,
    from_record,
    lineage_step,
    run_graph,
    step_artifacts,
    step_node,
)
from pipeledger.models import (
    JSON,
    ArtifactRecord,
    Direction,
    EntityKind,
    PipelineRecord,
    RunRecord,
    RunSteps,
    Status,
    StepIO,
    StepRunRecord,
    shown_run_status,
    shown_step_status,
)

if TYPE_CHECKING:
    from pipeledger.comparison import Difference
    from pipeledger.metadata_store.base import MetadataStore


def _duration(start: datetime | None, end: datetime | None) -> timedelta | None:
    return end - start if start and end else None


class PipelineView(View[PipelineRecord, "RunView"]):
    """A pipeline and its runs: ``p["training-3"]`` is a run, ``for run in p`` iterates them oldest
    first.

    >>> p = Client().get_pipeline("training")      # doctest: +SKIP
    >>> p.latest_run.status                        # doctest: +SKIP
    """

    @property
    def id(self) -> str:
        """The pipeline's id."""
        return self._record.id

    @property
    def name(self) -> str:
        """The pipeline's name (the decorated function's name unless given)."""
        return self._record.name

    @property
    def docstring(self) -> str | None:
        """The pipeline function's docstring at its first run."""
        return self._record.docstring

    @property
    def created_at(self) -> datetime:
        """When the pipeline was first recorded."""
        return self._record.created_at

    @property
    def project(self) -> str:
        """The project the pipeline (and its runs) belongs to."""
        return self._record.project

    @property
    def runs(self) -> RunSequence:
        """The pipeline's runs, oldest first, fetched page by page: ``p.runs[-1]``, ``len(p.runs)``."""
        return RunSequence(self._store, self.name)

    @property
    def latest_run(self) -> RunView:
        """The most recent run.

        Raises:
            NotFoundError: the pipeline has no run.
        """
        found = self._store.list_runs(pipeline=self.name, limit=1)
        if not found:
            raise NotFoundError(f"pipeline {self.name!r} has no run")
        return RunView(found[0], self._store)

    def get_run(self, name: str) -> RunView:
        """The run of this pipeline called ``name``.

        Raises:
            NotFoundError: no such run in this pipeline.
        """
        record = self._store.get_run(name)
        if record.pipeline_id != self.id:
            raise NotFoundError(f"run {name!r} belongs to pipeline {record.pipeline_name!r}")
        return RunView(record, self._store)

    def metrics(self, keys: Sequence[str] | str | None = None, *, last: int | None = None) -> Any:
        """Metrics its steps logged, one row per run (oldest first): a pandas DataFrame indexed
        by run name when pandas is installed, else a list of records. ``keys`` selects metrics
        (default: all); ``last`` keeps only the latest runs. A key no step logged raises
        NotFoundError listing the logged keys.

        Example::

            client.get_pipeline("training").metrics(["accuracy"])
        """
        from pipeledger.comparison import metric_points, metrics_frame

        wanted = [keys] if isinstance(keys, str) else keys
        return metrics_frame(metric_points(self._store, self.name, wanted, last))

    def get_run_names(self, limit: int | None = None) -> list[str]:
        """Names of the pipeline's runs, newest first."""
        return self._store.list_run_names(pipeline=self.name, limit=limit)

    @property
    def parent(self) -> None:
        """A pipeline is the top level: None."""
        return None

    def _child(self, name: str) -> RunView:
        return self.get_run(name)

    def _children(self) -> Iterator[RunView]:
        return iter(self.runs)

    def __repr__(self) -> str:
        return f"Client().get_pipeline({self.name!r})"


class RunSequence(Sequence["RunView"]):
    """A pipeline's runs, oldest first, loaded lazily in pages."""

    PAGE = 100

    def __init__(self, store: MetadataStore, pipeline: str) -> None:
        self._store = store
        self._pipeline = pipeline

    def __len__(self) -> int:
        return self._store.count_runs(pipeline=self._pipeline)

    @overload
    def __getitem__(self, index: int) -> RunView: ...

    @overload
    def __getitem__(self, index: slice) -> list[RunView]: ...

    def __getitem__(self, index: int | slice) -> RunView | list[RunView]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            records = self._store.list_runs(
                pipeline=self._pipeline,
                newest_first=False,
                offset=start,
                limit=max(0, stop - start),
            )
            return [RunView(r, self._store) for r in records]
        if index < 0:
            records = self._store.list_runs(pipeline=self._pipeline, offset=-index - 1, limit=1)
        else:
            records = self._store.list_runs(pipeline=self._pipeline, newest_first=False, offset=index, limit=1)
        if not records:
            raise IndexError(f"pipeline {self._pipeline!r} has no run at index {index}")
        return RunView(records[0], self._store)

    def __iter__(self) -> Iterator[RunView]:
        offset = 0
        while True:
            page = self._store.list_runs(pipeline=self._pipeline, newest_first=False, offset=offset, limit=self.PAGE)
            yield from (RunView(r, self._store) for r in page)
            if len(page) < self.PAGE:
                return
            offset += self.PAGE

    def __repr__(self) -> str:
        return f"<runs of {self._pipeline}: {len(self)}>"


class RunView(Taggable, View[RunRecord, "StepView"]):
    """One run of a pipeline: its status, configuration, environment and steps
    (``run["train"]`` is a step, ``for step in run`` iterates them in the order they ran)."""

    @property
    def id(self) -> str:
        """The run's id."""
        return self._record.id

    @property
    def name(self) -> str:
        """The run's unique name."""
        return self._record.name

    @property
    def number(self) -> int:
        """The run's number in its pipeline."""
        return self._record.number

    @property
    def pipeline_name(self) -> str:
        """Its pipeline's name."""
        return self._record.pipeline_name

    @property
    def project(self) -> str:
        """Its pipeline's project (``default`` unless created in another)."""
        return self._record.project

    @property
    def start_time(self) -> datetime:
        """When the run started (UTC)."""
        return self._record.start_time

    @property
    def end_time(self) -> datetime | None:
        """When it ended (None if running)."""
        return self._record.end_time

    @property
    def parameters(self) -> dict[str, JSON]:
        """The pipeline's parameters."""
        return self._record.parameters

    @property
    def config(self) -> dict[str, JSON]:
        """Resolved configuration: options and the step graph."""
        return self._record.config

    @property
    def environment(self) -> dict[str, JSON]:
        """Python, platform and package versions."""
        return self._record.environment

    @property
    def stack(self) -> dict[str, JSON]:
        """Snapshot of the stack it ran on."""
        return self._record.stack

    @property
    def git_sha(self) -> str | None:
        """Git commit of the pipeline's code."""
        return self._record.git_sha

    @property
    def git_dirty(self) -> bool | None:
        """Whether the git tree had uncommitted changes."""
        return self._record.git_dirty

    @property
    def code_hash(self) -> str | None:
        """Hash of the pipeline's and steps' source."""
        return self._record.code_hash

    @property
    def error(self) -> str | None:
        """Why the run failed, if it did."""
        return self._record.error

    _tag_kind = EntityKind.RUN

    @property
    def tags(self) -> list[str]:
        """Its tags, sorted: those given with ``with_options(tags=...)`` and those added since
        (:meth:`add_tags`; as of when this view was read or its tags last changed)."""
        return self._record.tags

    def _tags_changed(self) -> None:
        tags = self._store.get_tags(EntityKind.RUN, [self.id]).get(self.id, [])
        self._record = dataclasses.replace(self._record, tags=tags)

    @property
    def status(self) -> Status:
        """``running``, ``completed``, ``failed``, ``crashed``... A run recorded as running whose
        heartbeat is older than ``$PIPELEDGER_HEARTBEAT_TIMEOUT`` reads as ``crashed``."""
        return shown_run_status(self._record.status, self._record.heartbeat_at)

    @property
    def duration(self) -> timedelta | None:
        """How long the run took (None while running)."""
        return _duration(self.start_time, self.end_time)

    @property
    def pipeline(self) -> PipelineView:
        """The pipeline this run belongs to."""
        return PipelineView(self._store.get_pipeline(self.pipeline_name), self._store)

    @cached_property
    def _steps_and_io(self) -> RunSteps:
        # One call (one request on `rest`); by name, which finds the run in one query.
        return self._store.get_run_steps(self.name)

    @cached_property
    def _step_records(self) -> list[StepRunRecord]:
        return self._steps_and_io.steps

    @cached_property
    def _io(self) -> dict[str, list[StepIO]]:
        grouped: dict[str, list[StepIO]] = {}
        for edge in self._steps_and_io.io:
            grouped.setdefault(edge.step_run_id, []).append(edge)
        return grouped

    @cached_property
    def _step_metadata(self) -> dict[str, dict[str, JSON]]:
        return self._store.get_metadata(EntityKind.STEP_RUN, [s.id for s in self._step_records])

    @cached_property
    def steps(self) -> NamedMapping[StepView]:
        """The run's steps in the order they ran: ``run.steps["train"]``."""
        views = {
            s.name: StepView(
                s,
                self._store,
                run=self,
                io=self._io.get(s.id, []),
                metadata=lambda sid=s.id: self._step_metadata.get(sid, {}),
            )
            for s in self._step_records
        }
        return NamedMapping(views, "step", f"run {self.name!r}")

    def get_step(self, name: str) -> StepView:
        """The step called ``name`` (raises NotFoundError listing the steps)."""
        return self.steps[name]

    @property
    def step_names(self) -> list[str]:
        """Names of the recorded steps, in the order they ran."""
        return list(self.steps)

    @cached_property
    def metadata(self) -> dict[str, JSON]:
        """Key/value metadata attached to the run itself."""
        return self._store.get_metadata(EntityKind.RUN, [self.id]).get(self.id, {})

    def graph(self) -> LineageGraph:
        """The run's DAG: its step runs (and steps that did not run) with the artifacts they
        consumed and produced."""
        edges = [edge for record in self._step_records for edge in self._io.get(record.id, [])]
        return run_graph(self._record, self._step_records, edges, self._store)

    def _repr_html_(self) -> str:
        return run_html(self)

    def reproduce(self) -> RunView:
        """Deprecated: use ``pipeledger.rerun(run)``, which this calls (warning once per call site).

        Runs this run's pipeline again with the recorded parameters and options, after printing
        each difference between the recorded and the current code and environment.
        """
        warnings.warn(
            "run.reproduce() is deprecated: use pipeledger.rerun(run) (the read side no longer starts runs)",
            DeprecationWarning,
            stacklevel=2,
        )
        # The one import of execution code from the read side, allowed by name in the import
        # contracts (pyproject.toml) until this method is removed.
        from pipeledger.reproduce import rerun

        return rerun(self)

    def diff(self, other: RunView) -> list[Difference]:
        """Parameter, code, environment, metric and output-content differences with ``other``."""
        from pipeledger.comparison import diff_runs

        return diff_runs(self._store, self._record, other.record)

    def refresh(self) -> RunView:
        """A fresh view of this run, re-read from the store."""
        return RunView(self._store.get_run(self.id), self._store)

    @property
    def parent(self) -> PipelineView:
        """The pipeline this run belongs to (as :attr:`pipeline`)."""
        return self.pipeline

    def _child(self, name: str) -> StepView:
        return self.steps[name]

    def _children(self) -> Iterator[StepView]:
        return iter(self.steps.values())

    def __repr__(self) -> str:
        return f"Client().get_run({self.name!r})"


class StepView(Taggable, View[StepRunRecord, "ArtifactView"]):
    """One step run: what it consumed, produced, logged, and how it ended (``step["model"]`` is
    an output, ``for artifact in step`` iterates the outputs)."""

    _tag_kind = EntityKind.STEP_RUN

    def __init__(
        self,
        record: StepRunRecord,
        store: MetadataStore,
        *,
        run: RunView | None = None,
        io: list[StepIO] | None = None,
        metadata: Any = None,
    ) -> None:
        super().__init__(record, store)
        self._run = run
        self._io_list = io
        self._metadata_loader = metadata

    @property
    def id(self) -> str:
        """The step run's id."""
        return self._record.id

    @property
    def name(self) -> str:
        """The step's name in its pipeline."""
        return self._record.name

    @property
    def entrypoint(self) -> str | None:
        """Import path of the step function."""
        return self._record.entrypoint

    @property
    def docstring(self) -> str | None:
        """The step function's docstring."""
        return self._record.docstring

    @property
    def parameters(self) -> dict[str, JSON]:
        """Parameter values it ran with."""
        return self._record.parameters

    @property
    def config(self) -> dict[str, JSON]:
        """Its recorded configuration."""
        return self._record.config

    @property
    def source_hash(self) -> str | None:
        """sha256 of its source."""
        return self._record.source_hash

    @property
    def cache_key(self) -> str | None:
        """Its cache key, if computed."""
        return self._record.cache_key

    @property
    def start_time(self) -> datetime:
        """When it started (UTC)."""
        return self._record.start_time

    @property
    def end_time(self) -> datetime | None:
        """When it ended."""
        return self._record.end_time

    @property
    def error(self) -> str | None:
        """Traceback text if it failed."""
        return self._record.error

    @property
    def error_message(self) -> str | None:
        """The message of the exception it failed with (every line of it), if it failed; for step
        runs recorded before pipeledger kept it, the last line of :attr:`error` (see
        :attr:`pipeledger.models.StepRunRecord.failure_message`)."""
        return self._record.failure_message

    @property
    def entrypoint_name(self) -> str | None:
        """The step function's name."""
        return self.entrypoint.rpartition(".")[2] if self.entrypoint else None

    @property
    def status(self) -> Status:
        """``running``, ``completed``, ``failed``, ``cached``, ``crashed`` (a step still recorded
        as running in a crashed run)."""
        if self._record.status is not Status.RUNNING:
            return self._record.status
        return shown_step_status(self._record.status, self.run.status)

    @property
    def is_cached(self) -> bool:
        """Whether this step reused an earlier step run's outputs."""
        return self._record.status is Status.CACHED

    @property
    def cache_explanation(self) -> str:
        """Why the step hit or missed the cache, e.g. ``"cache miss: parameter `lr` 0.1 → 0.2"``
        or ``"cache hit: reused the outputs of step `train` of run `training-3`"``; for a
        skipped step, why it did not run."""
        if self._record.status is Status.SKIPPED and self.config.get("skipped"):
            return f"not run: {self.config['skipped']}"
        info = self.config.get("cache") or {}
        return str(info.get("explanation") or "no cache information recorded")

    @property
    def cache_components(self) -> dict[str, JSON]:
        """What the step's cache key hashed: code, parameters, input contents, output materializers,
        cache_version (see :mod:`pipeledger.caching.key`)."""
        return dict(self._record.cache_components or {})

    @property
    def cached_from(self) -> StepView | None:
        """For a cached step, the step run that computed its outputs."""
        if self._record.cached_from_id is None:
            return None
        return StepView(self._store.get_step_run(self._record.cached_from_id), self._store)

    @property
    def is_completed(self) -> bool:
        """Whether the step finished successfully (computed or cached)."""
        return self._record.status in (Status.COMPLETED, Status.CACHED)

    @property
    def duration(self) -> timedelta | None:
        """How long the step took."""
        return _duration(self.start_time, self.end_time)

    @property
    def run(self) -> RunView:
        """The run this step belongs to."""
        if self._run is None:
            self._run = RunView(self._store.get_run(self._record.run_id), self._store)
        return self._run

    @cached_property
    def _edges(self) -> list[StepIO]:
        if self._io_list is None:
            self._io_list = self._store.list_step_io([self.id])
        return self._io_list

    def _artifacts(self, direction: Direction) -> NamedMapping[ArtifactView]:
        records = step_artifacts(self._record, self._edges, direction)
        items = {name: ArtifactView(record, self._store) for name, record in records.items()}
        return NamedMapping(items, str(direction), f"step {self.name!r}")

    @cached_property
    def inputs(self) -> NamedMapping[ArtifactView]:
        """Input name -> the artifact consumed."""
        return self._artifacts(Direction.INPUT)

    @cached_property
    def outputs(self) -> NamedMapping[ArtifactView]:
        """Output name -> the artifact produced."""
        return self._artifacts(Direction.OUTPUT)

    @property
    def input(self) -> ArtifactView:
        """The single input (raises if the step has not exactly one)."""
        return _single(self.inputs, "input", self.name)

    @property
    def output(self) -> ArtifactView:
        """The single output (raises if the step has not exactly one)."""
        return _single(self.outputs, "output", self.name)

    @cached_property
    def metadata(self) -> dict[str, JSON]:
        """Key/value metadata the step logged with ``log_metadata``."""
        if self._metadata_loader is not None:
            return dict(self._metadata_loader())
        return self._store.get_metadata(EntityKind.STEP_RUN, [self.id]).get(self.id, {})

    @property
    def logs(self) -> str:
        """What the step printed and logged while it ran ("" if nothing was captured)."""
        if not self._record.logs_uri:
            return ""
        return read_text(self._record.logs_uri)

    @property
    def parent_steps(self) -> list[StepView]:
        """The steps of the same run whose outputs this step consumed."""
        producers = {e.artifact.producer_step_run_id for e in self._edges if e.direction is Direction.INPUT}
        return [s for s in self.run.steps.values() if s.id in producers]

    def lineage(self, direction: str = "upstream", depth: int | None = None) -> LineageGraph:
        """The lineage around this step run: its inputs' ancestry (``upstream``), its outputs'
        descendants (``downstream``) or ``both``, across runs; one SQL statement."""
        record = self._store.lineage(step_run_id=self.id, direction=direction, depth=depth)
        me = step_node(lineage_step(self._record, self.run.record))
        return from_record(record, root=self.id, extra=[me], store=self._store)

    def _repr_html_(self) -> str:
        return step_html(self)

    @property
    def parent(self) -> RunView:
        """The run this step belongs to (as :attr:`run`)."""
        return self.run

    def _child(self, name: str) -> ArtifactView:
        return self.outputs[name]

    def _children(self) -> Iterator[ArtifactView]:
        return iter(self.outputs.values())

    def __repr__(self) -> str:
        return f"{self.run!r}[{self.name!r}]"


class ArtifactView(Taggable, View[ArtifactRecord, Any]):
    """An artifact: where it is stored, what it holds, who produced it. An artifact is a leaf:
    it has no children to look up (read its value with :meth:`read`)."""

    _tag_kind = EntityKind.ARTIFACT

    @property
    def id(self) -> str:
        """The artifact's id."""
        return self._record.id

    @property
    def uri(self) -> str:
        """Where its files are."""
        return self._record.uri

    @property
    def type(self) -> str:
        """Its kind ("Data", "Dataset", "Model")."""
        return self._record.type

    @property
    def data_type(self) -> str:
        """Import path of the value's type."""
        return self._record.data_type

    @property
    def materializer(self) -> str:
        """Import path of the materializer that wrote it."""
        return self._record.materializer

    @property
    def materializer_version(self) -> str:
        """Version of that materializer."""
        return self._record.materializer_version

    @property
    def content_hash(self) -> str:
        """sha256 of its files (names and contents)."""
        return self._record.content_hash

    @property
    def size(self) -> int:
        """Total size of its files in bytes."""
        return self._record.size

    @property
    def created_at(self) -> datetime:
        """When it was recorded."""
        return self._record.created_at

    @property
    def artifact_store(self) -> str | None:
        """Name of the artifact store holding it."""
        return self._record.artifact_store

    @property
    def producer(self) -> StepView | None:
        """The step run that really produced it (None for an artifact registered from outside)."""
        if self._record.producer_step_run_id is None:
            return None
        return StepView(self._store.get_step_run(self._record.producer_step_run_id), self._store)

    producer_step = producer

    @cached_property
    def metadata(self) -> dict[str, JSON]:
        """Facts recorded by its materializer (shape, dtype, Python version...)."""
        return self._store.get_metadata(EntityKind.ARTIFACT, [self.id]).get(self.id, {})

    def lineage(self, direction: str = "upstream", depth: int | None = None) -> LineageGraph:
        """The artifacts and step runs this artifact comes from (``upstream``), that were made
        from it (``downstream``), or ``both``; across runs, following cached artifacts to their
        true producer; at most ``depth`` steps away (None: all). One SQL statement.

        Example::

            g = model.lineage()
            sorted(n.name for n in g.steps)
        """
        record = self._store.lineage(artifact_id=self.id, direction=direction, depth=depth)
        if self.id in record.artifacts:
            return from_record(record, root=self.id, store=self._store)
        name, run = self.data_type.rpartition(".")[2], None
        producer = self.producer  # the root alone (no edge in the walk): name it after its producer
        if producer is not None:
            output = next((n for n, a in producer.outputs.items() if a.id == self.id), "output")
            name, run = f"{producer.name}.{output}", producer.run.name
        return from_record(record, root=self.id, extra=[artifact_node(self._record, name, run)], store=self._store)

    def read(self) -> Any:
        """Load the artifact's value with the materializer that wrote it.

        Raises:
            ArtifactNotFoundError: its files are gone.
            MaterializerError: it cannot be loaded.
        """
        return read_artifact(self._record, default_registry())

    def preview(self) -> dict[str, JSON]:
        """A bounded summary of the value without loading it (for listings, notebooks and UIs):
        ``files`` (name → bytes) and ``preview``, by kind: ``json`` (the first KiB of text),
        ``bytes``, ``array`` (shape, dtype, statistics of the first MiB), ``table`` (columns,
        rows, the first rows), or ``none`` (pickles and models are never loaded to preview
        them). Reads a bounded amount, with ranged reads on object storage.

        Raises:
            ArtifactNotFoundError: its files are gone.
        """
        return preview_artifact(self._record, default_registry())

    @property
    def parent(self) -> StepView | None:
        """The step run that produced it (as :attr:`producer`)."""
        return self.producer

    def _child(self, name: str) -> Any:
        raise NotFoundError(f"artifact {self.id} has no child {name!r}: an artifact is a leaf; read it with .read()")

    def _children(self) -> Iterator[Any]:
        return iter(())

    def __repr__(self) -> str:
        return f"Client().get_artifact({self.id!r})"


def _single(mapping: NamedMapping[ArtifactView], what: str, step: str) -> ArtifactView:
    if len(mapping) != 1:
        names = ", ".join(mapping) or "none"
        raise PipeledgerError(f"step {step!r} has {len(mapping)} {what}s ({names}); use .{what}s[name]")
    return next(iter(mapping.values()))
