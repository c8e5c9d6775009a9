"""Editable tags: the migrations of the ``tags`` table (0006, 0008), the views and ``run tag``.

The store's side of tags is the contract suite's :class:`pipeledger.testing.TagsContract`.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, inspect, select

from pipeledger.cli.main import cli
from pipeledger.client import Client
from pipeledger.exceptions import DefinitionError
from pipeledger.metadata_store.sql import Database, SqlMetadataStore, schema
from pipeledger.metadata_store.sql.migrate import current_revision, upgrade
from pipeledger.models import utcnow
from tests import pipelines as P
from tests.servers import enabled_backends, scratch_database

RUNS_0004 = Table(
    "pipeline_runs",
    MetaData(),
    Column("id", String(32)),
    Column("pipeline_id", String(32)),
    Column("name", String(255)),
    Column("number", Integer),
    Column("status", String(16)),
    Column("start_time", schema.UTCDateTime),
    Column("heartbeat_at", schema.UTCDateTime),
    *(Column(c, schema.JSONColumn) for c in ("parameters", "config", "environment", "stack", "tags")),
)
"""The columns of ``pipeline_runs`` at revision 0004 that a row needs, with its JSON ``tags``."""

OLD_TAGS: dict[str, list[str] | None] = {
    "r" * 32: ["prod", "exp:1", "prod", 'it\'s "quoted"', "日本"],
    "s" * 32: [],
    "t" * 32: None,
}


@pytest.mark.parametrize("backend", enabled_backends())
def test_migration_0006_moves_run_tags_into_the_tags_table(backend: str, tmp_path: Path) -> None:
    context = nullcontext(f"sqlite:///{tmp_path / 'old.db'}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        db = Database(url, display_name=f"{backend} tags migration test")
        upgrade(db, "0004")
        now = utcnow()
        with db.transaction() as conn:
            conn.execute(insert(schema.pipelines).values(id="p" * 32, name="legacy", docstring=None, created_at=now))
            for number, (run_id, tags) in enumerate(OLD_TAGS.items(), start=1):
                conn.execute(
                    insert(RUNS_0004).values(
                        id=run_id,
                        pipeline_id="p" * 32,
                        name=f"legacy-{number}",
                        number=number,
                        status="completed",
                        start_time=now,
                        heartbeat_at=now,
                        parameters={},
                        config={},
                        environment={},
                        stack={},
                        tags=tags,
                    )
                )

        upgrade(db, "0006")
        assert current_revision(db) == "0006"
        with db.read() as conn:
            t = schema.entity_tags.c
            rows = conn.execute(select(t.entity_kind, t.entity_id, t.tag).order_by(t.tag)).all()
            columns = {c["name"] for c in inspect(conn).get_columns("pipeline_runs")}
        assert "tags" not in columns and "start_time" in columns
        assert [(r.entity_kind, r.entity_id, r.tag) for r in rows] == [
            ("run", "r" * 32, t) for t in sorted({"prod", "exp:1", 'it\'s "quoted"', "日本"})
        ]
        upgrade(db)
        store = SqlMetadataStore(db, flavor=backend)
        assert store.get_run("legacy-1").tags == sorted({"prod", "exp:1", 'it\'s "quoted"', "日本"})
        assert store.get_run("legacy-2").tags == store.get_run("legacy-3").tags == []
        store.close()


def test_views_add_and_remove_tags(tmp_path: Path) -> None:
    P.training()
    client = Client()
    run = client.get_pipeline("training").latest_run

    run.add_tags("prod", "exp:lr-0.01")
    run.remove_tags("exp:lr-0.01")
    step = run.steps["train"]
    step.add_tags("gpu")
    model = step.outputs["model"]
    model.add_tags("golden", "v1")
    model.remove_tags("v1")

    assert run.tags == ["prod"] == client.get_run(run.name).tags
    assert client.get_run(run.name).steps["train"].tags == ["gpu"]
    assert client.get_artifact(model.id).tags == ["golden"]
    with pytest.raises(DefinitionError, match="control characters"):
        run.add_tags("bad\x07")


def test_cli_run_tag_adds_and_removes() -> None:
    P.training.with_options(tags=["candidate"])()
    runner = CliRunner()

    result = runner.invoke(cli, ["run", "tag", "training-1", "+prod", "-candidate", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run": "training-1", "tags": ["prod"]}

    result = runner.invoke(cli, ["run", "tag", "training-1", "prod"])
    assert result.exit_code != 0
    assert "write +TAG to add a tag or -TAG to remove one" in result.stderr
    result = runner.invoke(cli, ["run", "tag", "training-1", "+bad\x01"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "control characters" in result.stderr


@pytest.mark.parametrize("backend", enabled_backends())
def test_downgrade_to_0004_keeps_run_tags_and_upgrading_again_restores_search(backend: str, tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from pipeledger.metadata_store.sql.migrate import _alembic_config
    from pipeledger.models import EntityKind, Status
    from pipeledger.testing.helpers import at, make_run, make_step

    context = nullcontext(f"sqlite:///{tmp_path / 'new.db'}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        db = Database(url, display_name=f"{backend} downgrade test")
        store = SqlMetadataStore(db, flavor=backend, auto_upgrade=True)
        run = make_run(store, tags=["prod", "exp:1"])
        step = make_step(store, run, "train")
        store.finish_step(step.id, Status.COMPLETED, end_time=at(1), metadata={"accuracy": 0.75, "note": "x"})
        store.add_tags(EntityKind.STEP_RUN, step.id, ["gpu"])
        store.close()

        with db.transaction() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
        with db.read() as conn:
            (stored,) = conn.execute(text("SELECT tags FROM pipeline_runs")).scalars()
        assert (json.loads(stored) if isinstance(stored, str) else stored) == ["exp:1", "prod"]

        upgrade(db)
        again = SqlMetadataStore(db, flavor=backend)
        assert again.get_run(run.id).tags == ["exp:1", "prod"]
        assert [r.id for r in again.search("run", "metrics.accuracy > 0.5 and tag = 'prod'").items] == [run.id]
        again.close()


@pytest.mark.parametrize("backend", enabled_backends())
def test_migration_0008_copies_each_entitys_time_into_its_tags(backend: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from alembic import command

    from pipeledger.metadata_store.sql.migrate import _alembic_config
    from pipeledger.testing.helpers import T0

    context = nullcontext(f"sqlite:///{tmp_path / 'old.db'}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        db = Database(url, display_name=f"{backend} tag time migration test")
        upgrade(db, "0007")
        started, step_started, created = T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
        empty = {"parameters": {}, "config": {}}
        with db.transaction() as conn:
            conn.execute(insert(schema.pipelines).values(id="p" * 32, name="legacy", docstring=None, created_at=T0))
            conn.execute(
                insert(schema.pipeline_runs).values(
                    id="r" * 32, pipeline_id="p" * 32, name="legacy-1", number=1, status="completed",
                    start_time=started, environment={}, stack={}, **empty,
                )
            )  # fmt: skip
            conn.execute(
                insert(schema.step_runs).values(
                    id="s" * 32, run_id="r" * 32, name="train", status="completed", start_time=step_started, **empty
                )
            )
            conn.execute(
                insert(schema.artifacts).values(
                    id="a" * 32, uri="file:///a", type="Data", data_type="builtins.dict", materializer="json",
                    materializer_version="1", content_hash="0" * 64, size=1, created_at=created,
                )
            )  # fmt: skip
            t = schema.entity_tags.c
            for kind, entity_id in [
                ("run", "r" * 32),
                ("step_run", "s" * 32),
                ("artifact", "a" * 32),
                ("run", "g" * 32),
            ]:
                conn.execute(
                    insert(schema.entity_tags).values({t.entity_kind: kind, t.entity_id: entity_id, t.tag: "prod"})
                )

        upgrade(db, "0008")
        with db.read() as conn:
            rows = conn.execute(select(t.entity_kind, t.entity_id, t.entity_time).order_by(t.entity_id)).all()
        assert [tuple(r) for r in rows] == [
            ("artifact", "a" * 32, created),
            ("run", "g" * 32, None),  # a tag whose run is gone keeps no time
            ("run", "r" * 32, started),
            ("step_run", "s" * 32, step_started),
        ]
        store = SqlMetadataStore(db, flavor=backend, auto_upgrade=True)  # and on to the current revision
        for entity, found in [("run", "r" * 32), ("step", "s" * 32), ("artifact", "a" * 32)]:
            assert [x.id for x in store.search(entity, "tag = 'prod'").items] == [found]
        store.close()

        with db.transaction() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        with db.read() as conn:
            assert "entity_time" not in {c["name"] for c in inspect(conn).get_columns("tags")}
            assert conn.execute(select(t.tag).where(t.entity_id == "r" * 32)).scalars().all() == ["prod"]
