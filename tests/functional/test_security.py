"""CSRF on every form, security headers, trusted-proxy client IP."""

import re

import pytest
from sqlalchemy import func, select

from authsvc.extensions import db
from authsvc.models import SecurityEvent, User
from tests.conftest import PASSWORD, create_user
from tests.functional.helpers import login


def web_post_routes(app):
    out = []
    for rule in app.url_map.iter_rules():
        # /api/ and the OAuth machine endpoints (blueprint oauth_api) authenticate clients, never a cookie: no CSRF.
        # The DBSC endpoints are posted by the browser itself with a signed proof over a server challenge
        # (tests/functional/test_dbsc.py refuses every forged or replayed proof), never by a form.
        if "POST" in rule.methods and not rule.rule.startswith("/api/") and not rule.endpoint.startswith(
                ("oauth_api.", "dbsc.")):
            # Fill every variable part, whatever its converter (<token>, <int:user_id>...), with a plausible value.
            url = re.sub(r"<int:[^>]+>", "1", rule.rule)
            url = re.sub(r"<(?:[a-z]+:)?[^>]+>", "x" * 43, url)
            out.append(url)
    return sorted(out)


def test_every_form_rejects_a_missing_csrf_token(app):
    create_user(app)
    routes = web_post_routes(app)
    assert {"/login", "/register", "/logout", "/account/password", "/reset",
            "/account/sessions/revoke-all"} <= set(routes)
    client = app.test_client()
    login(client)  # a signed-in victim, so protected forms get as far as the CSRF check
    with app.app_context():
        events_before = db.session.scalar(select(func.count()).select_from(SecurityEvent))
    for url in routes:
        r = client.post(url, data={"email": "alice@example.com", "password": PASSWORD,
                                   "current_password": PASSWORD, "new_password": "x" * 20})
        assert r.status_code == 400, url
        assert b"form expired" in r.data, url
    with app.app_context():
        # Nothing happened: no event, no password change, the session still works.
        assert db.session.scalar(select(func.count()).select_from(SecurityEvent)) == events_before
    assert client.get("/account").status_code == 200


def test_csrf_token_from_another_session_is_refused(app):
    create_user(app)
    attacker, victim = app.test_client(), app.test_client()
    from tests.conftest import csrf_token

    token = csrf_token(attacker.get("/login").get_data(as_text=True))
    login(victim)
    r = victim.post("/account/sessions/revoke-all", data={"csrf_token": token})
    assert r.status_code == 400
    assert victim.get("/account").status_code == 200


def test_security_headers(client):
    r = client.get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    # No inline script anywhere on the page (scripts load from /static only: CSP script-src 'self').
    assert not re.search(rb"<script(?![^>]*\ssrc=\"/static/)", r.data)


@pytest.mark.parametrize("trusted, peer, xff, expected", [
    ((), "198.51.100.7", "203.0.113.5", "198.51.100.7"),  # no proxy configured: header ignored
    (("10.0.0.0/8",), "198.51.100.7", "203.0.113.5", "198.51.100.7"),  # peer is not our proxy
    (("10.0.0.0/8",), "10.1.2.3", "203.0.113.5", "203.0.113.5"),
    (("10.0.0.0/8",), "10.1.2.3", "6.6.6.6, 203.0.113.5, 10.9.9.9", "203.0.113.5"),  # spoofed left hop ignored
    (("10.0.0.0/8",), "10.1.2.3", "garbage", "10.1.2.3"),
])
def test_client_ip_only_from_trusted_proxies(make_app, trusted, peer, xff, expected):
    app = make_app(trusted_proxies=trusted)
    create_user(app)
    client = app.test_client()
    client.post("/api/v1/login", json={"email": "alice@example.com", "password": "wrong wrong wrong"},
                headers={"X-Forwarded-For": xff}, environ_base={"REMOTE_ADDR": peer})
    with app.app_context():
        ip = db.session.execute(select(SecurityEvent.ip).order_by(SecurityEvent.id.desc())).scalars().first()
    assert ip == expected


def test_audit_records_who_what_where(app, client):
    create_user(app)
    login(client, password="definitely wrong password", )
    with app.app_context():
        ev = db.session.execute(select(SecurityEvent).order_by(SecurityEvent.id.desc())).scalars().first()
        uid = db.session.execute(select(User.id)).scalar_one()
    assert (ev.tag, ev.outcome, ev.subject_id, ev.reason) == ("account:login:failure", "failure", uid,
                                                               "bad_password")
    assert ev.ip == "127.0.0.1" and ev.occurred_at is not None
    assert "definitely" not in (ev.details or "") + (ev.reason or "")  # never the password
