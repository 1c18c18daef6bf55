"""OAuth DPoP (RFC 9449): per-client "DPoP required", the key a grant's refresh tokens are bound to

Revision ID: 0008_oauth_dpop
Revises: 0006_grant_rotated_at
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_oauth_dpop"
down_revision = "0006_grant_rotated_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMNs only: no table rebuild on SQLite, no rewrite on PostgreSQL (constant default, nullable column).
    op.add_column("oauth_clients", sa.Column("dpop_bound_access_tokens", sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    op.add_column("oauth_grants", sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_grants", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("dpop_bound_access_tokens")
