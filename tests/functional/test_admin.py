"""The operator panel over HTTP: the role / second-factor / fresh-auth gate, every user action (audited), attacks,
OAuth clients, the audit log filters and JSONL export, the dashboard's numbers. Real SQL, real Redis."""

import json
import re

import pytest

from authsvc.accounts.login import Decision, Reason, RequestContext
from tests.conftest import PASSWORD, create_user, csrf_token
from tests.functional.admin_helpers import CTX, admin_client, audit_rows, confirmed_post
from tests.functional.helpers import form_post, login
from tests.functional.mfa_helpers import current_code, enrol_totp, next_step, submit_totp

PAGES = ["/admin/", "/admin/users", "/admin/attacks", "/admin/oauth", "/admin/audit", "/admin/outbox",
         "/admin/audit/export.jsonl"]


def _post(client, page, url, data=None):
    html = client.get(page).get_data(as_text=True)
    return client.post(url, data=dict(data or {}, csrf_token=csrf_token(html)))


def _user(app, uid):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        u = db.session.get(User, uid)
        db.session.expunge(u)
        return u


def _advance(app, seconds):
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(seconds)


# --- the gate ---------------------------------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login_and_a_normal_user_gets_403_on_every_page(app, client):
    for page in PAGES:
        r = client.get(page)
        assert r.status_code == 302 and "/login" in r.headers["Location"], page
    create_user(app)
    login(client)
    for page in PAGES:
        assert client.get(page).status_code == 403, page
    assert client.post("/admin/users/1/disable", data={}).status_code in (400, 403)
    denied = audit_rows(app, "admin:access:denied")
    assert len(denied) >= len(PAGES) and {e.reason for e in denied} == {"not_admin"}


def test_admin_without_a_second_factor_is_refused_when_mfa_is_required(app, client):
    create_user(app, email="root@example.com", is_admin=True)
    login(client, email="root@example.com")
    r = client.get("/admin/")
    assert r.status_code == 403 and "Set up two-step verification first" in r.get_data(as_text=True)
    assert audit_rows(app, "admin:access:denied")[-1].reason == "no_second_factor"


def test_aal1_admin_with_a_factor_is_stepped_up_then_let_in(app, client):
    uid = create_user(app, email="root@example.com", is_admin=True)
    login(client, email="root@example.com")  # no factor yet: an aal1 session
    secret = enrol_totp(app, uid)
    r = client.get("/admin/users")
    assert r.status_code == 302 and r.headers["Location"].startswith("/mfa/step-up?next=%2Fadmin%2Fusers")
    r = submit_totp(client, current_code(app, secret), url=r.headers["Location"])
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/users")
    assert client.get("/admin/users").status_code == 200


def test_stale_admin_session_is_redirected_to_reauthenticate(app):
    admin = admin_client(app)
    assert admin.get("/admin/audit").status_code == 200
    _advance(app, 16 * 60)  # admin_fresh_seconds defaults to 15 minutes
    r = admin.get("/admin/audit?tag=admin")
    assert r.status_code == 302
    assert r.headers["Location"] == "/mfa/step-up?next=%2Fadmin%2Faudit%3Ftag%3Dadmin"
    # A POST while stale changes nothing and goes the same way.
    victim = create_user(app, email="bob@example.com")
    r = _post(admin, "/account", f"/admin/users/{victim}/disable")
    assert r.status_code == 302 and "/mfa/step-up" in r.headers["Location"]
    assert _user(app, victim).status == "active"
    next_step(app)
    r = submit_totp(admin, current_code(app, admin.totp_secret), url="/mfa/step-up?next=/admin/audit")
    assert r.status_code == 302 and r.headers["Location"] == "/admin/audit"
    assert admin.get("/admin/audit").status_code == 200


