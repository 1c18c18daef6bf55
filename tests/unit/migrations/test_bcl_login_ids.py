"""Migration 0010_bcl_backchannel_logout on a database with sessions: every session still standing gets its own
random login id (the OIDC ``sid`` the apps will be told about when it ends); ended ones keep none."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, text

from authsvc import create_app
from tests.conftest import _config

BEFORE = ("0009_grant_birth", "0009_scale_indexes", "0007_mfa_factor_trust", "0007_must_change_reason",
          "0007_stable_user_ids")


def test_live_sessions_get_distinct_login_ids_and_ended_ones_none(tmp_path, redis_url, migrated):
    from authsvc.cli import upgrade_database

    url = "sqlite:///" + str(tmp_path / "old.db")
    app = create_app(_config(url, redis_url, str(tmp_path / "instance")))
    with app.app_context():
        for rev in BEFORE:
            upgrade_database(rev)
    now = dt.datetime(2026, 11, 1, 12, 0)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, sub, email, status, is_admin, must_change_password, "
                              "sessions_valid_after, created_at, notify_new_sign_in) VALUES "
                              "(1, 'sub-1', 'u@example.com', 'active', 0, 0, :t, :t, 1)"), {"t": now})
            for sid, revoked in (("s1", None), ("s2", None), ("s3", now)):
                conn.execute(text("INSERT INTO user_sessions (id, user_id, created_at, aal, methods, revoked_at) "
                                  "VALUES (:s, 1, :t, 1, 'pwd', :r)"), {"s": sid, "t": now, "r": revoked})
        with app.app_context():
            upgrade_database("heads")
        with engine.begin() as conn:
            ids = dict(conn.execute(text("SELECT id, login_id FROM user_sessions")).all())
            assert ids["s3"] is None
            assert ids["s1"] and ids["s2"] and ids["s1"] != ids["s2"]
            assert all(len(ids[s]) == 32 and int(ids[s], 16) for s in ("s1", "s2"))  # 128 random bits, hex
            cols = {r[1] for r in conn.execute(text("PRAGMA table_info(oauth_clients)"))}
            assert {"backchannel_logout_uri", "backchannel_logout_session_required"} <= cols
    finally:
        engine.dispose()
