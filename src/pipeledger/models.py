"""Plain domain records exchanged between the orchestrator, the metadata store and the client.

These are what a :class:`~pipeledger.metadata_store.base.MetadataStore` accepts and
returns. They import nothing from SQLAlchemy: a store that is not SQL (or a test)
can produce them too. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

JSON = Any
"""A JSON-compatible value: None, bool, int, float, str, list or dict of them."""

LazyT = TypeVar("LazyT", bound="LazyFields")


class Status(str, enum.Enum):
    """The status of a pipeline run or a step run.

    ``skipped`` is a step that was deliberately not run: an upstream step failed (the
    local orchestrator), or its condition was false (Kubeflow Pipelines' "not triggered",
    imported from ML Metadata). It is finished, has no outputs, never serves as a cache
    entry, and does not make its run fail.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CACHED = "cached"
    CRASHED = "crashed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """True for every status but ``running``."""
        return self is not Status.RUNNING


class Direction(str, enum.Enum):
    """Whether an artifact is a step run's input or output."""

    INPUT = "input"
    OUTPUT = "output"

    def __str__(self) -> str:
        return self.value


#: The project of pipelines created without naming one (see :class:`PipelineRecord`).
DEFAULT_PROJECT = "default"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def shown_run_status(status: Status, heartbeat_at: datetime | None) -> Status:
    """The status every read shows for a run recorded with ``status``: one recorded ``running``
    whose last heartbeat is older than ``$PIPELEDGER_HEARTBEAT_TIMEOUT`` shows ``crashed`` (its
    process died; ``run list`` and ``gc`` then record it so). The one place this is decided."""
    from pipeledger.settings import heartbeat_timeout

    if status is not Status.RUNNING or heartbeat_at is None:
        return status
    stale = (utcnow() - heartbeat_at).total_seconds() > heartbeat_timeout()
    return Status.CRASHED if stale else status


def shown_step_status(status: Status, run_status: Status) -> Status:
    """The status every read shows for a step run recorded with ``status`` in a run showing
    ``run_status`` (see :func:`shown_run_status`): a step recorded ``running`` in a crashed run
    shows ``crashed``."""
    if status is Status.RUNNING and run_status is Status.CRASHED:
        return Status.CRASHED
    return status


def new_id() -> str:
    """A new 32-hex-digit identifier, ordered by creation time.

    The first 12 digits are the Unix time in milliseconds, the rest random (the
    layout of a UUIDv7 without its version bits), so ids sort chronologically and
    index inserts stay at the end of the B-tree.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


class LazyFields:
    """Base of the records a store may build with some fields still encoded (JSON text, stored
    timestamps): each such field is decoded on its first read, once.

    A store builds one with :func:`lazy_record`. To every caller it is the record it says it is:
    reading a field, ``==``, ``repr``, :func:`dataclasses.asdict` and :func:`dataclasses.replace`
    see decoded values, and a pickled or copied record carries decoded values only. A view that
    reads a run's step names and statuses therefore never decodes their parameters. A record
    built by its constructor has nothing pending and behaves exactly as a plain dataclass.
    """

    __slots__ = ()

    if not TYPE_CHECKING:  # for type checkers, a record has its declared fields and nothing else

        def __getattr__(self, name: str) -> Any:
            # Reached only for an attribute the instance does not hold: a field still encoded.
            pending = self.__dict__.get("_encoded")
            found = None if pending is None else pending[1].get(name)
            if found is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            index, decode = found
            raw = pending[0][index]
            value = raw if decode is None or raw is None else decode(raw)
            object.__setattr__(self, name, value)
            return value

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


Decoder = Any
"""A function from a stored value to a field's value (None: the stored value as it is)."""


def lazy_record(cls: type[LazyT], values: dict[str, Any], row: Any, encoded: dict[str, tuple[int, Decoder]]) -> LazyT:
    """An instance of ``cls`` (a :class:`LazyFields` dataclass) with the fields in ``values``,
    and each field named in ``encoded`` read from ``row[index]`` through its decoder on first
    access. Every field must be in one of them. ``values`` becomes the instance's ``__dict__``."""
    record = object.__new__(cls)
    values["_encoded"] = (row, encoded)
    object.__setattr__(record, "__dict__", values)
    return record


def no_value() -> None:
    """The default of a field that a store may leave encoded (:func:`lazy_record`) and whose
    default is None: given as ``default_factory`` because a plain default is also a class
    attribute, which attribute look-up finds before :meth:`LazyFields.__getattr__` (and which
    pydantic puts back on the class when it builds a schema of the dataclass)."""
    return None


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline: the name under which its runs are grouped."""

    id: str
    name: str
    created_at: datetime
    docstring: str | None = None
    project: str = DEFAULT_PROJECT
    """The project the pipeline (and so its runs, step runs and artifacts) belongs to."""


@dataclass(frozen=True)
class RunRecord(LazyFields):
    """One execution of a pipeline.

    ``config`` holds the resolved run configuration (options and the traced DAG:
    step names, their upstream steps and parameters); ``environment`` the Python
    version, platform and package versions; ``stack`` a snapshot of the stack's
    components (names, flavors, non-secret configuration).
    """

    id: str
    pipeline_id: str
    pipeline_name: str
    name: str
    number: int
    status: Status
    start_time: datetime
    end_time: datetime | None = None
    heartbeat_at: datetime | None = None
    parameters: dict[str, JSON] = field(default_factory=dict)
    config: dict[str, JSON] = field(default_factory=dict)
    environment: dict[str, JSON] = field(default_factory=dict)
    stack: dict[str, JSON] = field(default_factory=dict)
    git_sha: str | None = None
    git_dirty: bool | None = None
    code_hash: str | None = None
    error: str | None = None
    tags: list[str] = field(default_factory=list)
    project: str = DEFAULT_PROJECT
    """Its pipeline's project."""


