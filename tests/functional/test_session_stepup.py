"""In-session step-up (issue 13): a session that drifted but is not clearly stolen is suspended, not ended; every
use answers "step-up required" (pages → /mfa/resume, bearer/JSON → 401 with RFC 9470's
``WWW-Authenticate: Bearer error="insufficient_user_authentication"``) until the owner re-proves the account's
strongest factor in that session. Attacks first: a thief holding the cookie without the factor, guessing, a forged
(cross-site) form, a replayed form, another session, a race, the session's refresh tokens; then the owner.

The drift that suspends is the phishing-proxy timing of authsvc.risk.drift ("reauth"): a session signed in on a
hosting network and used from another provider minutes later. Real SQL and Redis; a small IP→ASN CSV."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from tests.conftest import create_user, csrf_token
from tests.functional.helpers import form_post
from tests.functional.mfa_helpers import current_code, enrol_totp, next_step, submit_totp

from tests.functional.netplaces import CHROME, HOME, OFFICE, PROXY, from_place, networked_app  # noqa: F401

COOKIE = "__Host-authsvc"
CHALLENGE = 'Bearer error="insufficient_user_authentication"'


@pytest.fixture
def sapp(make_app, tmp_path):
    app = networked_app(make_app, tmp_path)
    create_user(app)
    return app


def _as(client, ip, ua=CHROME):
    return from_place(client, ip, ua)


def _login(app, ip=PROXY, totp=None):
    client = _as(app.test_client(), ip)
    resp = form_post(client, "/login", {"email": "alice@example.com", "password": "correct horse battery staple"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    if totp is not None:
        resp = submit_totp(client, current_code(app, totp))
        assert resp.status_code == 302 and "/mfa/" not in resp.location, resp.get_data(as_text=True)[:300]
        next_step(app)  # the code used its step
    return client


def _copy(app, client, ip):
    other = _as(app.test_client(), ip)
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value, domain="localhost")
    return other


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars())


def _advance(app, seconds):
    app.extensions["authsvc"].clock.advance(seconds)


def _suspend(app, owner, ip=OFFICE):
    """Use ``owner``'s cookie from ``ip`` 4 minutes after a sign-in on the proxy network: suspended."""
    user = _copy(app, owner, ip)
    _advance(app, 240)
    resp = user.get("/account")
    assert resp.status_code == 302 and resp.location.startswith("/mfa/resume"), resp.location
    return user


def _post_resume(client, data, *, url="/mfa/resume"):
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return client.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data})


def _mailed_code(app, to="alice@example.com"):
    import re

    with app.app_context():
        codes = [m.group(1) for msg in app.extensions["authsvc"].outbox.messages(to=to)
                 for m in [re.search(r"sign-in code is (\d{8})\b", msg.body)] if m]
    assert codes, "no code mailed"
    return codes[-1]


def _password_and_mailed_code(app, client, url="/mfa/resume"):
    """An account without a factor: the password, then the code mailed to its address (the existing policy)."""
    r = _post_resume(client, {"method": "password", "password": "correct horse battery staple"}, url=url)
    assert r.status_code == 302 and r.location.startswith("/mfa/resume"), (r.status_code, r.location)
    page = client.get(r.location)
    assert "Check your e-mail" in page.get_data(as_text=True)
    return client.post(r.location, data={"csrf_token": csrf_token(page.get_data(as_text=True)), "method": "email",
                                         "email_code": _mailed_code(app)})


def _sid(client):
    from authsvc.sessions import token_hash

    return token_hash(client.get_cookie(COOKIE).value)


def _hash(app, client):
    from authsvc.services import services

    with app.app_context():
        return services().sessions.redis.hgetall(f"sess:{{{_sid(client)}}}")


