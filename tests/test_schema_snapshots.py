"""Per-dialect DDL snapshots of the schema, and the data-preserving migration path.

The snapshots in tests/snapshots/ are the DDL that ``schema.py`` compiles to on each
database. A change to the schema changes them: the test then fails and says how to
fix it (a migration, and new snapshots). ``test_migrations_build_what_a_new_store_creates``
in tests/test_sql_store.py checks the other half: that the migrations, and the creation of a
new store, produce exactly this schema on each real database.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from pipeledger.exceptions import SchemaVersionError
from pipeledger.metadata_store.sql import Database, SqlMetadataStore, schema
from pipeledger.metadata_store.sql.migrate import current_revision, known_revisions, upgrade
from pipeledger.models import EntityKind, Status, utcnow
from tests.servers import enabled_backends, scratch_database

SNAPSHOTS = Path(__file__).parent / "snapshots"
DIALECTS = {"sqlite": sqlite.dialect(), "mysql": mysql.dialect(), "postgresql": postgresql.dialect()}
HOW_TO_FIX = """the schema in src/pipeledger/metadata_store/sql/schema.py no longer matches {path}.
If you meant to change the schema:
  1. add an Alembic revision in src/pipeledger/metadata_store/sql/migrations/versions/ doing the same change
     on every database, and set SCHEMA_REVISION in schema.py to it;
  2. regenerate the snapshots: PIPELEDGER_UPDATE_SNAPSHOTS=1 pytest tests/test_schema_snapshots.py
