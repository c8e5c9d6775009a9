"""Editable tags: the ``tags`` table holds the tags of runs, step runs and artifacts.

Moves every run's ``pipeline_runs.tags`` JSON list into rows of ``tags`` (one per distinct
tag; a tag the name rules would refuse is kept as it was, since it was recorded), then drops
the column. Downgrading writes the runs' tags back as JSON lists (sorted) and drops the table:
the tags of step runs and artifacts, which revisions before it cannot hold, are lost.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import MYSQL_TABLE_OPTIONS, JSONColumn

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 1000


def _as_list(value: Any) -> list[str]:
    """A stored tags value as a list of distinct strings (SQLite hands back text, others JSON)."""
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(str(tag) for tag in value if tag is not None and str(tag) != ""))


def upgrade() -> None:
    tags = op.create_table(
        "tags",
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("entity_kind", "entity_id", "tag", name="pk_tags"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_tags_entity_kind_tag_entity_id", "tags", ["entity_kind", "tag", "entity_id"])
    connection = op.get_bind()
    runs = sa.table("pipeline_runs", sa.column("id", sa.String(32)), sa.column("tags", sa.Text))
    rows = connection.execute(sa.select(runs.c.id, runs.c.tags).where(runs.c.tags.is_not(None))).all()
    pending: list[dict[str, str]] = []
    for run_id, value in rows:
        pending.extend({"entity_kind": "run", "entity_id": run_id, "tag": tag} for tag in _as_list(value))
        if len(pending) >= BATCH:
            op.bulk_insert(tags, pending)
            pending = []
    if pending:
        op.bulk_insert(tags, pending)
    # Plain ALTER TABLE ... DROP COLUMN on every database (SQLite >= 3.35): a batch rebuild of
    # pipeline_runs would trip the foreign keys of step_runs on SQLite.
    op.drop_column("pipeline_runs", "tags")


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("tags", JSONColumn, nullable=True))
    connection = op.get_bind()
    tags = sa.table("tags", sa.column("entity_kind"), sa.column("entity_id"), sa.column("tag"))
    by_run: dict[str, list[str]] = {}
    query = (
        sa.select(tags.c.entity_id, tags.c.tag)
        .where(tags.c.entity_kind == "run")
        .order_by(tags.c.entity_id, tags.c.tag)
    )
    for run_id, tag in connection.execute(query):
        by_run.setdefault(run_id, []).append(tag)
    runs = sa.table("pipeline_runs", sa.column("id", sa.String(32)), sa.column("tags", JSONColumn))
    for run_id, run_tags in by_run.items():
        connection.execute(sa.update(runs).where(runs.c.id == run_id).values(tags=run_tags))
    op.drop_index("ix_tags_entity_kind_tag_entity_id", table_name="tags")
    op.drop_table("tags")