# --- the thief ------------------------------------------------------------------------------------------------------
def test_suspended_session_sends_every_page_to_the_step_up_page_which_tells_nothing(sapp):
    owner = _login(sapp)
    thief = _suspend(sapp, owner)
    assert thief.get("/account").location == "/mfa/resume?next=/account"
    page = thief.get("/mfa/resume").get_data(as_text=True)
    for secret in ("alice", "a***", "example.com", OFFICE, PROXY, "DigitalOcean", "Office ISP", "min after"):
        assert secret not in page
    assert "Confirm it" in page and 'name="password"' in page  # no factor: the password again
    assert _hash(sapp, thief)["su"] == "new_network_soon"
    ev = _events(sapp, "session:drift:stepup")
    assert len(ev) == 1 and json.loads(ev[0].details)["reasons"] == ["new_network_soon"]
    assert not _events(sapp, "session:drift:end")
    assert owner.get("/account").location.startswith("/mfa/resume")  # suspended for every holder of the cookie


@pytest.mark.parametrize("path", ["deployed", "flask"])
def test_suspended_session_as_bearer_gets_the_rfc9470_challenge(sapp, path):
    from tests.functional.test_oauth_fastpath import _flask_only

    owner = _login(sapp)
    _suspend(sapp, owner)
    token = owner.get_cookie(COOKIE).value
    api = sapp.test_client() if path == "deployed" else _flask_only(sapp)
    for url in ("/api/v1/session", "/api/v1/sessions"):
        r = api.get(url, headers={"Authorization": f"Bearer {token}"},
                    environ_base={"HTTP_X_FORWARDED_FOR": PROXY, "REMOTE_ADDR": "127.0.0.1",
                                  "HTTP_USER_AGENT": CHROME})
        assert r.status_code == 401, (url, r.status_code)
        assert r.headers["WWW-Authenticate"].startswith(CHALLENGE)
        assert r.json["error"] == "insufficient_user_authentication"
        assert "alice" not in r.get_data(as_text=True)


def test_step_up_form_without_its_csrf_token_is_refused_and_changes_nothing(sapp):
    owner = _login(sapp)
    thief = _suspend(sapp, owner)
    r = thief.post("/mfa/resume", data={"method": "password", "password": "correct horse battery staple"})
    assert r.status_code == 400
    assert _hash(sapp, thief).get("su") and not _events(sapp, "session:drift:stepup:ok")
    r = thief.post("/mfa/resume", data={"method": "password", "password": "x", "csrf_token": "forged"})
    assert r.status_code == 400 and _hash(sapp, thief).get("suf") == "0"  # not even counted


def test_guessing_the_factor_ends_and_contains_the_session(sapp):
    with sapp.app_context():
        from authsvc.models import User
        from authsvc.extensions import db

        uid = db.session.execute(select(User.id).where(User.email == "alice@example.com")).scalar_one()
    seed = enrol_totp(sapp, uid)
    owner = _login(sapp, totp=seed)
    thief = _suspend(sapp, owner)
    page = thief.get("/mfa/resume").get_data(as_text=True)
    assert 'name="code"' in page and 'name="password"' not in page  # the factor, never the weaker password
    max_failures = sapp.config["AUTHSVC"].session_stepup_max_failures
    for i in range(max_failures - 1):
        r = _post_resume(thief, {"method": "totp", "code": "000000"})
        assert r.status_code == 401 and "not valid" in r.get_data(as_text=True)
    r = _post_resume(thief, {"method": "totp", "code": "000000"})
    assert r.status_code == 302 and r.location == "/login"
    assert owner.get("/account").location.startswith("/login")  # ended for everyone
    fails = _events(sapp, "session:drift:stepup:fail")
    assert len(fails) == max_failures
    assert len([e for e in _events(sapp, "mfa:totp:verify") if e.outcome == "failure"]) == max_failures  # MFA counts
    end = _events(sapp, "session:drift:end")
    assert len(end) == 1 and json.loads(end[0].details) ["reasons"] == ["stepup_failed"]
    assert json.loads(end[0].details)["takeover_signal"] is True
    with sapp.app_context():
        mails = [m for m in sapp.extensions["authsvc"].outbox.messages(to="alice@example.com")
                 if "We ended a sign-in" in m.subject]
    assert len(mails) == 1 and "/not-me/" in mails[0].body


def test_password_guesses_on_the_step_up_page_meet_the_reauthentication_lockout(sapp):
    owner = _login(sapp)
    thief = _suspend(sapp, owner)
    statuses = []
    for _ in range(sapp.config["AUTHSVC"].session_stepup_max_failures):
        statuses.append(_post_resume(thief, {"method": "password", "password": "not the password"}).status_code)
    assert statuses[:-1] == [401] * (len(statuses) - 1) and statuses[-1] in (302, 429)
    assert owner.get("/account").location.startswith("/login")


