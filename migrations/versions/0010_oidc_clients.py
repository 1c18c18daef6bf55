"""OAuth client metadata of issue 14: "PAR required" (RFC 9126 §6 require_pushed_authorization_requests) and the
browser origins a single-page app may call the token, userinfo and revocation endpoints from (CORS), and
private_key_jwt client authentication (method, jwks, jwks_uri)

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
    # RFC 7523 / OIDC Core §9 private_key_jwt: the method, and the client's public keys by value or by URL.
    op.add_column("oauth_clients", sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=True))
    op.add_column("oauth_clients", sa.Column("jwks", sa.Text(), nullable=True))
    op.add_column("oauth_clients", sa.Column("jwks_uri", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("jwks_uri")
        batch_op.drop_column("jwks")
        batch_op.drop_column("token_endpoint_auth_method")
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("require_pushed_authorization_requests")
