"""MFA over HTTP: TOTP, recovery codes, step-up, trusted devices, fresh auth, the API, the admin reset."""

import re
import threading

from tests.conftest import PASSWORD, create_user, csrf_token
from tests.functional.mfa_helpers import (DEVICE, PENDING, SESSION, cookie, current_code, enrol_totp, next_step,
                                          submit_recovery, submit_totp)
from tests.functional.helpers import form_post, login


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == tag)
                                       .order_by(SecurityEvent.id)).scalars())


def _mails(app, to="alice@example.com"):
    from authsvc.services import services

    with app.app_context():
        return [m.subject for m in services().outbox.messages(to=to)]


def _check(app, token):
    from authsvc.services import services

    with app.app_context():
        found = services().sessions.check(token)
        return found[0] if found else None


# --- enrolment ----------------------------------------------------------------------------------------------------
def test_totp_enrolment_shows_a_local_qr_and_needs_a_valid_code(app, client):
    create_user(app)
    login(client)
    page = client.get("/mfa/totp")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'<img class="qr" src="data:image/svg\+xml;base64,', html)
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    secret = re.search(r"data-secret>([A-Z2-7 ]+)<", html).group(1).replace(" ", "")
    assert len(secret) == 32  # 160 bits

    bad = client.post("/mfa/totp", data={"csrf_token": csrf_token(html), "code": "000000"})
    assert bad.status_code == 400 and "not valid" in bad.get_data(as_text=True)
    ok = client.post("/mfa/totp", data={"csrf_token": csrf_token(html), "code": current_code(app, secret)})
    assert ok.status_code == 200
    codes = re.findall(r"<li><code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code></li>",
                       ok.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10  # shown once, right after enrolment
    assert [e.outcome for e in _events(app, "mfa:totp:enrol")] == ["failure", "success"]
    assert "Authenticator app added" in _mails(app)

    from authsvc.extensions import db
    from authsvc.models import RecoveryCode, TotpCredential

    with app.app_context():
        row = db.session.execute(db.select(TotpCredential)).scalar_one()
        assert secret not in row.secret  # encrypted at rest
        stored = [r.code_hash for r in db.session.execute(db.select(RecoveryCode)).scalars()]
        assert len(stored) == 10 and not any(c.replace("-", "") in h for c in codes for h in stored)


# --- the login pipeline -------------------------------------------------------------------------------------------
def test_password_login_with_totp_gives_no_session_before_the_code(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    resp = login(client)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/mfa/challenge")
    assert cookie(client, SESSION) is None  # no session at all yet
    set_cookie = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith(PENDING)][0]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert client.get("/account").status_code == 302  # still anonymous
    challenge = client.get("/mfa/challenge")
    assert challenge.status_code == 200 and "Two-step verification" in challenge.get_data(as_text=True)

    done = submit_totp(client, current_code(app, secret))
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    token = cookie(client, SESSION)
    info = _check(app, token)
    assert info.aal == 2 and info.methods == ("pwd", "otp")
    assert cookie(client, PENDING) is None
    assert client.get("/mfa/challenge").status_code == 302  # the pending login is gone
    assert [e.outcome for e in _events(app, "mfa:totp:verify")] == ["success"]


def test_a_code_reused_in_the_next_request_is_refused(app, make_app):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    code = current_code(app, secret)
    first, second = app.test_client(), app.test_client()
    login(first)
    assert submit_totp(first, code).status_code == 302
    login(second)
    again = submit_totp(second, code)
    assert again.status_code == 401 and "not valid" in again.get_data(as_text=True)
    assert cookie(second, SESSION) is None
    # an older code (previous step, still inside the ±1 window) is refused too: steps only move forward
    assert submit_totp(second, current_code(app, secret, -1)).status_code == 401


def test_the_same_code_sent_in_parallel_is_accepted_exactly_once(app):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    n = 6
    clients = [app.test_client() for _ in range(n)]
    forms = []
    for c in clients:
        login(c)
        forms.append(csrf_token(c.get("/mfa/challenge").get_data(as_text=True)))
    code = current_code(app, secret)
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        barrier.wait()
        results[i] = clients[i].post("/mfa/challenge", data={"csrf_token": forms[i], "code": code,
                                                             "method": "totp"}).status_code

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [302] + [401] * (n - 1), results
    assert sum(1 for c in clients if cookie(c, SESSION)) == 1


def test_wrong_codes_are_rate_limited_per_user(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    for _ in range(5):
        assert submit_totp(client, "000000").status_code == 401
    throttled = submit_totp(client, current_code(app, secret))  # even the right code waits
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert cookie(client, SESSION) is None


def test_a_recovery_code_works_once_and_the_user_is_told(app):
    uid = create_user(app)
    enrol_totp(app, uid)
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        codes = services().mfa.recovery.generate(db.session.get(User, uid))
    a, b = app.test_client(), app.test_client()
    login(a)
    ok = submit_recovery(a, codes[3].lower())  # case and dashes do not matter
    assert ok.status_code == 302 and _check(app, cookie(a, SESSION)).methods == ("pwd", "rc")
    login(b)
    assert submit_recovery(b, codes[3]).status_code == 401
    assert submit_recovery(b, codes[4]).status_code == 302
    assert [e.outcome for e in _events(app, "mfa:recovery:use")] == ["success", "failure", "success"]
    assert _mails(app).count("A recovery code was used") == 2


def test_regenerating_recovery_codes_invalidates_the_old_set(app, client):
    uid = create_user(app)
    enrol_totp(app, uid)
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        old = services().mfa.recovery.generate(db.session.get(User, uid))
        new = services().mfa.recovery.generate(db.session.get(User, uid))
    login(client)
    assert submit_recovery(client, old[0]).status_code == 401
    assert submit_recovery(client, new[0]).status_code == 302


# --- step-up -------------------------------------------------------------------------------------------------------
def test_step_up_reissues_the_session_with_a_new_token(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    submit_totp(client, current_code(app, secret), remember=True)  # remembered device → next login is aal1
    form_post(client, "/account", {}, post_url="/logout")
    login(client)
    old = cookie(client, SESSION)
    assert _check(app, old).aal == 1 and _check(app, old).methods == ("pwd",)

    next_step(app)
    page = client.get("/mfa/step-up?next=/account/activity")
    assert page.status_code == 200 and "Confirm it" in page.get_data(as_text=True)
    resp = submit_totp(client, current_code(app, secret), url="/mfa/step-up?next=/account/activity")
    assert resp.status_code == 302 and resp.headers["Location"] == "/account/activity"
    new = cookie(client, SESSION)
    assert new != old
    assert _check(app, old) is None  # the old token is dead
    info = _check(app, new)
    assert info.aal == 2 and info.methods == ("pwd", "otp")
    assert [e.outcome for e in _events(app, "mfa:stepup:success")] == ["success"]


def test_step_up_helpers_for_other_engines(app):
    from authsvc.services import services

    uid = create_user(app)
    with app.app_context():
        from authsvc.extensions import db
        from authsvc.models import User

        user = db.session.get(User, uid)
        mfa = services().mfa
        issued = services().sessions.issue(user, ip=None, user_agent=None, aal=1, methods=("pwd",))
        assert mfa.needs_step_up(issued.info, min_aal=2)
        assert not mfa.needs_step_up(issued.info, min_aal=1)
        services().clock.advance(120)
        assert mfa.needs_step_up(issued.info, min_aal=1, max_age=60)
        assert mfa.step_up_url("/oauth/authorize?x=1") == "/mfa/step-up?next=%2Foauth%2Fauthorize%3Fx%3D1"


def test_risk_step_up_without_a_factor_asks_for_the_mailed_code_on_the_record(app):
    from authsvc.accounts.login import Decision, Reason, RequestContext
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    uid = create_user(app)
    with app.app_context():
        user = db.session.get(User, uid)
        mfa = services().mfa
        ctx = RequestContext("203.0.113.9", "pytest")
        # Issue #19: this used to be skipped (False) and the login went through at aal1.
        assert mfa.required(user, Decision("step_up", 3.0, (Reason("new_country", "new country"),)), ctx) is True
    assert [e.reason for e in _events(app, "mfa:stepup:email")] == ["new_country"]


# --- trusted devices ------------------------------------------------------------------------------------------------
def test_a_remembered_device_skips_the_factor_until_it_is_removed(app, client):
    from authsvc.accounts.login import Decision, RequestContext
    from authsvc.extensions import db
    from authsvc.models import TrustedDevice, User
    from authsvc.services import services

    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    submit_totp(client, current_code(app, secret), remember=True)
    device_token = cookie(client, DEVICE)
    assert device_token
    with app.app_context():
        row = db.session.execute(db.select(TrustedDevice)).scalar_one()
        assert row.token_hash != device_token and (row.expires_at - row.created_at).days == 30
        device_id = row.id

    form_post(client, "/account", {}, post_url="/logout")
    again = login(client)
    assert again.headers["Location"] == "/account"  # no challenge on this device
    with app.test_request_context(headers={"Cookie": f"{DEVICE}={device_token}"}):
        from flask import request

        user = db.session.get(User, uid)
        assert services().mfa.is_trusted_device(user, request)
        # ...but an explicit step-up (risk) still asks for the factor on a trusted device
        ctx = RequestContext("127.0.0.1", "pytest", device_id=str(device_id))
        assert services().mfa.required(user, Decision("step_up"), ctx) is True
        assert services().mfa.required(user, Decision("allow"), ctx) is False

    page = client.get("/account").get_data(as_text=True)
    assert f'data-device="{device_id}"' in page
    revoked = client.post(f"/mfa/devices/{device_id}/revoke", data={"csrf_token": csrf_token(page)})
    assert revoked.status_code == 302
    form_post(client, "/account", {}, post_url="/logout")
    assert login(client).headers["Location"].endswith("/mfa/challenge")
    with app.test_request_context(headers={"Cookie": f"{DEVICE}={device_token}"}):
        from flask import request

        assert not services().mfa.is_trusted_device(db.session.get(User, uid), request)


def test_another_users_device_cookie_does_not_skip_the_factor(app, client):
    alice, bob = create_user(app), create_user(app, "bob@example.com")
    secret_a, secret_b = enrol_totp(app, alice), enrol_totp(app, bob)
    login(client)
    submit_totp(client, current_code(app, secret_a), remember=True)
    form_post(client, "/account", {}, post_url="/logout")
    assert login(client, "bob@example.com").headers["Location"].endswith("/mfa/challenge")
    assert secret_b


# --- fresh authentication for changes ----------------------------------------------------------------------------
def test_removing_a_factor_needs_fresh_auth_and_notifies(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    submit_totp(client, current_code(app, secret))
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(11 * 60)
    page = client.get("/account").get_data(as_text=True)
    stale = client.post("/mfa/totp/remove", data={"csrf_token": csrf_token(page)})
    assert stale.status_code == 302 and "/mfa/step-up" in stale.headers["Location"]
    assert submit_totp(client, current_code(app, secret), url="/mfa/step-up?next=/account").status_code == 302
    page = client.get("/account").get_data(as_text=True)
    done = client.post("/mfa/totp/remove", data={"csrf_token": csrf_token(page), "confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    assert "Authenticator app removed" in _mails(app)
    assert [e.outcome for e in _events(app, "mfa:totp:remove")] == ["success"]
    form_post(client, "/account", {}, post_url="/logout")
    assert login(client).headers["Location"] == "/account"  # no factor left → password only


def test_enrolment_page_needs_fresh_auth(app, client):
    create_user(app)
    login(client)
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(11 * 60)
    resp = client.get("/mfa/totp")
    assert resp.status_code == 302 and "/mfa/step-up" in resp.headers["Location"]
    # no factor yet: the step-up asks for the password again and issues a new token
    old = cookie(client, SESSION)
    page = client.get("/mfa/step-up?next=/mfa/totp").get_data(as_text=True)
    ok = client.post("/mfa/step-up?next=/mfa/totp", data={"csrf_token": csrf_token(page), "password": PASSWORD,
                                                           "method": "password"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/mfa/totp"
    assert cookie(client, SESSION) != old and client.get("/mfa/totp").status_code == 200



def test_account_actions_check_csrf_then_the_id_then_freshness(app, client):
    """The POST actions on the account page answer in a fixed order: a bad form 400, a junk id 404, a stale
    session the step-up redirect (device revocation excepted), then the action."""
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    submit_totp(client, current_code(app, secret))
    token = csrf_token(client.get("/account").get_data(as_text=True))
    actions = ["/mfa/totp/remove", "/mfa/recovery", "/mfa/webauthn/7/remove", "/mfa/devices/7/revoke"]
    for url in actions:
        assert client.post(url, data={}).status_code == 400, url
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(11 * 60)
    for url in ("/mfa/webauthn/x7/remove", "/mfa/devices/x7/revoke"):
        assert client.post(url, data={"csrf_token": token}).status_code == 404, url
    for url in actions[:3]:
        stale = client.post(url, data={"csrf_token": token})
        assert stale.status_code == 302 and stale.headers["Location"].startswith("/mfa/step-up?next=%2Faccount"), url
    step_up = client.get(stale.headers["Location"]).get_data(as_text=True)
    assert "confirm it&#39;s you before changing sign-in methods" in step_up
    revoke = client.post("/mfa/devices/7/revoke", data={"csrf_token": token})  # no such device: nothing to say
    assert revoke.status_code == 302 and revoke.headers["Location"] == "/account"
    assert "asked for a second factor again" not in client.get("/account").get_data(as_text=True)


def test_regenerating_recovery_codes_without_a_factor_is_refused(app, client):
    create_user(app)
    login(client)
    token = csrf_token(client.get("/account").get_data(as_text=True))
    r = client.post("/mfa/recovery", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302 and r.headers["Location"] == "/account"
    assert "Set up an authenticator app or a passkey first." in client.get("/account").get_data(as_text=True)
    assert _events(app, "mfa:recovery:generate") == []


# --- the API and the admin -----------------------------------------------------------------------------------------
def test_api_login_for_an_mfa_user_is_403_mfa_required(app, client):
    uid = create_user(app)
    enrol_totp(app, uid)
    resp = client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["error"] == "mfa_required" and "session_token" not in body
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "mfa_required" in spec["paths"]["/api/v1/login"]["post"]["responses"]["403"]["description"]


def test_admin_reset_removes_every_factor_audits_and_notifies(app):
    uid = create_user(app)
    enrol_totp(app, uid)
    admin = create_user(app, "admin@example.com", is_admin=True)
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        services().mfa.recovery.generate(db.session.get(User, uid))
        removed = services().mfa.reset_factors(db.session.get(User, uid), actor=db.session.get(User, admin))
        assert removed["totp"] == 1 and removed["recovery"] == 10
        assert not services().mfa.has_factors(db.session.get(User, uid))
    ev = _events(app, "mfa:factors:reset")[0]
    assert ev.actor_id == admin and ev.subject_id == uid
    assert "Your sign-in factors were reset" in _mails(app)


def test_admin_reset_cli(app):
    uid = create_user(app)
    enrol_totp(app, uid)
    result = app.test_cli_runner().invoke(args=["mfa", "reset", "--email", "Alice@Example.com"])
    assert result.exit_code == 0, result.output
    assert "totp=1" in result.output
    missing = app.test_cli_runner().invoke(args=["mfa", "reset", "--email", "nobody@example.com"])
    assert missing.exit_code != 0
    client = app.test_client()
    assert login(client).headers["Location"] == "/account"


def test_pages_are_accessible_and_have_no_inline_script(app, client):
    uid = create_user(app)
    enrol_totp(app, uid)
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        services().mfa.recovery.generate(db.session.get(User, uid))
    login(client)
    html = client.get("/mfa/challenge").get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and "onclick" not in html
    assert re.search(r'<label for="code">', html) and re.search(r'<label for="recovery_code">', html)
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
