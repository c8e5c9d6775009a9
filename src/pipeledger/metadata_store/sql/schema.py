"""The relational schema: one SQLAlchemy ``MetaData`` for every database.

Dialect differences are settled here, not in queries: timestamps are stored as
naive UTC with microseconds (``DATETIME(6)`` on MySQL), JSON columns use each
database's JSON type, and indexes on long strings get a MySQL prefix length.
Constraint and index names follow :data:`NAMING_CONVENTION`, so migrations can
refer to them on every database.

``SCHEMA_REVISION`` is the Alembic revision this schema corresponds to; a test
checks that it is the head of the migration tree and that upgrading an empty
database produces exactly these tables.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeDecorator

from pipeledger.metadata_store.sql.engine import json_dumps
from pipeledger.models import DEFAULT_PROJECT

SCHEMA_REVISION = "0010"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 32
NAME_LENGTH = 255


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC (microsecond precision), read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the stored text ("2026-11-27 23:53:49.123456"): parsed with its
        # UTC offset in one C call, 5x faster than SQLAlchemy's parse plus ``replace(tzinfo=)``
        # (the run view converts ~70 timestamps).
        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return process


class JSONText(TypeDecorator[Any]):
    """JSON kept as TEXT, for SQLite.

    SQLite gives a column declared ``JSON`` numeric affinity, which turns the
    stored text ``1.0`` into the integer ``1``; a ``TEXT`` column keeps it exact.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json_dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
"""Text that may exceed 64 KiB (tracebacks, docstrings): MEDIUMTEXT on MySQL, whose TEXT stops there."""

JSONColumn = JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(JSONText(), "sqlite")


def _id(name: str = "id", *args: Any, **kwargs: Any) -> Column[str]:
    return Column(name, String(ID_LENGTH), *args, **kwargs)


MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
"""On MySQL: transactional tables, full Unicode, and names that differ in case are distinct."""

