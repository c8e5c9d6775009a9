"""Caching queries of the SQL store: look-ups, cached step runs, invalidation."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from pipeledger.exceptions import CacheEntryGoneError, NotFoundError
from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql import statements as sql
from pipeledger.metadata_store.sql.common import RUNS_FROM, SqlQueries, in_projects
from pipeledger.metadata_store.sql.engine import MissingReferenceError
from pipeledger.metadata_store.sql.fastpath import Session
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    pipeline_runs,
    pipelines,
    step_runs,
)
from pipeledger.models import (
    CacheEntry,
    CacheHit,
    Direction,
    Status,
    StepRunCreate,
    StepRunRecord,
)


class CacheQueries(SqlQueries):
    """Cache look-up, recording of cache hits, invalidation, the latest earlier run of a step."""

    def record_cached_step(
        self, step: StepRunCreate, *, cached_from_id: str, outputs: Mapping[str, str]
    ) -> StepRunRecord:
        values = records.step_run_values(step, Status.CACHED, cached_from_id=cached_from_id, end_time=step.start_time)
        edges = records.edge_values(step.id, Direction.INPUT, step.inputs.items()) + records.edge_values(
            step.id, Direction.OUTPUT, outputs.items()
        )

        def work(session: Session) -> None:
            sql.INSERT_STEP.execute(session, [values])
            sql.INSERT_IO.execute(session, edges)
            sql.COPY_STEP_METADATA.execute(session, [{"b_new": step.id, "b_from": cached_from_id}])

        try:
            self.db.run_session(work)
        except MissingReferenceError as exc:
            # A foreign key refused the rows: nothing was recorded. Say which reference is missing
            # (the cache entry may have been deleted by another process since the look-up).
            raise self._cached_step_refused(step, cached_from_id, outputs) from exc
        return records.step_run_from_values(values)

    def _cached_step_refused(
        self, step: StepRunCreate, cached_from_id: str, outputs: Mapping[str, str]
    ) -> NotFoundError:
        """The error for a cache hit the database refused: :class:`CacheEntryGoneError` if the
        original step run or one of its outputs no longer exists, else a plain NotFoundError."""
        wanted = list(dict.fromkeys(outputs.values()))
        with self.db.read() as conn:
            source = conn.execute(select(step_runs.c.id).where(step_runs.c.id == cached_from_id)).first()
            found = set(conn.execute(select(artifacts.c.id).where(artifacts.c.id.in_(wanted))).scalars())
        missing = [f"{n}={a!r}" for n, a in outputs.items() if a not in found]
        if source is None or missing:
            what = f"original step run {cached_from_id!r}" if source is None else f"output {', '.join(missing)}"
            return CacheEntryGoneError(f"cannot record cached step {step.name!r}: its {what} no longer exists")
        return NotFoundError(
            f"cannot record cached step {step.name!r}: its run {step.run_id!r} or an input artifact does not exist"
        )

    def invalidate_cache(
        self,
        *,
        at: datetime,
        pipeline: str | None = None,
        step: str | None = None,
        projects: Collection[str] | None = None,
    ) -> int:
        query = update(step_runs).where(
            step_runs.c.cache_key.is_not(None),
            step_runs.c.status == Status.COMPLETED.value,
            step_runs.c.cache_invalidated_at.is_(None),
        )
        if step is not None:
            query = query.where(step_runs.c.name == step)
        if pipeline is not None or projects is not None:
            named = [pipelines.c.name == pipeline] if pipeline is not None else []
            runs = select(pipeline_runs.c.id).select_from(RUNS_FROM).where(*named, *in_projects(projects))
            query = query.where(step_runs.c.run_id.in_(runs))
        return int(self.db.run_transaction(lambda conn: conn.execute(query.values(cache_invalidated_at=at)).rowcount))

    def list_cache_entries(
        self,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        invalidated: bool | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
    ) -> list[CacheEntry]:
        query = (
            select(
                step_runs.c.id,
                step_runs.c.name,
                step_runs.c.cache_key,
                step_runs.c.end_time,
                step_runs.c.cache_invalidated_at,
                pipeline_runs.c.name.label("run_name"),
                pipelines.c.name.label("pipeline_name"),
            )
            .select_from(step_runs.join(RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id))
            .where(step_runs.c.cache_key.is_not(None), step_runs.c.status == Status.COMPLETED.value)
            .where(*in_projects(projects))
            .order_by(step_runs.c.end_time.desc(), step_runs.c.id.desc())
            .limit(limit)
        )
        if step is not None:
            query = query.where(step_runs.c.name == step)
        if pipeline is not None:
            query = query.where(pipelines.c.name == pipeline)
        if invalidated is not None:
            column = step_runs.c.cache_invalidated_at
            query = query.where(column.is_not(None) if invalidated else column.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [records.cache_entry(row) for row in rows]

    def find_cached_step(
        self, cache_key: str, *, not_before: datetime | None = None, projects: Collection[str] | None = None
    ) -> CacheHit | None:
        with self.db.session() as reader:
            params: dict[str, Any] = {"b_key": cache_key}
            if projects is not None:
                names = sorted(set(projects))
                if not names:
                    return None
                params.update({f"b_p{i}": p for i, p in enumerate(names)})
                if not_before is not None:
                    params["b_since"] = not_before
                statement = sql.find_cached_in(not_before is not None, len(names))
            elif not_before is None:
                statement = sql.FIND_CACHED
            else:
                statement, params["b_since"] = sql.FIND_CACHED_SINCE, not_before
            found = statement.rows(reader, params)
        return records.cache_hit_from(statement, found) if found[0] else None

    def latest_step_run(
        self, pipeline: str, step: str, *, before: datetime, projects: Collection[str] | None = None
    ) -> StepRunRecord | None:
        query = (
            select(step_runs)
            .select_from(step_runs.join(RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id))
            .where(
                step_runs.c.name == step,
                pipelines.c.name == pipeline,
                step_runs.c.start_time < before,
                step_runs.c.status != Status.SKIPPED.value,
                *in_projects(projects),
            )
            .order_by(step_runs.c.start_time.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return records.step_run(row) if row is not None else None
