"""Alembic environment. Run through ``authsvc db upgrade``, which hands us the app's connection."""

from __future__ import annotations

from alembic import context

from authsvc.models import Base  # noqa: F401  (imports every model so autogenerate sees them)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from authsvc import create_app
        from authsvc.extensions import db

        app = create_app()
        with app.app_context(), db.engine.connect() as conn:
            _run(conn)
            conn.commit()
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline mode is not supported; run `authsvc db upgrade`")
run_migrations_online()