pipelines = Table(
    "pipelines",
    metadata,
    _id(primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("docstring", LongText),
    Column("created_at", UTCDateTime, nullable=False),
    Column("project", String(NAME_LENGTH), nullable=False, server_default=DEFAULT_PROJECT),
    UniqueConstraint("name"),
    Index(None, "project", "name"),
    **MYSQL_TABLE_OPTIONS,
)
"""Pipelines, each in one project (revision 0009; ``default`` unless created in another). A
pipeline's runs, step runs and artifacts belong to its project: that is what the server's roles
are checked against (:mod:`pipeledger.server.security`). Names are unique across projects."""

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    _id(primary_key=True),
    _id("pipeline_id", ForeignKey("pipelines.id"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("parameters", JSONColumn, nullable=False),
    Column("config", JSONColumn, nullable=False),
    Column("environment", JSONColumn, nullable=False),
    Column("stack", JSONColumn, nullable=False),
    Column("git_sha", String(64)),
    Column("git_dirty", Boolean),
    Column("code_hash", String(64)),
    Column("error", LongText),
    UniqueConstraint("name"),
    UniqueConstraint("pipeline_id", "number"),
    # Covers a pipeline's run names in start order (revision 0010): listed from the index alone.
    Index(None, "pipeline_id", "start_time", "id", "name"),
    Index(None, "start_time"),
    Index(None, "status", "start_time"),
    **MYSQL_TABLE_OPTIONS,
)

step_runs = Table(
    "step_runs",
    metadata,
    _id(primary_key=True),
    _id("run_id", ForeignKey("pipeline_runs.id"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("entrypoint", LongText),
    Column("docstring", LongText),
    Column("parameters", JSONColumn, nullable=False),
    Column("config", JSONColumn, nullable=False),
    Column("source_hash", String(64)),
    Column("cache_key", String(64)),
    Column("cache_components", JSONColumn),
    Column("cache_invalidated_at", UTCDateTime),
    _id("cached_from_id", ForeignKey("step_runs.id")),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime),
    Column("error", LongText),
    Column("logs_uri", LongText),
    Column("error_message", LongText),
    UniqueConstraint("run_id", "name"),
    Index(None, "cache_key", "status", "end_time"),
    Index(None, "name", "start_time"),
    Index(None, "start_time"),
    **MYSQL_TABLE_OPTIONS,
)

artifacts = Table(
    "artifacts",
    metadata,
    _id(primary_key=True),
    Column("uri", String(2048), nullable=False),
    Column("artifact_store", String(NAME_LENGTH)),
    Column("type", String(NAME_LENGTH), nullable=False),
    Column("data_type", String(1024), nullable=False),
    Column("materializer", String(1024), nullable=False),
    Column("materializer_version", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    _id("producer_step_run_id", ForeignKey("step_runs.id")),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "uri", mysql_length=255),
    Index(None, "producer_step_run_id"),
    Index(None, "content_hash"),
    Index(None, "created_at"),
    **MYSQL_TABLE_OPTIONS,
)

step_io = Table(
    "step_io",
    metadata,
    _id("step_run_id", ForeignKey("step_runs.id"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    _id("artifact_id", ForeignKey("artifacts.id"), nullable=False),
    PrimaryKeyConstraint("step_run_id", "direction", "name"),
    Index(None, "artifact_id", "direction"),
    **MYSQL_TABLE_OPTIONS,
)

entity_metadata = Table(
    "metadata",
    metadata,
    Column("entity_kind", String(16), nullable=False),
    _id("entity_id", nullable=False),
    Column("key", String(NAME_LENGTH), nullable=False),
    Column("value", JSONColumn),
    Column("number", Double),
    PrimaryKeyConstraint("entity_kind", "entity_id", "key"),
    Index(None, "entity_kind", "key", "entity_id"),
    Index(None, "entity_kind", "key", "number"),
    **MYSQL_TABLE_OPTIONS,
)

entity_tags = Table(
    "tags",
    metadata,
    Column("entity_kind", String(16), nullable=False),
    _id("entity_id", nullable=False),
    Column("tag", String(NAME_LENGTH), nullable=False),
    Column("entity_time", UTCDateTime),
    PrimaryKeyConstraint("entity_kind", "entity_id", "tag"),
    Index(None, "entity_kind", "tag", "entity_time", "entity_id"),
    **MYSQL_TABLE_OPTIONS,
)
"""Tags of runs, step runs and artifacts (revision 0006 moved ``pipeline_runs.tags`` here): one row
per (entity, tag). The primary key lists an entity's tags; the second index finds the entities
carrying a tag (``tag = 'prod'``, ``tag like 'exp:%'``), newest first: ``entity_time`` is a copy of
the entity's time of its default search order (a run's or step run's ``start_time``, an
artifact's ``created_at``, all fixed once written), so the first page of ``tag = 'prod'`` is read
from this index in page order (revision 0008). It is NULL only for a tag whose entity is gone."""


def metadata_number(value: Any) -> float | None:
    """``metadata.number``: the value as a double when it is a JSON number (not a boolean), else
    None. Kept beside the JSON so numeric metric filters are index range scans."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


store_identity = Table(
    "store_identity",
    metadata,
    _id(primary_key=True),
    Column("token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    **MYSQL_TABLE_OPTIONS,
)
"""One row: the store's id and ownership token (:class:`~pipeledger.models.StoreIdentity`),
made when the schema is created (or upgraded to revision 0004). The artifact store keeps
this store's files under ``stores/<id>/``, and ``gc`` looks for orphaned files only there
(see :mod:`pipeledger.maintenance`)."""


# -- Access (revision 0009): who may do what on a pipeledger server, and what they did. ---------
# Every SQL store has these tables; only `pipeledger server` fills them (server init, users,
# API keys, projects). Secrets are never stored: passwords and API keys only as slow hashes.

projects = Table(
    "projects",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("description", LongText),
    Column("created_at", UTCDateTime, nullable=False),
    **MYSQL_TABLE_OPTIONS,
)
"""Projects by name (never renamed); ``default`` is made with the table."""

principals = Table(
    "principals",
    metadata,
    _id(primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("server_admin", Boolean, nullable=False),
    Column("password_hash", String(255)),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    UniqueConstraint("name"),
    **MYSQL_TABLE_OPTIONS,
)
"""Users (``kind = 'user'``) and service accounts (``'service'``). ``password_hash`` is an argon2
hash (users who log in with a password; NULL otherwise); ``failed_logins`` and
``locked_until`` rate-limit password guessing. A disabled principal's keys stop working."""

api_keys = Table(
    "api_keys",
    metadata,
    _id(primary_key=True),
    _id("principal_id", ForeignKey("principals.id"), nullable=False),
    Column("label", String(NAME_LENGTH)),
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Index(None, "principal_id"),
    **MYSQL_TABLE_OPTIONS,
)
"""API keys (and the tokens ``pipeledger login`` stores, which are keys with an expiry). ``id`` is
the key's public part (shown in listings); only a slow hash of its secret part is kept."""

project_members = Table(
    "project_members",
    metadata,
    Column("project", String(NAME_LENGTH), ForeignKey("projects.name"), nullable=False),
    _id("principal_id", ForeignKey("principals.id"), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("project", "principal_id"),
    Index(None, "principal_id"),
    **MYSQL_TABLE_OPTIONS,
)
"""A principal's role in a project: ``read``, ``write`` or ``admin``
(:class:`pipeledger.server.security.Role`). No row: no access."""

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("principal", String(NAME_LENGTH)),
    Column("action", String(NAME_LENGTH), nullable=False),
    Column("project", String(NAME_LENGTH)),
    Column("target", String(1024)),
    Column("outcome", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("remote", String(255)),
    Column("detail", LongText),
    Index(None, "at"),
    Index(None, "principal", "at"),
    **MYSQL_TABLE_OPTIONS,
)
"""The server's audit log: one row per write and per denied request: when, who (NULL: not
authenticated), what (``action``: the route's name, e.g. ``store.create_run``), on what project and
object, the outcome (``allowed``, ``denied``, ``failed``), the HTTP status, the client's address
and a one-line detail. Never a secret. Kept for the server's retention setting."""
