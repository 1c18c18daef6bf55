"""A session only for a login that is still proven when it is issued (issue #19): races with password change,
reset and "this wasn't me"; familiarity only after the whole login; step-up every account can meet (a code e-mailed
to the verified address); risk reasons only for the owner after full sign-in; learning only from proven logins."""

import re
import threading

from sqlalchemy import select

from authsvc.extensions import db
from authsvc.models import User, UserSession
from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link
from tests.functional.mfa_helpers import (PENDING, SESSION, cookie, current_code, enrol_totp, mailed_code,
                                          submit_totp)
from tests.functional.helpers import login

NEW_PASSWORD = "a brand new and long passphrase 42"


def _api_login(app, ip="203.0.113.10", ua="Firefox/120", password=PASSWORD, client=None):
    c = client or app.test_client()
    return c.post("/api/v1/login", json={"email": "alice@example.com", "password": password},
                  environ_base={"REMOTE_ADDR": ip}, headers={"User-Agent": ua})


def _live(app, token):
    from authsvc.services import services

    with app.app_context():
        return services().sessions.check(token) is not None


def _in_other_thread(fn):
    """Run ``fn`` to completion in another thread (its own app context and SQL session), as another request would."""
    errors = []

    def run():
        try:
            fn()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert not errors, errors


def _change_password(app):
    from authsvc.accounts.login import RequestContext
    from authsvc.services import services

    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        return services().accounts.change_password(user, PASSWORD, NEW_PASSWORD,
                                                   RequestContext("192.0.2.1", "owner")).new_token


def _between_hash_check_and_issue(app, action):
    """Deterministic interleaving: ``action`` runs (in another thread) after this login's password check and before
    its session is issued — the risk stage sits exactly there."""
    from authsvc.services import services

    with app.app_context():
        risk = services().login.risk
    real = risk.score
    done = []

    def score(*a, **kw):
        if not done:
            done.append(True)
            _in_other_thread(action)
        return real(*a, **kw)

    risk.score = score
    return lambda: setattr(risk, "score", real)


# --- races ---------------------------------------------------------------------------------------------------------
def test_a_login_that_passed_the_hash_check_before_a_password_change_gets_no_session(app):
    create_user(app)
    owner = []
    undo = _between_hash_check_and_issue(app, lambda: owner.append(_change_password(app)))
    try:
        r = _api_login(app)
    finally:
        undo()
    assert owner, "the password change ran in between"
    assert r.status_code == 401 and "session_token" not in r.json
    with app.app_context():
        uid = db.session.execute(select(User.id)).scalar_one()
        # Only the owner's own session (from the change) exists.
        assert db.session.execute(select(UserSession).where(UserSession.user_id == uid)).scalars().all().__len__() == 1
    assert _live(app, owner[0])
    assert _api_login(app, password=NEW_PASSWORD).status_code == 200


def test_a_login_that_passed_the_hash_check_before_wasnt_me_gets_no_session(app):
    from authsvc.accounts.login import RequestContext
    from authsvc.services import services

    create_user(app)

    def lockdown():
        with app.app_context():
            user = db.session.execute(select(User)).scalar_one()
            token = services().tokens.issue("notme", user.id, 3600)
            assert services().accounts.report_not_me(token, RequestContext("192.0.2.1", "owner")) is not None

    undo = _between_hash_check_and_issue(app, lockdown)
    try:
        r = _api_login(app)
    finally:
        undo()
    assert r.status_code == 401
    with app.app_context():
        assert db.session.execute(select(UserSession)).scalars().all() == []


