"""A confirmed address seeds the account's risk history (issue 16, docs/RISK.md §6 v3): the first sign-in from the
network and browser that confirmed it is compared with that context instead of scoring "no history"; the same
first sign-in from another country and browser is stepped up to the mailed code — even minutes after the
confirmation, when a first sign-in without history used to pass on the mailbox's freshness.

Real app, real SQL, real Redis, the real country database of the shared test data (the product reads only what the
operator configures)."""

import os

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, csrf_token, outbox_link
from tests.functional.helpers import form_post, login
from tests.functional.netplaces import CHROME, FIREFOX, from_place

GEO = "/work/shared/data/geoip"
HOME_DE, ABROAD_BR = "84.128.1.7", "177.20.1.9"  # Deutsche Telekom (DE) and a Brazilian network, per the mmdb
OTHERS = ["84.128.200.9", "91.64.3.3", "62.155.1.1", "201.17.5.5"]


@pytest.fixture
def rapp(make_app):
    if not os.path.isdir(GEO):
        pytest.skip("shared geoip data not present")
    app = make_app(trusted_proxies=("127.0.0.1/32",), dbsc_enabled=False,
                   risk_country_file=os.path.join(GEO, "geo-whois-asn-country.mmdb"))
    _population(app)
    return app


def _population(app, users: int = 40, logins: int = 3) -> None:
    """Other, established accounts' logins in the global statistics, so that "common" means something."""
    from authsvc.risk import LoginContext
    from authsvc.risk.signals import extract_features
    from authsvc.services import services

    with app.app_context():
        engine = services().login.risk.engine
        now = services().clock.timestamp()
        for u in range(users):
            for k in range(logins):
                ctx = LoginContext(user=str(900_000 + u), ip=OTHERS[(u + k) % len(OTHERS)],
                                   user_agent=(CHROME, FIREFOX)[u % 2], timestamp=now - 86400 * (k + 1))
                engine.store.learn(ctx.user, extract_features(ctx, engine.geo), ctx.timestamp, global_counts=True)


def _register_and_confirm(app, client) -> None:
    from_place(client, HOME_DE, CHROME)
    r = form_post(client, "/register", {"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200
    path = outbox_link(app, "alice@example.com", "verify").split("localhost:5000", 1)[1]
    page = client.get(path)
    r = client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302  # confirmed in the registering browser: one click


def _events(app, prefix: str) -> list:
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        rows = db.session.execute(select(SecurityEvent).order_by(SecurityEvent.id)).scalars()
        return [(e.tag, e.reason) for e in rows if e.tag.startswith(prefix)]


def test_first_sign_in_from_another_country_and_browser_right_after_confirmation_is_refused(rapp):
    owner, attacker = rapp.test_client(), rapp.test_client()
    _register_and_confirm(rapp, owner)
    # Minutes after the confirmation, someone with the password signs in from Brazil with another browser.
    from_place(attacker, ABROAD_BR, FIREFOX)
    r = login(attacker)
    assert r.status_code in (302, 403) and r.headers.get("Location") != "/account"
    assert attacker.get("/account").status_code == 302  # no session
    assert _events(rapp, "account:login:success") == [] and _events(rapp, "mfa:stepup:") == []
    (tag, reason), = _events(rapp, "account:login:denied")  # new country, new device, DE→BR in minutes
    assert "new country: DE→BR" in reason and "impossible travel" in reason


def test_first_sign_in_from_another_country_with_a_copied_browser_string_is_stepped_up_to_the_mailed_code(rapp):
    from authsvc.services import services

    owner, attacker = rapp.test_client(), rapp.test_client()
    _register_and_confirm(rapp, owner)
    with rapp.app_context():
        services().clock.advance(3 * 3600)  # no impossible travel; the mailbox is still "fresh" (< 1 day)
    from_place(attacker, ABROAD_BR, CHROME)  # the owner's exact browser string
    r = login(attacker)
    assert r.status_code == 302 and r.headers["Location"] != "/account"
    assert attacker.get("/account").status_code == 302  # no session without the code
    stepups = _events(rapp, "mfa:stepup:")
    assert [t for t, _ in stepups] == ["mfa:stepup:email"]  # the mailed code, not the mailbox's freshness
    assert "new_country" in stepups[0][1]


def test_first_sign_in_from_the_confirming_network_and_browser_needs_no_step_up(rapp):
    client = rapp.test_client()
    _register_and_confirm(rapp, client)
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"] == "/account"
    assert _events(rapp, "mfa:stepup:") == []  # allowed by the engine: not a step-up met by the mailbox
    # ... and a day later (the mailbox is no longer fresh) still without a step-up.
    from authsvc.services import services

    form_post(client, "/account", {}, post_url="/logout")
    with rapp.app_context():
        services().clock.advance(2 * 86400)
    assert login(client).headers["Location"] == "/account"
    assert _events(rapp, "mfa:stepup:") == []



def test_a_replayed_confirmation_link_from_another_country_seeds_nothing(rapp):
    from authsvc.services import services

    owner, attacker = rapp.test_client(), rapp.test_client()
    _register_and_confirm(rapp, owner)
    path = outbox_link(rapp, "alice@example.com", "verify").split("localhost:5000", 1)[1]
    from_place(attacker, ABROAD_BR, FIREFOX)
    assert b'name="password"' not in attacker.get(path).data  # a used link offers no form
    token = csrf_token(attacker.get("/login").get_data(as_text=True))
    r = attacker.post(path, data={"csrf_token": token, "password": PASSWORD})  # ... and a forged POST is refused
    assert r.status_code == 400
    with rapp.app_context():
        store = services().login.risk.engine.store
        from authsvc.extensions import db
        from authsvc.models import User

        uid = db.session.execute(select(User.id).where(User.email == "alice@example.com")).scalar_one()
        assert store.learned_count(str(uid)) == 1  # only the owner's confirmation
