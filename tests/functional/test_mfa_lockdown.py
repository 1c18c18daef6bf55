"""Factors an attacker planted with the password alone: "this wasn't me" and a password reset remove them (issues
#12 and #19), and factor changes need the second factor, not only a recent password (issue #19)."""

import re

import pytest

from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link
from tests.functional.helpers import form_post, login
from tests.functional.mfa_helpers import (SESSION, finish_with_mailed_code, cookie, current_code, enrol_totp, meta_csrf, next_step, post_json,
                                          submit_totp)
from tests.softauthn import SoftAuthenticator

ORIGIN = "http://localhost:5000"
OWNER_IP, ATTACKER_IP = "203.0.113.10", "198.51.100.50"
ATTACKER_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 (attacker)"
NEW_PASSWORD = "a brand new owner passphrase 42"


@pytest.fixture
def wa_app(make_app):
    return make_app(webauthn_rp_id="localhost", webauthn_origins=ORIGIN)


def _client(app, ip, ua="Firefox/120"):
    c = app.test_client()
    c.environ_base.update({"REMOTE_ADDR": ip, "HTTP_USER_AGENT": ua})
    return c


def _mails(app, subject_part, to="alice@example.com"):
    from authsvc.services import services

    with app.app_context():
        return [m for m in services().outbox.messages(to=to) if subject_part in m.subject]


def _register_passkey(client, auth, name="Attacker key"):
    token = meta_csrf(client.get("/mfa/passkeys").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/register/options", {}, token)
    assert opts.status_code == 200, opts.get_data(as_text=True)
    resp = post_json(client, "/mfa/webauthn/register/verify", {"credential": auth.create(opts.get_json()),
                                                               "name": name}, token)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp


def _passkey_login(app, auth, ip=ATTACKER_IP):
    c = _client(app, ip, ATTACKER_UA)
    token = meta_csrf(c.get("/mfa/passkey").get_data(as_text=True))
    opts = post_json(c, "/mfa/webauthn/authenticate/options", {"flow": "passkey"}, token).get_json()
    return post_json(c, "/mfa/webauthn/authenticate/verify", {"flow": "passkey", "credential": auth.get(opts)}, token)


def _enrol_totp_via_pages(app, client):
    html = client.get("/mfa/totp").get_data(as_text=True)
    secret = re.search(r"data-secret>([A-Z2-7 ]+)<", html).group(1).replace(" ", "")
    ok = client.post("/mfa/totp", data={"csrf_token": csrf_token(html), "code": current_code(app, secret)})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(30)
    return secret


def _owner_resets(app, new=NEW_PASSWORD):
    c = _client(app, OWNER_IP)
    link = outbox_link(app, "alice@example.com", "reset").split(":5000", 1)[1]
    r = form_post(c, link, {"new_password": new})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]


def _factor_rows(app):
    from authsvc.extensions import db
    from authsvc.models import RecoveryCode, TotpCredential, WebAuthnCredential

    with app.app_context():
        return {"totp": db.session.execute(db.select(TotpCredential)).scalars().all(),
                "webauthn": db.session.execute(db.select(WebAuthnCredential)).scalars().all(),
                "recovery": db.session.execute(db.select(RecoveryCode)).scalars().all()}


def _attacker_signs_in_with_the_password(app):
    """The owner signs in from home a few times; the attacker then signs in with the password from elsewhere (the
    owner gets the new-place notice with its "this wasn't me" link)."""
    for _ in range(3):
        assert login(_client(app, OWNER_IP)).status_code == 302
    attacker = _client(app, ATTACKER_IP, ATTACKER_UA)
    assert login(attacker).headers["Location"] == "/account"
    assert _mails(app, "New sign-in"), "the attacker's sign-in should have been reported to the owner"
    return attacker


