"""Search: ``metadata.number`` and indexes for newest-first pages and metrics.

``metadata.number`` holds a value that is a JSON number as a double (NULL otherwise), filled
here for every existing row; with the index ``(entity_kind, key, number)`` a filter such as
``metrics.accuracy > 0.99`` is a range scan instead of a read of every ``accuracy``.

``step_runs(start_time)`` and ``artifacts(created_at)`` serve the default order of
``search_steps``/``search_artifacts`` (newest first, a page at a time); ``metadata(entity_kind,
key, entity_id)`` finds the entities that logged a key (``metrics.accuracy > 0.9``) without
reading every entity's metadata. ``tags`` got its index in revision 0006.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BACKFILL = {
    "sqlite": "UPDATE metadata SET number = CAST(value AS REAL) WHERE json_type(value) IN ('integer', 'real')",
    "postgresql": "UPDATE metadata SET number = CAST(value #>> '{}' AS DOUBLE PRECISION) "
    "WHERE jsonb_typeof(value) = 'number'",
    "mysql": "UPDATE metadata SET number = CAST(value AS DOUBLE) "
    "WHERE JSON_TYPE(value) IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER')",
}

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("metadata", sa.Column("number", sa.Double(), nullable=True))
    op.execute(BACKFILL[op.get_bind().dialect.name])
    op.create_index("ix_metadata_entity_kind_key_number", "metadata", ["entity_kind", "key", "number"])
    op.create_index("ix_step_runs_start_time", "step_runs", ["start_time"])
    op.create_index("ix_artifacts_created_at", "artifacts", ["created_at"])
    op.create_index("ix_metadata_entity_kind_key_entity_id", "metadata", ["entity_kind", "key", "entity_id"])


def downgrade() -> None:
    op.drop_index("ix_metadata_entity_kind_key_number", table_name="metadata")
    op.drop_column("metadata", "number")
    op.drop_index("ix_metadata_entity_kind_key_entity_id", table_name="metadata")
    op.drop_index("ix_artifacts_created_at", table_name="artifacts")
    op.drop_index("ix_step_runs_start_time", table_name="step_runs")
