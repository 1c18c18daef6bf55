"""indexes for the operator and account pages at scale (issue 20): users by created_at, user_sessions by ip,
login receipts by session_id

Revision ID: 0009_scale_indexes
Revises: 0002_login_events

A branch from 0002 (the last of the three tables it touches), like the other packages' migrations: it merges with
whatever heads exist (``upgrade heads``). Receipts by (user_id, occurred_at) already exist since 0002
(``ix_login_events_user_time``); the audit tag index since the initial schema (the tag filter now uses it, see
authsvc/admin/__init__.py).

Large live PostgreSQL databases: build them first without blocking sign-ins, then migrate (IF NOT EXISTS makes the
migration a no-op for an index already there; the migrations run inside one transaction, so it cannot do this itself):
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_created_at ON users (created_at);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_user_sessions_ip ON user_sessions (ip);
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_login_events_session_id ON login_events (session_id);
"""
from alembic import op

revision = "0009_scale_indexes"
down_revision = "0002_login_events"
branch_labels = None
depends_on = None

INDEXES = (("ix_users_created_at", "users", ["created_at"]),
           ("ix_user_sessions_ip", "user_sessions", ["ip"]),
           ("ix_login_events_session_id", "login_events", ["session_id"]))


def upgrade() -> None:
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols, unique=False, if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
