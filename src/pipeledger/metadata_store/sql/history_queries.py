"""History queries of the SQL store: lineage (one recursive statement) and metrics over runs."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence

from sqlalchemy import and_, select

from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql.common import RUNS_FROM, SqlQueries, in_projects
from pipeledger.metadata_store.sql.fastpath import FastRead
from pipeledger.metadata_store.sql.lineage import LineageDirection, LineageStart, lineage_statement
from pipeledger.metadata_store.sql.schema import (
    entity_metadata,
    pipeline_runs,
    pipelines,
    step_runs,
)
from pipeledger.models import (
    EntityKind,
    LineageRecord,
    MetricPoint,
)


@functools.cache
def _lineage_read(start: LineageStart, direction: LineageDirection, bounded: bool) -> FastRead:
    """The lineage statement of one shape, built once, on the driver's cursor (compiled once per dialect)."""
    return FastRead(lineage_statement(start, direction, bounded))


class HistoryQueries(SqlQueries):
    """Lineage graphs and metric histories."""

    def _lineage(
        self, *, artifact_id: str | None, step_run_id: str | None, direction: str, depth: int | None
    ) -> LineageRecord:
        start: LineageStart = "artifact" if artifact_id is not None else "step_run"
        statement = _lineage_read(start, direction, depth is not None)
        with self.db.session() as reader:
            found = statement.rows(reader, {"b_start": artifact_id or step_run_id, "b_depth": depth})
        return records.lineage_from(statement, found)

    def metric_history(
        self,
        pipeline: str,
        *,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
        projects: Collection[str] | None = None,
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
                RUNS_FROM.join(step_runs, step_runs.c.run_id == pipeline_runs.c.id).join(
                    entity_metadata,
                    and_(m.entity_kind == EntityKind.STEP_RUN.value, m.entity_id == step_runs.c.id),
                )
            )
            .where(pipelines.c.name == pipeline, *in_projects(projects))
            .order_by(pipeline_runs.c.start_time, pipeline_runs.c.id, step_runs.c.start_time, m.key)
        )
        if keys is not None:
            query = query.where(m.key.in_(list(keys)))
        if limit is not None:
            latest = (
                select(pipeline_runs.c.id)
                .select_from(RUNS_FROM)
                .where(pipelines.c.name == pipeline)
                .order_by(pipeline_runs.c.start_time.desc())
                .limit(limit)
                .subquery()
            )
            query = query.where(pipeline_runs.c.id.in_(select(latest.c.id)))
        with self.db.read() as conn:
            return [records.metric_point(row) for row in conn.execute(query)]
