"""Schema versions: check on open, upgrade on request.

The database's revision lives in Alembic's ``alembic_version`` table. On open,
:func:`ensure_schema` reads it with one query and

* creates the schema in an empty database;
* accepts the revision this library expects (:data:`SCHEMA_REVISION`);
* upgrades an older schema only when ``auto_upgrade`` is set (the local default
  SQLite store), otherwise raises :class:`SchemaVersionError` with the command that
  upgrades it;
* always refuses a revision it does not know, which a newer pipeledger wrote.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from pipeledger.exceptions import SchemaVersionError
from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.schema import SCHEMA_REVISION

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def current_revision(db: Database) -> str | None:
    """The database's schema revision, or None for a database without pipeledger's schema."""
    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> list[str]:
    """Every revision of the migration tree, oldest first."""
    script = _script_directory()
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def upgrade(db: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (Alembic syntax), each in a transaction."""
    from alembic import command

    config = _alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def ensure_schema(db: Database, *, auto_upgrade: bool, migrate_command: str) -> None:
    """Make sure the database holds the schema this library expects (see module doc)."""
    revision = current_revision(db)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        with db.read() as conn:
            tables = inspect(conn).get_table_names()
        if "pipeline_runs" in tables:
            raise SchemaVersionError(
                f"{db.display_name} has pipeledger tables but no schema revision; "
                "it was not created by pipeledger's migrations and cannot be used"
            )
        upgrade(db)
        return
    known = known_revisions()
    if revision not in known:
        raise SchemaVersionError(
            f"{db.display_name} has schema revision {revision}, newer than this pipeledger "
            f"(schema revision {SCHEMA_REVISION}); upgrade pipeledger to use it"
        )
    if auto_upgrade:
        upgrade(db)
        return
    raise SchemaVersionError(
        f"{db.display_name} has schema revision {revision}, older than this pipeledger's "
        f"{SCHEMA_REVISION}; back it up, then run: {migrate_command}"
    )


def _alembic_config() -> Config:

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())