"""


def ddl(dialect_name: str) -> str:
    dialect = DIALECTS[dialect_name]
    parts = [f"-- schema revision {schema.SCHEMA_REVISION}"]
    for table in schema.metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    return "\n\n".join(parts) + "\n"


@pytest.mark.parametrize("dialect_name", sorted(DIALECTS))
def test_schema_matches_snapshot(dialect_name: str) -> None:
    path = SNAPSHOTS / f"schema.{dialect_name}.sql"
    current = ddl(dialect_name)
    if os.environ.get("PIPELEDGER_UPDATE_SNAPSHOTS"):
        path.write_text(current)
    assert path.exists(), HOW_TO_FIX.format(path=path)
    assert path.read_text() == current, HOW_TO_FIX.format(path=path)


def _write_first_revision_rows(db: Database) -> dict[str, str]:
    """Rows as revision 0001 knew them (no run tags), written with plain inserts."""
    now = utcnow()
    ids = {"pipeline": "p" * 32, "run": "r" * 32, "step": "s" * 32, "artifact": "a" * 32}
    with db.transaction() as conn:
        conn.execute(insert(schema.pipelines).values(id=ids["pipeline"], name="legacy", created_at=now))
        conn.execute(
            insert(schema.pipeline_runs).values(
                id=ids["run"],
                pipeline_id=ids["pipeline"],
                name="legacy-1",
                number=1,
                status="completed",
                start_time=now,
                end_time=now,
                parameters={"lr": 0.5},
                config={"steps": {"train": {}}},
                environment={"python": "3.11"},
                stack={"name": "default"},
            )
        )
        conn.execute(
            insert(schema.step_runs).values(
                id=ids["step"],
                run_id=ids["run"],
                name="train",
                status="completed",
                parameters={"lr": 0.5},
                config={},
                start_time=now,
                end_time=now,
                docstring="Train.",
            )
        )
        conn.execute(
            insert(schema.artifacts).values(
                id=ids["artifact"],
                uri="/tmp/legacy/model",
                type="Model",
                data_type="builtins.dict",
                materializer="m.M",
                materializer_version="1",
                content_hash="0" * 64,
                size=12,
                producer_step_run_id=ids["step"],
                created_at=now,
            )
        )
        conn.execute(
            insert(schema.step_io).values(
                step_run_id=ids["step"], direction="output", name="model", artifact_id=ids["artifact"]
            )
        )
        conn.execute(
            insert(schema.entity_metadata).values(
                entity_kind="step_run", entity_id=ids["step"], key="accuracy", value=0.75
            )
        )
    return ids


@pytest.mark.parametrize("backend", enabled_backends())
def test_upgrade_from_first_revision_keeps_every_row(backend: str, tmp_path: Path) -> None:
    first = known_revisions()[0]
    if backend == "sqlite":
        from contextlib import nullcontext

        context = nullcontext(f"sqlite:///{tmp_path / 'old.db'}")
    else:
        context = scratch_database(backend)
    with context as url:
        db = Database(url, display_name=f"{backend} migration test")
        upgrade(db, first)
        assert current_revision(db) == first
        ids = _write_first_revision_rows(db)

        if backend != "sqlite":  # a shared server database is never migrated silently
            with pytest.raises(SchemaVersionError, match=f"revision {first}, older .*run: pl migrate prod"):
                SqlMetadataStore(db, flavor=backend, migrate_command="pl migrate prod")
            upgrade(db)
        store = SqlMetadataStore(db, flavor=backend, auto_upgrade=backend == "sqlite")
        assert current_revision(db) == schema.SCHEMA_REVISION

        run = store.get_run("legacy-1")
        assert (run.id, run.pipeline_name, run.status, run.tags) == (
            ids["run"],
            "legacy",
            Status.COMPLETED,
            [],
        )
        assert run.parameters == {"lr": 0.5} and run.config == {"steps": {"train": {}}}
        (step,) = store.list_step_runs(run.id)
        assert (step.name, step.docstring, step.parameters) == ("train", "Train.", {"lr": 0.5})
        (edge,) = store.list_step_io([step.id])
        assert (edge.name, edge.artifact.uri, edge.artifact.size) == ("model", "/tmp/legacy/model", 12)
        assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {step.id: {"accuracy": 0.75}}
        store_id = store.store_id()  # revision 0004 gave the upgraded database an id of its own
        assert store_id is not None and len(store_id) == 32 and int(store_id, 16) >= 0
        store.close()
        reopened = SqlMetadataStore(db, flavor=backend)
        assert reopened.store_id() == store_id  # kept in the database: stable
        reopened.close()


@pytest.mark.parametrize("backend", enabled_backends())
def test_upgrade_from_0004_keeps_step_errors_and_reads_their_message_from_the_traceback(
    backend: str, tmp_path: Path
) -> None:
    """Revision 0005 adds ``step_runs.error_message``: failed steps recorded before it keep their
    traceback, read an ``error_message`` of None and a message taken from the traceback's last line
    (in OpenLineage too); steps finished after the upgrade record their message."""
    from contextlib import nullcontext

    from pipeledger.client import RunView
    from pipeledger.lineage.openlineage import run_events
    from pipeledger.models import StepRunCreate

    context = nullcontext(f"sqlite:///{tmp_path / 'old.db'}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        db = Database(url, display_name=f"{backend} migration test")
        upgrade(db, "0004")
        # pipeline_runs as revision 0004 has it (its JSON ``tags`` moved to a table in 0006)
        runs_0004 = Table(
            "pipeline_runs",
            MetaData(),
            *(Column(c, String(32)) for c in ("id", "pipeline_id")),
            Column("name", String(255)),
            Column("number", Integer),
            Column("status", String(16)),
            *(Column(c, schema.UTCDateTime) for c in ("start_time", "end_time")),
            *(Column(c, schema.JSONColumn) for c in ("parameters", "config", "environment", "stack", "tags")),
            Column("error", Text),
        )
        now = utcnow()
        traceback = 'Traceback (most recent call last):\n  File "t.py", line 3, in fit\nValueError: bad rows'
        with db.transaction() as conn:
            conn.execute(insert(schema.pipelines).values(id="1" * 32, name="legacy", created_at=now))
            conn.execute(
                insert(runs_0004).values(
                    id="2" * 32,
                    pipeline_id="1" * 32,
                    name="legacy-1",
                    number=1,
                    status="failed",
                    start_time=now,
                    end_time=now,
                    parameters={},
                    config={},
                    environment={},
                    stack={},
                    error="step 'fit' failed",
                    tags=[],
                )
            )
            steps = [("3" * 32, "fit", "failed", traceback), ("4" * 32, "load", "completed", None)]
            for step_id, name, status, error in steps:
                conn.execute(
                    insert(schema.step_runs).values(
                        id=step_id,
                        run_id="2" * 32,
                        name=name,
                        status=status,
                        parameters={},
                        config={},
                        start_time=now,
                        end_time=now,
                        error=error,
                    )
                )
        upgrade(db)
        store = SqlMetadataStore(db, flavor=backend)
        assert current_revision(db) == schema.SCHEMA_REVISION

        old = store.get_step_run("3" * 32)
        assert (old.status, old.error, old.error_message) == (Status.FAILED, traceback, None)
        assert old.failure_message == "ValueError: bad rows"
        assert store.get_step_run("4" * 32).failure_message is None
        run = store.get_run("legacy-1")
        fail = [e for e in run_events(RunView(run, store)) if e["eventType"] == "FAIL"]
        (error,) = [e["run"]["facets"]["errorMessage"] for e in fail]
        assert (error["message"], error["stackTrace"]) == ("ValueError: bad rows", traceback)

        new = store.start_step(StepRunCreate(run_id=run.id, name="refit"))
        store.finish_step(new.id, Status.FAILED, end_time=utcnow(), error=traceback, error_message="bad\nrows")
        assert store.get_step_run(new.id).error_message == "bad\nrows"
        store.close()
