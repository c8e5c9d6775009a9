"""Initial schema: pipelines, runs, step runs, artifacts, step I/O edges, metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import JSONColumn, LongText, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# On MySQL/MariaDB: transactional tables, full Unicode, names compared exactly (whatever the
# database's default collation is).
MYSQL_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
ID = sa.String(32)
NAME = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("docstring", LongText),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipelines"),
        sa.UniqueConstraint("name", name="uq_pipelines_name"),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("pipeline_id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime()),
        sa.Column("heartbeat_at", UTCDateTime()),
        sa.Column("parameters", JSONColumn, nullable=False),
        sa.Column("config", JSONColumn, nullable=False),
        sa.Column("environment", JSONColumn, nullable=False),
        sa.Column("stack", JSONColumn, nullable=False),
        sa.Column("git_sha", sa.String(64)),
        sa.Column("git_dirty", sa.Boolean()),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("error", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipelines.id"], name="fk_pipeline_runs_pipeline_id_pipelines"),
        sa.UniqueConstraint("name", name="uq_pipeline_runs_name"),
        sa.UniqueConstraint("pipeline_id", "number", name="uq_pipeline_runs_pipeline_id_number"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_pipeline_runs_pipeline_id_start_time", "pipeline_runs", ["pipeline_id", "start_time"])
    op.create_index("ix_pipeline_runs_start_time", "pipeline_runs", ["start_time"])
    op.create_index("ix_pipeline_runs_status_start_time", "pipeline_runs", ["status", "start_time"])
    op.create_table(
        "step_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("entrypoint", LongText),
        sa.Column("docstring", LongText),
        sa.Column("parameters", JSONColumn, nullable=False),
        sa.Column("config", JSONColumn, nullable=False),
        sa.Column("source_hash", sa.String(64)),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("cached_from_id", ID),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime()),
        sa.Column("error", LongText),
        sa.Column("logs_uri", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.ForeignKeyConstraint(["run_id"], ["pipeline_runs.id"], name="fk_step_runs_run_id_pipeline_runs"),
        sa.ForeignKeyConstraint(["cached_from_id"], ["step_runs.id"], name="fk_step_runs_cached_from_id_step_runs"),
        sa.UniqueConstraint("run_id", "name", name="uq_step_runs_run_id_name"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_step_runs_cache_key_status", "step_runs", ["cache_key", "status"])
    op.create_table(
        "artifacts",
        sa.Column("id", ID, nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("artifact_store", NAME),
        sa.Column("type", NAME, nullable=False),
        sa.Column("data_type", sa.String(1024), nullable=False),
        sa.Column("materializer", sa.String(1024), nullable=False),
        sa.Column("materializer_version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("producer_step_run_id", ID),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["producer_step_run_id"],
            ["step_runs.id"],
            name="fk_artifacts_producer_step_run_id_step_runs",
        ),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_artifacts_uri", "artifacts", ["uri"], mysql_length=255)
    op.create_index("ix_artifacts_producer_step_run_id", "artifacts", ["producer_step_run_id"])
    op.create_index("ix_artifacts_content_hash", "artifacts", ["content_hash"])
    op.create_table(
        "step_io",
        sa.Column("step_run_id", ID, nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("artifact_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("step_run_id", "direction", "name", name="pk_step_io"),
        sa.ForeignKeyConstraint(["step_run_id"], ["step_runs.id"], name="fk_step_io_step_run_id_step_runs"),
        sa.ForeignKeyConstraint(["artifact_id"], ["artifacts.id"], name="fk_step_io_artifact_id_artifacts"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_step_io_artifact_id_direction", "step_io", ["artifact_id", "direction"])
    op.create_table(
        "metadata",
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", ID, nullable=False),
        sa.Column("key", NAME, nullable=False),
        sa.Column("value", JSONColumn),
        sa.PrimaryKeyConstraint("entity_kind", "entity_id", "key", name="pk_metadata"),
        **MYSQL_OPTIONS,
    )


def downgrade() -> None:
    for table in ("metadata", "step_io", "artifacts", "step_runs", "pipeline_runs", "pipelines"):
        op.drop_table(table)
