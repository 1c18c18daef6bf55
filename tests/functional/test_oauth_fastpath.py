"""The lean WSGI paths for the refresh grant and introspection (authsvc.oauth.fastpath) must answer exactly like the
Flask + Authlib path they shortcut: same status, same JSON shape, same headers, same side effects. Each case runs
twice, once through the app as deployed (fast path first) and once through Flask alone (the fast path bypassed),
on two token families of the same client."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from authsvc.oauth.fastpath import OAuthFastPath
from tests.functional.oauth_helpers import basic, get_code, register, signed_in, token

HEADERS = ("Content-Type", "Cache-Control", "Pragma", "Content-Security-Policy", "X-Content-Type-Options",
           "X-Frame-Options", "Referrer-Policy")


def _flask_only(app) -> Client:
    """A client that reaches Flask without the OAuth fast path (the WSGI chain below it)."""
    layer = app.wsgi_app
    while not isinstance(layer, OAuthFastPath):
        layer = layer.wsgi_app
    return Client(layer.wsgi_app)


def _families(app, client, n=2, **reg):
    cid, secret = register(app, **reg)
    signed_in(app, client)
    out = []
    for _ in range(n):
        code, verifier = get_code(client, cid, scope="openid email offline_access")
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": "https://rp.example/cb"}
        if secret is None:
            r = token(client, {**data, "client_id": cid})
        else:
            r = token(client, data, auth=(cid, secret))
        assert r.status_code == 200, r.json
        out.append(r.json)
    return cid, secret, out


def _refresh(c, cid, secret, rt, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": rt, **extra}
    if secret is None:
        return c.post("/oauth2/token", data={**data, "client_id": cid})
    return c.post("/oauth2/token", data=data, headers=basic(cid, secret))


def _same(fast, slow):
    assert fast.status_code == slow.status_code, (fast.get_json(), slow.get_json())
    fb, sb = fast.get_json(), slow.get_json()
    assert set(fb) == set(sb)
    for k in fb:
        if k not in ("access_token", "refresh_token"):
            assert fb[k] == sb[k], k
    for h in HEADERS:
        assert fast.headers.get(h) == slow.headers.get(h), h


@pytest.mark.parametrize("client_type", ["confidential", "public"])
def test_refresh_fast_path_matches_authlib(app, client, client_type):
    cid, secret, (a, b) = _families(app, client, client_type=client_type)
    slow = _flask_only(app)
    # rotation: same answer; both new access tokens introspect alike, both new refresh tokens work
    fa, sa = _refresh(client, cid, secret, a["refresh_token"]), _refresh(slow, cid, secret, b["refresh_token"])
    assert fa.status_code == 200
    _same(fa, sa)
    for new in (fa.json, sa.json):
        u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + new["access_token"]})
        assert u.status_code == 200 and u.json["sub"]
    # replay of a rotated token: invalid_grant, family revoked, one audit event each
    ra, rb = _refresh(client, cid, secret, a["refresh_token"]), _refresh(slow, cid, secret, b["refresh_token"])
    _same(ra, rb)
    assert ra.json["error"] == "invalid_grant" and "already used" in ra.json["error_description"]
    for new in (fa.json, sa.json):
        assert _refresh(client, cid, secret, new["refresh_token"]).status_code == 400
        u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + new["access_token"]})
        assert u.status_code == 401
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        reuse = db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == "oauth:refresh:reuse")).all()
        assert len(reuse) == 2
    # unknown and malformed tokens
    for junk in ("0" * 32 + ".nope", "garbage"):
        _same(_refresh(client, cid, secret, junk), _refresh(slow, cid, secret, junk))


def test_refresh_fast_path_leaves_the_unusual_to_authlib(app, client):
    cid, secret, (a, b) = _families(app, client)
    slow = _flask_only(app)
    # wrong secret, missing token, narrowed scope, unknown grant: identical answers, the token not spent
    _same(_refresh(client, cid, "wrong", a["refresh_token"]), _refresh(slow, cid, "wrong", b["refresh_token"]))
    _same(client.post("/oauth2/token", data={"grant_type": "refresh_token"}, headers=basic(cid, secret)),
          slow.post("/oauth2/token", data={"grant_type": "refresh_token"}, headers=basic(cid, secret)))
    narrowed = _refresh(client, cid, secret, a["refresh_token"], scope="openid")
    assert narrowed.status_code == 200 and narrowed.json["scope"] == "openid"
    assert _refresh(client, cid, secret, narrowed.json["refresh_token"]).status_code == 200
    # a client not allowed the grant: unauthorized_client from Authlib, nothing rotated
    other, osecret = register(app, name="no refresh", grant_types=["authorization_code"])
    r = _refresh(client, other, osecret, b["refresh_token"])
    assert r.status_code == 400 and r.json["error"] == "unauthorized_client"
    assert _refresh(client, cid, secret, b["refresh_token"]).status_code == 200


def test_quota_is_one_counter_across_fast_and_flask_paths(app, client):
    cid, secret, (a, b) = _families(app, client, quota_per_minute=1000)
    from authsvc.extensions import get_redis

    with app.app_context():  # shrink the quota after the code flow spent some of it; start a clean window
        app.extensions["authsvc.oauth"].clients.update(cid, quota_per_minute=1)
        for key in get_redis().scan_iter("oauth:q:*"):
            get_redis().delete(key)
    slow = _flask_only(app)
    # strangers with a wrong secret count elsewhere
    for _ in range(3):
        assert _refresh(client, cid, "wrong", a["refresh_token"]).status_code == 401
    assert client.post("/oauth2/introspect", data={"token": "x"}, headers=basic(cid, "wrong")).status_code == 401
    first = _refresh(slow, cid, secret, a["refresh_token"])  # Flask path: loads the client into the cache
    assert first.status_code == 200
    # the fast path sees the same counter: over quota now, on both endpoints, with Retry-After
    r = _refresh(client, cid, secret, first.json["refresh_token"])
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    r = client.post("/oauth2/introspect", data={"token": first.json["access_token"]}, headers=basic(cid, secret))
    assert r.status_code == 429
    # refused before the rotation: the token still works in the next window (not spent by the 429)
    with app.app_context():
        for key in get_redis().scan_iter("oauth:q:*"):
            get_redis().delete(key)
    assert _refresh(client, cid, secret, first.json["refresh_token"]).status_code == 200


def test_refresh_fast_path_503_when_redis_down(make_app, private_redis):
    app = make_app(redis_url=private_redis.url)
    client = app.test_client()
    cid, secret, (a,) = _families(app, client, n=1)
    private_redis.stop()
    try:
        r = _refresh(client, cid, secret, a["refresh_token"])
        assert r.status_code == 503 and r.json["error"] == "temporarily_unavailable" and r.headers["Retry-After"]
    finally:
        private_redis.start()
    r = _refresh(client, cid, secret, a["refresh_token"])
    assert r.status_code == 200  # the refused request spent nothing
