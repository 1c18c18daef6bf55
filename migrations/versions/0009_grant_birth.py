"""OAuth refresh families remember the network they were born on (continuous risk for refresh tokens, issue 13)

Revision ID: 0009_grant_birth
Revises: 0008_oauth_dpop
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_grant_birth"
down_revision = "0008_oauth_dpop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN only (nullable, no default): no table rebuild on SQLite, no rewrite on PostgreSQL. Families born
    # before it have no birth context and are not scored.
    op.add_column("oauth_grants", sa.Column("birth", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_grants", schema=None) as batch_op:
        batch_op.drop_column("birth")
