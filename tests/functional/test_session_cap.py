"""Live sessions per user are capped (issue 20, ``session_max_per_user``): a sign-in beyond the cap ends the user's
oldest sessions like any ended session (SQL, Redis, revocation listeners), audited as ``session:cap:end``; the
session lists (security center, admin user page) are paged. Real SQL and Redis. Attacker tests first."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.conftest import PASSWORD, create_user
from tests.functional.admin_helpers import admin_client
from tests.functional.helpers import login

ALICE, MALLORY = "alice@example.com", "mallory@example.com"


def _user(uid):
    from authsvc.extensions import db
    from authsvc.models import User

    return db.session.get(User, uid)


def _token(client, email=ALICE):
    r = client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["session_token"]


def _alive(client, token) -> bool:
    return client.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def _cap_rows(svc):
    return svc.audit.db.session.execute(text(
        "SELECT subject_id, reason, details FROM security_events WHERE tag = 'session:cap:end' ORDER BY id")).all()


@pytest.fixture
def capped(make_app):
    return make_app(session_max_per_user=3)


# --- attacker tests ------------------------------------------------------------------------------------------------
def test_another_users_sign_ins_never_end_my_sessions(capped):
    from authsvc.services import services

    create_user(capped, ALICE)
    mallory = create_user(capped, MALLORY)
    c = capped.test_client()
    with capped.app_context():
        mine = [_token(c, ALICE) for _ in range(3)]
        for _ in range(6):  # mallory fills and overflows her own cap
            _token(c, MALLORY)
        assert all(_alive(c, t) for t in mine)
        rows = _cap_rows(services())
        assert len(rows) == 3 and {r.subject_id for r in rows} == {mallory}


def test_the_oldest_session_ends_first_is_audited_and_its_listeners_run(capped):
    from authsvc.extensions import db
    from authsvc.models import UserSession
    from authsvc.services import services

    uid = create_user(capped, ALICE)
    c = capped.test_client()
    ended = []
    with capped.app_context():
        svc = services()
        svc.sessions.revocation_listeners.append(lambda user_id, sids: ended.append((user_id, list(sids))))
        tokens = []
        for _ in range(3):
            tokens.append(_token(c))
            svc.clock.advance(1)
        oldest = db.session.execute(select(UserSession.id).where(UserSession.user_id == uid)
                                    .order_by(UserSession.created_at)).scalars().first()
        tokens.append(_token(c))  # the fourth: the first one ends
        assert not _alive(c, tokens[0])
        assert all(_alive(c, t) for t in tokens[1:])
        row = db.session.get(UserSession, oldest)
        db.session.refresh(row)
        assert row.revoked_at is not None and row.revoke_reason == "session_cap"
        assert (uid, [oldest]) in ended  # what was issued from it (OAuth tokens, device marks) dies with it
        rows = _cap_rows(svc)
        assert [(r.subject_id, r.reason) for r in rows] == [(uid, "session_cap")]
        assert oldest[:12] in rows[0].details
        assert len(svc.sessions.list_for(_user(uid))) == 3


def test_a_replayed_capped_session_stays_dead_even_if_redis_still_has_it(capped):
    """The SQL row says revoked: a Redis restore that brings the session back does not revive it."""
    from authsvc.extensions import db, get_redis
    from authsvc.models import UserSession
    from authsvc.services import services
    from authsvc.sessions import token_hash

    create_user(capped, ALICE)
    c = capped.test_client()
    with capped.app_context():
        first = _token(c)
        sid = token_hash(first)
        snapshot = get_redis().hgetall(f"sess:{{{sid}}}")
        assert snapshot
        for _ in range(3):
            services().clock.advance(1)
            _token(c)
        assert not _alive(c, first)
        get_redis().hset(f"sess:{{{sid}}}", mapping=snapshot)  # "restore"
        get_redis().expire(f"sess:{{{sid}}}", 600)
        assert not _alive(c, first)
        assert db.session.get(UserSession, sid).revoke_reason == "session_cap"


def test_sessions_past_their_absolute_lifetime_do_not_count(make_app):
    from authsvc.services import services

    capped = make_app(session_max_per_user=3, session_idle_timeout=600, session_absolute_timeout=1200)
    uid = create_user(capped, ALICE)
    c = capped.test_client()
    with capped.app_context():
        for _ in range(3):
            _token(c)
        services().clock.advance(capped.config["AUTHSVC"].session_absolute_timeout + 5)
        fresh = [_token(c) for _ in range(3)]
        assert all(_alive(c, t) for t in fresh)
        assert _cap_rows(services()) == []
        assert uid


def test_session_page_parameter_is_validated(app, client):
    create_user(app, ALICE)
    login(client, ALICE)
    for bad in ("abc", "-1", "1e3", "１", "9999999", "1%00"):
        r = client.get(f"/account?sessions_page={bad}")
        assert r.status_code == 400, (bad, r.status_code)
        assert "Traceback" not in r.get_data(as_text=True)
    assert client.get("/account?sessions_page=999").status_code == 200  # past the end: the last page


def test_session_lists_are_paged(app, client):
    from authsvc.services import services

    uid = create_user(app, ALICE)
    login(client, ALICE)
    with app.app_context():
        svc = services()
        user = _user(uid)
        for i in range(44):
            svc.sessions.issue(user, ip=f"198.51.100.{i + 1}", user_agent="Mozilla/5.0 (X11; Linux) Firefox/130.0")
    pages = [client.get(f"/account?sessions_page={n}").get_data(as_text=True) for n in (1, 2, 3)]
    counts = [p.count('data-session=') for p in pages]
    assert counts == [20, 20, 5], counts
    assert "Page 1 of 3 (45)" in pages[0] and 'rel="next"' in pages[0] and 'rel="prev"' not in pages[0]
    assert "This device" in pages[0]  # the current session was used last: first page
    admin = admin_client(app)
    html = admin.get(f"/admin/users/{uid}?sessions_page=3").get_data(as_text=True)
    assert "Sessions (45)" in html and "Page 3 of 3 (45)" in html
    assert admin.get(f"/admin/users/{uid}?sessions_page=x").status_code == 400


def test_cap_setting_default_and_off(make_app):
    from authsvc.services import services

    app = make_app()
    with app.app_context():
        assert services().sessions.max_per_user == 50
    off = make_app(session_max_per_user=0)
    with off.app_context():
        assert services().sessions.max_per_user == 0
