"""Security center: per-user notification preference (e-mail me on a new sign-in)

Revision ID: 0005_admin
Revises: 7d789cf1672f
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_admin"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default: no table rebuild on SQLite, no rewrite on PostgreSQL ≥ 11.
    op.add_column("users", sa.Column("notify_new_sign_in", sa.Boolean(), nullable=False,
                                     server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("notify_new_sign_in")