def test_replayed_step_up_form_changes_nothing(sapp):
    with sapp.app_context():
        from authsvc.models import User
        from authsvc.extensions import db

        uid = db.session.execute(select(User.id).where(User.email == "alice@example.com")).scalar_one()
    seed = enrol_totp(sapp, uid)
    owner = _login(sapp, totp=seed)
    me = _suspend(sapp, owner)
    page = me.get("/mfa/resume").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "method": "totp", "code": current_code(sapp, seed)}
    assert me.post("/mfa/resume", data=form).status_code == 302
    assert me.get("/account").status_code == 200
    assert me.post("/mfa/resume", data=form).location == "/account"  # nothing suspended: nothing done
    assert len(_events(sapp, "session:drift:stepup:ok")) == 1
    # suspended again later (another drift): the captured form with its used code does not resume it
    with sapp.app_context():
        sapp.extensions["authsvc"].sessions.redis.hset(f"sess:{{{_sid(me)}}}", "su", "new_network_soon")
    r = me.post("/mfa/resume", data=form)
    assert r.status_code == 401 and _hash(sapp, me).get("su")


def test_step_up_from_another_session_does_not_resume_the_suspended_one(sapp):
    owner = _login(sapp)
    thief = _suspend(sapp, owner)
    other = _login(sapp, ip=HOME)  # the owner's (or a thief's own) other session of the same account
    r = _post_resume(other, {"method": "password", "password": "correct horse battery staple"}, url="/mfa/resume") \
        if other.get("/mfa/resume").status_code == 200 else other.get("/mfa/resume")
    assert r.status_code == 302  # not suspended: sent on, nothing proven, nothing resumed
    assert _hash(sapp, thief).get("su")
    assert thief.get("/account").location.startswith("/mfa/resume")


def test_racing_step_ups_resume_once(sapp):
    owner = _login(sapp)
    _suspend(sapp, owner)
    sid = _sid(owner)
    from authsvc.models import User
    from authsvc.extensions import db

    results, barrier = [], threading.Barrier(4)

    def run():
        with sapp.app_context():
            user = db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()
            barrier.wait()
            results.append(sapp.extensions["authsvc"].sessions.resume(user, sid, ip=OFFICE, user_agent=CHROME,
                                                                       aal=1, methods=("pwd",)))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_suspended_sessions_refresh_tokens_stop_working(make_app, tmp_path):
    from tests.functional.oauth_helpers import get_code, register, signed_in, token

    app = networked_app(make_app, tmp_path)
    cid, secret = register(app, client_type="public")
    browser = _as(app.test_client(), PROXY)
    signed_in(app, browser)
    code, verifier = get_code(browser, cid, scope="openid email offline_access")
    r = token(browser, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                        "redirect_uri": "https://rp.example/cb", "client_id": cid})
    assert r.status_code == 200, r.json
    t = r.json
    env = {"HTTP_X_FORWARDED_FOR": PROXY, "REMOTE_ADDR": "127.0.0.1"}
    r = app.test_client().post("/oauth2/token", data={"grant_type": "refresh_token", "client_id": cid,
                                                      "refresh_token": t["refresh_token"]}, environ_base=env)
    assert r.status_code == 200, r.json  # the family works until the session is suspended
    t = r.json
    _suspend(app, browser)
    r = app.test_client().post("/oauth2/token", data={"grant_type": "refresh_token", "client_id": cid,
                                                      "refresh_token": t["refresh_token"]}, environ_base=env)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    assert app.test_client().get("/oauth2/userinfo", headers={"Authorization": "Bearer " + t["access_token"]},
                                 environ_base=env).status_code == 401
    assert any(e.reason == "session suspended for step-up" for e in _events(app, "oauth:token:revoke"))


