"""OAuth grants: when the family last rotated (the connected-apps list shows "last used")

Revision ID: 0006_grant_rotated_at
Revises: 0004_oauth
"""
import sqlalchemy as sa
from alembic import op

import authsvc.models.base

revision = "0006_grant_rotated_at"
down_revision = "0004_oauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable ADD COLUMN: no table rebuild on SQLite, no rewrite on PostgreSQL. Set by the rotation's own UPDATE.
    op.add_column("oauth_grants", sa.Column("rotated_at", authsvc.models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_grants", schema=None) as batch_op:
        batch_op.drop_column("rotated_at")
