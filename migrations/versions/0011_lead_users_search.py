"""users search by e-mail at scale (issue 20): a trigram index on users.email (PostgreSQL's pg_trgm), so that
"find accounts whose address contains …" is answered from the index instead of reading every account

Revision ID: 0011_lead_users_search
Revises: 0010_oidc_profile

pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13: the database owner may
create it. Where it cannot be created (a managed service without it, an older server, a role without the right) the
migration leaves a notice and goes on: the search still works, by reading the table. SQLite: nothing to do (small
deployments; the search reads the table).

Large live databases: create it first without blocking registrations, then migrate (IF NOT EXISTS makes this a
no-op):
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_email_trgm ON users USING gin (email gin_trgm_ops);
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = "0011_lead_users_search"
down_revision = "0010_oidc_profile"  # the last migration that touched users
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():  # a SAVEPOINT: a refused CREATE EXTENSION must not abort the whole upgrade
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            bind.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_users_email_trgm ON users USING gin "
                                 "(email gin_trgm_ops)"))
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm is not available (%s): the admin users search by e-mail will read the users table",
                    str(exc.orig).splitlines()[0] if exc.orig else exc)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_users_email_trgm")
