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
        # The federated sign-in callback (Apple's form_post) is posted cross-site by the provider: its defence is the
        # single-use state bound to the browser that started the flow (tests/functional/test_federation.py).
        # The SSF endpoints (blueprints ssf, risc_receiver) authenticate receivers by a client-credentials bearer token
        # or a signed SET and never read a cookie (tests/functional/test_signals_ssf.py, test_signals_receiver.py).
        if "POST" in rule.methods and not rule.rule.startswith("/api/") and not rule.endpoint.startswith(
                ("oauth_api.", "dbsc.", "ssf.", "risc_receiver.")) and rule.endpoint != "federation.callback":
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
    # /oauth2/authorize and /oauth2/logout also take the client's *request* by POST (OIDC Core §3.1.2.1,
    # RP-Initiated Logout §2), which carries no CSRF token and changes nothing a GET would not; a POST of their own
    # consent / confirmation form (it carries 'decision' or 'csrf_token') must pass the CSRF check like any form.
    # tests/functional/test_oauth_conformance.py covers the request side.
    request_by_post = {"/oauth2/authorize", "/oauth2/logout"}
    assert request_by_post <= set(routes)
    for url in routes:
        extra = {"decision": "allow"} if url in request_by_post else {}
        r = client.post(url, data={"email": "alice@example.com", "password": PASSWORD,
                                   "current_password": PASSWORD, "new_password": "x" * 20, **extra})
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


# --- identifiers are never reused (issue #19) --------------------------------------------------------------------------
def _jwt_claims(token: str) -> dict:
    import base64
    import json

    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _api_token(client, email):
    r = client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.json
    return r.json["session_token"]


def test_a_deleted_accounts_id_and_sub_are_never_given_to_a_newcomer(app):
    """Delete the newest account, register again: a new users.id, a new OIDC `sub`, and none of the old account's
    audit events in the newcomer's export (SQLite used to hand out the highest rowid again)."""
    from tests.functional.oauth_helpers import code_tokens, get_code, redeem

    client = app.test_client()
    cid, secret, tokens = code_tokens(app, client)  # alice: the newest account, connected to an app
    old_sub = _jwt_claims(tokens["id_token"])["sub"]
    with app.app_context():
        old = db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()
        old_id = old.id
        old_events = set(db.session.execute(select(SecurityEvent.id).where(
            (SecurityEvent.subject_id == old_id) | (SecurityEvent.actor_id == old_id))).scalars())
    assert old_events
    api = app.test_client()
    r = api.delete("/api/v1/me", json={"password": PASSWORD},
                   headers={"Authorization": "Bearer " + _api_token(api, "alice@example.com")})
    assert r.status_code == 204
    with app.app_context():
        assert db.session.get(User, old_id) is None

    newcomer = app.test_client()
    new_id = create_user(app, email="mallory@example.com")
    assert new_id != old_id
    from tests.functional.helpers import login

    api = app.test_client()
    export = api.get("/api/v1/me/export", headers={"Authorization": "Bearer " + _api_token(api, "mallory@example.com")})
    assert export.status_code == 200, export.json
    assert export.json["profile"]["id"] == new_id
    assert not old_events & {e["id"] for e in export.json["audit_events"]}

    assert login(newcomer, email="mallory@example.com").status_code == 302
    code, verifier = get_code(newcomer, cid)
    r = redeem(newcomer, cid, secret, code, verifier)
    assert r.status_code == 200, r.json
    new_sub = _jwt_claims(r.json["id_token"])["sub"]
    assert new_sub != old_sub
    assert new_sub != str(new_id) and old_sub != str(old_id)  # the sub is opaque, not the row id


def test_sub_is_opaque_and_stable_across_refresh_introspection_and_userinfo(app):
    from tests.functional.oauth_helpers import basic, code_tokens, token

    client = app.test_client()
    cid, secret, tokens = code_tokens(app, client)
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()
    sub = _jwt_claims(tokens["id_token"])["sub"]
    assert sub == user.sub and sub != str(user.id) and len(sub) >= 22
    r = client.post("/oauth2/introspect", data={"token": tokens["access_token"]}, headers=basic(cid, secret))
    assert r.json["active"] and r.json["sub"] == sub
    r = client.post("/oauth2/introspect", data={"token": tokens["refresh_token"]}, headers=basic(cid, secret))
    assert r.json["active"] and r.json["sub"] == sub
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert u.status_code == 200 and u.json["sub"] == sub
    refreshed = token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                      auth=(cid, secret))
    assert refreshed.status_code == 200, refreshed.json
    r = client.post("/oauth2/introspect", data={"token": refreshed.json["access_token"]},
                    headers=basic(cid, secret))
    assert r.json["active"] and r.json["sub"] == sub
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + refreshed.json["access_token"]})
    assert u.status_code == 200 and u.json["sub"] == sub


