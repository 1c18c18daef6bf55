import pytest

from authsvc.extensions import db
from authsvc.models import User
from authsvc.sessions import _skey, _ukey, token_hash
from tests.conftest import create_user


@pytest.fixture
def user(app, svc):
    uid = create_user(app)
    return db.session.get(User, uid)


def test_token_is_256_bits_and_only_its_hash_is_stored(svc, user, redis_client):
    issued = svc.sessions.issue(user, ip="192.0.2.1", user_agent="UA")
    assert len(issued.token) >= 43  # 32 bytes base64url
    sid = token_hash(issued.token)
    keys = list(redis_client.scan_iter("*"))  # scan walks every node on a Cluster, KEYS only one
    assert _skey(sid) in keys
    assert not any(issued.token in k for k in keys)
    assert issued.token not in str(redis_client.hgetall(_skey(sid)))


def test_check_returns_user_and_touches(svc, user):
    issued = svc.sessions.issue(user, ip="192.0.2.1", user_agent="UA")
    info, u = svc.sessions.check(issued.token)
    assert u.id == user.id and info.aal == 1 and info.methods == ("pwd",)
    assert svc.sessions.check("not-a-token") is None
    assert svc.sessions.check("x" * 500) is None


def test_idle_timeout(make_app):
    app = make_app(session_idle_timeout=60, session_absolute_timeout=3600)
    uid = create_user(app)
    from authsvc.services import services

    with app.app_context():
        s = services()
        user = db.session.get(User, uid)
        token = s.sessions.issue(user, ip=None, user_agent=None).token
        s.clock.advance(50)
        assert s.sessions.check(token) is not None  # activity re-arms the idle timer
        s.clock.advance(50)
        assert s.sessions.check(token) is not None
        s.clock.advance(61)
        assert s.sessions.check(token) is None
        assert s.sessions.check(token) is None  # and it stays dead


def test_absolute_timeout_despite_activity(make_app, redis_client):
    app = make_app(session_idle_timeout=60, session_absolute_timeout=120)
    uid = create_user(app)
    from authsvc.services import services

    with app.app_context():
        s = services()
        user = db.session.get(User, uid)
        token = s.sessions.issue(user, ip=None, user_agent=None).token
        for _ in range(2):
            s.clock.advance(55)
            assert s.sessions.check(token) is not None
        # The Redis TTL is re-armed to the sooner deadline: the absolute one is 10 s away now.
        assert s.sessions.redis.pttl(_skey(token_hash(token))) <= 10_000
        s.clock.advance(11)
        assert s.sessions.check(token) is None


def test_revoke_one_others_all(svc, user):
    a, b, c = (svc.sessions.issue(user, ip=f"192.0.2.{i}", user_agent="UA").token for i in range(3))
    assert len(svc.sessions.list_for(user)) == 3
    assert svc.sessions.revoke(user, token_hash(a), "test")
    assert svc.sessions.check(a) is None and svc.sessions.check(b) is not None
    assert svc.sessions.revoke_all(user, "test", except_sid=token_hash(c)) == 1
    assert svc.sessions.check(b) is None and svc.sessions.check(c) is not None
    svc.sessions.revoke_all(user, "test")
    assert svc.sessions.check(c) is None
    assert svc.sessions.list_for(user) == []


def test_cannot_revoke_someone_elses_session(app, svc, user):
    other = db.session.get(User, create_user(app, email="bob@example.com"))
    token = svc.sessions.issue(other, ip=None, user_agent=None).token
    assert svc.sessions.revoke(user, token_hash(token), "test") is False
    assert svc.sessions.check(token) is not None


def test_revocation_survives_redis_losing_the_delete(svc, user, redis_client):
    """A restored snapshot brings the Redis record back; SQL still says no."""
    token = svc.sessions.issue(user, ip=None, user_agent=None).token
    key = _skey(token_hash(token))
    snapshot = redis_client.hgetall(key)
    svc.sessions.revoke(user, token_hash(token), "test")
    redis_client.hset(key, mapping=snapshot)  # the deletion is "lost"
    assert svc.sessions.check(token) is None
    # Same for the durable per-user cut-off (revoke all).
    token2 = svc.sessions.issue(user, ip=None, user_agent=None).token
    key2 = _skey(token_hash(token2))
    snap2 = redis_client.hgetall(key2)
    svc.sessions.revoke_all(user, "test")
    redis_client.hset(key2, mapping=snap2)
    redis_client.sadd(_ukey(user.id), token_hash(token2))
    assert svc.sessions.check(token2) is None
    assert svc.sessions.list_for(user) == []


def test_disabled_user_sessions_die(svc, user):
    token = svc.sessions.issue(user, ip=None, user_agent=None).token
    user.status = "disabled"
    db.session.commit()
    assert svc.sessions.check(token) is None


def test_light_check_sees_revocation_at_once_and_lost_deletes_within_the_backstop(svc, user, redis_client):
    token = svc.sessions.issue(user, ip=None, user_agent=None).token
    info, email = svc.sessions.check_light(token)
    assert info.user_id == user.id and email == user.email
    key = _skey(token_hash(token))
    snapshot = redis_client.hgetall(key)
    svc.sessions.revoke(user, token_hash(token), "test")
    assert svc.sessions.check_light(token) is None  # Redis DEL: seen immediately, cache or not
    redis_client.hset(key, mapping=snapshot)  # a restore brings it back…
    svc.sessions.backstop_ttl = 0  # …and once the cached backstop answer ages out, SQL refuses it
    svc.sessions._backstop.clear()
    assert svc.sessions.check_light(token) is None
    assert redis_client.exists(key) == 0  # and the resurrected record is cleaned up
