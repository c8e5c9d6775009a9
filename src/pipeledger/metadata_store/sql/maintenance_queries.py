"""Maintenance queries of the SQL store: crash marking, run deletion, integrity checks."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, column, delete, func, not_, select, table, update

from pipeledger.exceptions import NotFoundError
from pipeledger.metadata_store.sql import records
from pipeledger.metadata_store.sql.common import RUN_COLUMNS, RUNS_FROM, SqlQueries, artifacts_in_projects, chunks
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    entity_metadata,
    entity_tags,
    pipeline_runs,
    pipelines,
    step_io,
    step_runs,
)
from pipeledger.metadata_store.sql.tag_queries import tags_of
from pipeledger.models import ArtifactRecord, Direction, EntityKind, RunDeletion, Status


class MaintenanceQueries(SqlQueries):
    """Crash detection, deletion and integrity checks."""

    def mark_crashed(self, *, heartbeat_before: datetime, at: datetime) -> list[str]:
        def work(conn: Connection) -> list[str]:
            stale = [
                row[0]
                for row in conn.execute(
                    select(pipeline_runs.c.id).where(
                        pipeline_runs.c.status == Status.RUNNING.value,
                        pipeline_runs.c.heartbeat_at < heartbeat_before,
                    )
                )
            ]
            for chunk in chunks(stale):
                conn.execute(
                    update(pipeline_runs)
                    .where(pipeline_runs.c.id.in_(chunk))
                    .values(status=Status.CRASHED.value, end_time=at, error="the process stopped sending heartbeats")
                )
                conn.execute(
                    update(step_runs)
                    .where(step_runs.c.run_id.in_(chunk), step_runs.c.status == Status.RUNNING.value)
                    .values(status=Status.CRASHED.value, end_time=at, error="the run crashed while this step ran")
                )
            return stale

        return self.db.run_transaction(work)

    def delete_run(self, run_id: str) -> RunDeletion:
        return self.db.run_transaction(lambda conn: _delete_run(conn, run_id))

    def recorded_artifact_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.db.read() as conn:
            for chunk in chunks(ids):
                found.update(conn.execute(select(artifacts.c.id).where(artifacts.c.id.in_(chunk))).scalars())
        return found

    def iter_artifacts(
        self, *, batch: int = 500, projects: Collection[str] | None = None
    ) -> Iterator[list[ArtifactRecord]]:
        last = ""
        restrict = [] if projects is None else [artifacts_in_projects(artifacts.c.id, projects)]
        while True:
            with self.db.read() as conn:
                rows = conn.execute(
                    select(artifacts).where(artifacts.c.id > last, *restrict).order_by(artifacts.c.id).limit(batch)
                ).all()
            if not rows:
                return
            yield [records.artifact(r) for r in rows]
            last = rows[-1]._mapping["id"]

    def integrity_problems(self, *, heartbeat_before: datetime | None = None) -> list[str]:
        problems: list[str] = []
        run_ids = select(pipeline_runs.c.id)
        step_ids = select(step_runs.c.id)
        artifact_ids = select(artifacts.c.id)
        checks = [
            ("runs whose pipeline is missing", pipeline_runs, ~pipeline_runs.c.pipeline_id.in_(select(pipelines.c.id))),
            ("step runs whose run is missing", step_runs, ~step_runs.c.run_id.in_(run_ids)),
            (
                "cached step runs whose original step run is missing",
                step_runs,
                and_(step_runs.c.cached_from_id.is_not(None), ~step_runs.c.cached_from_id.in_(step_ids)),
            ),
            ("edges to a missing step run", step_io, ~step_io.c.step_run_id.in_(step_ids)),
            ("edges to a missing artifact", step_io, ~step_io.c.artifact_id.in_(artifact_ids)),
            (
                "artifacts whose producer step run is missing",
                artifacts,
                and_(artifacts.c.producer_step_run_id.is_not(None), ~artifacts.c.producer_step_run_id.in_(step_ids)),
            ),
            (
                "completed step runs without their output edges",
                artifacts,
                and_(
                    artifacts.c.producer_step_run_id.is_not(None),
                    not_(
                        select(step_io.c.artifact_id)
                        .where(
                            step_io.c.artifact_id == artifacts.c.id,
                            step_io.c.step_run_id == artifacts.c.producer_step_run_id,
                            step_io.c.direction == Direction.OUTPUT.value,
                        )
                        .exists()
                    ),
                ),
            ),
            (
                "finished runs with steps still running",
                step_runs,
                and_(
                    step_runs.c.status == Status.RUNNING.value,
                    step_runs.c.run_id.in_(
                        select(pipeline_runs.c.id).where(pipeline_runs.c.status != Status.RUNNING.value)
                    ),
                ),
            ),
        ]
        if heartbeat_before is not None:
            checks.append(
                (
                    "running runs without a recent heartbeat (crashed, not yet marked)",
                    pipeline_runs,
                    and_(
                        pipeline_runs.c.status == Status.RUNNING.value,
                        pipeline_runs.c.heartbeat_at < heartbeat_before,
                    ),
                )
            )
        with self.db.read() as conn:
            if self.db.dialect == "sqlite":  # damaged pages the queries below may never read
                damage = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA quick_check")]
                if damage != ["ok"]:
                    more = f" (and {len(damage) - 1} more)" if len(damage) > 1 else ""
                    problems.append(f"the SQLite file is damaged: {damage[0]}{more}")
            for label, table, condition in checks:
                count = conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
                if count:
                    problems.append(f"{count} {label}")
        return problems


_SCHEMA_REVISION_ROW = table("alembic_version", column("version_num"))


def _lock_run_for_deletion(conn: Connection, run_id: str) -> bool:
    """Take the locks that make deleting ``run_id`` safe beside writers and other deletions; False
    if the run does not exist (any more).

    First the row of ``alembic_version``: every deletion locks it, so deletions never interleave
    (one could otherwise hand a kept artifact to a step run the other is deleting); writers never
    touch it. Then, with ``FOR UPDATE``, the rows a writer may reference: the run, its step runs
    (a cache hit points to one with ``cached_from_id``) and the artifacts they produced (edges
    point to them). A writer that inserted such a reference holds a key-share lock on the row (the
    foreign-key check), so the lock here waits for it to commit, and the reads after it see the
    reference: the artifact is kept. A writer that comes later waits for this transaction, then
    finds the rows gone: its foreign-key check fails (``CacheEntryGoneError``) and it executes the
    step instead. Every read that decides what to keep runs after these locks: PostgreSQL's READ
    COMMITTED reads anew per statement, MariaDB's REPEATABLE READ takes its snapshot at the first
    plain read. SQLite needs none of this (``BEGIN IMMEDIATE`` serializes writers; ``FOR UPDATE``
    compiles to nothing there).
    """
    conn.execute(select(_SCHEMA_REVISION_ROW.c.version_num).with_for_update()).all()
    found = conn.execute(select(pipeline_runs.c.id).where(pipeline_runs.c.id == run_id).with_for_update()).first()
    if found is None:
        return False
    step_ids = list(
        conn.execute(select(step_runs.c.id).where(step_runs.c.run_id == run_id).with_for_update()).scalars()
    )
    for chunk in chunks(step_ids):
        conn.execute(select(artifacts.c.id).where(artifacts.c.producer_step_run_id.in_(chunk)).with_for_update()).all()
    return True


def deletion_plan(conn: Connection, run_id: str, also_deleted: Collection[str] = ()) -> RunDeletion:
    """What deleting ``run_id`` would delete now: the run, the artifacts its steps produced that
    no other run's step uses (deleted) and those it does (kept), and its logs. Uses by the runs
    ``also_deleted`` (deleted with it, as by one ``gc``) keep nothing. Reads only;
    :func:`_delete_run` calls it after taking its locks, the dry run without them.

    Raises:
        NotFoundError: no run with this id.
    """
    row = conn.execute(select(*RUN_COLUMNS).select_from(RUNS_FROM).where(pipeline_runs.c.id == run_id)).first()
    if row is None:
        raise NotFoundError(f"no run with id {run_id!r}")
    steps = select(step_runs.c.id).where(step_runs.c.run_id == run_id)
    produced = [
        records.artifact(r)
        for r in conn.execute(select(artifacts).where(artifacts.c.producer_step_run_id.in_(steps))).all()
    ]
    users = conn.execute(
        select(step_io.c.artifact_id, step_runs.c.run_id)
        .join(step_runs, step_runs.c.id == step_io.c.step_run_id)
        .where(
            step_io.c.artifact_id.in_(select(artifacts.c.id).where(artifacts.c.producer_step_run_id.in_(steps))),
            ~step_io.c.step_run_id.in_(steps),
        )
        .distinct()
    ).all()
    used_elsewhere = {artifact_id for artifact_id, user_run in users if user_run not in also_deleted}
    logs = [u for u in conn.execute(select(step_runs.c.logs_uri).where(step_runs.c.run_id == run_id)).scalars() if u]
    return RunDeletion(
        records.run(row, tags_of(conn, EntityKind.RUN, [run_id]).get(run_id, ())),
        [a for a in produced if a.id not in used_elsewhere],
        [a for a in produced if a.id in used_elsewhere],
        logs,
    )


def _delete_run(conn: Connection, run_id: str) -> RunDeletion:
    if not _lock_run_for_deletion(conn, run_id):
        raise NotFoundError(f"no run with id {run_id!r}")
    plan = deletion_plan(conn, run_id)  # read after the locks: see _lock_run_for_deletion
    doomed, kept = plan.deleted_artifacts, plan.kept_artifacts
    steps = select(step_runs.c.id).where(step_runs.c.run_id == run_id)
    m = entity_metadata.c
    conn.execute(delete(entity_metadata).where(m.entity_kind == EntityKind.STEP_RUN.value, m.entity_id.in_(steps)))
    conn.execute(delete(entity_metadata).where(m.entity_kind == EntityKind.RUN.value, m.entity_id == run_id))
    for chunk in chunks([a.id for a in doomed]):
        conn.execute(delete(entity_metadata).where(m.entity_kind == EntityKind.ARTIFACT.value, m.entity_id.in_(chunk)))
    t = entity_tags.c
    conn.execute(delete(entity_tags).where(t.entity_kind == EntityKind.STEP_RUN.value, t.entity_id.in_(steps)))
    conn.execute(delete(entity_tags).where(t.entity_kind == EntityKind.RUN.value, t.entity_id == run_id))
    for chunk in chunks([a.id for a in doomed]):
        conn.execute(delete(entity_tags).where(t.entity_kind == EntityKind.ARTIFACT.value, t.entity_id.in_(chunk)))
    conn.execute(delete(step_io).where(step_io.c.step_run_id.in_(steps)))
    # A kept artifact passes to a step run of another run that outputs it (a cached step), so that
    # deleting that run later deletes it too; None only if no other step run outputs it.
    heir = (
        select(func.min(step_io.c.step_run_id))
        .where(step_io.c.artifact_id == artifacts.c.id, step_io.c.direction == Direction.OUTPUT.value)
        .scalar_subquery()
    )
    for chunk in chunks([a.id for a in kept]):
        conn.execute(update(artifacts).where(artifacts.c.id.in_(chunk)).values(producer_step_run_id=heir))
    # The ids as a list: MySQL refuses a subquery on the table an UPDATE changes (error 1093).
    for chunk in chunks(list(conn.execute(steps).scalars())):
        conn.execute(
            update(step_runs)
            .where(step_runs.c.cached_from_id.in_(chunk), step_runs.c.run_id != run_id)
            .values(cached_from_id=None)
        )
    for chunk in chunks([a.id for a in doomed]):
        conn.execute(delete(artifacts).where(artifacts.c.id.in_(chunk)))
    conn.execute(update(step_runs).where(step_runs.c.run_id == run_id).values(cached_from_id=None))
    conn.execute(delete(step_runs).where(step_runs.c.run_id == run_id))
    conn.execute(delete(pipeline_runs).where(pipeline_runs.c.id == run_id))
    return plan