@dataclass(frozen=True)
class RunCreate:
    """What :meth:`MetadataStore.create_run` needs to start recording a run.

    ``name`` may contain the placeholder ``{n}``, replaced by the run's number
    within its pipeline (1, 2, ...), which the store assigns.
    """

    pipeline_name: str
    name: str
    parameters: dict[str, JSON] = field(default_factory=dict)
    config: dict[str, JSON] = field(default_factory=dict)
    environment: dict[str, JSON] = field(default_factory=dict)
    stack: dict[str, JSON] = field(default_factory=dict)
    git_sha: str | None = None
    git_dirty: bool | None = None
    code_hash: str | None = None
    pipeline_docstring: str | None = None
    tags: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    start_time: datetime = field(default_factory=utcnow)
    project: str = DEFAULT_PROJECT
    """The project of a new pipeline; a run of an existing pipeline must name that pipeline's
    project (:class:`~pipeledger.exceptions.ConflictError` otherwise)."""


@dataclass(frozen=True)
class StepRunRecord(LazyFields):
    """One execution (or cache hit) of a step within a run.

    A failed step run has its ``error`` (the traceback, or a sentence saying what ended it) and
    its ``error_message``: the exception's own message (``str(exc)``, every line of it; the
    exception's type name when that is empty). Step runs recorded before ``error_message``
    existed (schema revision 0004 and older) have None there: :attr:`failure_message` then
    falls back on the last line of ``error``.
    """

    id: str
    run_id: str
    name: str
    status: Status
    start_time: datetime
    end_time: datetime | None = None
    entrypoint: str | None = None
    docstring: str | None = None
    parameters: dict[str, JSON] = field(default_factory=dict)
    config: dict[str, JSON] = field(default_factory=dict)
    source_hash: str | None = None
    cache_key: str | None = None
    cached_from_id: str | None = None
    error: str | None = None
    logs_uri: str | None = None
    cache_components: dict[str, JSON] | None = field(default_factory=no_value)
    cache_invalidated_at: datetime | None = None
    error_message: str | None = None

    @property
    def failure_message(self) -> str | None:
        """What went wrong, in a line or a few: ``error_message`` when recorded, else (records
        older than it, imported records) the last non-empty line of ``error``; None without an
        error."""
        if self.error_message:
            return self.error_message
        if not self.error or not self.error.strip():
            return None
        return self.error.strip().splitlines()[-1].strip()


@dataclass(frozen=True)
class StepRunCreate:
    """What :meth:`MetadataStore.start_step` records when a step starts.

    ``inputs`` maps each input name to the id of the artifact it consumes.
    """

    run_id: str
    name: str
    entrypoint: str | None = None
    docstring: str | None = None
    parameters: dict[str, JSON] = field(default_factory=dict)
    config: dict[str, JSON] = field(default_factory=dict)
    source_hash: str | None = None
    cache_key: str | None = None
    cache_components: dict[str, JSON] | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    start_time: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ArtifactRecord(LazyFields):
    """An artifact: a value a step produced, stored in an artifact store.

    ``type`` is the artifact's kind for humans and tools (``"Data"``,
    ``"Model"``, ``"Metrics"``...), ``data_type`` the Python type's import path,
    ``materializer`` the import path of the class that wrote the files.
    """

    id: str
    uri: str
    type: str
    data_type: str
    materializer: str
    materializer_version: str
    content_hash: str
    size: int
    producer_step_run_id: str | None
    created_at: datetime
    artifact_store: str | None = None


@dataclass(frozen=True)
class ArtifactCreate:
    """An output artifact written by a step, recorded by :meth:`MetadataStore.finish_step`."""

    name: str
    uri: str
    type: str
    data_type: str
    materializer: str
    materializer_version: str
    content_hash: str
    size: int
    artifact_store: str | None = None
    metadata: dict[str, JSON] = field(default_factory=dict)
    id: str = field(default_factory=new_id)

    def to_record(self, producer_step_run_id: str | None, created_at: datetime) -> ArtifactRecord:
        """The record this artifact becomes once recorded."""
        return ArtifactRecord(
            id=self.id,
            uri=self.uri,
            type=self.type,
            data_type=self.data_type,
            materializer=self.materializer,
            materializer_version=self.materializer_version,
            content_hash=self.content_hash,
            size=self.size,
            producer_step_run_id=producer_step_run_id,
            created_at=created_at,
            artifact_store=self.artifact_store,
        )


