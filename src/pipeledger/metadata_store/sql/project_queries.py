"""The projects of records, for the server's authorization: one query per kind of object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, cast, null, select

from pipeledger.metadata_store.sql.common import RUNS_FROM, SqlQueries, chunks
from pipeledger.metadata_store.sql.schema import artifacts, pipeline_runs, pipelines, step_io, step_runs


class ProjectQueries(SqlQueries):
    """:meth:`~pipeledger.metadata_store.base.MetadataStore.projects_of` in SQL."""

    def projects_of(self, kind: str, keys: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        with self.db.read() as conn:
            for chunk in chunks(keys):
                for key, project in conn.execute(_query(kind, chunk)):
                    found.setdefault(key, set())
                    if project is not None:
                        found[key].add(project)
        if kind == "run":  # found by name or by id: both answer
            return {key: sorted(found[key]) for key in keys if key in found}
        return {key: sorted(projects) for key, projects in found.items()}


def _query(kind: str, keys: list[str]) -> Any:
    """Rows of (key, project): one per project of each object found (project None: an artifact
    no step run touched)."""
    if kind == "pipeline":
        return select(pipelines.c.name, pipelines.c.project).where(pipelines.c.name.in_(keys))
    if kind == "run":
        by_name = select(pipeline_runs.c.name, pipelines.c.project).select_from(RUNS_FROM)
        by_id = select(pipeline_runs.c.id, pipelines.c.project).select_from(RUNS_FROM)
        return by_name.where(pipeline_runs.c.name.in_(keys)).union_all(by_id.where(pipeline_runs.c.id.in_(keys)))
    if kind == "step_run":
        return (
            select(step_runs.c.id, pipelines.c.project)
            .select_from(step_runs.join(RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id))
            .where(step_runs.c.id.in_(keys))
        )
    if kind == "artifact":
        touched = step_io.join(step_runs, step_io.c.step_run_id == step_runs.c.id).join(
            RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id
        )
        used = (
            select(step_io.c.artifact_id, pipelines.c.project)
            .select_from(touched)
            .where(step_io.c.artifact_id.in_(keys))
            .distinct()
        )
        recorded = select(artifacts.c.id, cast(null(), String)).where(artifacts.c.id.in_(keys))
        return used.union_all(recorded)
    raise ValueError(f"unknown kind of object {kind!r}: one of pipeline, run, step_run, artifact")
