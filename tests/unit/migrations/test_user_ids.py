"""Migration 0007_stable_user_ids on a database that already holds data (issue #19): SQLite tables rebuilt with
AUTOINCREMENT keep every row — children included (a rebuilt parent must not cascade-delete them) — every existing
user gets a distinct opaque ``sub``, and ids already seen in the audit log (deleted accounts) are never handed out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, text

from authsvc import create_app
from tests.conftest import _config

OLD_HEADS = ("0002_login_events", "0003_mfa", "0005_admin", "0006_grant_rotated_at")


def _upgrade(app, revision):
    from authsvc.cli import upgrade_database

    with app.app_context():
        upgrade_database(revision)


def test_upgrade_keeps_children_backfills_sub_and_never_reuses_ids(tmp_path, redis_url, migrated):
    url = "sqlite:///" + str(tmp_path / "old.db")
    app = create_app(_config(url, redis_url, str(tmp_path / "instance")))
    for rev in OLD_HEADS:
        _upgrade(app, rev)
    now = dt.datetime(2026, 11, 1, 12, 0)
    engine = create_engine(url)
    with engine.begin() as conn:
        for uid in (1, 2, 3):
            conn.execute(text("INSERT INTO users (id, email, status, is_admin, must_change_password, "
                              "sessions_valid_after, created_at, notify_new_sign_in) VALUES "
                              "(:id, :e, 'active', 0, 0, :t, :t, 1)"), {"id": uid, "e": f"u{uid}@example.com", "t": now})
            conn.execute(text("INSERT INTO user_sessions (id, user_id, created_at, aal, methods) "
                              "VALUES (:s, :id, :t, 1, 'pwd')"), {"s": f"s{uid}", "id": uid, "t": now})
            conn.execute(text("INSERT INTO mfa_trusted_devices (user_id, token_hash, name, created_at, expires_at) "
                              "VALUES (:id, :h, 'laptop', :t, :t)"), {"id": uid, "h": f"h{uid}", "t": now})
        # Account 5 existed and was deleted before the upgrade: only the audit log remembers its id.
        conn.execute(text("INSERT INTO security_events (occurred_at, tag, outcome, subject_id, prev_hash, hash) "
                          "VALUES (:t, 'account:delete:success', 'success', 5, :z, :z)"), {"t": now, "z": "0" * 64})
        conn.execute(text("UPDATE audit_head SET last_id = 1"))
        conn.execute(text("DELETE FROM mfa_trusted_devices WHERE user_id = 3"))
    engine.dispose()

    _upgrade(app, "heads")

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM user_sessions")).scalar() == 3
            assert conn.execute(text("SELECT count(*) FROM mfa_trusted_devices")).scalar() == 2
            subs = [s for (s,) in conn.execute(text("SELECT sub FROM users ORDER BY id"))]
            assert len(subs) == 3 and len(set(subs)) == 3 and all(s and len(s) >= 22 for s in subs)
            ddl = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
            for table in ("users", "mfa_webauthn", "mfa_trusted_devices"):
                assert "AUTOINCREMENT" in ddl[table], table
        app2 = create_app(_config(url, redis_url, str(tmp_path / "instance")))
        from tests.conftest import create_user

        uid = create_user(app2, email="new@example.com")
        assert uid > 5  # neither 4 (after the live max) nor 5 (a deleted account's id)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": uid})
        assert create_user(app2, email="newer@example.com") > uid
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM mfa_trusted_devices WHERE user_id = 2"))
            conn.execute(text("INSERT INTO mfa_trusted_devices (user_id, token_hash, name, created_at, expires_at) "
                              "VALUES (1, 'hx', 'phone', :t, :t)"), {"t": now})
            # 2 was deleted just now: the next one is 3, not 2 again (3, deleted before the upgrade, is unknowable)
            assert conn.execute(text("SELECT max(id) FROM mfa_trusted_devices")).scalar() == 3
    finally:
        engine.dispose()
