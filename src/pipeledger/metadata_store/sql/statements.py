"""Every prebuilt statement of the SQL store, defined once (see :mod:`.fastpath`).

Built at import: on SQLite, building and hashing a statement costs more than running it.
These are the statements of the per-step record path, the run view, the cache look-up and
the metadata upsert; the rest of the store's queries are built per call in SQLAlchemy Core.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, Insert, Select, String, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from pipeledger.exceptions import RunExistsError, StepRunExistsError
from pipeledger.metadata_store.sql.common import RUN_COLUMNS, RUNS_FROM
from pipeledger.metadata_store.sql.fastpath import FastRead, FastWrite
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    entity_metadata,
    entity_tags,
    pipeline_runs,
    pipelines,
    step_io,
    step_runs,
)
from pipeledger.models import Direction, EntityKind, Status


def _step_exists(row: Mapping[str, Any]) -> StepRunExistsError:
    return StepRunExistsError(
        f"step {row['name']!r} of run {row['run_id']!r} is already recorded (step run id {row['id']!r})"
    )


def _run_exists(row: Mapping[str, Any]) -> RunExistsError:
    return RunExistsError(
        f"a run named {row['name']!r} already exists (or its pipeline's run number, {row['number']}, is taken); "
        "choose another run_name"
    )


def _upsert_metadata(dialect: str) -> Insert:
    """INSERT of metadata rows that replaces the value of a key the entity already has."""
    if dialect == "mysql":
        upsert = mysql.insert(entity_metadata)
        return upsert.on_duplicate_key_update(value=upsert.inserted.value, number=upsert.inserted.number)
    if dialect in ("sqlite", "postgresql"):
        conflicting = sqlite.insert(entity_metadata) if dialect == "sqlite" else postgresql.insert(entity_metadata)
        return conflicting.on_conflict_do_update(
            index_elements=[entity_metadata.c.entity_kind, entity_metadata.c.entity_id, entity_metadata.c.key],
            set_={"value": conflicting.excluded.value, "number": conflicting.excluded.number},
        )
    raise NotImplementedError(f"no metadata upsert for the {dialect} dialect")


# ------------------------------------------------------------------- writes

INSERT_PIPELINE = FastWrite(insert(pipelines))
INSERT_RUN = FastWrite(insert(pipeline_runs), on_duplicate=_run_exists)
INSERT_STEP = FastWrite(insert(step_runs), on_duplicate=_step_exists)
INSERT_IO = FastWrite(insert(step_io))
INSERT_ARTIFACTS = FastWrite(insert(artifacts))
INSERT_METADATA = FastWrite(insert(entity_metadata))
INSERT_TAGS = FastWrite(insert(entity_tags))
UPSERT_METADATA = FastWrite(_upsert_metadata)
FINISH_STEP = FastWrite(
    update(step_runs)
    .where(step_runs.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        end_time=bindparam("b_end", type_=step_runs.c.end_time.type),
        error=bindparam("b_error", type_=step_runs.c.error.type),
        logs_uri=bindparam("b_logs", type_=step_runs.c.logs_uri.type),
        error_message=bindparam("b_message", type_=step_runs.c.error_message.type),
    )
)
FINISH_RUN = FastWrite(
    update(pipeline_runs)
    .where(pipeline_runs.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        end_time=bindparam("b_end", type_=pipeline_runs.c.end_time.type),
        error=bindparam("b_error", type_=pipeline_runs.c.error.type),
    )
)
HEARTBEAT = FastWrite(
    update(pipeline_runs)
    .where(pipeline_runs.c.id == bindparam("b_id"))
    .values(heartbeat_at=bindparam("b_at", type_=pipeline_runs.c.heartbeat_at.type))
)
COPY_STEP_METADATA = FastWrite(
    insert(entity_metadata).from_select(
        ["entity_kind", "entity_id", "key", "value", "number"],
        select(
            entity_metadata.c.entity_kind,
            bindparam("b_new", type_=String(32)),
            entity_metadata.c.key,
            entity_metadata.c.value,
            entity_metadata.c.number,
        ).where(
            entity_metadata.c.entity_kind == EntityKind.STEP_RUN.value,
            entity_metadata.c.entity_id == bindparam("b_from"),
        ),
    )
)
"""Copies a step run's metadata (``b_from``) to a new step run (``b_new``): a cache hit."""

# -------------------------------------------------------------------- reads

PIPELINE_ID = FastRead(select(pipelines.c.id, pipelines.c.project).where(pipelines.c.name == bindparam("b_name")))
RUN_ID_BY_NAME = FastRead(select(pipeline_runs.c.id).where(pipeline_runs.c.name == bindparam("b_name")))
NEXT_RUN_NUMBER = FastRead(
    select((func.coalesce(func.max(pipeline_runs.c.number), 0) + 1).label("number")).where(
        pipeline_runs.c.pipeline_id == bindparam("b_pipeline", type_=pipeline_runs.c.pipeline_id.type)
    )
)
RUN_BY_NAME = FastRead(select(*RUN_COLUMNS).select_from(RUNS_FROM).where(pipeline_runs.c.name == bindparam("b_name")))
RUN_BY_ID = FastRead(select(*RUN_COLUMNS).select_from(RUNS_FROM).where(pipeline_runs.c.id == bindparam("b_id")))
TAGS_OF = FastRead(
    select(entity_tags.c.tag)
    .where(entity_tags.c.entity_kind == bindparam("b_kind"), entity_tags.c.entity_id == bindparam("b_id"))
    .order_by(entity_tags.c.tag)
)
STEPS_OF_RUN = FastRead(
    select(step_runs).where(step_runs.c.run_id == bindparam("b_run")).order_by(step_runs.c.start_time, step_runs.c.id)
)


