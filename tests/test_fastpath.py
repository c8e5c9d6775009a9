"""The driver-cursor path of the SQL store (sql/fastpath.py) stays observable and translates errors."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from pipeledger.exceptions import MetadataStoreError, NotFoundError
from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
from pipeledger.models import RunCreate, Status, StepRunCreate, utcnow
from pipeledger.testing.helpers import artifact


def test_listeners_see_every_statement_of_the_record_path(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    event.listen(store.db.engine, "before_cursor_execute", capture)
    step = store.start_step(StepRunCreate(run_id=run.id, name="s", cache_key="k" * 64))
    store.finish_step(step.id, Status.COMPLETED, end_time=utcnow(), outputs=[artifact("out")])
    hit = store.find_cached_step("k" * 64)
    steps = store.list_step_runs(run.id)

    assert hit is not None and hit.step_run.id == step.id and [s.id for s in steps] == [step.id]
    assert "INSERT INTO STEP_RUNS" in seen and "UPDATE STEP_RUNS SET" in seen and "INSERT INTO ARTIFACTS" in seen
    assert sum(s.startswith("SELECT") for s in seen) >= 2  # the cache look-up and the step list
    store.close()


def test_driver_errors_are_translated_like_core_errors(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    step = StepRunCreate(run_id=run.id, name="s")
    store.start_step(step)
    with pytest.raises(MetadataStoreError) as caught:
        store.start_step(step)  # the same id again: the driver refuses the INSERT
    chain, error = [], caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    assert any(isinstance(e, sa_exc.IntegrityError) for e in chain)  # wrapped as Core wraps it, so translated
    assert "already recorded" in str(caught.value) and "\n" not in str(caught.value)
    store.close()


def test_sqlite_connections_are_tuned_for_per_step_commits(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db"), busy_timeout=2.5))
    with store.db.read() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "wal_autocheckpoint": 4000,
        "busy_timeout": 2500,  # the configured one, in milliseconds
    }
    store.close()


def test_sqlite_timestamps_round_trip_as_aware_utc_on_both_read_paths(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    started = StepRunCreate(run_id=run.id, name="s", cache_key="k" * 64)
    store.start_step(started)
    end = utcnow()
    store.finish_step(started.id, Status.COMPLETED, end_time=end, outputs=[artifact("out")])

    (fast,) = store.list_step_runs(run.id)  # FastRead, on the driver's cursor
    core = store.get_step_run(started.id)  # Core's execution (both parse with UTCDateTime's processor)
    assert fast.start_time == core.start_time == started.start_time
    assert fast.end_time == core.end_time == end
    assert fast.end_time is not None and fast.end_time.utcoffset() == timedelta(0)
    store.close()


def test_a_failed_write_on_the_driver_path_is_rolled_back_whole(tmp_path: Path) -> None:
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    step = StepRunCreate(run_id=run.id, name="s", inputs={"data": "no-such-artifact"})
    with pytest.raises(NotFoundError, match="no-such-artifact"):
        store.start_step(step)  # the step row is inserted, then its input edge fails its foreign key
    assert store.list_step_runs(run.id) == []  # the step row went with it

    raw = store.register_artifact(artifact("out"), at=utcnow())
    retried = StepRunCreate(id=step.id, run_id=run.id, name="s", inputs={"data": raw.id})
    store.start_step(retried)  # the same id is free again
    assert [s.id for s in store.list_step_runs(run.id)] == [step.id]
    store.close()


def test_a_busy_database_is_waited_out_on_the_driver_path(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(path), busy_timeout=0.02))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
    release = threading.Timer(0.3, blocker.execute, ["COMMIT"])  # ...for far longer than the busy timeout
    release.start()
    step = store.start_step(StepRunCreate(run_id=run.id, name="s"))  # BEGIN IMMEDIATE fails "locked": retried
    release.join()
    assert [s.id for s in store.list_step_runs(run.id)] == [step.id]
    blocker.close()
    store.close()
