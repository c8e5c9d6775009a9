"""Pieces shared by the SQL store's query modules."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select

from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.schema import pipeline_runs, pipelines, step_io, step_runs

RUN_COLUMNS = (*pipeline_runs.c, pipelines.c.name.label("pipeline_name"), pipelines.c.project)
RUNS_FROM = pipeline_runs.join(pipelines, pipeline_runs.c.pipeline_id == pipelines.c.id)
IN_CHUNK = 500  # ids per IN (...) list


def chunks(ids: Sequence[str]) -> list[list[str]]:
    """Distinct ``ids`` in lists short enough for an ``IN (...)`` on every database."""
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + IN_CHUNK] for i in range(0, len(unique), IN_CHUNK)]


def in_projects(projects: Collection[str] | None) -> list[Any]:
    """The ``WHERE`` terms keeping rows of pipelines in ``projects`` (none for None: every project)."""
    return [] if projects is None else [pipelines.c.project.in_(sorted(set(projects)))]


def artifacts_in_projects(artifact_id: ColumnElement[Any], projects: Collection[str]) -> ColumnElement[bool]:
    """Whether the artifact ``artifact_id`` belongs to one of ``projects``: a step run of a
    pipeline there produced or consumed it (the rule of ``docs/server.md``, "Projects and roles")."""
    touched = (
        select(step_io.c.artifact_id)
        .select_from(
            step_io.join(step_runs, step_io.c.step_run_id == step_runs.c.id).join(
                RUNS_FROM, step_runs.c.run_id == pipeline_runs.c.id
            )
        )
        .where(pipelines.c.project.in_(sorted(set(projects))))
    )
    return artifact_id.in_(touched)


class SqlQueries:
    """Base of the query groups that make up :class:`SqlMetadataStore`: they share ``db``."""

    db: Database