def test_wasnt_me_removes_the_attackers_passkey_and_the_owner_is_not_stuck(wa_app):
    create_user(wa_app)
    attacker = _attacker_signs_in_with_the_password(wa_app)
    auth = SoftAuthenticator(origin=ORIGIN)
    _register_passkey(attacker, auth)
    assert _passkey_login(wa_app, auth).status_code == 200  # the planted passkey signs in at aal2 by itself

    owner = _client(wa_app, OWNER_IP)
    link = outbox_link(wa_app, "alice@example.com", "not-me").split(":5000", 1)[1]
    assert form_post(owner, link, {}).status_code == 302

    assert _passkey_login(wa_app, auth).status_code == 401  # the attacker's passkey no longer signs in
    rows = _factor_rows(wa_app)
    assert rows["webauthn"] == [] and rows["recovery"] == []
    (mail,) = _mails(wa_app, "locked down")
    assert "Attacker key" in mail.body and "/reset/" in mail.body
    assert "ignore this message" not in mail.body and "password stays" not in mail.body
    assert "signed you out everywhere" in mail.body and "switched off your password" in mail.body
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with wa_app.app_context():
        ev = db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == "mfa:factors:removed")).scalars()
        assert [e.reason for e in ev] == ["reported compromise"]

    _owner_resets(wa_app)
    owner = _client(wa_app, OWNER_IP)
    # Not a second-factor page whose only factor is the attacker's: at most the code mailed to the owner (risk step-up
    # of an account that has no factor left).
    signed_in = finish_with_mailed_code(wa_app, owner, login(owner, password=NEW_PASSWORD))
    assert signed_in.headers["Location"] == "/account"
    _register_passkey(owner, SoftAuthenticator(origin=ORIGIN), name="Owner laptop")  # and can enrol again
    assert [r.name for r in _factor_rows(wa_app)["webauthn"]] == ["Owner laptop"]


def test_wasnt_me_removes_totp_planted_after_the_reported_sign_in(app):
    create_user(app)
    attacker = _attacker_signs_in_with_the_password(app)
    secret = _enrol_totp_via_pages(app, attacker)
    owner = _client(app, OWNER_IP)
    link = outbox_link(app, "alice@example.com", "not-me").split(":5000", 1)[1]
    assert form_post(owner, link, {}).status_code == 302
    rows = _factor_rows(app)
    assert rows["totp"] == [] and rows["recovery"] == []
    (mail,) = _mails(app, "locked down")
    assert "uthenticator app" in mail.body
    _owner_resets(app)
    assert login(_client(app, OWNER_IP), password=NEW_PASSWORD).headers["Location"] == "/account"
    assert secret


def test_password_reset_removes_unconfirmed_factors_planted_with_the_password(wa_app):
    """No "this wasn't me" click: the owner just resets. A passkey and TOTP that only a password vouched for, added
    in the last days, are removed and listed in the notice; the attacker's passkey stops working."""
    create_user(wa_app)
    attacker = _client(wa_app, ATTACKER_IP, ATTACKER_UA)
    assert login(attacker).headers["Location"] == "/account"
    auth = SoftAuthenticator(origin=ORIGIN)
    _register_passkey(attacker, auth, name="Planted passkey")
    assert _passkey_login(wa_app, auth).status_code == 200
    form_post(_client(wa_app, OWNER_IP), "/reset", {"email": "alice@example.com"})
    _owner_resets(wa_app)
    assert _passkey_login(wa_app, auth).status_code == 401
    assert _factor_rows(wa_app)["webauthn"] == [] and _factor_rows(wa_app)["recovery"] == []
    (mail,) = _mails(wa_app, "password was reset")
    assert "Planted passkey" in mail.body
    owner = _client(wa_app, OWNER_IP)
    assert finish_with_mailed_code(wa_app, owner, login(owner, password=NEW_PASSWORD)).headers["Location"] == "/account"


def test_password_reset_keeps_a_factor_the_owner_has_had_for_weeks(app):
    """Whoever controls the mailbox can reset: a reset must not strip an established second factor."""
    uid = create_user(app)
    enrol_totp(app, uid)
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(8 * 86400)
    form_post(_client(app, OWNER_IP), "/reset", {"email": "alice@example.com"})
    _owner_resets(app)
    assert len(_factor_rows(app)["totp"]) == 1
    assert login(_client(app, OWNER_IP), password=NEW_PASSWORD).headers["Location"].endswith("/mfa/challenge")


def test_password_reset_keeps_a_new_factor_added_with_the_second_factor(wa_app):
    """A passkey added from an aal2 session (proven with an established factor) is confirmed: a reset keeps it."""
    uid = create_user(wa_app)
    secret = enrol_totp(wa_app, uid)
    from authsvc.services import services

    with wa_app.app_context():
        services().clock.advance(8 * 86400)
    owner = _client(wa_app, OWNER_IP)
    login(owner)
    assert submit_totp(owner, current_code(wa_app, secret)).status_code == 302
    _register_passkey(owner, SoftAuthenticator(origin=ORIGIN), name="Owner phone")
    form_post(_client(wa_app, OWNER_IP), "/reset", {"email": "alice@example.com"})
    _owner_resets(wa_app)
    rows = _factor_rows(wa_app)
    assert len(rows["totp"]) == 1 and [r.name for r in rows["webauthn"]] == ["Owner phone"]


