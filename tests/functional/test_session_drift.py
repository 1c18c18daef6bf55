"""Continuous session risk: every use of a session is compared with the context it was born in.

Attacks first (a cookie replayed from another browser, from two networks at once, from another provider minutes
after the sign-in, from abroad), then the owner's ordinary moves, which must not be challenged."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.conftest import create_user
from tests.functional.helpers import form_post

from tests.functional.netplaces import (CHROME, FIREFOX, HOME, HOME2, OFFICE, PROXY,  # noqa: F401
                                        from_place, networked_app)

COOKIE = "__Host-authsvc"


@pytest.fixture
def drift_app(make_app, tmp_path):
    app = networked_app(make_app, tmp_path)
    create_user(app)
    return app


def _as(client, ip, ua=CHROME):
    return from_place(client, ip, ua)


def _login(app, ip=HOME, ua=CHROME):
    client = _as(app.test_client(), ip, ua)
    resp = form_post(client, "/login", {"email": "alice@example.com", "password": "correct horse battery staple"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return client


def _copy(app, client, ip, ua=CHROME):
    other = _as(app.test_client(), ip, ua)
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value, domain="localhost")
    return other


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars())


def _advance(app, seconds):
    app.extensions["authsvc"].clock.advance(seconds)


def test_cookie_replayed_from_another_browser_ends_the_session(drift_app):
    owner = _login(drift_app)
    thief = _copy(drift_app, owner, HOME, FIREFOX)  # even on the same network
    assert thief.get("/account").status_code == 302
    assert owner.get("/account").status_code == 302  # ended for everyone: the copy is worthless
    ev = _events(drift_app, "session:drift:end")
    assert len(ev) == 1 and json.loads(ev[0].details)["reasons"] == ["browser_changed"]
    assert "Firefox on Linux" in ev[0].reason
    with drift_app.app_context():
        mails = [m for m in drift_app.extensions["authsvc"].outbox.messages(to="alice@example.com")
                 if "We ended a sign-in" in m.subject]
    assert len(mails) == 1 and "/not-me/" in mails[0].body


def test_same_session_used_from_two_networks_at_once_ends(drift_app):
    owner = _login(drift_app)
    thief = _copy(drift_app, owner, OFFICE)
    _advance(drift_app, 3600 - 60)  # long after the sign-in, so only the parallel use can tell
    assert owner.get("/account").status_code == 200
    assert thief.get("/account").status_code == 200  # one switch: could be the owner changing networks
    assert owner.get("/account").status_code == 200  # two: a phone leaving Wi-Fi and coming back
    assert thief.get("/account").status_code == 302  # three within two minutes: two places at once
    assert owner.get("/account").status_code == 302
    assert json.loads(_events(drift_app, "session:drift:end")[0].details)["reasons"] == ["two_networks"]


def test_phishing_proxy_timing_new_provider_minutes_after_sign_in_must_step_up(drift_app):
    victim = _login(drift_app, PROXY)  # the proxy relays the real login from its hosting network...
    attacker = _copy(drift_app, victim, OFFICE)  # ...and the attacker replays the cookie from home minutes later
    _advance(drift_app, 240)
    resp = attacker.get("/account")
    assert resp.status_code == 302 and resp.location.startswith("/mfa/resume")  # suspended (test_session_stepup)
    ev = _events(drift_app, "session:drift:stepup")
    assert len(ev) == 1 and json.loads(ev[0].details)["reasons"] == ["new_network_soon"]
    assert "4 min after sign-in" in ev[0].reason
    with drift_app.app_context():  # the owner hears of it too (found by an outside attack: it was silent)
        mails = [m for m in drift_app.extensions["authsvc"].outbox.messages(to="alice@example.com")
                 if "sign in to your" in m.subject]
    assert len(mails) == 1 and "4 min after sign-in" in mails[0].body and "/not-me/" in mails[0].body


def test_phone_moving_between_wifi_and_its_carrier_right_after_sign_in_is_not_challenged(drift_app):
    owner = _login(drift_app, HOME)
    _advance(drift_app, 120)
    _as(owner, OFFICE)  # another residential/carrier provider, not a cloud host
    assert owner.get("/account").status_code == 200
    assert not _events(drift_app, "session:drift:stepup")


def test_bearer_use_of_a_copied_session_on_the_api_fast_path_is_scored_too(drift_app):
    owner = _login(drift_app)
    token = owner.get_cookie(COOKIE).value
    api = _as(drift_app.test_client(), HOME, FIREFOX)
    assert api.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert owner.get("/account").status_code == 302
    assert _events(drift_app, "session:drift:end")


def test_owners_ordinary_moves_are_not_challenged(drift_app):
    owner = _login(drift_app)
    assert owner.get("/account").status_code == 200
    _as(owner, HOME2)  # carrier NAT / DHCP: another /24 of the same provider, minutes later
    _advance(drift_app, 120)
    assert owner.get("/account").status_code == 200
    _as(owner, OFFICE)  # home → office, an hour later
    _advance(drift_app, 3000)
    assert owner.get("/account").status_code == 200
    _as(owner, OFFICE, CHROME.replace("141.0.0.0", "142.0.0.0"))  # the browser updated itself
    assert owner.get("/account").status_code == 200
    assert not _events(drift_app, "session:drift:end") and not _events(drift_app, "session:drift:stepup")


def test_bearer_scoring_can_be_switched_off_for_apps_that_validate_tokens_from_their_backend(make_app, tmp_path):
    app = networked_app(make_app, tmp_path, session_drift_bearer=False)
    create_user(app)
    owner = _login(app)
    token = owner.get_cookie(COOKIE).value
    backend = _as(app.test_client(), OFFICE, "python-requests/2.32")  # the app's server, checking for the user
    for path in ("/api/v1/session", "/api/v1/sessions"):
        assert backend.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _copy(app, owner, HOME, FIREFOX).get("/account").status_code == 302  # pages are still scored


def test_drift_scoring_can_be_switched_off(make_app):
    app = make_app(trusted_proxies=("127.0.0.1/32",), session_drift_enabled=False, dbsc_enabled=False)
    create_user(app)
    owner = _login(app)
    assert _copy(app, owner, OFFICE, FIREFOX).get("/account").status_code == 200


def test_a_session_ended_as_stolen_forgets_the_trusted_devices_the_thief_copied_too(drift_app):
    """Found by an outside attack: the thief's copy of the jar holds the remembered-device cookie as well. Once the
    session is ended as stolen, that cookie must not spare the thief the second factor at the next sign-in."""
    from tests.functional.mfa_helpers import DEVICE, current_code, enrol_totp, next_step, submit_totp

    with drift_app.app_context():
        from authsvc.extensions import db
        from authsvc.models import User
        uid = db.session.execute(db.select(User.id).where(User.email == "alice@example.com")).scalar_one()
    seed = enrol_totp(drift_app, uid)
    owner = _as(drift_app.test_client(), HOME)
    assert form_post(owner, "/login", {"email": "alice@example.com", "password": "correct horse battery staple"}
                     ).headers["Location"].endswith("/mfa/challenge")
    assert submit_totp(owner, current_code(drift_app, seed), remember=True).status_code == 302
    next_step(drift_app)
    device = owner.get_cookie(DEVICE)
    assert device is not None
    thief = _copy(drift_app, owner, HOME, FIREFOX)
    thief.set_cookie(DEVICE, device.value, domain="localhost")
    assert thief.get("/account").status_code == 302  # ended as stolen (browser_changed)
    assert json.loads(_events(drift_app, "session:drift:end")[0].details)["trusted_devices_forgotten"] == 1
    resp = form_post(thief, "/login", {"email": "alice@example.com", "password": "correct horse battery staple"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/mfa/challenge")  # the factor again
