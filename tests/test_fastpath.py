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


# ----------------------------------------------------------- the seam (issue 15, item 2)

_DIALECTS = {
    "sqlite": "sqlalchemy.dialects.sqlite.pysqlite",
    "mysql": "sqlalchemy.dialects.mysql.pymysql",
    "postgresql": "sqlalchemy.dialects.postgresql.psycopg",
}


@pytest.mark.parametrize("dialect_name", sorted(_DIALECTS))
def test_the_sqlalchemy_internals_the_fast_path_relies_on_still_exist(dialect_name: str) -> None:
    """If this fails, SQLAlchemy changed something sql/fastpath.py uses: fix fastpath.py (or turn
    the fast path off with PIPELEDGER_FAST_PATH=0) before widening the SQLAlchemy pin."""
    import importlib

    from sqlalchemy import Engine, insert
    from sqlalchemy.pool import Pool

    from pipeledger.metadata_store.sql import statements
    from pipeledger.metadata_store.sql.schema import step_runs

    dialect = importlib.import_module(_DIALECTS[dialect_name]).dialect()
    compiled = insert(step_runs).compile(dialect=dialect, column_keys=["id", "run_id", "parameters"])
    positiontup = getattr(compiled, "positiontup", None)
    binds = getattr(compiled, "binds", {})
    used = {
        "SQLCompiler.string": isinstance(getattr(compiled, "string", None), str),
        "SQLCompiler.positional": isinstance(getattr(compiled, "positional", None), bool),
        "SQLCompiler.positiontup": not compiled.positional or bool(positiontup),
        "SQLCompiler.binds": set(binds) >= {"id", "run_id", "parameters"},
        "BindParameter.key / effective_value": "id" in binds
        and binds["id"].key == "id"
        and hasattr(binds["id"], "effective_value"),
        "TypeEngine.dialect_impl().bind_processor": callable(
            step_runs.c.parameters.type.dialect_impl(dialect).bind_processor(dialect)
        ),
        "TypeEngine.dialect_impl().result_processor": callable(
            getattr(step_runs.c.start_time.type.dialect_impl(dialect), "result_processor", None)
        ),
        "Dialect.loaded_dbapi / is_disconnect": hasattr(type(dialect), "loaded_dbapi")
        and callable(getattr(dialect, "is_disconnect", None)),
        "DBAPIError.instance": callable(getattr(sa_exc.DBAPIError, "instance", None)),
        "Engine.raw_connection": callable(getattr(Engine, "raw_connection", None)),
        "Pool._invalidate": callable(getattr(Pool, "_invalidate", None)),
        "Engine.dispatch.before_cursor_execute": hasattr(Engine.dispatch, "before_cursor_execute"),
    }
    broken = [name for name, ok in used.items() if not ok]
    assert not broken, f"SQLAlchemy internals used by sql/fastpath.py changed: {', '.join(broken)}"

    # The driver session sends Core's own SQL, with the parameters in the driver's order.
    ours = statements.INSERT_STEP.compiled(dialect, {"id": "a", "run_id": "b", "parameters": {"x": 1}})
    assert ours.sql == compiled.string
    assert [name for name, *_rest in ours.params] == (list(positiontup or []) if compiled.positional else list(binds))


def _session_kinds(store: Any) -> tuple[str, str]:
    with store.db.session() as reader:
        read = type(reader).__name__
    with store.db.session(write=True) as writer:
        write = type(writer).__name__
    return read, write


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, "DriverSession"),
        ("1", "DriverSession"),
        ("0", "CoreSession"),
        ("off", "CoreSession"),
        ("false", "CoreSession"),
    ],
)
def test_the_fast_path_switch_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: str
) -> None:
    if setting is None:
        monkeypatch.delenv("PIPELEDGER_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("PIPELEDGER_FAST_PATH", setting)
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    assert _session_kinds(store) == (expected, expected)
    store.close()


def test_the_database_chooses_core_when_the_sql_is_observed_or_the_fast_path_is_off(tmp_path: Path) -> None:
    from pipeledger.metadata_store.sql.engine import Database

    fast = Database(f"sqlite:///{tmp_path / 'a.db'}", display_name="a", fast_path=True)
    slow = Database(f"sqlite:///{tmp_path / 'b.db'}", display_name="b", fast_path=False)
    with fast.session() as s1, slow.session() as s2:
        assert (type(s1).__name__, type(s2).__name__) == ("DriverSession", "CoreSession")
    event.listen(fast.engine, "before_cursor_execute", lambda *args: None)
    with fast.session(write=True) as s3:
        assert type(s3).__name__ == "CoreSession"  # listeners see every statement
    fast.dispose()
    slow.dispose()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "core"])
