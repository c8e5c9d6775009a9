"""Pieces shared by the SQL store's query modules."""

from __future__ import annotations

from collections.abc import Sequence

from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.schema import pipeline_runs, pipelines

RUN_COLUMNS = (*pipeline_runs.c, pipelines.c.name.label("pipeline_name"))
RUNS_FROM = pipeline_runs.join(pipelines, pipeline_runs.c.pipeline_id == pipelines.c.id)
IN_CHUNK = 500  # ids per IN (...) list


def chunks(ids: Sequence[str]) -> list[list[str]]:
    """Distinct ``ids`` in lists short enough for an ``IN (...)`` on every database."""
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + IN_CHUNK] for i in range(0, len(unique), IN_CHUNK)]


class SqlQueries:
    """Base of the query groups that make up :class:`SqlMetadataStore`: they share ``db``."""

    db: Database
