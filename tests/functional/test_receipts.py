"""Login history with reasons, the new-place notice and the one-click "this wasn't me"."""

import json

from sqlalchemy import select

from authsvc.extensions import db
from authsvc.models import LoginEvent, User
from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link


def api_login(app, ip, ua="Firefox/120", password=PASSWORD):
    return app.test_client().post("/api/v1/login", json={"email": "alice@example.com", "password": password},
                                  environ_base={"REMOTE_ADDR": ip}, headers={"User-Agent": ua})


def notices(app):
    from authsvc.services import services

    with app.app_context():
        return [m for m in services().outbox.messages(to="alice@example.com") if "New sign-in" in m.subject]


def test_every_attempt_is_a_receipt(app):
    create_user(app)
    api_login(app, "203.0.113.10")
    api_login(app, "203.0.113.10", password="wrong but long password")
    api_login(app, "203.0.113.10")
    with app.app_context():
        rows = db.session.execute(select(LoginEvent).order_by(LoginEvent.id)).scalars().all()
        assert [r.outcome for r in rows] == ["success", "failed", "success"]
        # First sign-in ever: the risk engine has nothing to compare with and says so (the address was just
        # confirmed, which proves the mailbox, so it gets in without the mailed code). Such a login is not fully
        # proven, so the engine learns nothing from it: the next one still has no history.
        assert rows[0].decision == "step_up" and rows[0].session_id
        assert [r["code"] for r in json.loads(rows[0].reasons)] == ["no_history"]
        assert rows[2].decision == "step_up" and rows[2].score == rows[0].score
        assert rows[0].ip == "203.0.113.10" and rows[0].user_agent == "Firefox/120"


def test_new_place_notice_and_wasnt_me_locks_the_account_down(app):
    create_user(app)
    assert api_login(app, "203.0.113.10").status_code == 200
    assert notices(app) == []  # first sign-in ever: nothing to compare with
    assert api_login(app, "203.0.113.11").status_code == 200  # same network, same browser
    assert notices(app) == []
    assert api_login(app, "198.51.100.50", ua="Chrome/131 (attacker)").status_code == 200
    (notice,) = notices(app)
    assert "198.51.100.50" in notice.body and "Chrome/131 (attacker)" in notice.body

    from authsvc.services import services

    with app.app_context():  # the attacker's browser got itself remembered
        services().mfa.devices.create(db.session.execute(select(User)).scalar_one(), "Chrome/131 (attacker)")
    link = outbox_link(app, "alice@example.com", "not-me").split(":5000", 1)[1]
    c = app.test_client()
    page = c.get(link)
    assert page.status_code == 200 and b"lock it down" in page.data
    r = c.post(link, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302
    # Every session ended, the password no longer works, and a reset link is on its way.
    with app.app_context():
        user = db.session.execute(select(User)).scalar_one()
        assert user.password_hash is None and user.must_change_password

        assert services().sessions.list_for(user) == []
        assert services().mfa.devices.list_for(user) == []  # trusted devices forgotten
    assert api_login(app, "203.0.113.10").status_code == 401
    assert outbox_link(app, "alice@example.com", "reset")
    assert c.get(link).status_code == 400  # single use


def test_activity_page_shows_outcomes_and_reasons(app):
    create_user(app)
    from tests.functional.helpers import login

    c = app.test_client()
    login(c, password="wrong but long password")
    login(c)
    # A receipt with reasons, as the risk engine writes them.
    with app.app_context():
        uid = db.session.execute(select(User.id)).scalar_one()
        db.session.add(LoginEvent(user_id=uid, outcome="mfa_required", ip="198.51.100.1", decision="step_up",
                                  score=7.5, reasons=json.dumps([{"code": "new_country", "text": "new country: NO→BR"}])))
        db.session.commit()
    page = c.get("/account/activity").get_data(as_text=True)
    assert "Wrong password" in page and "Signed in" in page
    # Shown in the viewer's language at display time (authsvc/i18n/reasons.py): country codes become names.
    assert "Asked for a second factor" in page and "new country: Brazil (usually Norway)" in page
    assert "risk score" not in page  # issue #12: a bare number in the engine's units is not a reason