# --- factor changes need the second factor, not just a recent password (issue #19) ----------------------------------
def _aal1_session_of_a_totp_user(app):
    """A session that proved only the password: a trusted device skipped the second step."""
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    client = app.test_client()
    login(client)
    assert submit_totp(client, current_code(app, secret), remember=True).status_code == 302
    form_post(client, "/account", {}, post_url="/logout")
    assert login(client).headers["Location"] == "/account"  # remembered device: aal1, fresh
    from authsvc.services import services

    with app.app_context():
        assert services().sessions.check(cookie(client, SESSION))[0].aal == 1
    return client, secret


def test_aal1_session_cannot_replace_or_remove_totp_or_regenerate_codes(app):
    client, secret = _aal1_session_of_a_totp_user(app)
    assert "/mfa/step-up" in client.get("/mfa/totp").headers.get("Location", "")
    token = csrf_token(client.get("/account").get_data(as_text=True))
    for url in ("/mfa/totp/remove", "/mfa/recovery"):
        r = client.post(url, data={"csrf_token": token, "confirm": "yes"})
        assert r.status_code == 302 and "/mfa/step-up" in r.headers["Location"], url
    assert len(_factor_rows(app)["totp"]) == 1
    # the step-up page asks for the factor, never the password, and then the change goes through
    page = client.get("/mfa/step-up?next=/account").get_data(as_text=True)
    assert 'name="password"' not in page
    next_step(app)
    assert submit_totp(client, current_code(app, secret), url="/mfa/step-up?next=/account").status_code == 302
    token = csrf_token(client.get("/account").get_data(as_text=True))
    r = client.post("/mfa/totp/remove", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302 and r.headers["Location"] == "/account"
    assert _factor_rows(app)["totp"] == []


def test_session_reissued_by_a_password_change_cannot_change_factors(app):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    client = app.test_client()
    login(client)
    assert submit_totp(client, current_code(app, secret)).status_code == 302
    r = form_post(client, "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)[:1000]
    token = csrf_token(client.get("/account").get_data(as_text=True))
    r = client.post("/mfa/recovery", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302 and "/mfa/step-up" in r.headers["Location"]


def test_aal1_session_cannot_add_a_passkey_to_an_account_with_totp(wa_app):
    client, _ = _aal1_session_of_a_totp_user(wa_app)
    token = csrf_token(client.get("/account").get_data(as_text=True))
    r = post_json(client, "/mfa/webauthn/register/options", {}, token)
    assert r.status_code == 403 and r.get_json()["error"] == "reauth_required"


# --- one click is not enough: confirmation pages (newcomer walk) -------------------------------------------------------
def test_removing_totp_and_new_recovery_codes_ask_for_confirmation(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    submit_totp(client, current_code(app, secret))
    token = csrf_token(client.get("/account").get_data(as_text=True))
    for url, words in (("/mfa/totp/remove", "Remove the authenticator app"),
                       ("/mfa/recovery", "new recovery codes")):
        r = client.post(url, data={"csrf_token": token})  # the account page's button: a question, not the action
        html = r.get_data(as_text=True)
        assert r.status_code == 200 and words in html, url
        assert 'name="confirm" value="yes"' in html
    assert len(_factor_rows(app)["totp"]) == 1 and _factor_rows(app)["recovery"] == []


def test_password_reset_forgets_remembered_devices_and_treats_pre_migration_factors_as_unconfirmed(app):
    """Rows from before ``enrolled_aal`` existed (NULL) count as password-only while recent; remembered browsers
    are forgotten by every reset."""
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    client = app.test_client()
    login(client)
    assert submit_totp(client, current_code(app, secret), remember=True).status_code == 302
    from authsvc.extensions import db
    from authsvc.models import TotpCredential, User
    from authsvc.services import services

    with app.app_context():
        db.session.get(TotpCredential, uid).enrolled_aal = None
        db.session.commit()
        assert len(services().mfa.devices.list_for(db.session.get(User, uid))) == 1
    form_post(_client(app, OWNER_IP), "/reset", {"email": "alice@example.com"})
    _owner_resets(app)
    with app.app_context():
        assert services().mfa.devices.list_for(db.session.get(User, uid)) == []
    assert _factor_rows(app)["totp"] == []
