"""Run tags; on MySQL, utf8mb4 tables with binary collation.

``pipeline_runs.tags`` holds a run's tags (a JSON list). On MySQL/MariaDB every
table is converted to ``utf8mb4`` / ``utf8mb4_bin``: with a server whose default
collation is case-insensitive, revision 0001 let ``Run`` and ``run`` collide on
unique names. SQLite and PostgreSQL compare strings exactly already.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import JSONColumn

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("pipelines", "pipeline_runs", "step_runs", "artifacts", "step_io", "metadata")


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("tags", JSONColumn, nullable=True))
    if op.get_context().dialect.name == "mysql":
        op.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in TABLES:
            op.execute(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        op.execute("SET FOREIGN_KEY_CHECKS = 1")


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("tags")
