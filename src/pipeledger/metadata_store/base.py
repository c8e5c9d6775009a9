"""The metadata store contract.

A metadata store records pipelines, their runs, the step runs of each run, the
artifacts steps consume and produce, the edges between them and key/value
metadata, and reads them back. Every flavor implements this class; the SQL
implementation (:mod:`pipeledger.metadata_store.sql`) serves SQLite, MySQL and
PostgreSQL. The contract test suite (:mod:`pipeledger.testing`) is the executable
version of these docstrings.

Rules every implementation keeps:

* Each ``create_*``/``start_*``/``finish_*`` method is **one atomic write**:
  either all of it is recorded or nothing is.
* Lookups by name or id raise :class:`~pipeledger.exceptions.NotFoundError`
  whose message names what was looked for.
* List methods filter and page in the store (``limit``/``offset``); none loads
  every row of a table.
* Records returned are immutable :mod:`pipeledger.models` dataclasses.
* Every pipeline belongs to a project (``RunCreate.project``, default ``default``), and so do
  its runs and step runs; an artifact belongs to the projects of the step runs that produced or
  consumed it. Methods that list, search, count, look up caches or read histories take
  ``projects`` (None: every project): only records of those projects are seen, as if the others
  did not exist. ``pipeledger server`` passes the projects its caller may read.

Logic every backend shares lives here, not in helpers each backend must remember to call
(template methods): a public method checks its arguments and words its errors, then calls a
protected ``_method`` the backend implements (``get_run`` → ``_find_run``, ``lineage`` →
``_lineage``...); methods that can be written on top of others have a default here.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeledger.exceptions import NotFoundError, UnsupportedOperationError
from pipeledger.models import (
    DEFAULT_PROJECT,
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    CacheEntry,
    CacheHit,
    EntityKind,
    LineageRecord,
    MetricPoint,
    PipelineRecord,
    RunCreate,
    RunDeletion,
    RunRecord,
    RunSteps,
    SearchPage,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
    StoreIdentity,
)

if TYPE_CHECKING:
    from pipeledger.search import SearchQuery

LINEAGE_DIRECTIONS = ("upstream", "downstream", "both")


class MetadataStore(abc.ABC):
    """Records pipeline runs and reads them back. See the module docstring for the rules."""

    #: Short name of the flavor that built this store (``"sqlite"``, ``"mysql"``...).
    flavor: str = "custom"
    #: The project runs recorded through this store create new pipelines in (the ``rest``
    #: flavor's ``project`` setting; ``default`` elsewhere). The runner puts it in ``RunCreate``.
    project: str = DEFAULT_PROJECT

    # ------------------------------------------------------------------ writes

    @abc.abstractmethod
    def create_run(self, run: RunCreate) -> RunRecord:
        """Insert a run with status ``running``, creating its pipeline (in ``run.project``) if it
        is new.

        The store assigns the run's ``number`` (1 + the highest number of the
        pipeline's runs) and replaces ``{n}`` in ``run.name`` with it. Atomic.

        Raises:
            RunExistsError: a run named ``run.name`` already exists.
            ConflictError: the pipeline exists in another project than ``run.project`` (the
                message names it: :func:`pipeline_conflict`).
        """

    @abc.abstractmethod
    def finish_run(self, run_id: str, status: Status, *, end_time: datetime, error: str | None = None) -> None:
        """Set a run's final ``status``, ``end_time`` and ``error``. Atomic.

        Raises:
            NotFoundError: no run has this id.
        """

    @abc.abstractmethod
    def heartbeat(self, run_id: str, at: datetime) -> None:
        """Record that the process running ``run_id`` is alive at ``at``."""

    @abc.abstractmethod
    def start_step(self, step: StepRunCreate) -> StepRunRecord:
        """Insert a step run with status ``running`` and its input edges. Atomic.

        Raises:
            NotFoundError: the run, or an input artifact, does not exist.
            StepRunExistsError: the run already has a step run of this name, or the id is taken.
        """

    @abc.abstractmethod
    def finish_step(
        self,
        step_run_id: str,
        status: Status,
        *,
        end_time: datetime,
        outputs: Sequence[ArtifactCreate] = (),
        metadata: Mapping[str, JSON] | None = None,
        error: str | None = None,
        logs_uri: str | None = None,
        error_message: str | None = None,
    ) -> list[ArtifactRecord]:
        """Finish a step run in one transaction.

        Inserts the output artifacts (produced by this step run) and their output
        edges, the step's key/value ``metadata`` (plus each artifact's own
        ``metadata``), and sets ``status``, ``end_time``, ``error`` (a failed step's
        traceback), ``error_message`` (its exception's own message, kept exactly: every
        line, see :class:`~pipeledger.models.StepRunRecord`) and ``logs_uri``. Returns
        the inserted artifacts in the order given.

        Raises:
            NotFoundError: no step run has this id.
        """

    def finish_and_start(
        self,
        step_run_id: str,
        status: Status,
        *,
        end_time: datetime,
        outputs: Sequence[ArtifactCreate] = (),
        metadata: Mapping[str, JSON] | None = None,
        error: str | None = None,
        logs_uri: str | None = None,
        error_message: str | None = None,
        next_step: StepRunCreate,
    ) -> tuple[list[ArtifactRecord], StepRunRecord]:
        """Finish one step run and start the next: :meth:`finish_step` with these arguments, then
        :meth:`start_step` of ``next_step`` (whose inputs may be the outputs just finished).

        The sequential orchestrator records a step's end together with the next step's start
        (:class:`~pipeledger.orchestrators.step_runner.StepRunner`): one transaction instead of
        two on the SQL stores, one request instead of two on ``rest``. This default calls the two
        methods in turn (not atomic); a store that can do both in one transaction overrides it,
        and then either both are recorded or neither is.

        Returns:
            The finished step's artifacts (as :meth:`finish_step`) and the started step run.

        Raises:
            NotFoundError: no step run has ``step_run_id``; ``next_step``'s run or an input
                artifact does not exist.
            StepRunExistsError: as :meth:`start_step`.
        """
        created = self.finish_step(
            step_run_id,
            status,
            end_time=end_time,
            outputs=outputs,
            metadata=metadata,
            error=error,
            logs_uri=logs_uri,
            error_message=error_message,
        )
        return created, self.start_step(next_step)

    @abc.abstractmethod
    def record_cached_step(
        self, step: StepRunCreate, *, cached_from_id: str, outputs: Mapping[str, str]
    ) -> StepRunRecord:
        """Record a cache hit in one transaction: a step run with status ``cached`` pointing
        to ``cached_from_id``, its input edges, output edges to the original artifacts
        (``outputs`` maps output names to their artifact ids; no artifact is copied), and a
        copy of the original step run's key/value metadata (its logged metrics).

        The original may vanish between :meth:`find_cached_step` and this call (another
        process deleted its run): then nothing is recorded and :class:`CacheEntryGoneError`
        is raised, so that the caller executes the step instead. Never does a cached step
        run point to a deleted original, nor an edge to a deleted artifact.

        Raises:
            CacheEntryGoneError: the original step run, or one of the ``outputs``, does not
                exist (a :class:`NotFoundError`).
            NotFoundError: the run or an input artifact does not exist.
            StepRunExistsError: the run already has a step run of this name, or the id is taken.
        """

    @abc.abstractmethod
    def invalidate_cache(
        self,
        *,
        at: datetime,
        pipeline: str | None = None,
        step: str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        """Mark cache entries (completed step runs with a cache key) as no longer reusable,
        optionally only those of a pipeline and/or a step name (and of ``projects``). Artifacts
        are untouched.
        Returns how many entries were invalidated. Atomic."""

    @abc.abstractmethod
    def list_cache_entries(
        self,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        invalidated: bool | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[CacheEntry]:
        """The cache entries :meth:`invalidate_cache` considers (completed step runs with a cache
        key), newest first (by ``created``, then id), optionally only those of a pipeline and/or a
        step name, and only invalidated (``invalidated=True``) or only usable ones (False); at most
        ``limit``. A read of every matching step run: meant for maintenance, not hot paths."""

    @abc.abstractmethod
    def register_artifact(self, artifact: ArtifactCreate, *, at: datetime) -> ArtifactRecord:
        """Record an artifact that no step produced (external data a pipeline reads), with its
        ``metadata``. Atomic. ``artifact.name`` is ignored (it names an edge, not an artifact)."""

    @abc.abstractmethod
    def put_metadata(self, kind: EntityKind, entity_id: str, values: Mapping[str, JSON]) -> None:
        """Insert or replace key/value metadata of a run, step run or artifact. Atomic."""

    # -------------------------------------------------------------------- tags

    def add_tags(self, kind: EntityKind, entity_id: str, tags: Sequence[str]) -> None:
        """Give a run, step run or artifact these tags (those it has already stay once). Atomic.

        Tags follow :func:`pipeledger.limits.check_tag`.

        Raises:
            DefinitionError: a tag breaks the name rules (nothing is changed).
            NotFoundError: no such entity.
        """
        self.change_tags(kind, entity_id, add=tags)

    def remove_tags(self, kind: EntityKind, entity_id: str, tags: Sequence[str]) -> None:
        """Take these tags off a run, step run or artifact (tags it lacks are ignored). Atomic.

        Raises:
            NotFoundError: no such entity.
        """
        self.change_tags(kind, entity_id, remove=tags)

    def change_tags(
        self, kind: EntityKind, entity_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add ``add`` and remove ``remove`` in one atomic write (a tag in both ends up removed).

        Raises:
            DefinitionError: a tag of ``add`` breaks the name rules (nothing is changed).
            NotFoundError: no such entity.
        """
        from pipeledger.limits import check_tag

        if isinstance(add, str) or isinstance(remove, str):
            raise TypeError("tags must be a list of strings, not one string")
        for tag in add:
            check_tag(tag)
        removed = [t for t in remove if isinstance(t, str)]
        self._change_tags(EntityKind(kind), entity_id, [t for t in add if t not in removed], removed)

    def _change_tags(self, kind: EntityKind, entity_id: str, add: Sequence[str], remove: Sequence[str]) -> None:
        """:meth:`change_tags` with checked tags. The default refuses (a store without editable tags)."""
        raise UnsupportedOperationError(f"the {self.flavor} metadata store cannot change tags")

    def get_tags(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        """The tags of these entities, sorted: ``{entity_id: [tag, ...]}``; untagged ones are absent."""
        return self._get_tags(EntityKind(kind), list(entity_ids))

    def _get_tags(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        """:meth:`get_tags`. The default knows only runs' tags (from their records)."""
        if kind is not EntityKind.RUN:
            return {}
        found: dict[str, list[str]] = {}
        for run_id in entity_ids:
            try:
                tags = self.get_run(run_id).tags
            except NotFoundError:
                continue
            if tags:
                found[run_id] = sorted(tags)
        return found

    # ------------------------------------------------------------------ search

    def search(
        self,
        entity: str,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
        projects: Collection[str] | None = None,
    ) -> SearchPage:
        """One page of runs (``entity="run"``), step runs (``"step"``) or artifacts
        (``"artifact"``) matching ``filter`` (the language of ``docs/searching.md``), ordered by
        ``order_by`` (default: newest first), at most ``limit`` (default 50).

        Pages are cursor-based: pass the page's ``next_page_token`` (with the same filter and
        order) for the next one; rows added meanwhile never shift a page.

        Raises:
            QueryError: a malformed or ill-typed filter or order, a bad limit or page token.
            UnsupportedOperationError: the store cannot run this search.
        """
        from dataclasses import replace

        from pipeledger.search import build_query

        query = build_query(entity, filter, order_by, limit, page_token)
        if projects is not None:
            query = replace(query, projects=frozenset(projects))
        return self._search(query)

    def _search(self, query: SearchQuery) -> SearchPage:
        """:meth:`search` with a checked query.

        The default serves what :meth:`list_runs` can: runs filtered by ``pipeline = '...'``,
        ``status = '...'`` and ``started >= '...'`` joined with ``and``, ordered by ``started``;
        anything else raises :class:`UnsupportedOperationError` naming the part it cannot run.
        """
        from pipeledger.search.listing import search_by_listing

        return search_by_listing(self, query)

    # ------------------------------------------------------------------- reads

    def get_pipeline(self, name: str, *, projects: Collection[str] | None = None) -> PipelineRecord:
        """The pipeline called ``name`` (in one of ``projects``, if given).

        Raises:
            NotFoundError: no such pipeline (the message lists some that exist in ``projects``).
        """
        found = self._find_pipeline(name)
        if found is None or (projects is not None and found.project not in projects):
            # Stores written before projects take no such argument: pass it only when given.
            listed = (
                self.list_pipelines(limit=10) if projects is None else self.list_pipelines(limit=10, projects=projects)
            )
            known = [p.name for p in listed]
            raise NotFoundError(_not_found_message("pipeline", name, known))
        return found

    @abc.abstractmethod
    def _find_pipeline(self, name: str) -> PipelineRecord | None:
        """The pipeline called ``name``, or None (for :meth:`get_pipeline`)."""

    @abc.abstractmethod
    def list_pipelines(
        self, *, limit: int | None = None, offset: int = 0, projects: Collection[str] | None = None
    ) -> list[PipelineRecord]:
        """Pipelines ordered by name."""

    def get_run(self, name_or_id: str, *, projects: Collection[str] | None = None) -> RunRecord:
        """The run with this name, or else this id (in one of ``projects``, if given).

        Raises:
            NotFoundError: no such run (the message lists the latest runs of ``projects``).
        """
        found = self._find_run(name_or_id)
        if found is None or (projects is not None and found.project not in projects):
            latest = (
                self.list_run_names(limit=5) if projects is None else self.list_run_names(limit=5, projects=projects)
            )
            raise NotFoundError(_not_found_message("run", name_or_id, latest, "latest runs"))
        return found

    @abc.abstractmethod
    def _find_run(self, name_or_id: str) -> RunRecord | None:
        """The run with this name, or else this id, or None (for :meth:`get_run`)."""

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Runs filtered by pipeline name, status and start time (``>= since``).

        Ordered by start time (newest first unless ``newest_first=False``),
        paged with ``limit``/``offset`` in the store.
        """

    @abc.abstractmethod
    def list_run_names(
        self,
        *,
        pipeline: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[str]:
        """Names of the runs :meth:`list_runs` would return, without loading the records."""

    @abc.abstractmethod
    def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        """How many runs match the filters of :meth:`list_runs`."""

    @abc.abstractmethod
    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """The step runs of a run, in the order they started."""

    @abc.abstractmethod
    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        """The step run with this id.

        Raises:
            NotFoundError: no such step run.
        """

    @abc.abstractmethod
    def list_step_io(self, step_run_ids: Sequence[str]) -> list[StepIO]:
        """Every input and output edge of the given step runs, with their artifacts.

        One call serves a whole run: the client never queries per step.
        """

    def get_run_steps(self, name_or_id: str, *, projects: Collection[str] | None = None) -> RunSteps:
        """The run with this name, or else this id (in one of ``projects``, if given), with its
        step runs (:meth:`list_step_runs`) and their edges (:meth:`list_step_io`): a run's view
        in one call.

        This default makes the three calls; the SQL stores read all three in one read, and
        ``rest`` sends one request instead of three.

        Raises:
            NotFoundError: no such run (as :meth:`get_run`).
        """
        run = self.get_run(name_or_id) if projects is None else self.get_run(name_or_id, projects=projects)
        steps = self.list_step_runs(run.id)
        return RunSteps(run, steps, self.list_step_io([step.id for step in steps]))

    @abc.abstractmethod
    def find_cached_step(
        self, cache_key: str, *, not_before: datetime | None = None, projects: Collection[str] | None = None
    ) -> CacheHit | None:
        """The latest ``completed``, not invalidated step run with this cache key (finished at or
        after ``not_before`` if given, in a run of ``projects`` if given) and its outputs; None
        if there is none. A cache never crosses into a project its caller cannot read: the hit
        would hand over that project's artifacts.

        One indexed query.
        """

    @abc.abstractmethod
    def latest_step_run(
        self, pipeline: str, step: str, *, before: datetime, projects: Collection[str] | None = None
    ) -> StepRunRecord | None:
        """The latest run of step ``step`` in pipeline ``pipeline`` that started before ``before``
        (a ``skipped`` step run did not run: it is passed over)."""

    def lineage(
        self,
        *,
        artifact_id: str | None = None,
        step_run_id: str | None = None,
        direction: str = "upstream",
        depth: int | None = None,
    ) -> LineageRecord:
        """The lineage graph around an artifact, or around a step run's inputs/outputs.

        ``direction`` is ``upstream`` (producers and their inputs, recursively; an artifact
        reused by a cached step is followed to its true producer), ``downstream`` (consumers
        and their outputs, recursively) or ``both``. ``depth`` limits how many steps away
        the walk goes (None: no limit). Crosses runs and pipelines. The starting node is
        included only through its edges (an isolated artifact yields an empty graph).

        Raises:
            ValueError: not exactly one of ``artifact_id`` and ``step_run_id``, or a bad direction.
        """
        if direction not in LINEAGE_DIRECTIONS:
            raise ValueError(f"direction must be upstream, downstream or both, not {direction!r}")
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, not {depth}")
        if (artifact_id is None) == (step_run_id is None):
            raise ValueError("give exactly one of artifact_id and step_run_id")
        return self._lineage(artifact_id=artifact_id, step_run_id=step_run_id, direction=direction, depth=depth)

    @abc.abstractmethod
    def _lineage(
        self, *, artifact_id: str | None, step_run_id: str | None, direction: str, depth: int | None
    ) -> LineageRecord:
        """:meth:`lineage` with its arguments checked: exactly one of ``artifact_id`` and
        ``step_run_id``, ``direction`` one of :data:`LINEAGE_DIRECTIONS`, ``depth`` None or >= 0."""

    @abc.abstractmethod
    def metric_history(
        self,
        pipeline: str,
        *,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[MetricPoint]:
        """Values the steps of ``pipeline``'s runs logged (all keys, or ``keys``), oldest run
        first; with ``limit``, only the latest ``limit`` runs. One query."""

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """The artifact with this id.

        Raises:
            NotFoundError: no such artifact.
        """
        found = self._find_artifact(artifact_id)
        if found is None:
            raise NotFoundError(f"no artifact with id {artifact_id!r}")
        return found

    @abc.abstractmethod
    def _find_artifact(self, artifact_id: str) -> ArtifactRecord | None:
        """The artifact with this id, or None (for :meth:`get_artifact`)."""

    @abc.abstractmethod
    def get_metadata(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        """Key/value metadata of the given entities: ``{entity_id: {key: value}}``.

        Entities without metadata are absent from the result.
        """

    # ------------------------------------------------------------- maintenance

    @abc.abstractmethod
    def mark_crashed(self, *, heartbeat_before: datetime, at: datetime) -> list[str]:
        """Mark ``running`` runs whose last heartbeat is older than ``heartbeat_before`` as
        ``crashed`` (and their running step runs too, ending at ``at``). Returns their ids.
        Atomic."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> RunDeletion:
        """Delete a run's records in one transaction: its step runs, their edges and metadata,
        the run's metadata, and the artifacts its steps produced that no other run uses.

        Artifacts another run still uses (as an input, or as a cached step's output) are
        kept; their producer link is cleared (their producer is gone). Cached step runs of
        other runs that pointed to a deleted step run keep their outputs; their
        ``cached_from_id`` is cleared. Files are not touched: the caller removes the
        ``deleted_artifacts`` and ``logs_uris``.

        Safe beside running pipelines and other deletions: a cache hit recorded concurrently
        on one of this run's step runs either commits first (and its artifacts are kept) or
        is refused with :class:`CacheEntryGoneError` (see :meth:`record_cached_step`); two
        deletions never interleave.

        Raises:
            NotFoundError: no such run (also when another process deleted it first).
        """

    @abc.abstractmethod
    def recorded_artifact_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are recorded artifacts (for finding orphaned files)."""

    @abc.abstractmethod
    def iter_artifacts(
        self, *, batch: int = 500, projects: Collection[str] | None = None
    ) -> Iterator[list[ArtifactRecord]]:
        """Every artifact (of ``projects``, if given), in batches (ordered by id; memory stays flat)."""

    @abc.abstractmethod
    def integrity_problems(self, *, heartbeat_before: datetime | None = None) -> list[str]:
        """Referential problems in the records (edges to missing artifacts or step runs, dangling
        producers, finished runs with running steps, stale running runs...). Changes nothing."""

    # ---------------------------------------------------------------- projects

    def projects_of(self, kind: str, keys: Sequence[str]) -> dict[str, list[str]]:
        """The projects of each object of ``kind`` named in ``keys`` that exists (absent ones are
        left out), sorted: ``pipeline`` (by name) and ``run`` (by name or id) are in one project,
        a ``step_run`` (by id) in its run's, an ``artifact`` (by id) in those of the step runs
        that produced or consumed it (none for an artifact no step run touched). Not a route:
        the server's authorization reads it (:mod:`pipeledger.server.security.access`).

        The default reads records one by one; the SQL store answers in one query per kind.

        Raises:
            ValueError: an unknown ``kind``.
        """
        found: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            projects = self._projects_of_one(kind, key)
            if projects is not None:
                found[key] = sorted(projects)
        return found

    def _projects_of_one(self, kind: str, key: str) -> set[str] | None:
        try:
            if kind == "pipeline":
                return {self.get_pipeline(key).project}
            if kind == "run":
                return {self.get_run(key).project}
            if kind == "step_run":
                return {self.get_run(self.get_step_run(key).run_id).project}
            if kind == "artifact":
                self.get_artifact(key)
                graph = self.lineage(artifact_id=key, direction="both", depth=1)
                runs = {step.run_id for step in graph.steps.values()}
                return {self.get_run(run_id).project for run_id in runs}
        except NotFoundError:
            return None
        raise ValueError(f"unknown kind of object {kind!r}: one of pipeline, run, step_run, artifact")

    # ------------------------------------------------- ownership of artifact files

    def store_identity(self) -> StoreIdentity | None:
        """This store's stable id (32 hex digits) and secret ownership token, kept with its
        records, or None.

        Artifacts and logs go under ``stores/<id>/`` in the artifact store, and ``gc`` treats
        only files there as its own (an artifact store may be shared by several metadata
        stores), once that directory's ``.owner.json`` holds the same token. The SQL stores keep
        both in their ``store_identity`` table. The default, None, is for a store that cannot
        keep one (ML Metadata): its files go under ``stores/shared/`` and ``gc`` never collects
        them as orphans.
        """
        return None

    def store_id(self) -> str | None:
        """The id of :meth:`store_identity`, or None."""
        identity = self.store_identity()
        return None if identity is None else identity.id

    def step_run_statuses(self, ids: Sequence[str], *, heartbeat_before: datetime | None = None) -> dict[str, Status]:
        """The status of each of these step runs that is recorded (unknown ids are absent); with
        ``heartbeat_before``, a ``running`` step run whose run's last heartbeat is older reads
        ``crashed`` (as the client shows it)."""
        from contextlib import suppress

        found: dict[str, Status] = {}
        for step_run_id in dict.fromkeys(ids):
            with suppress(NotFoundError):
                step = self.get_step_run(step_run_id)
                found[step_run_id] = step.status
                if step.status is Status.RUNNING and heartbeat_before is not None:
                    heartbeat = self.get_run(step.run_id).heartbeat_at
                    if heartbeat is not None and heartbeat < heartbeat_before:
                        found[step_run_id] = Status.CRASHED
        return found

    def deletion_preview(self, run_id: str, *, also_deleted: Collection[str] = ()) -> RunDeletion:
        """What :meth:`delete_run` would delete now, without deleting anything (for dry runs).
        Artifacts used only by runs in ``also_deleted`` (deleted too, e.g. by one ``gc``) count as
        deleted: deleting those runs as well removes them.

        Raises:
            NotFoundError: no such run.
            UnsupportedOperationError: this store cannot delete runs.
        """
        raise UnsupportedOperationError(f"the {self.flavor} metadata store cannot delete runs")

    # --------------------------------------------------------------- lifecycle

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about where this store keeps its data (for CLIs and snapshots)."""
        return {"flavor": self.flavor}

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pipeline_conflict(pipeline: str, held: str, asked: str) -> str:
    """The message of a run in project ``asked`` of ``pipeline``, which belongs to ``held``."""
    return (
        f"pipeline {pipeline!r} belongs to project {held!r}, not {asked!r}: run it in project {held!r} "
        "(the store's project setting), or give the pipeline another name"
    )


def _not_found_message(kind: str, name: str, known: list[str], label: str | None = None) -> str:
    """The message of a :class:`NotFoundError` for ``name``, listing some ``known`` names."""
    if not known:
        return f"no {kind} named {name!r}: none is recorded yet"
    return f"no {kind} named {name!r}; {label or 'known ' + kind + 's'}: {', '.join(known)}"
