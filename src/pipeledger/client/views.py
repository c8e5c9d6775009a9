"""Read-only views of what the metadata store recorded: Pipeline -> Run -> Step -> Artifact.

Views are lazy: each loads what it shows on first access, and a run loads the
inputs, outputs and metadata of all its steps in one query each (no query per
step). Names that do not exist raise :class:`~pipeledger.exceptions.NotFoundError`
(a ``KeyError``) listing those that do.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pipeledger.artifacts.materializers import default_registry
from pipeledger.artifacts.store import read_artifact, read_text
from pipeledger.exceptions import NotFoundError, PipeledgerError
from pipeledger.models import (
    JSON,
    ArtifactRecord,
    Direction,
    EntityKind,
    LineageRecord,
    LineageStep,
    PipelineRecord,
    RunRecord,
    Status,
    StepIO,
    StepRunRecord,
    shown_run_status,
    shown_step_status,
)
from pipeledger.models import LineageEdge as LineageEdgeRecord

if TYPE_CHECKING:
    from pipeledger.comparison import Difference
    from pipeledger.lineage.graph import LineageGraph
    from pipeledger.metadata_store.base import MetadataStore

V = TypeVar("V")


class NamedMapping(Mapping[str, V]):
    """An ordered read-only mapping whose missing keys raise a NotFoundError listing the keys."""

    def __init__(self, items: dict[str, V], what: str, where: str) -> None:
        self._items = items
        self._what = what
        self._where = where

    def __getitem__(self, key: str) -> V:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise NotFoundError(f"no {self._what} named {key!r} in {self._where}; {self._what}s: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._items.items())}}}"


def _duration(start: datetime | None, end: datetime | None) -> timedelta | None:
    return end - start if start and end else None


class PipelineView:
    """A pipeline and its runs.

    >>> p = Client().get_pipeline("training")      # doctest: +SKIP
    >>> p.latest_run.status                        # doctest: +SKIP
    """

    def __init__(self, record: PipelineRecord, store: MetadataStore) -> None:
        self._record = record
        self._store = store

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

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"


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


class RunView:
    """One run of a pipeline: its status, configuration, environment and steps."""

    def __init__(self, record: RunRecord, store: MetadataStore) -> None:
        self._record = record
        self._store = store

    @property
    def record(self) -> RunRecord:
        """The underlying record."""
        return self._record

    id = property(lambda self: self._record.id, doc="The run's id.")
    name = property(lambda self: self._record.name, doc="The run's unique name.")
    number = property(lambda self: self._record.number, doc="The run's number in its pipeline.")
    pipeline_name = property(lambda self: self._record.pipeline_name, doc="Its pipeline's name.")
    start_time = property(lambda self: self._record.start_time, doc="When the run started (UTC).")
    end_time = property(lambda self: self._record.end_time, doc="When it ended (None if running).")
    parameters = property(lambda self: self._record.parameters, doc="The pipeline's parameters.")
    config = property(lambda self: self._record.config, doc="Resolved configuration: options and the step graph.")
    environment = property(lambda self: self._record.environment, doc="Python, platform and package versions.")
    stack = property(lambda self: self._record.stack, doc="Snapshot of the stack it ran on.")
    git_sha = property(lambda self: self._record.git_sha, doc="Git commit of the pipeline's code.")
    git_dirty = property(lambda self: self._record.git_dirty, doc="Whether the git tree had uncommitted changes.")
    code_hash = property(lambda self: self._record.code_hash, doc="Hash of the pipeline's and steps' source.")
    error = property(lambda self: self._record.error, doc="Why the run failed, if it did.")
    tags = property(lambda self: self._record.tags, doc="Tags given with ``with_options(tags=...)``.")

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
    def _step_records(self) -> list[StepRunRecord]:
        return self._store.list_step_runs(self.id)

    @cached_property
    def _io(self) -> dict[str, list[StepIO]]:
        grouped: dict[str, list[StepIO]] = {}
        for edge in self._store.list_step_io([s.id for s in self._step_records]):
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
        from pipeledger.lineage.graph import LineageEdge, LineageNode, from_record

        steps: dict[str, LineageStep] = {}
        arts: dict[str, ArtifactRecord] = {}
        edges: list[LineageEdgeRecord] = []
        for record in self._step_records:
            steps[record.id] = _lineage_step(record, self._record)
            for edge in self._io.get(record.id, []):
                arts[edge.artifact.id] = edge.artifact
                edges.append(LineageEdgeRecord(record.id, edge.artifact.id, edge.direction, edge.name))
        graph = from_record(LineageRecord(arts, steps, edges), store=self._store)
        recorded = {s.name for s in steps.values()}
        missing = [
            LineageNode(f"not-run:{name}", "step", name, {"status": "not run", "run": self.name})
            for name in self.config.get("steps", {})
            if name not in recorded
        ]
        by_name = {n.name: n.id for n in graph.steps}
        by_name.update({n.name: n.id for n in missing})
        extra_edges = []
        for name in (n.name for n in missing):
            for upstream in self.config["steps"][name].get("upstream", []):
                if upstream in by_name:
                    extra_edges.append(LineageEdge(by_name[upstream], by_name[name], "consumed", "not run"))
        return type(graph)([*graph.nodes, *missing], [*graph.edges, *extra_edges], None, self._store)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(s.name)}</td><td>{s.status.value}</td>"
            f"<td>{s.duration.total_seconds() if s.duration else ''}</td>"
            f"<td>{html.escape(', '.join(s.outputs))}</td></tr>"
            for s in self.steps.values()
        )
        return (
            f"<div><b>{html.escape(self.pipeline_name)}</b> run <b>{html.escape(self.name)}</b> "
            f"{self.status.value}<table><tr><th>step</th><th>status</th><th>seconds</th><th>outputs</th></tr>"
            f"{rows}</table>{self.graph()._repr_html_()}</div>"
        )

    def reproduce(self) -> RunView:
        """Run this run's pipeline again with the recorded parameters and options, after
        printing each difference between the recorded and the current code and environment."""
        from pipeledger.reproduce import rerun

        return rerun(self)

    def diff(self, other: RunView) -> list[Difference]:
        """Parameter, code, environment, metric and output-content differences with ``other``."""
        from pipeledger.comparison import diff_runs

        return diff_runs(self, other)

    def refresh(self) -> RunView:
        """A fresh view of this run, re-read from the store."""
        return RunView(self._store.get_run(self.id), self._store)

    def __repr__(self) -> str:
        return f"<Run {self.pipeline_name}/{self.name} {self.status}>"


class StepView:
    """One step run: what it consumed, produced, logged, and how it ended."""

    def __init__(
        self,
        record: StepRunRecord,
        store: MetadataStore,
        *,
        run: RunView | None = None,
        io: list[StepIO] | None = None,
        metadata: Any = None,
    ) -> None:
        self._record = record
        self._store = store
        self._run = run
        self._io_list = io
        self._metadata_loader = metadata

    id = property(lambda self: self._record.id, doc="The step run's id.")
    name = property(lambda self: self._record.name, doc="The step's name in its pipeline.")
    entrypoint = property(lambda self: self._record.entrypoint, doc="Import path of the step function.")
    docstring = property(lambda self: self._record.docstring, doc="The step function's docstring.")
    parameters = property(lambda self: self._record.parameters, doc="Parameter values it ran with.")
    config = property(lambda self: self._record.config, doc="Its recorded configuration.")
    source_hash = property(lambda self: self._record.source_hash, doc="sha256 of its source.")
    cache_key = property(lambda self: self._record.cache_key, doc="Its cache key, if computed.")
    start_time = property(lambda self: self._record.start_time, doc="When it started (UTC).")
    end_time = property(lambda self: self._record.end_time, doc="When it ended.")
    error = property(lambda self: self._record.error, doc="Traceback text if it failed.")

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
        or ``"cache hit: reused the outputs of step `train` of run `training-3`"``."""
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
        items = {e.name: ArtifactView(e.artifact, self._store) for e in self._edges if e.direction is direction}
        key = "outputs" if direction is Direction.OUTPUT else "inputs"
        order = list(self.config.get(key) or [])
        items = dict(
            sorted(items.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
        )
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
        from pipeledger.lineage.graph import from_record, step_node

        record = self._store.lineage(step_run_id=self.id, direction=direction, depth=depth)
        me = step_node(_lineage_step(self._record, self.run.record))
        return from_record(record, root=self.id, extra=[me], store=self._store)

    def _repr_html_(self) -> str:
        facts = {
            "step": self.name,
            "status": self.status.value,
            "run": self.run.name,
            "duration (s)": self.duration.total_seconds() if self.duration else "",
            "parameters": self.parameters,
            "inputs": ", ".join(self.inputs),
            "outputs": ", ".join(self.outputs),
            "metadata": self.metadata,
            "cache": self.cache_explanation,
        }
        rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
        return f"<table>{rows}</table>"

    def __repr__(self) -> str:
        return f"<Step {self.name} {self.status}>"


class ArtifactView:
    """An artifact: where it is stored, what it holds, who produced it."""

    def __init__(self, record: ArtifactRecord, store: MetadataStore) -> None:
        self._record = record
        self._store = store

    id = property(lambda self: self._record.id, doc="The artifact's id.")
    uri = property(lambda self: self._record.uri, doc="Where its files are.")
    type = property(lambda self: self._record.type, doc='Its kind ("Data", "Dataset", "Model").')
    data_type = property(lambda self: self._record.data_type, doc="Import path of the value's type.")
    materializer = property(
        lambda self: self._record.materializer, doc="Import path of the materializer that wrote it."
    )
    materializer_version = property(lambda self: self._record.materializer_version, doc="Version of that materializer.")
    content_hash = property(lambda self: self._record.content_hash, doc="sha256 of its files (names and contents).")
    size = property(lambda self: self._record.size, doc="Total size of its files in bytes.")
    created_at = property(lambda self: self._record.created_at, doc="When it was recorded.")
    artifact_store = property(lambda self: self._record.artifact_store, doc="Name of the artifact store holding it.")

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
        from pipeledger.lineage.graph import artifact_node, from_record

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

    def __repr__(self) -> str:
        return f"<Artifact {self.id} {self.type} {self.data_type}>"


def _lineage_step(record: StepRunRecord, run: RunRecord) -> LineageStep:
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


def _single(mapping: NamedMapping[ArtifactView], what: str, step: str) -> ArtifactView:
    if len(mapping) != 1:
        names = ", ".join(mapping) or "none"
        raise PipeledgerError(f"step {step!r} has {len(mapping)} {what}s ({names}); use .{what}s[name]")
    return next(iter(mapping.values()))