@functools.lru_cache(maxsize=64)
def edges_of_steps(count: int) -> FastRead:
    """The edges (with artifacts) of ``count`` step runs, ids bound as ``b_0``... (one statement per
    list length, compiled once: the driver-cursor path takes no expanding ``IN``)."""
    ids = [bindparam(f"b_{i}", type_=step_io.c.step_run_id.type) for i in range(count)]
    return FastRead(
        select(step_io.c.step_run_id, step_io.c.direction, step_io.c.name.label("io_name"), *artifacts.c)
        .select_from(step_io.join(artifacts, step_io.c.artifact_id == artifacts.c.id))
        .where(step_io.c.step_run_id.in_(ids))
    )


NO_LIMIT = 2**62
"""The ``LIMIT`` bound for "every row" (the three databases take a large number, not all take NULL)."""


@functools.cache
def run_page(names_only: bool, pipeline: bool, status: bool, since: bool, newest_first: bool) -> FastRead:
    """A page of runs (their columns and ``pipeline_name``, or only their names) in start order,
    filtered by whichever of ``b_pipeline`` (name), ``b_status`` and ``b_since`` (start time) are
    present, ``b_limit`` rows (:data:`NO_LIMIT` for all) after the first ``b_offset``. One statement
    per combination, built once."""
    query = select(pipeline_runs.c.name) if names_only else select(*RUN_COLUMNS)
    query = query.select_from(RUNS_FROM)
    if pipeline:
        query = query.where(pipelines.c.name == bindparam("b_pipeline", type_=pipelines.c.name.type))
    if status:
        query = query.where(pipeline_runs.c.status == bindparam("b_status", type_=pipeline_runs.c.status.type))
    if since:
        query = query.where(pipeline_runs.c.start_time >= bindparam("b_since", type_=pipeline_runs.c.start_time.type))
    start, tiebreak = pipeline_runs.c.start_time, pipeline_runs.c.id
    query = query.order_by(*((start.desc(), tiebreak.desc()) if newest_first else (start, tiebreak)))
    return FastRead(query.limit(bindparam("b_limit", type_=BigInteger)).offset(bindparam("b_offset", type_=BigInteger)))


@functools.lru_cache(maxsize=64)
def tags_of_entities(count: int) -> FastRead:
    """The tags of ``count`` entities of kind ``b_kind``, ids bound as ``b_0``..., by entity and tag."""
    ids = [bindparam(f"b_{i}", type_=entity_tags.c.entity_id.type) for i in range(count)]
    return FastRead(
        select(entity_tags.c.entity_id, entity_tags.c.tag)
        .where(entity_tags.c.entity_kind == bindparam("b_kind"), entity_tags.c.entity_id.in_(ids))
        .order_by(entity_tags.c.entity_id, entity_tags.c.tag)
    )


def _find_cached(since: bool, projects: int = 0) -> Select[Any]:
    """The cache look-up: the latest usable entry with the key (by index ``(cache_key, status,
    end_time)``), joined with its output artifacts and its run's name: one statement. With
    ``projects`` > 0, only entries of runs whose pipeline is in one of the projects bound as
    ``b_p0``..."""
    latest = (
        select(step_runs.c.id)
        .where(
            step_runs.c.cache_key == bindparam("b_key"),
            step_runs.c.status == Status.COMPLETED.value,
            step_runs.c.cache_invalidated_at.is_(None),
        )
        .order_by(step_runs.c.end_time.desc())
        .limit(1)
    )
    if since:
        latest = latest.where(step_runs.c.end_time >= bindparam("b_since", type_=step_runs.c.end_time.type))
    if projects:
        names = [bindparam(f"b_p{i}", type_=pipelines.c.project.type) for i in range(projects)]
        in_projects = select(pipeline_runs.c.id).select_from(RUNS_FROM).where(pipelines.c.project.in_(names))
        latest = latest.where(step_runs.c.run_id.in_(in_projects))
    return (
        select(
            *step_runs.c,
            pipeline_runs.c.name.label("r_name"),
            step_io.c.name.label("io_name"),
            *(c.label(f"a_{c.name}") for c in artifacts.c),
        )
        .select_from(
            step_runs.join(pipeline_runs, pipeline_runs.c.id == step_runs.c.run_id)
            .outerjoin(
                step_io,
                and_(step_io.c.step_run_id == step_runs.c.id, step_io.c.direction == Direction.OUTPUT.value),
            )
            .outerjoin(artifacts, artifacts.c.id == step_io.c.artifact_id)
        )
        .where(step_runs.c.id == latest.scalar_subquery())
    )


FIND_CACHED = FastRead(_find_cached(since=False))
FIND_CACHED_SINCE = FastRead(_find_cached(since=True))


@functools.lru_cache(maxsize=32)
def find_cached_in(since: bool, projects: int) -> FastRead:
    """The cache look-up restricted to ``projects`` projects (bound as ``b_p0``...)."""
    return FastRead(_find_cached(since, projects))
