"""A failed step's exception message: ``step_runs.error_message``, next to its traceback (``error``).

OpenLineage's ``errorMessage`` facet (and every reader wanting the error in a line) takes
the exception's own message; the traceback's last line is not it (a note, or the last line
of a multi-line message). Step runs recorded before this revision keep ``error_message``
NULL: readers fall back on the last line of ``error``
(:attr:`pipeledger.models.StepRunRecord.failure_message`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import LongText

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("error_message", LongText, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("error_message")
