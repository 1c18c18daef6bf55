"""OAuth client metadata of issue 14: "PAR required" (RFC 9126 §6 require_pushed_authorization_requests) and the
browser origins a single-page app may call the token, userinfo and revocation endpoints from (CORS)

Revision ID: 0010_oidc_clients
Revises: 0008_oauth_dpop
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_oidc_clients"
down_revision = "0008_oauth_dpop"  # the last migration that touched oauth_clients
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMNs with constant defaults only: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column("oauth_clients", sa.Column("require_pushed_authorization_requests", sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    op.add_column("oauth_clients", sa.Column("allowed_origins", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("require_pushed_authorization_requests")
