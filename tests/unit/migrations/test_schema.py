"""The Alembic migrations build exactly the schema the models describe (on SQLite and on PostgreSQL in CI): a model
change without its migration — or a migration that drifts from the model — fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from authsvc.models import Base

# Indexes a migration creates only where a PostgreSQL extension is available, so no model declares them (the model
# would otherwise demand them on SQLite and on a server without the extension): 0011_lead_users_search (pg_trgm).
DATABASE_ONLY_INDEXES = frozenset({"ix_users_email_trgm"})


def _compared(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "index" and reflected and compare_to is None and name in DATABASE_ONLY_INDEXES)


def test_migrated_schema_matches_the_models(database_url, migrated):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False, "compare_server_default": False,
                                                           "include_object": _compared})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], diff
