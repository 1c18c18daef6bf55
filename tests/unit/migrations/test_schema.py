"""The Alembic migrations build exactly the schema the models describe (on SQLite and on PostgreSQL in CI): a model
change without its migration — or a migration that drifts from the model — fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from authsvc.models import Base


def test_migrated_schema_matches_the_models(database_url, migrated):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False, "compare_server_default": False})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], diff
