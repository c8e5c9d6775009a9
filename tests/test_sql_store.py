"""The SQL implementation itself, on every SQL database: the schema, the migrations and the
version checks agree. (What every store must do is :mod:`pipeledger.testing`'s contract suite.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, text

from pipeledger.exceptions import SchemaVersionError
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.metadata_store.sql.migrate import current_revision, ensure_schema, known_revisions, upgrade
from pipeledger.metadata_store.sql.schema import SCHEMA_REVISION, metadata
from pipeledger.testing.lineage import chain
from tests.servers import enabled_backends, open_empty_store, scratch_database

HOW_TO_FIX = (
    "schema.py and the Alembic migrations disagree. If you changed schema.py, add a revision in "
    "src/pipeledger/metadata_store/sql/migrations/versions/ that makes the same change, and set "
    "SCHEMA_REVISION to it. Differences: "
)


@pytest.fixture(params=enabled_backends())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadataStore]:
    """An empty SQL metadata store on each SQL backend."""
    opened = open_empty_store(request.param, tmp_path, request)
    assert isinstance(opened, SqlMetadataStore)
    yield opened
    opened.close()


def test_schema_revision_is_the_head_of_the_migration_tree() -> None:
    assert known_revisions()[-1] == SCHEMA_REVISION


def _schema_diff(db: Database) -> list[Any]:
    """How the database's tables, columns, types and indexes differ from schema.py's."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _seeded_rows(db: Database) -> dict[str, Any]:
    """What a new schema holds before any use: its revision, the default project, one identity."""
    with db.engine.connect() as conn:
        return {
            "revision": conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all(),
            "projects": conn.execute(text("SELECT name, description FROM projects")).all(),
            "identities": conn.execute(text("SELECT COUNT(*) FROM store_identity")).scalar(),
        }


def test_created_database_matches_schema_module(store: SqlMetadataStore) -> None:
    """A store opened on an empty database creates exactly the tables, columns and indexes of
    schema.py (``create_schema``: at once, not by replaying the migrations)."""
    assert current_revision(store.db) == SCHEMA_REVISION
    diff = _schema_diff(store.db)
    assert not diff, HOW_TO_FIX + repr(diff)


@pytest.mark.parametrize("backend", [b for b in enabled_backends() if b in ("sqlite", "mysql", "postgresql")])
def test_migrations_build_what_a_new_store_creates(backend: str, tmp_path: Path) -> None:
    """Every migration from an empty database to the head gives the schema of schema.py and the
    rows a new store is created with: an upgraded store and a new one are the same."""
    with ExitStack() as stack:
        urls = [
            f"sqlite:///{tmp_path / name}.db" if backend == "sqlite" else stack.enter_context(scratch_database(backend))
            for name in ("migrated", "created")
        ]
        migrated = Database(urls[0], display_name=f"{backend} migrated")
        stack.callback(migrated.dispose)
        upgrade(migrated)  # the migrations, one by one
        created = SqlMetadataStore(Database(urls[1], display_name=f"{backend} created"), flavor=backend)
        stack.callback(created.close)
        for db in (migrated, created.db):
            assert current_revision(db) == SCHEMA_REVISION
            diff = _schema_diff(db)
            assert not diff, HOW_TO_FIX + repr(diff)
        seeded = {"revision": [SCHEMA_REVISION], "projects": [("default", None)], "identities": 1}
        assert _seeded_rows(migrated) == _seeded_rows(created.db) == seeded
        assert created.store_id() != SqlMetadataStore(migrated, flavor=backend).store_id()  # each its own


def _set_revision(db: Database, revision: str) -> None:
    with db.transaction() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_newer_schema_is_refused_naming_both_versions(store: SqlMetadataStore) -> None:
    _set_revision(store.db, "9999")
    try:
        for auto_upgrade in (True, False):
            with pytest.raises(SchemaVersionError, match=f"revision 9999, newer than.*{SCHEMA_REVISION}"):
                ensure_schema(store.db, auto_upgrade=auto_upgrade, migrate_command="pl migrate")
    finally:
        _set_revision(store.db, SCHEMA_REVISION)


def test_float_json_values_keep_their_type(store: SqlMetadataStore) -> None:
    from pipeledger.models import EntityKind, RunCreate

    run = store.create_run(RunCreate(pipeline_name="p", name="r", parameters={"lr": 1.0, "n": 1}))
    store.put_metadata(EntityKind.RUN, run.id, {"accuracy": 1.0, "count": 2})
    params = store.get_run("r").parameters
    assert params == {"lr": 1.0, "n": 1}
    assert type(params["lr"]) is float and type(params["n"]) is int
    meta = store.get_metadata(EntityKind.RUN, [run.id])[run.id]
    assert type(meta["accuracy"]) is float and type(meta["count"]) is int


