"""A session only for a login that is still proven when it is issued (issue #19): races with password change,
reset and "this wasn't me"; familiarity only after the whole login; step-up every account can meet (a code e-mailed
to the verified address); risk reasons only for the owner after full sign-in; learning only from proven logins."""

import re
import threading

from sqlalchemy import select

from authsvc.extensions import db
from authsvc.models import User, UserSession
from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link
from tests.functional.mfa_helpers import PENDING, SESSION, cookie, current_code, enrol_totp, submit_totp
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
