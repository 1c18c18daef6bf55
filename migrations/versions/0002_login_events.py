"""login events with risk receipts

Revision ID: 0002_login_events
Revises: 7d789cf1672f
"""
import sqlalchemy as sa
from alembic import op

import authsvc.models.base

revision = "0002_login_events"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("asn", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_login_events_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_events")),
    )
    with op.batch_alter_table("login_events") as b:
        b.create_index("ix_login_events_user_time", ["user_id", "occurred_at"], unique=False)
        b.create_index(b.f("ix_login_events_occurred_at"), ["occurred_at"], unique=False)
        b.create_index(b.f("ix_login_events_ip"), ["ip"], unique=False)


def downgrade() -> None:
    op.drop_table("login_events")