def test_a_duplicate_step_is_a_step_run_exists_error_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    from pipeledger.exceptions import StepRunExistsError

    monkeypatch.setenv("PIPELEDGER_FAST_PATH", "1" if fast else "0")
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    store.start_step(StepRunCreate(run_id=run.id, name="s"))
    with pytest.raises(StepRunExistsError, match=r"step 's' of run .* is already recorded"):
        store.start_step(StepRunCreate(run_id=run.id, name="s"))  # same name in the run, new id
    store.close()


def test_driver_error_codes_are_read_from_the_driver_not_the_message(tmp_path: Path) -> None:
    from pipeledger.metadata_store.sql.driver_errors import ErrorKind, kind

    conn = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, u TEXT UNIQUE)")
    conn.execute("CREATE TABLE b (a_id INTEGER REFERENCES a (id))")
    conn.execute("INSERT INTO a VALUES (1, 'x')")
    errors = {}
    for label, sql in [
        ("pk", "INSERT INTO a VALUES (1, 'y')"),
        ("unique", "INSERT INTO a VALUES (2, 'x')"),
        ("fk", "INSERT INTO b VALUES (7)"),
        ("syntax", "INSERT INTO"),
    ]:
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            errors[label] = kind(exc)
    assert errors == {
        "pk": ErrorKind.DUPLICATE,
        "unique": ErrorKind.DUPLICATE,
        "fk": ErrorKind.MISSING_REFERENCE,
        "syntax": ErrorKind.OTHER,
    }
    conn.close()

    class Coded(Exception):  # a driver error whose message says nothing
        pass

    assert kind(Coded(1213, "")) is ErrorKind.TRANSIENT  # PyMySQL: the server's error number first
    assert kind(Coded(1062, "")) is ErrorKind.DUPLICATE
    mysql = Coded(1452, "")
    mysql.sqlstate = "23000"  # type: ignore[attr-defined]  # PyMySQL sets one too: the number decides
    assert kind(mysql) is ErrorKind.MISSING_REFERENCE
    pg = Coded("")
    pg.sqlstate = "40001"  # type: ignore[attr-defined]  # psycopg
    assert kind(pg) is ErrorKind.TRANSIENT
    assert kind(Coded("deadlock detected, database is locked")) is ErrorKind.OTHER  # no code: no guess


def test_a_database_busy_past_the_retries_raises_a_transient_error(tmp_path: Path) -> None:
    from pipeledger.exceptions import TransientStoreError

    path = tmp_path / "m.db"
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(path), busy_timeout=0.01))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    store.db.max_retries = 1
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TransientStoreError, match="is busy"):
            store.start_step(StepRunCreate(run_id=run.id, name="s"))
        with pytest.raises(TransientStoreError):
            store.invalidate_cache(at=utcnow())  # a Core transaction: the same translation
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "core"])
def test_finish_step_replaces_metadata_the_step_put_while_running_in_one_upsert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    from pipeledger.models import EntityKind

    monkeypatch.setenv("PIPELEDGER_FAST_PATH", "1" if fast else "0")
    store = open_sqlite_store(SqliteMetadataStoreConfig(path=str(tmp_path / "m.db")))
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    step = store.start_step(StepRunCreate(run_id=run.id, name="s"))
    store.put_metadata(EntityKind.STEP_RUN, step.id, {"loss": 1.0, "kept": "yes"})
    seen: list[str] = []
    event.listen(store.db.engine, "before_cursor_execute", lambda c, cur, sql, *a: seen.append(sql.split()[0].upper()))
    store.finish_step(step.id, Status.COMPLETED, end_time=utcnow(), metadata={"loss": 0.5, "acc": 0.9})
    assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {step.id: {"acc": 0.9, "kept": "yes", "loss": 0.5}}
    assert "DELETE" not in seen  # an upsert, not DELETE + INSERT
    store.close()
