"""The SQL metadata store: every query pipeledger runs, written once for every database.

Flavors (:mod:`pipeledger.metadata_store.flavors`) only build a
:class:`~pipeledger.metadata_store.sql.engine.Database`; this module holds all
reads and writes, in SQLAlchemy Core, and is the same on SQLite, MySQL/MariaDB
and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy import exc as sa_exc

from pipeledger.exceptions import (
    MetadataStoreError,
    NotFoundError,
    RunExistsError,
)
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.lineage import lineage_statement
from pipeledger.metadata_store.sql.migrate import ensure_schema
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    entity_metadata,
    pipeline_runs,
    pipelines,
    step_io,
    step_runs,
)
from pipeledger.models import (
    JSON,
    ArtifactCreate,
    ArtifactRecord,
    CacheHit,
    Direction,
    EntityKind,
    LineageRecord,
    MetricPoint,
    PipelineRecord,
    RunCreate,
    RunRecord,
    Status,
    StepIO,
    StepRunCreate,
    StepRunRecord,
    new_id,
    utcnow,
)

_RUN_COLUMNS = (*pipeline_runs.c, pipelines.c.name.label("pipeline_name"))
_RUNS_FROM = pipeline_runs.join(pipelines, pipeline_runs.c.pipeline_id == pipelines.c.id)
_IN_CHUNK = 500  # ids per IN (...) list


class SqlMetadataStore(MetadataStore):
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
                return self.db.run_transaction(lambda conn: self._insert_run(conn, run))
            except MetadataStoreError as exc:
                if not isinstance(exc.__cause__, sa_exc.IntegrityError):
                    raise
                # Either the name or (pipeline, number) was taken by a concurrent writer.
                taken = self._run_name_taken(run)
                if taken is not None and not templated:
                    raise RunExistsError(f"a run named {taken!r} already exists; choose another run_name") from None
        raise MetadataStoreError(f"could not allocate a unique name for run {run.name!r}")

    def _run_name_taken(self, run: RunCreate) -> str | None:
        if "{n}" in run.name:
            return None
        with self.db.read() as conn:
            found = conn.execute(select(pipeline_runs.c.name).where(pipeline_runs.c.name == run.name)).first()
        return run.name if found else None

    def _insert_run(self, conn: Connection, run: RunCreate) -> RunRecord:
        pipeline_id = self._pipeline_id(conn, run.pipeline_name, run.pipeline_docstring)
        number = conn.execute(
            select(func.coalesce(func.max(pipeline_runs.c.number), 0) + 1).where(
                pipeline_runs.c.pipeline_id == pipeline_id
            )
        ).scalar_one()
        name = run.name.replace("{n}", str(number))
        if "{n}" in run.name:
            # A deleted run or a user-chosen name may hold this one: take the next free number.
            while conn.execute(select(pipeline_runs.c.id).where(pipeline_runs.c.name == name)).first():
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
            "tags": run.tags,
        }
        conn.execute(insert(pipeline_runs), values)
        return RunRecord(
            id=run.id,
            pipeline_id=pipeline_id,
            pipeline_name=run.pipeline_name,
            name=name,
            number=number,
            status=Status.RUNNING,
            start_time=run.start_time,
            heartbeat_at=run.start_time,
            parameters=run.parameters,
            config=run.config,
            environment=run.environment,
            stack=run.stack,
            git_sha=run.git_sha,
            git_dirty=run.git_dirty,
            code_hash=run.code_hash,
            tags=run.tags,
        )

    def _pipeline_id(self, conn: Connection, name: str, docstring: str | None) -> str:
        found = conn.execute(select(pipelines.c.id).where(pipelines.c.name == name)).scalar()
        if found is not None:
            return str(found)
        pipeline_id = new_id()
        conn.execute(
            insert(pipelines),
            {"id": pipeline_id, "name": name, "docstring": docstring, "created_at": utcnow()},
        )
        return pipeline_id

    def finish_run(self, run_id: str, status: Status, *, end_time: datetime, error: str | None = None) -> None:
        def work(conn: Connection) -> None:
            result = conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.id == run_id)
                .values(status=Status(status).value, end_time=end_time, error=error)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no run with id {run_id!r}")

        self.db.run_transaction(work)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        self.db.run_transaction(
            lambda conn: conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(heartbeat_at=at))
        )

    def start_step(self, step: StepRunCreate) -> StepRunRecord:
        def work(conn: Connection) -> None:
            conn.execute(
                insert(step_runs),
                {
                    "id": step.id,
                    "run_id": step.run_id,
                    "name": step.name,
                    "status": Status.RUNNING.value,
                    "entrypoint": step.entrypoint,
                    "docstring": step.docstring,
                    "parameters": step.parameters,
                    "config": step.config,
                    "source_hash": step.source_hash,
                    "cache_key": step.cache_key,
                    "cache_components": step.cache_components,
                    "start_time": step.start_time,
                },
            )
            if step.inputs:
                conn.execute(
                    insert(step_io),
                    [
                        {
                            "step_run_id": step.id,
                            "direction": Direction.INPUT.value,
                            "name": name,
                            "artifact_id": artifact_id,
                        }
                        for name, artifact_id in step.inputs.items()
                    ],
                )

        try:
            self.db.run_transaction(work)
        except MetadataStoreError as exc:
            if isinstance(exc.__cause__, sa_exc.IntegrityError):
                missing = self._missing_step_refs(step)
                if missing is not None:
                    raise NotFoundError(f"cannot record step {step.name!r} of run {step.run_id!r}: {missing}") from exc
                raise MetadataStoreError(
                    f"cannot record step {step.name!r} of run {step.run_id!r}: the run does not "
                    "exist, an input artifact does not exist, or the step was already recorded"
                ) from exc
            raise
        return StepRunRecord(
            id=step.id,
            run_id=step.run_id,
            name=step.name,
            status=Status.RUNNING,
            start_time=step.start_time,
            entrypoint=step.entrypoint,
            docstring=step.docstring,
            parameters=step.parameters,
            config=step.config,
            source_hash=step.source_hash,
            cache_key=step.cache_key,
            cache_components=step.cache_components,
        )

    def record_cached_step(
        self, step: StepRunCreate, *, cached_from_id: str, outputs: Mapping[str, str]
    ) -> StepRunRecord:
        values = {
            "id": step.id,
            "run_id": step.run_id,
            "name": step.name,
            "status": Status.CACHED.value,
            "entrypoint": step.entrypoint,
            "docstring": step.docstring,
            "parameters": step.parameters,
            "config": step.config,
            "source_hash": step.source_hash,
            "cache_key": step.cache_key,
            "cache_components": step.cache_components,
            "cached_from_id": cached_from_id,
            "start_time": step.start_time,
            "end_time": step.start_time,
        }
        edges = [
            {"step_run_id": step.id, "direction": Direction.INPUT.value, "name": n, "artifact_id": a}
            for n, a in step.inputs.items()
        ] + [
            {"step_run_id": step.id, "direction": Direction.OUTPUT.value, "name": n, "artifact_id": a}
            for n, a in outputs.items()
        ]

        m = entity_metadata.c
        copy_metadata = insert(entity_metadata).from_select(
            ["entity_kind", "entity_id", "key", "value"],
            select(m.entity_kind, literal(step.id, String(32)), m.key, m.value).where(
                m.entity_kind == EntityKind.STEP_RUN.value, m.entity_id == cached_from_id
            ),
        )

        def work(conn: Connection) -> None:
            conn.execute(insert(step_runs), values)
            if edges:
                conn.execute(insert(step_io), edges)
            conn.execute(copy_metadata)

        try:
            self.db.run_transaction(work)
        except MetadataStoreError as exc:
            if isinstance(exc.__cause__, sa_exc.IntegrityError):
                raise NotFoundError(
                    f"cannot record cached step {step.name!r}: its run, original step run "
                    f"{cached_from_id!r} or an artifact does not exist"
                ) from exc
            raise
        return records.step_run_from_values(values)

    def invalidate_cache(self, *, at: datetime, pipeline: str | None = None, step: str | None = None) -> int:
        query = update(step_runs).where(
            step_runs.c.cache_key.is_not(None),
            step_runs.c.status == Status.COMPLETED.value,
            step_runs.c.cache_invalidated_at.is_(None),
        )
        if step is not None:
            query = query.where(step_runs.c.name == step)
        if pipeline is not None:
            runs_of_pipeline = select(pipeline_runs.c.id).select_from(_RUNS_FROM).where(pipelines.c.name == pipeline)
            query = query.where(step_runs.c.run_id.in_(runs_of_pipeline))
        return int(self.db.run_transaction(lambda conn: conn.execute(query.values(cache_invalidated_at=at)).rowcount))

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
    ) -> list[ArtifactRecord]:
        created = [
            ArtifactRecord(
                id=a.id,
                uri=a.uri,
                type=a.type,
                data_type=a.data_type,
                materializer=a.materializer,
                materializer_version=a.materializer_version,
                content_hash=a.content_hash,
                size=a.size,
                producer_step_run_id=step_run_id,
                created_at=end_time,
                artifact_store=a.artifact_store,
            )
            for a in outputs
        ]
        meta_rows = [
            {
                "entity_kind": EntityKind.STEP_RUN.value,
                "entity_id": step_run_id,
                "key": k,
                "value": v,
            }
            for k, v in (metadata or {}).items()
        ]
        for a in outputs:
            meta_rows.extend(
                {"entity_kind": EntityKind.ARTIFACT.value, "entity_id": a.id, "key": k, "value": v}
                for k, v in a.metadata.items()
            )

        def work(conn: Connection) -> None:
            result = conn.execute(
                update(step_runs)
                .where(step_runs.c.id == step_run_id)
                .values(status=Status(status).value, end_time=end_time, error=error, logs_uri=logs_uri)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no step run with id {step_run_id!r}")
            if created:
                conn.execute(
                    insert(artifacts),
                    [
                        {
                            "id": a.id,
                            "uri": a.uri,
                            "artifact_store": a.artifact_store,
                            "type": a.type,
                            "data_type": a.data_type,
                            "materializer": a.materializer,
                            "materializer_version": a.materializer_version,
                            "content_hash": a.content_hash,
                            "size": a.size,
                            "producer_step_run_id": step_run_id,
                            "created_at": end_time,
                        }
                        for a in created
                    ],
                )
                conn.execute(
                    insert(step_io),
                    [
                        {
                            "step_run_id": step_run_id,
                            "direction": Direction.OUTPUT.value,
                            "name": a.name,
                            "artifact_id": a.id,
                        }
                        for a in outputs
                    ],
                )
            if meta_rows:
                _replace_metadata(conn, meta_rows)

        self.db.run_transaction(work)
        return created

    def put_metadata(self, kind: EntityKind, entity_id: str, values: Mapping[str, JSON]) -> None:
        rows = [
            {"entity_kind": EntityKind(kind).value, "entity_id": entity_id, "key": k, "value": v}
            for k, v in values.items()
        ]
        if rows:
            self.db.run_transaction(lambda conn: _replace_metadata(conn, rows))

    # ------------------------------------------------------------------- reads

    def get_pipeline(self, name: str) -> PipelineRecord:
        with self.db.read() as conn:
            row = conn.execute(select(pipelines).where(pipelines.c.name == name)).first()
            if row is None:
                known = conn.execute(select(pipelines.c.name).order_by(pipelines.c.name).limit(10)).scalars()
                raise NotFoundError(_not_found("pipeline", name, list(known)))
        return records.pipeline(row)

    def list_pipelines(self, *, limit: int | None = None, offset: int = 0) -> list[PipelineRecord]:
        query = select(pipelines).order_by(pipelines.c.name).limit(limit).offset(offset)
        with self.db.read() as conn:
            return [records.pipeline(r) for r in conn.execute(query)]

    def get_run(self, name_or_id: str) -> RunRecord:
        base = select(*_RUN_COLUMNS).select_from(_RUNS_FROM)
        with self.db.read() as conn:
            row = conn.execute(base.where(pipeline_runs.c.name == name_or_id)).first()
            if row is None:
                row = conn.execute(base.where(pipeline_runs.c.id == name_or_id)).first()
            if row is None:
                latest = conn.execute(
                    select(pipeline_runs.c.name).order_by(pipeline_runs.c.start_time.desc()).limit(5)
                ).scalars()
                raise NotFoundError(_not_found("run", name_or_id, list(latest), "latest runs"))
        return records.run(row)

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: Status | str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[RunRecord]:
        query = select(*_RUN_COLUMNS).select_from(_RUNS_FROM)
        query = query.where(*_run_filters(pipeline, status, since))
        order = pipeline_runs.c.start_time.desc() if newest_first else pipeline_runs.c.start_time
        tiebreak = pipeline_runs.c.id.desc() if newest_first else pipeline_runs.c.id
        query = query.order_by(order, tiebreak).limit(limit).offset(offset)
        with self.db.read() as conn:
            return [records.run(r) for r in conn.execute(query)]

    def count_runs(self, *, pipeline: str | None = None, status: Status | str | None = None) -> int:
        query = select(func.count()).select_from(_RUNS_FROM).where(*_run_filters(pipeline, status, None))
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        query = select(step_runs).where(step_runs.c.run_id == run_id).order_by(step_runs.c.start_time, step_runs.c.id)
        with self.db.read() as conn:
            return [records.step_run(r) for r in conn.execute(query)]

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        with self.db.read() as conn:
            row = conn.execute(select(step_runs).where(step_runs.c.id == step_run_id)).first()
        if row is None:
            raise NotFoundError(f"no step run with id {step_run_id!r}")
        return records.step_run(row)

    def list_step_io(self, step_run_ids: Sequence[str]) -> list[StepIO]:
        result: list[StepIO] = []
        query = select(
            step_io.c.step_run_id,
            step_io.c.direction,
            step_io.c.name.label("io_name"),
            *artifacts.c,
        ).select_from(step_io.join(artifacts, step_io.c.artifact_id == artifacts.c.id))
        with self.db.read() as conn:
            for chunk in _chunks(step_run_ids):
                rows = conn.execute(query.where(step_io.c.step_run_id.in_(chunk)))
                result.extend(records.step_io(r) for r in rows)
        return result

    def find_cached_step(self, cache_key: str, *, not_before: datetime | None = None) -> CacheHit | None:
        latest = (
            select(step_runs.c.id)
            .where(
                step_runs.c.cache_key == cache_key,
                step_runs.c.status == Status.COMPLETED.value,
                step_runs.c.cache_invalidated_at.is_(None),
            )
            .order_by(step_runs.c.end_time.desc())
            .limit(1)
        )
        if not_before is not None:
            latest = latest.where(step_runs.c.end_time >= not_before)
        query = (
            select(
                *step_runs.c,
                step_io.c.name.label("io_name"),
                *(c.label(f"a_{c.name}") for c in artifacts.c),
            )
            .select_from(
                step_runs.outerjoin(
                    step_io,
                    and_(step_io.c.step_run_id == step_runs.c.id, step_io.c.direction == Direction.OUTPUT.value),
                ).outerjoin(artifacts, artifacts.c.id == step_io.c.artifact_id)
            )
            .where(step_runs.c.id == latest.scalar_subquery())
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return None
        outputs = {
            row._mapping["io_name"]: records.artifact(row, prefix="a_")
            for row in rows
            if row._mapping["io_name"] is not None
        }
        return CacheHit(records.step_run(rows[0]), outputs)

    def latest_step_run(self, pipeline: str, step: str, *, before: datetime) -> StepRunRecord | None:
        query = (
            select(step_runs)
            .select_from(step_runs.join(_RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id))
            .where(step_runs.c.name == step, pipelines.c.name == pipeline, step_runs.c.start_time < before)
            .order_by(step_runs.c.start_time.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return records.step_run(row) if row is not None else None

    def lineage(
        self,
        *,
        artifact_id: str | None = None,
        step_run_id: str | None = None,
        direction: str = "upstream",
        depth: int | None = None,
    ) -> LineageRecord:
        if direction not in ("upstream", "downstream", "both"):
            raise ValueError(f"direction must be upstream, downstream or both, not {direction!r}")
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, not {depth}")
        statement = lineage_statement(
            artifact_id=artifact_id,
            step_run_id=step_run_id,
            direction=direction,  # type: ignore[arg-type]
            depth=depth,
        )
        with self.db.read() as conn:
            rows = conn.execute(statement).all()
        return records.lineage(rows)

    def metric_history(
        self, pipeline: str, *, keys: Sequence[str] | None = None, limit: int | None = None
    ) -> list[MetricPoint]:
        m = entity_metadata.c
        query = (
            select(
                pipeline_runs.c.id,
                pipeline_runs.c.name,
                pipeline_runs.c.start_time,
                step_runs.c.name.label("step_name"),
                m.key,
                m.value,
            )
            .select_from(
                _RUNS_FROM.join(step_runs, step_runs.c.run_id == pipeline_runs.c.id).join(
                    entity_metadata,
                    and_(m.entity_kind == EntityKind.STEP_RUN.value, m.entity_id == step_runs.c.id),
                )
            )
            .where(pipelines.c.name == pipeline)
            .order_by(pipeline_runs.c.start_time, pipeline_runs.c.id, step_runs.c.start_time, m.key)
        )
        if keys is not None:
            query = query.where(m.key.in_(list(keys)))
        if limit is not None:
            latest = (
                select(pipeline_runs.c.id)
                .select_from(_RUNS_FROM)
                .where(pipelines.c.name == pipeline)
                .order_by(pipeline_runs.c.start_time.desc())
                .limit(limit)
                .subquery()
            )
            query = query.where(pipeline_runs.c.id.in_(select(latest.c.id)))
        with self.db.read() as conn:
            return [MetricPoint(*row) for row in conn.execute(query)]

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self.db.read() as conn:
            row = conn.execute(select(artifacts).where(artifacts.c.id == artifact_id)).first()
        if row is None:
            raise NotFoundError(f"no artifact with id {artifact_id!r}")
        return records.artifact(row)

    def get_metadata(self, kind: EntityKind, entity_ids: Sequence[str]) -> dict[str, dict[str, JSON]]:
        out: dict[str, dict[str, JSON]] = {}
        m = entity_metadata.c
        with self.db.read() as conn:
            for chunk in _chunks(entity_ids):
                rows = conn.execute(
                    select(m.entity_id, m.key, m.value)
                    .where(m.entity_kind == EntityKind(kind).value, m.entity_id.in_(chunk))
                    .order_by(m.entity_id, m.key)
                )
                for entity_id, key, value in rows:
                    out.setdefault(entity_id, {})[key] = value
        return out


def _replace_metadata(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert key/value rows, replacing existing keys (a portable upsert)."""
    m = entity_metadata.c
    # Chunked: SQLite refuses an expression tree deeper than 1000 (one OR per row).
    for start in range(0, len(rows), _IN_CHUNK):
        keys = [
            and_(m.entity_kind == r["entity_kind"], m.entity_id == r["entity_id"], m.key == r["key"])
            for r in rows[start : start + _IN_CHUNK]
        ]
        conn.execute(delete(entity_metadata).where(or_(*keys)))
    conn.execute(insert(entity_metadata), rows)


def _run_filters(pipeline: str | None, status: Status | str | None, since: datetime | None) -> list[Any]:
    filters: list[Any] = []
    if pipeline is not None:
        filters.append(pipelines.c.name == pipeline)
    if status is not None:
        filters.append(pipeline_runs.c.status == Status(status).value)
    if since is not None:
        filters.append(pipeline_runs.c.start_time >= since)
    return filters


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    ids = list(dict.fromkeys(ids))
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


def _not_found(kind: str, name: str, known: list[str], label: str | None = None) -> str:
    if not known:
        return f"no {kind} named {name!r}: none is recorded yet"
    return f"no {kind} named {name!r}; {label or 'known ' + kind + 's'}: {', '.join(known)}"
