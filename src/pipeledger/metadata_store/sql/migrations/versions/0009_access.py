"""Access: projects, principals (users and service accounts), API keys, project members, the
audit log, and ``pipelines.project``.

Every existing pipeline goes to the project ``default``, which this revision creates. The
tables stay empty until ``pipeledger server init`` (see :mod:`pipeledger.server.security`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipeledger.metadata_store.sql.schema import MYSQL_TABLE_OPTIONS, LongText, UTCDateTime
from pipeledger.models import DEFAULT_PROJECT, utcnow

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.String(32)
NAME = sa.String(255)


def upgrade() -> None:
    op.add_column("pipelines", sa.Column("project", NAME, nullable=False, server_default=DEFAULT_PROJECT))
    op.create_index("ix_pipelines_project_name", "pipelines", ["project", "name"])
    projects = op.create_table(
        "projects",
        sa.Column("name", NAME, nullable=False),
        sa.Column("description", LongText),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_projects"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.bulk_insert(projects, [{"name": DEFAULT_PROJECT, "description": None, "created_at": utcnow()}])
    op.create_table(
        "principals",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("server_admin", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_principals"),
        sa.UniqueConstraint("name", name="uq_principals_name"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("label", NAME),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"], name="fk_api_keys_principal_id_principals"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_api_keys_principal_id", "api_keys", ["principal_id"])
    op.create_table(
        "project_members",
        sa.Column("project", NAME, nullable=False),
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name="fk_project_members_project_projects"),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"], name="fk_project_members_principal_id_principals"),
        sa.PrimaryKeyConstraint("project", "principal_id", name="pk_project_members"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_project_members_principal_id", "project_members", ["principal_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("principal", NAME),
        sa.Column("action", NAME, nullable=False),
        sa.Column("project", NAME),
        sa.Column("target", sa.String(1024)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("remote", NAME),
        sa.Column("detail", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_principal_at", "audit_events", ["principal", "at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("project_members")
    op.drop_table("api_keys")
    op.drop_table("principals")
    op.drop_table("projects")
    op.drop_index("ix_pipelines_project_name", table_name="pipelines")
    op.drop_column("pipelines", "project")
