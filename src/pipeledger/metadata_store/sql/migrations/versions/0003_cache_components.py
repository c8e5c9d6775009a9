"""Caching: the components of each step run's cache key, invalidation, look-up indexes.

``step_runs.cache_components`` keeps what the cache key hashed (to explain misses),
``cache_invalidated_at`` marks entries cleared by ``pipeledger cache clear``. The
cache look-up index gains ``end_time`` (latest entry without a sort), and
``(name, start_time)`` finds the latest earlier run of a step.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import JSONColumn, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("cache_components", JSONColumn, nullable=True))
        batch.add_column(sa.Column("cache_invalidated_at", UTCDateTime(), nullable=True))
        batch.drop_index("ix_step_runs_cache_key_status")
        batch.create_index("ix_step_runs_cache_key_status_end_time", ["cache_key", "status", "end_time"])
        batch.create_index("ix_step_runs_name_start_time", ["name", "start_time"])


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_index("ix_step_runs_name_start_time")
        batch.drop_index("ix_step_runs_cache_key_status_end_time")
        batch.create_index("ix_step_runs_cache_key_status", ["cache_key", "status"])
        batch.drop_column("cache_invalidated_at")
        batch.drop_column("cache_components")