def test_mfa_requirement_can_be_switched_off_but_freshness_stays(make_app):
    app = make_app(admin_require_mfa=False)
    create_user(app, email="root@example.com", is_admin=True)
    client = app.test_client()
    login(client, email="root@example.com")
    assert client.get("/admin/").status_code == 200
    _advance(app, 16 * 60)
    r = client.get("/admin/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/mfa/step-up")
    r = form_post(client, r.headers["Location"], {"password": PASSWORD, "method": "password"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/", r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200


def test_without_the_mfa_service_the_panel_asks_for_the_password_recorded_in_redis(app, client, redis_client):
    from authsvc.services import services

    with app.app_context():
        services().mfa = None  # a deployment without the MFA package: the panel's own confirmation page
    create_user(app, email="root@example.com", is_admin=True)
    login(client, email="root@example.com")
    assert client.get("/admin/users").status_code == 200  # the login itself is a fresh proof
    _advance(app, 16 * 60)
    r = client.get("/admin/users")
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/confirm?next=")
    bad = form_post(client, r.headers["Location"], {"password": "wrong password here!"})
    assert bad.status_code == 401
    ok = form_post(client, r.headers["Location"], {"password": PASSWORD})
    assert ok.status_code == 302 and ok.headers["Location"] == "/admin/users"
    assert list(redis_client.scan_iter("admin:fresh:*"))
    assert client.get("/admin/users").status_code == 200
    assert [e.outcome for e in audit_rows(app, "admin:reauth:failure")] == ["failure"]
    assert len(audit_rows(app, "admin:reauth:success")) == 1


# --- user actions -----------------------------------------------------------------------------------------------------
def test_search_by_email_id_and_ip(app):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    create_user(app, email="carol@example.com")
    c = app.test_client()
    login(c, email="bob@example.com")  # the test client's address is 127.0.0.1
    html = admin.get("/admin/users?q=bob@").get_data(as_text=True)
    assert "bob@example.com" in html and "carol@example.com" not in html
    html = admin.get(f"/admin/users?q={bob}").get_data(as_text=True)
    assert "bob@example.com" in html and "carol@example.com" not in html
    html = admin.get("/admin/users?q=127.0.0.1").get_data(as_text=True)
    assert "bob@example.com" in html and "carol@example.com" not in html
    assert "No account matches" in admin.get("/admin/users?q=203.0.113.9").get_data(as_text=True)
    assert "No account matches" in admin.get("/admin/users?q=100%25_").get_data(as_text=True)


def test_user_page_shows_history_with_reasons_sessions_and_factors(app):
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    enrol_totp(app, bob)
    with app.app_context():
        user = db.session.get(User, bob)
        services().login.complete(user, CTX, Decision("step_up", 2.5, (Reason("new_country", "First sign-in from "
                                                                                 "Iceland"),)), aal=2,
                                  methods=("pwd", "otp"))
    html = admin.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert "First sign-in from Iceland" in html and "score 2.5" in html
    assert "Chrome 131 on Linux" in html and "aal2 (pwd+otp)" in html
    assert "Authenticator app: <strong>on</strong>" in html


@pytest.mark.parametrize("action,tag", [
    ("disable", "admin:user:disable"), ("end-sessions", "admin:user:sessions_revoke"),
    ("require-password-change", "admin:user:password_change_required"),
])
def test_actions_that_end_or_restrict_access_are_audited(app, action, tag):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    victim = app.test_client()
    login(victim, email="bob@example.com")
    assert victim.get("/account").status_code == 200
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/{action}")
    assert r.status_code == 302
    [ev] = audit_rows(app, tag)
    assert (ev.actor_id, ev.subject_id, ev.outcome, ev.ip) == (admin.user_id, bob, "success", "127.0.0.1")
    user = _user(app, bob)
    if action == "disable":
        assert user.status == "disabled"
        assert victim.get("/account").status_code == 302  # session dead
        r = login(app.test_client(), email="bob@example.com")
        assert r.status_code == 401  # same answer as a wrong password
        confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/enable")
        assert _user(app, bob).status == "active" and len(audit_rows(app, "admin:user:enable")) == 1
    elif action == "end-sessions":
        assert victim.get("/account").status_code == 302
        assert json.loads(ev.details) == {"count": 1, "reason": "Support ticket 4711: owner asked by phone"}
    else:
        assert user.must_change_password
        r = login(app.test_client(), email="bob@example.com")
        assert r.headers["Location"] == "/account/password"


def test_admin_cannot_disable_themselves(app):
    admin = admin_client(app)
    r = confirmed_post(admin, f"/admin/users/{admin.user_id}", f"/admin/users/{admin.user_id}/disable")
    assert r.status_code == 302 and _user(app, admin.user_id).status == "active"
    assert audit_rows(app, "admin:user:disable") == []


def test_reset_factors_and_forget_device_go_through_the_mfa_service(app):
    from authsvc.extensions import db
    from authsvc.models import TrustedDevice, User
    from authsvc.services import services

    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    enrol_totp(app, bob)
    with app.app_context():
        user = db.session.get(User, bob)
        services().mfa.trust_device(user, CTX)
        services().mfa.trust_device(user, CTX)
        device_id = db.session.execute(db.select(TrustedDevice.id).where(TrustedDevice.user_id == bob)).scalars().first()
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/revoke-device", {"target": str(device_id)})
    assert r.status_code == 302
    [ev] = audit_rows(app, "admin:user:device_revoke")
    assert (ev.actor_id, ev.subject_id, json.loads(ev.details)) == (
        admin.user_id, bob, {"device": device_id, "reason": "Support ticket 4711: owner asked by phone"})
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/reset-factors")
    assert r.status_code == 302
    [ev] = audit_rows(app, "admin:user:factors_reset")
    assert ev.actor_id == admin.user_id and json.loads(ev.details)["totp"] == 1
    assert audit_rows(app, "mfa:factors:reset")[-1].actor_id == admin.user_id
    with app.app_context():
        assert not services().mfa.has_factors(db.session.get(User, bob))


def test_unlock_clears_the_account_lockout(make_app, redis_client):
    app = make_app(account_lockout_threshold=3)
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    c = app.test_client()
    for _ in range(4):
        login(c, email="bob@example.com", password="wrong password, many times")
    r = login(c, email="bob@example.com")
    assert r.status_code == 429  # locked (unfamiliar place)
    assert any(k.endswith(":lu") for k in redis_client.scan_iter("th:*"))
    confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/unlock")
    assert not any(k.endswith((":lu", ":fu", ":c")) for k in redis_client.scan_iter("th:*"))
    assert len(audit_rows(app, "admin:user:unlock")) == 1
    assert login(c, email="bob@example.com").status_code == 302


# --- attacks ----------------------------------------------------------------------------------------------------------
def test_attacks_page_lists_throttles_with_counters_and_unblocks_one(make_app, redis_client):
    app = make_app(throttle_pair_limit=3, spray_min_accounts=3, spray_min_failures=3, password_spray_accounts=3)
    admin = admin_client(app)
    c = app.test_client()
    for i in range(5):  # one IP, one password, several accounts: a spray
        login(c, email=f"user{i}@example.com", password="Summer2025!Summer2025!")
    html = admin.get("/admin/attacks").get_data(as_text=True)
    assert "Blocks and lockouts in force" in html
    assert "blocked (spray)" in html and "127.0.0.1" in html
    assert re.search(r"<span class=\"big\">1</span> password", html)  # the sprayed password, as a keyed hash
    assert "th:{ip:127.0.0.1}:b" in html
    r = confirmed_post(admin, "/admin/attacks", "/admin/attacks/unblock", {"target": "ip:127.0.0.1"})
    assert r.status_code == 302
    assert not list(redis_client.scan_iter("th:{ip:127.0.0.1}*"))
    [ev] = audit_rows(app, "admin:throttle:unblock")
    assert json.loads(ev.details)["entity"] == "127.0.0.1" and ev.actor_id == admin.user_id
    bad = _post(admin, "/admin/attacks", "/admin/attacks/unblock", {"target": "ip:*"})
    assert bad.status_code == 400


# --- OAuth clients ----------------------------------------------------------------------------------------------------
def test_oauth_clients_create_edit_rotate_delete(app):
    admin = admin_client(app)
    page = admin.get("/admin/oauth/new")
    assert page.status_code == 200
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "name": "Photo app",
            "client_type": "confidential", "redirect_uris": "https://photos.example/cb\n",
            "grant_types": ["authorization_code", "refresh_token"], "scopes": ["openid", "email"],
            "token_format": "opaque", "access_token_ttl": "", "quota_per_minute": "120"}
    bad = admin.post("/admin/oauth/new", data=dict(data, redirect_uris="http://evil.example/cb"))
    assert bad.status_code == 400 and "must be https" in bad.get_data(as_text=True)
    r = admin.post("/admin/oauth/new", data=data)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "only time it is shown" in html
    client_id = re.search(r'<dd class="mono">([^<]+)</dd>', html).group(1)
    secret = re.search(r'id="secret">([^<]+)<', html).group(1)
    clients = app.extensions["authsvc.oauth"].clients
    with app.app_context():
        assert clients.get(client_id).check_client_secret(secret)
    assert secret not in admin.get("/admin/oauth").get_data(as_text=True)

    edit = admin.get(f"/admin/oauth/{client_id}/edit")
    r = admin.post(f"/admin/oauth/{client_id}/edit", data=dict(
        data, csrf_token=csrf_token(edit.get_data(as_text=True)),
        redirect_uris="https://photos.example/cb\nhttps://photos.example/cb2", quota_per_minute="60"))
    assert r.status_code == 302
    with app.app_context():
        c = clients.get(client_id)
        assert c.redirect_uris == ["https://photos.example/cb", "https://photos.example/cb2"]
        assert c.quota_per_minute == 60

    r = confirmed_post(admin, "/admin/oauth", f"/admin/oauth/{client_id}/rotate")
    new_secret = re.search(r'id="secret">([^<]+)<', r.get_data(as_text=True)).group(1)
    with app.app_context():
        assert clients.get(client_id).check_client_secret(new_secret)
        assert not clients.get(client_id).check_client_secret(secret)

    r = confirmed_post(admin, "/admin/oauth", f"/admin/oauth/{client_id}/delete")
    assert r.status_code == 302
    with app.app_context():
        assert clients.get(client_id) is None
    for tag in ("admin:oauth:create", "admin:oauth:update", "admin:oauth:rotate_secret", "admin:oauth:delete"):
        [ev] = audit_rows(app, tag)
        assert ev.actor_id == admin.user_id and json.loads(ev.details)["client_id"] == client_id
    assert secret not in json.dumps([e.details for e in audit_rows(app, "admin:oauth:create")])


def test_oauth_page_says_not_configured_without_the_provider(app):
    admin = admin_client(app)
    app.extensions.pop("authsvc.oauth")
    r = admin.get("/admin/oauth")
    assert r.status_code == 200 and "OAuth is not configured" in r.get_data(as_text=True)


# --- audit log --------------------------------------------------------------------------------------------------------
def test_audit_filters_and_jsonl_export(app):
    from authsvc.services import services

    bob = create_user(app, email="bob@example.com")
    login(app.test_client(), email="bob@example.com", password="not bob's password at all")
    _advance(app, 7200)
    with app.app_context():
        now = services().clock.now()
    login(app.test_client(), email="bob@example.com")
    admin = admin_client(app)
    html = admin.get("/admin/audit?tag=account:login").get_data(as_text=True)
    assert ">account:login:failure</td>" in html and ">account:login:success</td>" in html
    assert ">account:register:success</td>" not in html
    assert "Hash chain intact" in html
    html = admin.get("/admin/audit?tag=account:login&outcome=failure").get_data(as_text=True)
    assert ">account:login:failure</td>" in html and ">account:login:success</td>" not in html
    html = admin.get(f"/admin/audit?subject=bob@example.com&since={(now.replace(minute=0)).strftime('%Y-%m-%dT%H:%M')}"
                     ).get_data(as_text=True)
    assert ">account:login:success</td>" in html and ">account:login:failure</td>" not in html
    assert "actor: enter a user id" in admin.get("/admin/audit?actor=nobody").get_data(as_text=True)

    r = admin.get(f"/admin/audit/export.jsonl?subject={bob}&tag=account:login")
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    assert "attachment" in r.headers["Content-Disposition"]
    *lines, trailer = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    assert trailer["complete"] is True and trailer["rows"] == 2  # the last line: a cut-off file lacks it
    assert [ln["tag"] for ln in lines] == ["account:login:failure", "account:login:success"]
    assert all(ln["subject_id"] == bob and len(ln["hash"]) == 64 for ln in lines)
    [ev] = audit_rows(app, "admin:audit:export")
    assert json.loads(ev.details) == {"subject": str(bob), "tag": "account:login"}
    r = admin.get(f"/admin/audit/export.jsonl?actor={admin.user_id}&tag=admin:audit:")
    assert [json.loads(x)["tag"] for x in r.get_data(as_text=True).splitlines()[:-1]] == ["admin:audit:export"] * 2  # this export is logged before it runs


def test_audit_page_reports_a_broken_chain(app):
    from sqlalchemy import update

    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    admin = admin_client(app)
    with app.app_context():
        db.session.execute(update(SecurityEvent).where(SecurityEvent.id == 1).values(ip="10.9.9.9"))
        db.session.commit()
    # The page's own check is incremental (it may already have passed row 1); the full pass on request finds it.
    page = admin.get("/admin/audit").get_data(as_text=True)
    r = admin.post("/admin/audit/verify", data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert "Full check: the chain is BROKEN at event 1" in r.get_data(as_text=True)
    [ev] = audit_rows(app, "admin:audit:verify")
    assert ev.outcome == "failure" and ev.reason.startswith("event 1:")
    assert admin.post("/admin/audit/verify", data={}).status_code == 400  # no CSRF token: refused, nothing run
    assert len(audit_rows(app, "admin:audit:verify")) == 1


def test_full_chain_check_on_request_passes_on_an_intact_chain(app):
    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert "Check the whole chain in the background" in page  # the button runs a job; the direct route stays
    r = admin.post("/admin/audit/verify", data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert "none edited or deleted" in r.get_data(as_text=True)


# --- dashboard --------------------------------------------------------------------------------------------------------
def test_dashboard_charts_are_svg_drawn_from_login_events(app):
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    admin = admin_client(app)  # one success (aal2) so far
    create_user(app, email="bob@example.com")
    for _ in range(3):
        login(app.test_client(), email="bob@example.com", password="a wrong password for bob")
    with app.app_context():
        user = db.session.execute(db.select(User).where(User.email == "bob@example.com")).scalar_one()
        services().login._event(user, RequestContext("203.0.113.50", "curl/8"), "denied",
                                Decision("deny", 9.0, (Reason("velocity", "Too many attempts"),)))
    r = admin.get("/admin/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert '<svg class="chart" id="logins-chart"' in html and 'role="img"' in html
    assert re.search(r"<title>\d\d:00: 3 failed</title>", html)
    assert re.search(r"<title>\d\d:00: 1 denied</title>", html)
    assert re.search(r"<title>≥ 8: 1 denied</title>", html)  # the risk-score histogram
    assert "<script" not in html and "style=" not in html
    assert "50 %" in html or "50 " in html  # MFA adoption: 1 of 2 active accounts
    assert "127.0.0.1" in html  # top failing source
    assert '<span class="tile-n">Intact</span>' in html


def test_dashboard_chain_tile_is_incremental_and_catches_an_edit_of_a_new_event(app):
    """The dashboard's chain tile uses the incremental check: each load verifies the events appended since the last
    one (older rows are left to the full check: the audit page and `authsvc audit verify`)."""
    from sqlalchemy import func, select, update

    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    admin = admin_client(app)
    assert '<span class="tile-n">Intact</span>' in admin.get("/admin/").get_data(as_text=True)  # full pass
    with app.app_context():
        checkpoint = db.session.execute(select(func.max(SecurityEvent.id))).scalar()
    create_user(app, email="bob@example.com")  # appends events after the checkpoint
    with app.app_context():
        db.session.execute(update(SecurityEvent).where(SecurityEvent.id == checkpoint + 1).values(ip="10.9.9.9"))
        db.session.commit()
    html = admin.get("/admin/").get_data(as_text=True)
    assert '<span class="tile-n">BROKEN</span>' in html
    assert f"Hash chain BROKEN at event {checkpoint + 1}" in admin.get("/admin/audit").get_data(as_text=True)


# --- integers from the outside: a clear 4xx, never a 500 (issue #12 item 8) ---------------------------------------------
# 2**31 overflows PostgreSQL's INTEGER columns ("integer out of range"), 2**63 and 20 digits overflow SQLite's binding
# too; "²" is a digit to str.isdigit() but not to int().
HUGE = ["2147483648", "9223372036854775808", "99999999999999999999", "1" + "0" * 40]


def test_huge_negative_and_odd_ids_in_admin_urls_and_filters_are_a_clear_4xx(app):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    for raw in HUGE + ["²", "-1", "0", "-99999999999999999999"]:
        r = admin.get(f"/admin/users?q={raw}")
        assert r.status_code == 200 and "bob@example.com" not in r.get_data(as_text=True), raw
        assert admin.get(f"/admin/users/{raw}").status_code == 404, raw
        r = _post(admin, f"/admin/users/{bob}", f"/admin/users/{raw}/disable")
        assert r.status_code == 404, raw
        r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/revoke-device", {"target": raw})
        assert r.status_code in (302, 400), (raw, r.status_code)  # "already forgotten", or refused as malformed
        for key in ("actor", "subject"):
            r = admin.get(f"/admin/audit?{key}={raw}")
            assert r.status_code == 200, (key, raw)
            assert f"{key}: " in r.get_data(as_text=True), (key, raw)  # the filter's problem is named
            assert admin.get(f"/admin/audit/export.jsonl?{key}={raw}").status_code == 400, (key, raw)
        assert admin.get(f"/admin/audit?before={raw}").status_code == 400, raw
    assert _user(app, bob).status == "active"
    # Sane values still work.
    assert admin.get(f"/admin/users/{bob}").status_code == 200
    assert admin.get(f"/admin/audit?before=2147483647&actor={bob}").status_code == 200


def test_huge_ids_in_the_security_center_urls_are_a_404(app):
    from tests.functional.mfa_helpers import meta_csrf

    create_user(app)
    client = app.test_client()
    assert login(client).status_code == 302
    html = client.get("/account").get_data(as_text=True)
    token = csrf_token(html) if 'name="csrf_token"' in html else meta_csrf(html)
    for raw in HUGE:
        for url in (f"/mfa/webauthn/{raw}/remove", f"/mfa/devices/{raw}/revoke"):
            r = client.post(url, data={"csrf_token": token})
            assert r.status_code in (303, 302, 404), (url, r.status_code)
            assert r.status_code == 404 or "/account" in r.headers.get("Location", ""), url


def test_dashboard_shows_429_refusals_by_limiter_and_the_stuffing_budget(make_app):
    """Issue #12: 429s appeared nowhere an operator looks. Now: counts by limiter (24 h), the latest audit rows, and
    the budget for unfamiliar attempts with how it was sized."""
    app = make_app(throttle_pair_limit=1)
    admin = admin_client(app)
    create_user(app, email="bob@example.com")
    c = app.test_client()
    for _ in range(4):
        c.post("/api/v1/login", json={"email": "bob@example.com", "password": "a wrong password for bob"},
               environ_base={"REMOTE_ADDR": "198.51.100.44"})
    html = admin.get("/admin/").get_data(as_text=True)
    assert "Attempts refused (429), last 24 hours" in html
    assert re.search(r"account × IP failures <span class=\"muted mono\">account_ip</span></td><td>3</td>", html)
    assert "198.51.100.44" in html  # the audit row of the refusal
    assert "Budget for unfamiliar attempts" in html and "Live hosts" in html
    with app.app_context():
        from authsvc.services import services

        snap = services().throttle.budget.snapshot()
    assert f"{snap.rate:.1f} per second" in html and snap.hosts == 1
    # sized from this host's measurement (the test parameters hash fast: a large budget), not from the floor
    assert snap.source == "measured" and snap.rate == snap.capacity * app.config["AUTHSVC"].throttle_unfamiliar_share
    assert "a share of the measured hashing capacity" in html
