"""The store's identity: one row holding an id unique to this database and a secret token.

The artifact store keeps the files a metadata store writes under ``stores/<id>/`` (with
the token in ``stores/<id>/.owner.json``), so that ``gc`` collects as orphans only files of
its own store (several stores may share an artifact store). Upgrading an existing
database gives it a fresh id; its artifacts keep their recorded URIs (the old layout
stays readable).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import MYSQL_TABLE_OPTIONS, UTCDateTime
from pipeledger.models import new_id, utcnow

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_identity"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.bulk_insert(table, [{"id": new_id(), "token": secrets.token_hex(32), "created_at": utcnow()}])


def downgrade() -> None:
    op.drop_table("store_identity")
