"""Device-code phishing (Storm-2372 and later campaigns): the attacker starts a device flow on their own machine and
sends the user code to the victim, who approves it at home; the attacker's machine then redeems it.

Attacks first: the device grant for clients not registered for it, a code started abroad approved at home (the page
must say where the request came from and warn), the redemption from the attacker's network (risk-scored like a login),
and a locked or must-reset account through every grant. Real SQL and Redis; the IP→ASN table is a small CSV in the
product's format and countries come from a small map around the real resolver (as in test_refresh_drift.py)."""

from __future__ import annotations


import pytest

from tests.conftest import csrf_token
from tests.functional.oauth_helpers import basic, code_tokens, get_code, redeem, register, signed_in, token

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
from tests.functional.netplaces import ABROAD, HOME, HOSTING, from_place, networked_app, with_countries


@pytest.fixture
def papp(make_app, tmp_path):
    return with_countries(networked_app(make_app, tmp_path))


def _from(client, ip):
    return from_place(client, ip, "Mozilla/5.0 (X11; Linux) Firefox/128")


def _device_client(app):
    cid, _ = register(app, client_type="public", name="Living-room TV", redirect_uris=[],
                      grant_types=[DEVICE, "refresh_token"])
    return cid


def _start(app, cid, ip):
    tv = _from(app.test_client(), ip)
    r = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": "openid email"})
    assert r.status_code == 200, r.json
    return tv, r.json


def _confirm_page(client, user_code):
    page = client.get("/device?user_code=" + user_code)
    return client.post("/device", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                        "user_code": user_code})


def _approve(client, user_code):
    page = client.get("/device?user_code=" + user_code)
    r = client.post("/device", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                     "user_code": user_code, "decision": "allow"})
    assert b"Device connected" in r.data
    return r


def _poll(app, tv, cid, d):
    from authsvc.extensions import get_redis

    with app.app_context():
        for k in get_redis().scan_iter("oauth:devpoll:*"):
            get_redis().delete(k)
    return tv.post("/oauth2/token", data={"grant_type": DEVICE, "device_code": d["device_code"], "client_id": cid})


# --- the device grant is off unless the client is registered for it --------------------------------------------------------
def test_device_grant_refused_for_clients_not_registered_for_it(app, client):
    cid, secret = register(app)  # code + refresh only
    r = client.post("/oauth2/device_authorization", data={"scope": "openid"}, headers=basic(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "unauthorized_client"
    r = client.post("/oauth2/token", data={"grant_type": DEVICE, "device_code": "x" * 40},
                    headers=basic(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "unauthorized_client"
    pub, _ = register(app, client_type="public", name="SPA")
    r = client.post("/oauth2/device_authorization", data={"client_id": pub, "scope": "openid"})
    assert r.status_code == 400 and r.json["error"] == "unauthorized_client"


# --- the confirmation page -----------------------------------------------------------------------------------------------
def test_confirmation_warns_when_the_request_came_from_elsewhere(papp):
    cid = _device_client(papp)
    _, d = _start(papp, cid, ABROAD)
    victim = _from(papp.test_client(), HOME)
    signed_in(papp, victim)
    page = _confirm_page(victim, d["user_code"]).get_data(as_text=True)
    assert "Living-room TV" in page and 'id="device-elsewhere"' in page
    assert "BR" in page and "Claro BR" in page and "DE" in page


def test_confirmation_without_warning_from_the_same_place(papp):
    cid = _device_client(papp)
    _, d = _start(papp, cid, HOME)
    me = _from(papp.test_client(), HOME)
    signed_in(papp, me)
    page = _confirm_page(me, d["user_code"]).get_data(as_text=True)
    assert "Living-room TV" in page and 'id="device-elsewhere"' not in page
    assert "Home ISP" in page


def test_confirmation_page_escapes_the_app_name(app, client):
    cid, _ = register(app, client_type="public", name='<script>alert(1)</script>', redirect_uris=[],
                      grant_types=[DEVICE])
    d = app.test_client().post("/oauth2/device_authorization", data={"client_id": cid}).json
    signed_in(app, client)
    page = _confirm_page(client, d["user_code"]).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


# --- the redemption is risk-scored like a login --------------------------------------------------------------------------
def test_redemption_from_the_phishers_network_is_refused(papp):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    cid = _device_client(papp)
    tv, d = _start(papp, cid, HOSTING)  # the attacker's machine
    victim = _from(papp.test_client(), HOME)
    signed_in(papp, victim)
    _approve(victim, d["user_code"])
    _from(tv, ABROAD)  # redeemed from the attacker's network, abroad
    r = _poll(papp, tv, cid, d)
    assert r.status_code == 400 and r.json["error"] == "access_denied" and "access_token" not in r.json, r.json
    with papp.app_context():
        ev = db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == "oauth:device:risk-denied")) \
            .scalars().all()
        assert len(ev) == 1


def test_redemption_at_home_is_allowed(papp):
    cid = _device_client(papp)
    tv, d = _start(papp, cid, HOME)
    me = _from(papp.test_client(), HOME)
    signed_in(papp, me)
    _approve(me, d["user_code"])
    r = _poll(papp, tv, cid, d)
    assert r.status_code == 200 and r.json["access_token"], r.json


# --- a locked or must-reset account never gets tokens, through any grant --------------------------------------------------
def _flag(app, how, email="alice@example.com"):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        u = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
        if how == "must_reset":
            u.must_change_password, u.must_change_reason = True, "breached"
        else:
            u.status = "disabled"
        db.session.commit()


@pytest.mark.parametrize("how", ["must_reset", "disabled"])
def test_no_tokens_from_a_code_once_the_account_is_flagged(app, client, how):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    _flag(app, how)
    r = redeem(app.test_client(), cid, secret, code, verifier)
    assert r.status_code == 400 and "access_token" not in r.json


@pytest.mark.parametrize("how", ["must_reset", "disabled"])
def test_no_tokens_from_a_refresh_once_the_account_is_flagged(app, client, how):
    cid, secret, body = code_tokens(app, client)
    _flag(app, how)
    r = token(app.test_client(), {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
              auth=(cid, secret))
    assert r.status_code == 400 and "access_token" not in r.json, r.json


@pytest.mark.parametrize("how", ["must_reset", "disabled"])
def test_no_tokens_from_a_device_code_once_the_account_is_flagged(app, client, how):
    cid = _device_client(app)
    tv, d = _start(app, cid, "127.0.0.1")
    signed_in(app, client)
    _approve(client, d["user_code"])
    _flag(app, how)
    r = _poll(app, tv, cid, d)
    assert r.status_code == 400 and "access_token" not in r.json, r.json


def test_client_credentials_has_no_user_to_flag(app, client):
    """The fourth grant issues tokens to the client itself (no user, no sub): nothing a user's lock could gate."""
    cid, secret = register(app, grant_types=["client_credentials"], redirect_uris=[])
    r = token(client, {"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 200
    intro = client.post("/oauth2/introspect", data={"token": r.json["access_token"]}, headers=basic(cid, secret))
    assert "sub" not in intro.json
