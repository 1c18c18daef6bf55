"""Users: why a password change is forced (the page tells the true reason)

Revision ID: 0007_must_change_reason
Revises: 0005_admin
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_must_change_reason"
down_revision = "0005_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable ADD COLUMN: no table rebuild on SQLite, no rewrite on PostgreSQL. Rows already flagged keep NULL and
    # get a neutral message ("your password must be replaced").
    op.add_column("users", sa.Column("must_change_reason", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("must_change_reason")
