"""A statement waiting for a PostgreSQL lock gives up after ``database_lock_timeout`` and the request is a 503 with
Retry-After — never a worker held until the server's request timeout (docs/OPERATIONS.md, "Which HTTP server").
PostgreSQL only: SQLite has its own busy timeout (tests/packaging/test_server_reliability.py)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import create_user


def test_a_request_waiting_on_a_locked_table_is_a_503_after_the_lock_timeout(make_app):
    app = make_app(database_lock_timeout=1)
    from authsvc.extensions import db

    with app.app_context():
        url = db.engine.url
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's lock_timeout")
        assert db.session.execute(text("SHOW lock_timeout")).scalar() == "1s"
        db.session.rollback()
    create_user(app, email="locked@example.com")
    holder = create_engine(url.render_as_string(hide_password=False)).connect()
    try:
        holder.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))  # an operator's psql, a long migration
        t0 = time.monotonic()
        r = app.test_client().post("/api/v1/login", json={"email": "locked@example.com", "password": "x" * 20})
        waited = time.monotonic() - t0
    finally:
        holder.rollback()
        holder.close()
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.get_data(as_text=True)[:200])
    assert "Traceback" not in r.get_data(as_text=True)
    assert waited < 10, waited  # the lock's holder would have kept it for as long as it liked
    assert app.test_client().get("/readyz").status_code == 200  # the pool's connection is usable again