# --- the owner --------------------------------------------------------------------------------------------------------
def test_owner_steps_up_with_the_factor_and_the_session_resumes_on_the_new_network(sapp):
    with sapp.app_context():
        from authsvc.models import User, UserSession
        from authsvc.extensions import db

        uid = db.session.execute(select(User.id).where(User.email == "alice@example.com")).scalar_one()
    seed = enrol_totp(sapp, uid)
    owner = _login(sapp, totp=seed)
    before = _hash(sapp, owner)
    me = _suspend(sapp, owner)
    r = _post_resume(me, {"method": "totp", "code": current_code(sapp, seed)}, url="/mfa/resume?next=/account")
    assert r.status_code == 302 and r.location == "/account"
    after = _hash(sapp, me)
    assert "su" not in after and after["b_asn"] == "AS2119" and after["b_pfx"] != before["b_pfx"]
    assert after["aal"] == "2" and after["created"] == before["created"]  # absolute lifetime not extended
    _advance(sapp, 60)
    assert me.get("/account").status_code == 200  # not asked again on every page
    ok = _events(sapp, "session:drift:stepup:ok")
    assert len(ok) == 1 and json.loads(ok[0].details)["method"] == "totp"
    with sapp.app_context():
        row = db.session.get(UserSession, _sid(me))
        clock = sapp.extensions["authsvc"].clock
        assert abs((clock.now() - row.created_at.replace(tzinfo=clock.now().tzinfo)).total_seconds() - 60) < 2
        assert "otp" in row.methods.split(",")


def test_owner_without_a_factor_steps_up_with_the_password_and_a_mailed_code(sapp):
    owner = _login(sapp)
    me = _suspend(sapp, owner)
    r = _post_resume(me, {"method": "password", "password": "correct horse battery staple"})
    assert r.status_code == 302 and r.location.startswith("/mfa/resume")
    assert me.get("/account").location.startswith("/mfa/resume")  # the password alone resumes nothing
    page = me.get(r.location).get_data(as_text=True)
    wrong = me.post(r.location, data={"csrf_token": csrf_token(page), "method": "email", "email_code": "00000000"})
    assert wrong.status_code == 401 and _hash(sapp, me)["suf"] == "1"
    page = me.get(r.location).get_data(as_text=True)
    r = me.post(r.location, data={"csrf_token": csrf_token(page), "method": "email", "email_code": _mailed_code(sapp)})
    assert r.status_code == 302 and r.location == "/account"
    assert me.get("/account").status_code == 200
    ok = _events(sapp, "session:drift:stepup:ok")
    assert len(ok) == 1 and json.loads(ok[0].details)["method"] == "email"
    assert "sup" not in _hash(sapp, me)


def test_suspended_session_can_still_sign_out(sapp):
    owner = _login(sapp)
    me = _suspend(sapp, owner)
    page = me.get("/mfa/resume").get_data(as_text=True)
    r = me.post("/logout", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and r.location.endswith("/login")
    assert owner.get("/account").location.startswith("/login")


# --- a device-bound (DBSC) session ------------------------------------------------------------------------------------
def test_suspended_bound_session_step_up_needs_the_device_key_too(app, client):
    """A DBSC-bound session suspended for drift (set here directly; the suspension itself is tested above): the login
    cookie alone reaches nothing, not even the step-up page; the owner's browser keeps refreshing its short cookie
    with the key, steps up, and the binding stands."""
    from tests.functional.test_dbsc import BOUND, _bound_login, _past_registration_window, _thief

    agent = _bound_login(app, client)
    _past_registration_window(app)  # a bare login cookie is served for 15 s after the binding (requests in flight)
    with app.app_context():
        app.extensions["authsvc"].sessions.redis.hset(f"sess:{{{_sid(client)}}}", "su", "new_network_soon")
    thief = _thief(app, client)
    assert thief.get("/account").location.startswith("/mfa/resume")
    assert thief.get("/mfa/resume").location == "/login"  # no key, no short cookie: nothing to step up
    assert thief.post("/dbsc/register").status_code in (400, 401)  # nor bind the thief's own key
    assert client.get("/account").location.startswith("/mfa/resume")
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 60)  # the short cookie expires while the page is open...
    assert agent.refresh().status_code == 200  # ...and the device key renews it, suspended or not
    r = _password_and_mailed_code(app, client)
    assert r.status_code == 302 and r.location == "/account"
    assert client.get("/account").status_code == 200
    assert _hash(app, client).get("bc") and client.get_cookie(BOUND)  # still device-bound
