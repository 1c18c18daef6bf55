"""OpenID Connect Back-Channel Logout 1.0: per-client logout URI, and a stable per-login ``sid`` on sessions

Revision ID: 0010_bcl_backchannel_logout
Revises: 0009_grant_birth
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_bcl_backchannel_logout"
down_revision = "0009_grant_birth"  # oauth_clients (0004 → 0008) and user_sessions (0001) are both below it
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMNs only (nullable or a constant default): no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column("oauth_clients", sa.Column("backchannel_logout_uri", sa.Text(), nullable=True))
    op.add_column("oauth_clients", sa.Column("backchannel_logout_session_required", sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    op.add_column("user_sessions", sa.Column("login_id", sa.String(length=32), nullable=True))
    op.create_index("ix_user_sessions_login_id", "user_sessions", ["login_id"])
    # Sessions still standing get a login id now, from each database's CSPRNG, so the apps they signed in to can be
    # told when they end. Ended sessions keep NULL: nothing will end them again.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE user_sessions SET login_id = replace(gen_random_uuid()::text, '-', '') "
                   "WHERE revoked_at IS NULL")
    else:
        op.execute("UPDATE user_sessions SET login_id = lower(hex(randomblob(16))) WHERE revoked_at IS NULL")


def downgrade() -> None:
    op.drop_index("ix_user_sessions_login_id", table_name="user_sessions")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_column("login_id")
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