def test_sqlite_file_opened_twice_keeps_data(tmp_path) -> None:
    from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store
    from pipeledger.models import RunCreate

    config = SqliteMetadataStoreConfig(path=str(tmp_path / "m.db"))
    first = open_sqlite_store(config)
    first.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    first.close()
    second = open_sqlite_store(config)
    assert [r.name for r in second.list_runs()] == ["p-1"]
    second.close()


def test_ten_steps_deep_lineage_is_one_sql_statement(store: SqlMetadataStore) -> None:
    labels, arts = chain(store, 10)
    engine = store.db.engine
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        record = store.lineage(artifact_id=arts[-1].id)
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert labels.steps(record) == {f"s{i}" for i in range(1, 11)}
    assert labels.artifacts(record) == {f"s{i}.data" for i in range(1, 11)}
    assert len(record.edges) == 19  # 10 outputs, 9 inputs
    queries = [(s, p) for s, p in statements if not s.strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    assert len(queries) == 1, statements
    ((statement, parameters),) = queries
    assert statement.lstrip().upper().startswith("WITH RECURSIVE"), statement
    print(f"\nlineage statement on {store.db.dialect} (parameters {parameters!r}):\n{statement}")


def test_read_records_decode_json_fields_on_first_access_only(store: SqlMetadataStore) -> None:
    """A run view's records leave parameters, configuration and cache-key components encoded until
    read (a view of step names, statuses and edges decodes none of them); once read, and for every
    way a caller can look at a record (``==``, ``asdict``, ``replace``, pickling), they are the
    values recorded."""
    import dataclasses
    import pickle

    import pydantic

    from pipeledger.models import RunCreate, Status, StepRunCreate, StepRunRecord, utcnow

    run = store.create_run(RunCreate(pipeline_name="p", name="r", parameters={"lr": 0.5}, environment={"py": "3"}))
    started = store.start_step(
        StepRunCreate(
            run_id=run.id,
            name="train",
            parameters={"n": 3, "lr": 1.0},
            config={"outputs": ["model"]},
            cache_key="k" * 64,
            cache_components={"code": {"m.train": "f" * 64}},
        )
    )
    store.finish_step(started.id, Status.COMPLETED, end_time=utcnow())
    pydantic.TypeAdapter(StepRunRecord)  # as the server does: it must not give fields class defaults back

    (step,) = store.list_step_runs(run.id)
    assert (step.name, step.status) == ("train", Status.COMPLETED)
    assert store.list_step_io([step.id]) == []
    assert {"parameters", "config", "cache_components"}.isdisjoint(vars(step))  # not decoded (nor set) yet
    assert step == dataclasses.replace(started, status=Status.COMPLETED, end_time=step.end_time)
    assert type(step.parameters["lr"]) is float and step.cache_components == {"code": {"m.train": "f" * 64}}
    copied = pickle.loads(pickle.dumps(store.list_step_runs(run.id)[0]))
    assert copied == step and "_encoded" not in vars(copied)
    assert dataclasses.asdict(store.list_step_runs(run.id)[0])["config"] == {"outputs": ["model"]}

    fetched = store.get_run("r")
    assert fetched.parameters == {"lr": 0.5} and fetched.environment == {"py": "3"}
    hit = store.find_cached_step("k" * 64)
    assert hit is not None and hit.step_run == step and hit.run_name == "r"
    (listed,) = store.list_runs(pipeline="p", limit=50)
    assert listed == fetched and listed.tags == []
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        step.nope  # type: ignore[attr-defined]  # noqa: B018


def test_a_run_id_given_twice_is_a_conflict_not_a_retry_loop(store: SqlMetadataStore) -> None:
    """Found by fuzzing the server: a second run with a taken id (client-made ids) was retried as
    a name race and ended as a 500; it is a ConflictError (409) naming the fix."""
    from pipeledger.exceptions import ConflictError
    from pipeledger.models import RunCreate

    store.create_run(RunCreate(pipeline_name="p", name="first", id="0" * 32))
    with pytest.raises(ConflictError, match=r"a run with id '0{32}' already exists"):
        store.create_run(RunCreate(pipeline_name="p", name="second", id="0" * 32))
    assert [r.name for r in store.list_runs()] == ["first"]


def test_an_empty_version_table_alone_gets_the_schema(tmp_path: Path) -> None:
    """A database holding only an empty ``alembic_version`` (an Alembic run interrupted before
    its first migration) is still empty to pipeledger: the store creates its schema there."""
    url = f"sqlite:///{tmp_path / 'interrupted.db'}"
    db = Database(url, display_name="interrupted")
    with db.transaction() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
    store = SqlMetadataStore(db, flavor="sqlite")
    try:
        assert current_revision(store.db) == SCHEMA_REVISION
        assert store.list_pipelines() == [] and store.store_id()
    finally:
        store.close()