def test_jwt_access_tokens_carry_the_opaque_sub(app):
    from tests.functional.oauth_helpers import code_tokens

    client = app.test_client()
    cid, secret, tokens = code_tokens(app, client, token_format="jwt", access_token_ttl=300)
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()
    assert _jwt_claims(tokens["access_token"])["sub"] == user.sub == _jwt_claims(tokens["id_token"])["sub"]


def test_nul_characters_in_form_fields_are_never_a_500(app):
    """PostgreSQL refuses NUL in text ("cannot contain NUL (0x00) bytes"); a form field carrying one is the client's
    error (issue #12 item 8). SQLite stores it, so this bites on PostgreSQL only."""
    from tests.functional.helpers import form_post

    create_user(app)
    client = app.test_client()
    for page, data in (("/login", {"email": "alice\x00@example.com", "password": PASSWORD}),
                       ("/register", {"email": "bob\x00@example.com", "password": PASSWORD}),
                       ("/reset", {"email": "alice\x00@example.com"})):
        r = form_post(client, page, data)
        assert r.status_code < 500, (page, r.status_code)


# --- form accessibility (issue #12, newcomer walk) ----------------------------------------------------------------------
def _get_pages(app):
    """Every GET page without path parameters (the ones a visitor, a user and an operator can open)."""
    return sorted({r.rule for r in app.url_map.iter_rules()
                   if "GET" in r.methods and "<" not in r.rule and not r.rule.startswith(("/api/", "/static"))
                   and not r.rule.endswith((".json", ".jsonl", ".svg", ".js", ".css"))})


def test_no_rendered_page_says_none_in_an_attribute(app):
    """WTForms renders a None attribute as the text "None": aria-invalid="None" makes screen readers announce every
    untouched field as invalid."""
    from tests.functional.admin_helpers import admin_client

    from tests.conftest import outbox_link

    admin = admin_client(app)
    uid = create_user(app)
    user = app.test_client()
    from tests.functional.helpers import login

    assert login(user).status_code == 302
    from urllib.parse import urlsplit

    from tests.functional.helpers import form_post

    form_post(app.test_client(), "/reset", {"email": "alice@example.com"})
    pages = _get_pages(app) + [f"/admin/users/{uid}", urlsplit(outbox_link(app, "alice@example.com", "reset")).path]
    checked = 0
    for who in (app.test_client(), user, admin):
        for url in pages:
            r = who.get(url)
            if r.status_code != 200 or not r.mimetype == "text/html":
                continue
            html = r.get_data(as_text=True)
            assert '="None"' not in html, url
            checked += "<input" in html
    assert checked >= 10


def test_a_field_with_an_error_says_so_and_points_to_the_message(app):
    from tests.functional.helpers import form_post

    client = app.test_client()
    html = client.get("/register").get_data(as_text=True)
    assert "aria-invalid" not in html
    assert 'aria-describedby="password-hint"' in html  # the hint is described, the field is not invalid
    r = form_post(client, "/register", {"email": "alice@example.com", "password": "short"})
    html = r.get_data(as_text=True)
    field = re.search(r'<input[^>]*id="password"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="password-hint password-error"' in field
    assert 'id="password-error"' in html
    email = re.search(r'<input[^>]*id="email"[^>]*>', html).group(0)
    assert "aria-invalid" not in email


def test_a_token_record_written_before_sub_existed_still_introspects_with_the_opaque_sub(app):
    """Access-token and grant records written by the previous version hold only ``uid``: during the upgrade window,
    introspection looks the ``sub`` up instead of leaking the row id."""
    import json as _json

    from authsvc.extensions import get_redis
    from authsvc.oauth.tokens import grant_id_of, sha256
    from tests.functional.oauth_helpers import basic, code_tokens

    client = app.test_client()
    cid, secret, tokens = code_tokens(app, client)
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()
        r = get_redis()
        key = f"oauth:at:{{{sha256(tokens['access_token'])}}}"
        rec = _json.loads(r.get(key))
        del rec["sub"]
        r.set(key, _json.dumps(rec), keepttl=True)
        r.hdel(f"oauth:grant:{{{grant_id_of(tokens['refresh_token'])}}}", "sub")
    for tok in (tokens["access_token"], tokens["refresh_token"]):
        body = client.post("/oauth2/introspect", data={"token": tok}, headers=basic(cid, secret)).json
        assert body["active"] and body["sub"] == user.sub != str(user.id)