@dataclass(frozen=True)
class StepIO:
    """An edge between a step run and an artifact it consumed or produced."""

    step_run_id: str
    name: str
    direction: Direction
    artifact: ArtifactRecord


@dataclass(frozen=True)
class RunSteps:
    """A run with its step runs, in the order they started, and every input and output edge of
    those step runs: what a view of the run shows, read in one call
    (:meth:`~pipeledger.metadata_store.base.MetadataStore.get_run_steps`)."""

    run: RunRecord
    steps: list[StepRunRecord]
    io: list[StepIO]


@dataclass(frozen=True)
class CacheHit:
    """A completed step run found by its cache key, with its output artifacts by name."""

    step_run: StepRunRecord
    outputs: dict[str, ArtifactRecord]
    run_name: str = ""


@dataclass(frozen=True)
class CacheEntry:
    """A cache entry: a completed step run with a cache key, which later runs may reuse until
    it is invalidated (``invalidated_at``); ``created`` is when the step run finished."""

    step_run_id: str
    step_name: str
    pipeline_name: str
    run_name: str
    cache_key: str
    created: datetime
    invalidated_at: datetime | None = None


@dataclass(frozen=True)
class LineageStep:
    """A step run in a lineage graph, with the names of its run and pipeline."""

    id: str
    name: str
    status: Status
    run_id: str
    run_name: str
    pipeline_name: str
    start_time: datetime
    end_time: datetime | None = None
    cached_from_id: str | None = None


@dataclass(frozen=True)
class LineageEdge:
    """A step run consumed (``input``) or produced (``output``) an artifact under ``name``."""

    step_run_id: str
    artifact_id: str
    direction: Direction
    name: str


@dataclass(frozen=True)
class LineageRecord:
    """The nodes and edges of a lineage query."""

    artifacts: dict[str, ArtifactRecord]
    steps: dict[str, LineageStep]
    edges: list[LineageEdge]
    #: artifact id -> (producer step name, output name, producer run name), when known.
    producers: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: Ids of the nodes (steps and artifacts) in projects the caller may not read: the server
    #: replaces them by placeholders with no name, uri or metadata (see ``docs/server.md``).
    hidden: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MetricPoint:
    """One value a step logged with ``log_metadata``, with the run it belongs to."""

    run_id: str
    run_name: str
    run_start: datetime
    step_name: str
    key: str
    value: JSON


@dataclass(frozen=True)
class StoreIdentity:
    """Who a metadata store is, for the files it writes into an artifact store.

    ``id`` names its directory there (``stores/<id>/``); ``token`` is a secret kept in the
    store's database and in that directory's ``.owner.json``: a store deletes files there only
    when the two match, so changing a database's id to another store's cannot reach that
    store's files."""

    id: str
    token: str


@dataclass(frozen=True)
class RunDeletion:
    """What deleting a run removed from the store, and the artifacts it had to keep.

    ``deleted_artifacts`` lost their records (their files can go); ``kept_artifacts``
    are still used by other runs (as inputs or cached outputs) and stay, records and
    files; ``logs_uris`` are the deleted step runs' log files. ``removed_files`` are the
    files and directories then removed, ``kept_files`` those left because they are not
    this store's to remove (imported or external data, another artifact store's files,
    anything outside the artifact store): only their records went.
    """

    run: RunRecord
    deleted_artifacts: list[ArtifactRecord]
    kept_artifacts: list[ArtifactRecord]
    logs_uris: list[str]
    removed_files: list[str] = field(default_factory=list)
    kept_files: list[str] = field(default_factory=list)


class EntityKind(str, enum.Enum):
    """What a piece of key/value metadata is attached to."""

    RUN = "run"
    STEP_RUN = "step_run"
    ARTIFACT = "artifact"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SearchPage:
    """One page of a search: the records (runs, step runs or artifacts) in order, and the token
    of the next page (None on the last one)."""

    items: list[Any]
    next_page_token: str | None


#: The outcomes of an audited request: done, refused (401/403, or 404 hiding a denied object), or
#: failed for another reason (an error of the request or of the server).
AUDIT_OUTCOMES = ("allowed", "denied", "failed")


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a server's audit log (table ``audit_events``): ``principal`` did ``action``
    (a route's name, e.g. ``store.create_run``) on ``target`` in ``project`` at ``at`` from
    ``remote``, with this ``outcome`` (:data:`AUDIT_OUTCOMES`) and HTTP ``status``. ``principal``
    is None when the caller was not authenticated; ``detail`` is one line, never a secret.
    ``id`` is given by the store (None before it is written)."""

    at: datetime
    principal: str | None
    action: str
    outcome: str
    status: int
    project: str | None = None
    target: str | None = None
    remote: str | None = None
    detail: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events to list: each field set must match (``action`` may end with ``*``, a
    prefix); ``since`` inclusive, ``until`` exclusive. Newest first, at most ``limit``."""

    principal: str | None = None
    action: str | None = None
    outcome: str | None = None
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
