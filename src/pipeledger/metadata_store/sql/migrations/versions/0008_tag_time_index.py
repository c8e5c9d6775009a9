"""Search: ``tags.entity_time``, so a tag's entities are read newest first from an index.

``tags.entity_time`` copies the tagged entity's time of its default search order (a run's or
step run's ``start_time``, an artifact's ``created_at``; none of them changes once written),
filled here for every existing row (a tag whose entity is gone keeps NULL). The index
``(entity_kind, tag, entity_time, entity_id)`` replaces ``(entity_kind, tag, entity_id)``: it
still finds a tag's entities (its prefix), and the first page of ``tag = 'prod'`` newest first is
its first 50 entries instead of a sort of every tagged entity.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIMES = {
    "run": ("pipeline_runs", "start_time"),
    "step_run": ("step_runs", "start_time"),
    "artifact": ("artifacts", "created_at"),
}


def upgrade() -> None:
    op.add_column("tags", sa.Column("entity_time", UTCDateTime(), nullable=True))
    for kind, (table, column) in TIMES.items():
        # A correlated UPDATE (the same text on every database): the entity by primary key.
        op.execute(
            sa.text(
                f"UPDATE tags SET entity_time = (SELECT {table}.{column} FROM {table} "
                f"WHERE {table}.id = tags.entity_id) WHERE tags.entity_kind = :kind"
            ).bindparams(kind=kind)
        )
    op.create_index(
        "ix_tags_entity_kind_tag_entity_time_entity_id", "tags", ["entity_kind", "tag", "entity_time", "entity_id"]
    )
    op.drop_index("ix_tags_entity_kind_tag_entity_id", table_name="tags")


def downgrade() -> None:
    op.create_index("ix_tags_entity_kind_tag_entity_id", "tags", ["entity_kind", "tag", "entity_id"])
    op.drop_index("ix_tags_entity_kind_tag_entity_time_entity_id", table_name="tags")
    op.drop_column("tags", "entity_time")
