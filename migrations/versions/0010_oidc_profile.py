"""OIDC profile claims (issue 14): users.name and users.preferred_username, released with the ``profile`` scope

Revision ID: 0010_oidc_profile
Revises: 7d789cf1672f
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_oidc_profile"
down_revision = "7d789cf1672f"  # the users table (initial schema)
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable ADD COLUMNs only: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column("users", sa.Column("name", sa.String(length=200), nullable=True))
    op.add_column("users", sa.Column("preferred_username", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("preferred_username")
        batch_op.drop_column("name")
