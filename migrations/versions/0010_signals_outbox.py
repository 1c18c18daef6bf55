"""Shared Signals / Back-Channel Logout delivery outbox (issue 15)

Revision ID: 0010_signals_outbox
Revises: 7d789cf1672f

A branch from the initial schema (it references no other table); ``upgrade heads`` merges it with the others.
"""
import sqlalchemy as sa
from alembic import op

from authsvc.models.base import UTCDateTime

revision = "0010_signals_outbox"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals_outbox")),
        sa.UniqueConstraint("jti", name=op.f("uq_signals_outbox_jti")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_signals_outbox_target"), "signals_outbox", ["target"], unique=False)
    op.create_index(op.f("ix_signals_outbox_next_attempt_at"), "signals_outbox", ["next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_signals_outbox_next_attempt_at"), table_name="signals_outbox")
    op.drop_index(op.f("ix_signals_outbox_target"), table_name="signals_outbox")
    op.drop_table("signals_outbox")