def test_a_pending_mfa_login_started_before_a_reset_cannot_finish_after_it(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    from authsvc.models import TotpCredential

    with app.app_context():  # an established factor (a reset keeps it), so only the race can stop this login
        db.session.execute(db.update(TotpCredential).values(enrolled_aal=2))
        db.session.commit()
    r = login(client)
    assert r.status_code == 302 and cookie(client, PENDING)
    # Meanwhile the owner resets the password by e-mail.
    from authsvc.accounts.login import RequestContext
    from authsvc.services import services

    with app.app_context():
        services().accounts.request_reset("alice@example.com", RequestContext("192.0.2.1", "owner"))
    token = outbox_link(app, "alice@example.com", "reset").rsplit("/", 1)[1]
    with app.app_context():
        assert services().accounts.reset_password(token, NEW_PASSWORD, RequestContext("192.0.2.1", "owner"))
    r = submit_totp(client, current_code(app, secret))
    assert r.status_code in (302, 401)
    assert cookie(client, SESSION) is None
    with app.app_context():
        assert db.session.execute(select(UserSession)).scalars().all() == []


def test_a_pending_mfa_login_cannot_finish_after_sign_out_everywhere(app, client):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(1)
        services().sessions.revoke_all(db.session.get(User, uid), "user_revoked_all")
    submit_totp(client, current_code(app, secret))
    assert cookie(client, SESSION) is None


def test_old_password_logins_racing_a_password_change_never_keep_a_session(app):
    """A real threaded race: ten logins with the old password run while the owner changes it. Whatever interleaving
    the threads take, no session issued to an old-password login is valid after the change."""
    create_user(app)
    tokens, statuses = [], []
    lock = threading.Lock()
    start = threading.Barrier(11)

    def attacker(i):
        start.wait()
        r = _api_login(app, ip=f"203.0.113.{20 + i}")
        with lock:
            statuses.append(r.status_code)
            if r.status_code == 200:
                tokens.append(r.json["session_token"])

    owner = []

    def change():
        start.wait()
        owner.append(_change_password(app))

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(10)] + [threading.Thread(target=change)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert owner and len(statuses) == 10
    assert set(statuses) <= {200, 401, 503}
    assert [t for t in tokens if _live(app, t)] == []
    assert _live(app, owner[0])


# --- a step-up every account can meet: a code e-mailed to the verified address --------------------------------------
TOR_UA = "python-requests/2.31.0"


_code = mailed_code


def _code_mails(app):
    from authsvc.services import services

    with app.app_context():
        return [m for m in services().outbox.messages(to="alice@example.com") if "sign-in code" in m.subject]


def _age_mailbox_proof(app):
    """The address was confirmed more than a day ago: a first sign-in is no longer proven by that link."""
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(25 * 3600)


def _api_with_code(app, ip="203.0.113.10", ua="Firefox/120"):
    """A login of the owner: allowed outright once the engine knows the place, else finished with the mailed code."""
    r = _api_login(app, ip=ip, ua=ua)
    if r.status_code == 200:
        return r
    assert r.status_code == 403 and r.json["error"] == "email_code_required", r.json
    ok = app.test_client().post("/api/v1/login/email-code", json={"pending_token": r.json["pending_token"],
                                                                    "code": _code(app)},
                                environ_base={"REMOTE_ADDR": ip}, headers={"User-Agent": ua})
    assert ok.status_code == 200, ok.json
    return ok


def _scores(app):
    from authsvc.models import LoginEvent

    with app.app_context():
        return [(e.outcome, e.decision, e.score) for e in
                db.session.execute(select(LoginEvent).order_by(LoginEvent.id)).scalars()]


def test_step_up_without_a_factor_is_met_by_a_code_mailed_to_the_owner_page(app, client):
    create_user(app)
    _age_mailbox_proof(app)
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"].endswith("/mfa/challenge")
    assert cookie(client, SESSION) is None and cookie(client, PENDING)
    page = client.get("/mfa/challenge")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Check your e-mail" in html and "a•••@example.com" in html
    assert "no previous logins" not in html  # no risk reasons before the sign-in is complete
    (mail,) = _code_mails(app)
    code = _code(app)
    wrong = "00000000" if code != "00000000" else "11111111"
    bad = client.post("/mfa/challenge", data={"csrf_token": csrf_token(html), "email_code": wrong,
                                              "method": "email"})
    assert bad.status_code == 401 and cookie(client, SESSION) is None
    junk = client.post("/mfa/challenge", data={"csrf_token": csrf_token(html), "email_code": "１２３４５６７８",
                                               "method": "email"})
    assert junk.status_code == 401
    ok = client.post("/mfa/challenge", data={"csrf_token": csrf_token(html), "email_code": code, "method": "email"})
    assert ok.status_code == 302 and cookie(client, SESSION)
    session = _session(app, cookie(client, SESSION))
    assert session.aal == 1 and session.methods == ("pwd", "email")  # e-mail is not an AAL2 authenticator


def _session(app, token):
    from authsvc.services import services

    with app.app_context():
        return services().sessions.check(token)[0]


def test_email_code_is_single_use_hashed_short_lived_and_burnt_after_five_wrong_guesses(app):
    from authsvc.extensions import get_redis
    from authsvc.mfa import email_code as ec
    from authsvc.services import services

    uid = create_user(app)
    with app.app_context():
        user = db.session.get(User, uid)
        svc = services().mfa.email_code
        assert svc.send("pTEST", user, "192.0.2.1") == ec.SENT
        code = _code(app)
        raw = get_redis().hgetall("mfa:ec:{pTEST}")
        assert code not in str(raw)  # only an HMAC is stored
        assert 0 < get_redis().ttl("mfa:ec:{pTEST}") <= services().mfa.settings.pending_ttl
        assert svc.check("pTEST", code) == ec.OK
        assert svc.check("pTEST", code) == ec.EXPIRED  # single use
        assert svc.send("pTEST2", user, "192.0.2.1") == ec.SENT
        code = _code(app)
        for _ in range(5):
            assert svc.check("pTEST2", "00000000" if code != "00000000" else "11111111") == ec.WRONG
        assert svc.check("pTEST2", code) == ec.EXPIRED  # burnt: the right code no longer works
        # Re-sends per pending login are capped, and so are mails per account.
        assert svc.send("pTEST3", user, None) == ec.SENT
        assert svc.send("pTEST3", user, None) == ec.SENT
        assert svc.send("pTEST3", user, None) == ec.SENT
        assert svc.send("pTEST3", user, None) == ec.TOO_MANY


def test_step_up_without_a_factor_is_met_by_a_code_mailed_to_the_owner_api(app):
    create_user(app)
    _age_mailbox_proof(app)
    r = _api_login(app)
    assert r.status_code == 403 and r.json["error"] == "email_code_required"
    assert "reasons" not in r.json and "session_token" not in r.json
    c = app.test_client()
    assert c.post("/api/v1/login/email-code", json={"pending_token": r.json["pending_token"],
                                                     "code": "1" * 17}).status_code == 400
    assert c.post("/api/v1/login/email-code", json={"pending_token": "x" * 40, "code": "12345678"}).status_code == 401
    wrong = "00000000" if _code(app) != "00000000" else "11111111"
    assert c.post("/api/v1/login/email-code", json={"pending_token": r.json["pending_token"],
                                                     "code": wrong}).status_code == 401
    ok = c.post("/api/v1/login/email-code", json={"pending_token": r.json["pending_token"], "code": _code(app)})
    assert ok.status_code == 200 and _live(app, ok.json["session_token"])
    again = c.post("/api/v1/login/email-code", json={"pending_token": r.json["pending_token"], "code": _code(app)})
    assert again.status_code == 401  # the pending login and its code are used up


def test_a_risky_login_of_an_account_without_a_factor_gets_no_session_and_is_not_learned(make_app):
    """Issue #19: Tor exit + python-requests scored high, got a full session, and the engine learned it (the next
    attacker login was allowed). (Threshold 0: with one user on the instance, global and local statistics coincide
    and even the owner's usual place scores just below 0.)"""
    app = make_app(risk_step_up_threshold=0.0)
    create_user(app)
    _age_mailbox_proof(app)
    for _ in range(3):
        _api_with_code(app)  # the owner's usual place, proven by the mailed code
    assert _api_login(app).status_code == 200  # now familiar to the engine: allowed without a code
    first = _api_login(app, ip="198.51.100.7", ua=TOR_UA)
    assert first.status_code == 403 and first.json["error"] == "email_code_required"
    second = _api_login(app, ip="198.51.100.7", ua=TOR_UA)
    assert second.status_code == 403 and second.json["error"] == "email_code_required"
    rows = [s for s in _scores(app) if s[0] == "mfa_required"]
    assert rows[-1][2] >= rows[-2][2] and rows[-1][1] == "step_up"  # the unproven attempt taught the engine nothing


def test_the_first_sign_in_right_after_confirming_the_address_needs_no_code_but_is_not_learned(app):
    create_user(app)
    assert _api_login(app).status_code == 200
    assert _code_mails(app) == []
    assert _api_login(app).status_code == 200
    assert [s[1] for s in _scores(app)] == ["step_up", "step_up"]  # nothing learned from either


# --- familiarity only after the whole login, only for the account's own devices ------------------------------------
def _familiar(app, ip="203.0.113.10", device_id=None):
    from authsvc.accounts.login import RequestContext
    from authsvc.services import services

    with app.app_context():
        return services().throttle.precheck("alice@example.com", RequestContext(ip, "x", device_id)).familiar


def test_a_right_password_stopped_at_the_second_step_earns_no_familiarity(app, client):
    uid = create_user(app)
    enrol_totp(app, uid)
    login(client)
    assert cookie(client, PENDING) and not _familiar(app, "127.0.0.1")


def test_an_unverified_or_denied_login_earns_no_familiarity(make_app):
    app = make_app(risk_step_up_threshold=-6.0, risk_deny_threshold=-5.0)
    create_user(app, verified=False)
    assert _api_login(app).status_code == 403
    assert not _familiar(app)
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        from authsvc.services import services

        user.email_verified_at = services().clock.now()
        db.session.commit()
    r = _api_login(app)
    assert r.status_code == 403 and r.json["error"] == "denied"
    assert not _familiar(app)


def test_a_full_login_makes_the_place_familiar_until_reset_lockdown_or_change(app):
    from authsvc.accounts.login import RequestContext
    from authsvc.services import services

    create_user(app)
    assert _api_login(app).status_code == 200
    assert _familiar(app)
    _change_password(app)
    assert not _familiar(app)
    assert _api_login(app, password=NEW_PASSWORD).status_code == 200
    assert _familiar(app)
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        services().accounts.report_not_me(services().tokens.issue("notme", user.id, 3600),
                                          RequestContext("192.0.2.1", "owner"))
    assert not _familiar(app)


def test_another_accounts_device_cookie_is_not_remembered_as_familiar(app):
    from authsvc.services import services

    uid = create_user(app)
    other = create_user(app, email="bob@example.com")
    with app.app_context():
        row, token = services().mfa.devices.create(db.session.get(User, other), "bob's browser")
        bobs_device = str(row.id)
    c = app.test_client()
    c.set_cookie("__Host-authsvc-device", token, domain="localhost", secure=True)
    assert _api_login(app, client=c).status_code == 200
    assert _familiar(app, "203.0.113.10")  # alice's own place: yes
    assert not _familiar(app, "198.51.100.99", device_id=bobs_device)  # bob's device from elsewhere: no
    assert uid != other


# --- reasons are for the owner, after sign-in ----------------------------------------------------------------------
def test_risk_reasons_are_not_shown_to_whoever_typed_the_password(make_app):
    app = make_app(risk_deny_threshold=0.5)
    create_user(app)
    _age_mailbox_proof(app)
    for _ in range(3):
        _api_with_code(app)
    strange = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0"
    r = _api_login(app, ip="198.51.100.50", ua=strange)
    assert r.status_code == 403 and r.json["error"] == "denied" and "reasons" not in r.json
    assert "network" not in r.get_data(as_text=True)
    c = app.test_client()
    html = c.get("/login").get_data(as_text=True)
    page = c.post("/login", data={"email": "alice@example.com", "password": PASSWORD, "csrf_token": csrf_token(html)},
                  environ_base={"REMOTE_ADDR": "198.51.100.51"}, headers={"User-Agent": strange})
    assert page.status_code == 403 and b"We blocked this sign-in" in page.data
    assert b"new network" not in page.data and b"usually" not in page.data
    # The owner, signed in, sees them in the account's activity.
    owner = app.test_client()
    r = _api_with_code(app)
    owner.set_cookie("__Host-authsvc", r.json["session_token"], domain="localhost", secure=True)
    assert "new network" in owner.get("/account/activity").get_data(as_text=True)


def test_a_password_reauthentication_racing_a_password_change_gets_no_new_session(app, client):
    """Step-up by password (an account without a factor): the password is checked, the owner changes it elsewhere
    before the new session is issued — the re-authentication must fail, not hand out a fresh session."""
    from authsvc.services import services

    create_user(app)
    assert login(client).status_code == 302 and cookie(client, SESSION)
    with app.app_context():
        hasher = services().hasher
    real = hasher.verify
    owner, started = [], []

    def verify(stored, password):
        result = real(stored, password)
        if not started:  # once (the change itself verifies the current password with this hasher too)
            started.append(True)
            _in_other_thread(lambda: owner.append(_change_password(app)))
        return result

    page = client.get("/mfa/step-up?next=/account")
    hasher.verify = verify
    try:
        r = client.post("/mfa/step-up?next=/account", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                            "password": PASSWORD, "method": "password"})
    finally:
        del hasher.verify
    assert owner and r.status_code in (401, 302)
    if r.status_code == 302:  # the old session was ended by the change: back to the login page, no new session
        assert "/login" in r.headers["Location"]
    with app.app_context():
        uid = db.session.execute(select(User.id)).scalar_one()
        live = services().sessions.list_for(db.session.get(User, uid))
    assert [s.id for s in live] == [_session(app, owner[0]).id]
