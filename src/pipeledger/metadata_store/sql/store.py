"""The SQL metadata store: every query pipeledger runs, written once for every database.

Flavors (:mod:`pipeledger.metadata_store.flavors`) only build a
:class:`~pipeledger.metadata_store.sql.engine.Database`; the store's queries, in
SQLAlchemy Core and the same on SQLite, MySQL/MariaDB and PostgreSQL, live in this
module (runs, steps, artifacts, metadata) and in query groups the store class
inherits: :mod:`.cache_queries` (caching), :mod:`.history_queries` (lineage,
metrics), :mod:`.maintenance_queries` (deletion, crash detection, integrity).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from pipeledger.exceptions import (
    ConflictError,
    MetadataStoreError,
    NotFoundError,
    RunExistsError,
)
from pipeledger.metadata_store.base import MetadataStore, pipeline_conflict
from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql import statements as sql
from pipeledger.metadata_store.sql.cache_queries import CacheQueries
from pipeledger.metadata_store.sql.common import RUN_COLUMNS, RUNS_FROM, chunks, in_projects
from pipeledger.metadata_store.sql.engine import Database, DuplicateRowError, MissingReferenceError
from pipeledger.metadata_store.sql.fastpath import FastRead, Session
from pipeledger.metadata_store.sql.history_queries import HistoryQueries
from pipeledger.metadata_store.sql.maintenance_queries import MaintenanceQueries
from pipeledger.metadata_store.sql.migrate import ensure_schema
from pipeledger.metadata_store.sql.ownership_queries import OwnershipQueries
from pipeledger.metadata_store.sql.project_queries import ProjectQueries
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    entity_metadata,
    pipeline_runs,
    pipelines,
    step_runs,
)
from pipeledger.metadata_store.sql.search_queries import SearchQueries
from pipeledger.metadata_store.sql.tag_queries import TagQueries, tag_values, tags_of
from pipeledger.models import (
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    Direction,
    EntityKind,
    PipelineRecord,
    RunCreate,
    RunRecord,
    RunSteps,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
    new_id,
    utcnow,
)


class SqlMetadataStore(
    CacheQueries,
    HistoryQueries,
    MaintenanceQueries,
    OwnershipQueries,
    ProjectQueries,
    SearchQueries,
    TagQueries,
    MetadataStore,
):
    """A :class:`MetadataStore` on any SQLAlchemy database.

    Args:
        database: the connection wrapper built by a flavor.
        flavor: the flavor's name, for descriptions.
        auto_upgrade: upgrade an older schema on open (only the local default
            SQLite store does this; server databases are upgraded explicitly).
        describe: non-secret facts for :meth:`describe`.
    """

    def __init__(
        self,
        database: Database,
        *,
        flavor: str,
        auto_upgrade: bool = False,
        migrate_command: str = "pipeledger metadata-store migrate",
        describe: Mapping[str, Any] | None = None,
    ) -> None:
        self.db = database
        self.flavor = flavor
        self._describe = dict(describe or {})
        ensure_schema(database, auto_upgrade=auto_upgrade, migrate_command=migrate_command)

    def close(self) -> None:
        self.db.dispose()

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "database": self.db.display_name, **self._describe}

    def __repr__(self) -> str:
        return f"<SqlMetadataStore {self.db.display_name}>"

    # ------------------------------------------------------------------ writes

    def create_run(self, run: RunCreate) -> RunRecord:
        templated = "{n}" in run.name
        for _attempt in range(50):
            try:
                return self.db.run_session(lambda conn: self._insert_run(conn, run))
            except (RunExistsError, DuplicateRowError):
                # The run's name or (pipeline, number), or the new pipeline's name, was taken by a
                # concurrent writer.
                taken = self._run_name_taken(run)
                if taken is not None and not templated:
                    raise RunExistsError(f"a run named {taken!r} already exists; choose another run_name") from None
                if taken is None and self._find_run(run.id) is not None:
                    raise ConflictError(
                        f"a run with id {run.id!r} already exists: leave RunCreate.id unset, the store makes ids"
                    ) from None
        raise MetadataStoreError(f"could not allocate a unique name for run {run.name!r}")

    def _run_name_taken(self, run: RunCreate) -> str | None:
        if "{n}" in run.name:
            return None
        with self.db.read() as conn:
            found = conn.execute(select(pipeline_runs.c.name).where(pipeline_runs.c.name == run.name)).first()
        return run.name if found else None

    def _insert_run(self, conn: Session, run: RunCreate) -> RunRecord:
        pipeline_id = self._pipeline_id(conn, run)
        number = int(sql.NEXT_RUN_NUMBER.all(conn, {"b_pipeline": pipeline_id})[0]["number"])
        name = run.name.replace("{n}", str(number))
        if "{n}" in run.name:
            # A deleted run or a user-chosen name may hold this one: take the next free number.
            while sql.RUN_ID_BY_NAME.all(conn, {"b_name": name}):
                number += 1
                name = run.name.replace("{n}", str(number))
        values = {
            "id": run.id,
            "pipeline_id": pipeline_id,
            "name": name,
            "number": number,
            "status": Status.RUNNING.value,
            "start_time": run.start_time,
            "heartbeat_at": run.start_time,
            "parameters": run.parameters,
            "config": run.config,
            "environment": run.environment,
            "stack": run.stack,
            "git_sha": run.git_sha,
            "git_dirty": run.git_dirty,
            "code_hash": run.code_hash,
        }
        sql.INSERT_RUN.execute(conn, [values])
        tags = list(dict.fromkeys(run.tags))
        if tags:
            sql.INSERT_TAGS.execute(conn, tag_values(EntityKind.RUN, run.id, run.start_time, tags))
        return records.run({**values, "pipeline_name": run.pipeline_name, "project": run.project}, tags)

    def _pipeline_id(self, conn: Session, run: RunCreate) -> str:
        """The id of ``run``'s pipeline, created in ``run.project`` if it is new.

        Raises:
            ConflictError: the pipeline exists in another project.
        """
        found = sql.PIPELINE_ID.all(conn, {"b_name": run.pipeline_name})
        if found:
            if found[0]["project"] != run.project:
                raise ConflictError(pipeline_conflict(run.pipeline_name, found[0]["project"], run.project))
            return str(found[0]["id"])
        pipeline_id = new_id()
        row = {
            "id": pipeline_id,
            "name": run.pipeline_name,
            "docstring": run.pipeline_docstring,
            "created_at": utcnow(),
            "project": run.project,
        }
        sql.INSERT_PIPELINE.execute(conn, [row])
        return pipeline_id

    def finish_run(self, run_id: str, status: Status, *, end_time: datetime, error: str | None = None) -> None:
        row = {"b_id": run_id, "b_status": Status(status).value, "b_end": end_time, "b_error": error}

        def work(conn: Session) -> None:
            if sql.FINISH_RUN.execute(conn, [row]) == 0:
                raise NotFoundError(f"no run with id {run_id!r}")

        self.db.run_session(work)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        self.db.run_session(lambda conn: sql.HEARTBEAT.execute(conn, [{"b_id": run_id, "b_at": at}]))

    def start_step(self, step: StepRunCreate) -> StepRunRecord:
        values = records.step_run_values(step, Status.RUNNING)
        self._run_step_work(self._start_work(step, values), step)
        return records.step_run_from_values(values)

    def _start_work(self, step: StepRunCreate, values: dict[str, Any]) -> Callable[[Session], None]:
        """The statements of :meth:`start_step` (run inside a transaction by the caller)."""

        def work(session: Session) -> None:
            sql.INSERT_STEP.execute(session, [values])
            if step.inputs:
                sql.INSERT_IO.execute(session, records.edge_values(step.id, Direction.INPUT, step.inputs.items()))

        return work

    def _run_step_work(self, work: Callable[[Session], None], step: StepRunCreate) -> None:
        """Run ``work`` (which starts ``step``) in one transaction; a missing run or input
        artifact as :class:`NotFoundError` naming it."""
        try:
            self.db.run_session(work)
        except MissingReferenceError as exc:
            missing = self._missing_step_refs(step)
            if missing is not None:
                raise NotFoundError(f"cannot record step {step.name!r} of run {step.run_id!r}: {missing}") from exc
            raise MetadataStoreError(
                f"cannot record step {step.name!r} of run {step.run_id!r}: its run or an input artifact does not exist"
            ) from exc

    def _missing_step_refs(self, step: StepRunCreate) -> str | None:
        """Why ``step`` cannot be recorded if its run or an input artifact is missing."""
        with self.db.read() as conn:
            run = conn.execute(select(pipeline_runs.c.id).where(pipeline_runs.c.id == step.run_id)).first()
            if run is None:
                return f"no run with id {step.run_id!r}"
            wanted = list(dict.fromkeys(step.inputs.values()))
            found = set(conn.execute(select(artifacts.c.id).where(artifacts.c.id.in_(wanted))).scalars())
        missing = [f"{n}={a!r}" for n, a in step.inputs.items() if a not in found]
        return f"no artifact with id for input {', '.join(missing)}" if missing else None

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
        work, created = self._finish_work(
            step_run_id, status, end_time, outputs, metadata, error, logs_uri, error_message
        )
        self.db.run_session(work)
        return created

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
        finish, created = self._finish_work(
            step_run_id, status, end_time, outputs, metadata, error, logs_uri, error_message
        )
        values = records.step_run_values(next_step, Status.RUNNING)
        start = self._start_work(next_step, values)

        def work(session: Session) -> None:  # one transaction: both recorded, or neither
            finish(session)
            start(session)

        self._run_step_work(work, next_step)
        return created, records.step_run_from_values(values)

    def _finish_work(
        self,
        step_run_id: str,
        status: Status,
        end_time: datetime,
        outputs: Sequence[ArtifactCreate],
        metadata: Mapping[str, JSON] | None,
        error: str | None,
        logs_uri: str | None,
        error_message: str | None,
    ) -> tuple[Callable[[Session], None], list[ArtifactRecord]]:
        """The statements of :meth:`finish_step`, and the artifacts they insert."""
        created = [a.to_record(step_run_id, end_time) for a in outputs]
        meta_rows = records.metadata_values(EntityKind.STEP_RUN, step_run_id, metadata or {})
        artifact_meta_rows = [
            row for a in outputs for row in records.metadata_values(EntityKind.ARTIFACT, a.id, a.metadata)
        ]

        def work(conn: Session) -> None:
            finished = sql.FINISH_STEP.execute(
                conn,
                [
                    {
                        "b_id": step_run_id,
                        "b_status": Status(status).value,
                        "b_end": end_time,
                        "b_error": error,
                        "b_logs": logs_uri,
                        "b_message": error_message,
                    }
                ],
            )
            if finished == 0:
                raise NotFoundError(f"no step run with id {step_run_id!r}")
            if created:
                sql.INSERT_ARTIFACTS.execute(conn, [records.artifact_values(a) for a in created])
                sql.INSERT_IO.execute(
                    conn, records.edge_values(step_run_id, Direction.OUTPUT, [(a.name, a.id) for a in outputs])
                )
            if meta_rows:  # the step may have put metadata while it ran: replace those keys
                sql.UPSERT_METADATA.execute(conn, meta_rows)
            if artifact_meta_rows:  # new artifacts: nothing to replace
                sql.INSERT_METADATA.execute(conn, artifact_meta_rows)

        return work, created

    def register_artifact(self, artifact: ArtifactCreate, *, at: datetime) -> ArtifactRecord:
        record = artifact.to_record(None, at)
        meta = records.metadata_values(EntityKind.ARTIFACT, artifact.id, artifact.metadata)

        def work(session: Session) -> None:
            sql.INSERT_ARTIFACTS.execute(session, [records.artifact_values(record)])
            if meta:
                sql.UPSERT_METADATA.execute(session, meta)

        self.db.run_session(work)
        return record

    def put_metadata(self, kind: EntityKind, entity_id: str, values: Mapping[str, JSON]) -> None:
        rows = records.metadata_values(EntityKind(kind), entity_id, values)
        if rows:
            self.db.run_session(lambda session: sql.UPSERT_METADATA.execute(session, rows))

    # ------------------------------------------------------------------- reads

    def _find_pipeline(self, name: str) -> PipelineRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(pipelines).where(pipelines.c.name == name)).first()
        return None if row is None else records.pipeline(row)

    def list_pipelines(
        self, *, limit: int | None = None, offset: int = 0, projects: Collection[str] | None = None
    ) -> list[PipelineRecord]:
        query = select(pipelines).where(*in_projects(projects)).order_by(pipelines.c.name).limit(limit).offset(offset)
        with self.db.read() as conn:
            return [records.pipeline(r) for r in conn.execute(query)]

    def _find_run(self, name_or_id: str) -> RunRecord | None:
        with self.db.session() as reader:
            return self._run_in(reader, name_or_id)

    def _run_in(self, reader: Session, name_or_id: str) -> RunRecord | None:
        statement = sql.RUN_BY_NAME
        found = statement.rows(reader, {"b_name": name_or_id})
        if not found[0]:
            statement = sql.RUN_BY_ID
            found = statement.rows(reader, {"b_id": name_or_id})
            if not found[0]:
                return None
        run_id = found[0][0][statement.keys().index("id")]
        tags = [tag for (tag,) in sql.TAGS_OF.rows(reader, {"b_kind": EntityKind.RUN.value, "b_id": run_id})[0]]
        return records.runs_from(statement, found, {run_id: tags})[0]

    def get_run_steps(self, name_or_id: str, *, projects: Collection[str] | None = None) -> RunSteps:
        """As the contract says, in one read (one connection from the pool, not three)."""
        with self.db.session() as reader:
            run = self._run_in(reader, name_or_id)
            if run is not None and (projects is None or run.project in projects):
                steps = self._step_runs_in(reader, run.id)
                return RunSteps(run, steps, self._step_io_in(reader, [step.id for step in steps]))
        return super().get_run_steps(name_or_id, projects=projects)  # raises NotFoundError, naming the latest runs

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
        if projects is None:  # every project: the prebuilt statement (a server's caller: built below)
            statement, params = _run_page(False, pipeline, status, since, limit, offset, newest_first)
            with self.db.session() as reader:
                found = statement.rows(reader, params)
                at = statement.keys().index("id")
                ids = [row[at] for row in found[0]]
                tags: dict[str, list[str]] = {}
                for chunk in chunks(ids):
                    by_id = sql.tags_of_entities(len(chunk))
                    bound = {"b_kind": EntityKind.RUN.value, **{f"b_{i}": id_ for i, id_ in enumerate(chunk)}}
                    for entity_id, tag in by_id.rows(reader, bound)[0]:
                        tags.setdefault(entity_id, []).append(tag)
            return records.runs_from(statement, found, tags)
        query = select(*RUN_COLUMNS).select_from(RUNS_FROM)
        query = query.where(*_run_filters(pipeline, status, since), *in_projects(projects))
        order = pipeline_runs.c.start_time.desc() if newest_first else pipeline_runs.c.start_time
        tiebreak = pipeline_runs.c.id.desc() if newest_first else pipeline_runs.c.id
        query = query.order_by(order, tiebreak).limit(limit).offset(offset)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            of_rows = tags_of(conn, EntityKind.RUN, [r.id for r in rows])
        return [records.run(r, of_rows.get(r.id, ())) for r in rows]

    def list_run_names(
        self,
        *,
        pipeline: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
        projects: Collection[str] | None = None,
    ) -> list[str]:
        if projects is None:
            statement, params = _run_page(True, pipeline, None, None, limit, offset, newest_first)
            with self.db.session() as reader:
                return [row[0] for row in statement.rows(reader, params)[0]]
        query = select(pipeline_runs.c.name).select_from(RUNS_FROM)
        query = query.where(*_run_filters(pipeline, None, None), *in_projects(projects))
        order = pipeline_runs.c.start_time.desc() if newest_first else pipeline_runs.c.start_time
        tiebreak = pipeline_runs.c.id.desc() if newest_first else pipeline_runs.c.id
        query = query.order_by(order, tiebreak).limit(limit).offset(offset)
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        query = select(func.count()).select_from(RUNS_FROM)
        query = query.where(*_run_filters(pipeline, status, None), *in_projects(projects))
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        with self.db.session() as reader:
            return self._step_runs_in(reader, run_id)

    def _step_runs_in(self, reader: Session, run_id: str) -> list[StepRunRecord]:
        return records.step_runs_from(sql.STEPS_OF_RUN, sql.STEPS_OF_RUN.rows(reader, {"b_run": run_id}))

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        with self.db.read() as conn:
            row = conn.execute(select(step_runs).where(step_runs.c.id == step_run_id)).first()
        if row is None:
            raise NotFoundError(f"no step run with id {step_run_id!r}")
        return records.step_run(row)

    def list_step_io(self, step_run_ids: Sequence[str]) -> list[StepIO]:
        with self.db.session() as reader:
            return self._step_io_in(reader, step_run_ids)

    def _step_io_in(self, reader: Session, step_run_ids: Sequence[str]) -> list[StepIO]:
        result: list[StepIO] = []
        for chunk in chunks(step_run_ids):
            statement = sql.edges_of_steps(len(chunk))
            found = statement.rows(reader, {f"b_{i}": id_ for i, id_ in enumerate(chunk)})
            result.extend(records.edges_from(statement, found))
        return result

    def _find_artifact(self, artifact_id: str) -> ArtifactRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return None if row is None else records.artifact(row)

    def get_metadata(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        out: dict[str, dict[str, JSON]] = {}
        m = entity_metadata.c
        with self.db.read() as conn:
            for chunk in chunks(entity_ids):
                rows = conn.execute(
                    select(m.entity_id, m.key, m.value)
                    .where(m.entity_kind == EntityKind(kind).value, m.entity_id.in_(chunk))
                    .order_by(m.entity_id, m.key)
                )
                for entity_id, key, value in rows:
                    out.setdefault(entity_id, {})[key] = value
        return out


def _run_page(
    names_only: bool,
    pipeline: str | None,
    status: Status | str | None,
    since: datetime | None,
    limit: int | None,
    offset: int,
    newest_first: bool,
) -> tuple[FastRead, dict[str, Any]]:
    """The prebuilt page-of-runs statement for these filters, and its parameters."""
    statement = sql.run_page(names_only, pipeline is not None, status is not None, since is not None, newest_first)
    params: dict[str, Any] = {"b_limit": sql.NO_LIMIT if limit is None else limit, "b_offset": offset}
    if pipeline is not None:
        params["b_pipeline"] = pipeline
    if status is not None:
        params["b_status"] = Status(status).value
    if since is not None:
        params["b_since"] = since
    return statement, params


def _run_filters(pipeline: str | None, status: Status | str | None, since: datetime | None) -> list[Any]:
    filters: list[Any] = []
    if pipeline is not None:
        filters.append(pipelines.c.name == pipeline)
    if status is not None:
        filters.append(pipeline_runs.c.status == Status(status).value)
    if since is not None:
        filters.append(pipeline_runs.c.start_time >= since)
    return filters
