"""retention (issue 20): the audit chain's signed retention anchor; indexes for pruning ended sessions and e-mail
tokens in bounded batches

Revision ID: 0010_scale_retention
Revises: 7d789cf1672f

A branch from the initial schema (the three tables it touches are all there), merged by ``upgrade heads``.
Large live PostgreSQL databases: build the indexes first without blocking sign-ins (IF NOT EXISTS makes the migration
a no-op for them):
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_user_sessions_created_at ON user_sessions (created_at);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_email_tokens_expires_at ON email_tokens (expires_at);
"""
import sqlalchemy as sa
from alembic import op

import authsvc.models.base

revision = "0010_scale_retention"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None

INDEXES = (("ix_user_sessions_created_at", "user_sessions", ["created_at"]),
           ("ix_email_tokens_expires_at", "email_tokens", ["expires_at"]))


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("pruned_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols, unique=False, if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("audit_anchor")
