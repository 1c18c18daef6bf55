"""Continuous risk for refresh tokens (issue 13): a public client's refresh family remembers the network it was born
on (the request that redeemed the code or device code), and every refresh — and every introspection where the
resource server forwards the end user's address — is scored against it with authsvc.risk.drift.

Attacks first, from the thief's side (a stolen refresh token used from abroad; one used from another provider minutes
after a code redeemed on a phishing proxy's hosting network), then the owner's ordinary moves, which must not be
refused. Refresh cases run twice: through the app as deployed (the lean WSGI path first) and through Flask + Authlib
alone. Real SQL and Redis; the IP→ASN table is a small CSV in the product's format, and countries come from a small
map wrapped around the real resolver (the test has no country database)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.functional.oauth_helpers import basic, get_code, register, signed_in, token
from tests.functional.test_oauth_fastpath import _flask_only

from tests.functional.netplaces import (ABROAD, HOME, HOME2, OFFICE, PROXY, from_place,  # noqa: F401
                                        networked_app, with_countries)

API = "https://api.example"
DRIFTED = "another network"


@pytest.fixture
def rapp(make_app, tmp_path):
    app = networked_app(make_app, tmp_path)
    assert app.extensions["authsvc.oauth"].token_drift
    return with_countries(app, record_calls=True)


def _from(client, ip):
    return from_place(client, ip)


def _family(app, ip=HOME, client_type="public", **reg):
    """(client_id, secret, token response) of a family whose code was redeemed from ``ip``."""
    cid, secret = register(app, client_type=client_type, **reg)
    browser = _from(app.test_client(), ip)
    signed_in(app, browser)
    code, verifier = get_code(browser, cid, scope="openid email offline_access")
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": "https://rp.example/cb"}
    r = token(browser, {**data, "client_id": cid}) if secret is None else token(browser, data, auth=(cid, secret))
    assert r.status_code == 200, r.json
    return cid, secret, r.json


def _refresh(c, cid, secret, rt):
    data = {"grant_type": "refresh_token", "refresh_token": rt}
    if secret is None:
        return c.post("/oauth2/token", data={**data, "client_id": cid})
    return c.post("/oauth2/token", data=data, headers=basic(cid, secret))


def _caller(app, path, ip):
    """A test client for the refresh, from ``ip``: the app as deployed, or Flask + Authlib alone."""
    c = app.test_client() if path == "deployed" else _flask_only(app)
    return _From(c, ip)


class _From:
    def __init__(self, c, ip):
        self.c, self.ip = c, ip

    def post(self, *args, **kw):
        return self.c.post(*args, environ_base={"HTTP_X_FORWARDED_FOR": self.ip, "REMOTE_ADDR": "127.0.0.1"}, **kw)


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars())


def _grant(app, rt):
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant

    with app.app_context():
        return db.session.get(OAuthGrant, rt.partition(".")[0])


def _mails(app):
    with app.app_context():
        return [m for m in app.extensions["authsvc"].outbox.messages(to="alice@example.com")
                if "signed Test RP out" in m.subject]


def _userinfo(app, at):
    return app.test_client().get("/oauth2/userinfo", headers={"Authorization": "Bearer " + at}).status_code


def _assert_dead(app, cid, secret, t):
    assert _refresh(_caller(app, "deployed", HOME), cid, secret, t["refresh_token"]).status_code == 400
    assert _userinfo(app, t["access_token"]) == 401
    g = _grant(app, t["refresh_token"])
    assert g.revoked_at is not None and g.revoke_reason.startswith("drift_")


PATHS = ["deployed", "flask"]


# --- attacks -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_stolen_refresh_token_used_from_another_country_is_refused_and_the_family_dies(rapp, path):
    cid, secret, t = _family(rapp, HOME)
    r = _refresh(_caller(rapp, path, ABROAD), cid, secret, t["refresh_token"])
    assert r.status_code == 400 and r.json["error"] == "invalid_grant", r.json
    assert DRIFTED in r.json["error_description"]
    _assert_dead(rapp, cid, secret, t)  # the owner's copy is dead too: the family is gone, its access token with it
    ev = _events(rapp, "oauth:refresh:drift")
    assert len(ev) == 1 and ev[0].ip == ABROAD
    details = json.loads(ev[0].details)
    assert details["reasons"] == ["new_country"] and details["action"] == "reauth"
    assert "DE" in ev[0].reason and "BR" in ev[0].reason
    mails = _mails(rapp)
    assert len(mails) == 1 and "/not-me/" in mails[0].body and ABROAD in mails[0].body


@pytest.mark.parametrize("path", PATHS)
def test_stolen_refresh_token_from_another_provider_minutes_after_a_code_redeemed_on_a_hosting_network(rapp, path):
    cid, secret, t = _family(rapp, PROXY)  # the phishing proxy (a cloud host) redeemed the code
    rapp.extensions["authsvc"].clock.advance(5 * 60)
    r = _refresh(_caller(rapp, path, OFFICE), cid, secret, t["refresh_token"])
    assert r.status_code == 400 and r.json["error"] == "invalid_grant", r.json
    _assert_dead(rapp, cid, secret, t)
    ev = _events(rapp, "oauth:refresh:drift")
    assert len(ev) == 1 and json.loads(ev[0].details)["reasons"] == ["new_network_soon"]
    assert len(_mails(rapp)) == 1


# --- the owner ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_owner_refreshes_from_the_same_network_another_address_of_the_provider_and_hours_later_the_office(rapp, path):
    cid, secret, t = _family(rapp, HOME)
    rapp.geo_calls.clear()
    r = _refresh(_caller(rapp, path, HOME), cid, secret, t["refresh_token"])
    assert r.status_code == 200, r.json
    assert rapp.geo_calls == []  # the birth network: no geo lookup at all
    r = _refresh(_caller(rapp, path, HOME2), cid, secret, r.json["refresh_token"])  # same provider, other /24
    assert r.status_code == 200, r.json
    rapp.extensions["authsvc"].clock.advance(3 * 3600)
    r = _refresh(_caller(rapp, path, OFFICE), cid, secret, r.json["refresh_token"])  # other provider, same country
    assert r.status_code == 200, r.json
    assert _userinfo(rapp, r.json["access_token"]) == 200
    assert _events(rapp, "oauth:refresh:drift") == [] and _mails(rapp) == []


def test_owner_moving_between_home_and_office_minutes_after_sign_in_is_not_refused(rapp):
    """A new provider within the AiTM window is only suspicious with a hosting network on either side."""
    cid, secret, t = _family(rapp, HOME)
    rapp.extensions["authsvc"].clock.advance(2 * 60)
    assert _refresh(_caller(rapp, "deployed", OFFICE), cid, secret, t["refresh_token"]).status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_confidential_client_refresh_is_not_scored(rapp, path):
    """Its refreshes come from the RP's server: the address says nothing about the user, so no birth is kept."""
    cid, secret, t = _family(rapp, HOME, client_type="confidential")
    assert _grant(rapp, t["refresh_token"]).birth is None
    r = _refresh(_caller(rapp, path, ABROAD), cid, secret, t["refresh_token"])
    assert r.status_code == 200, r.json
    assert _events(rapp, "oauth:refresh:drift") == []


def test_birth_is_stored_in_sql_and_the_twin_and_survives_a_lost_twin(rapp):
    from authsvc.extensions import get_redis

    cid, secret, t = _family(rapp, HOME)
    gid = t["refresh_token"].partition(".")[0]
    g = _grant(rapp, t["refresh_token"])
    assert g.birth.startswith("1|198.51.100.0/24|AS3320|DE|") and g.birth.endswith("|")
    with rapp.app_context():
        assert get_redis().hget(f"oauth:grant:{{{gid}}}", "bx") == g.birth
        get_redis().delete(f"oauth:grant:{{{gid}}}")  # Redis lost the twin: the rotation rebuilds it from SQL
    r = _refresh(_caller(rapp, "deployed", HOME), cid, secret, t["refresh_token"])
    assert r.status_code == 200
    with rapp.app_context():
        assert get_redis().hget(f"oauth:grant:{{{gid}}}", "bx") == g.birth
    r = _refresh(_caller(rapp, "deployed", ABROAD), cid, secret, r.json["refresh_token"])
    assert r.status_code == 400 and DRIFTED in r.json["error_description"]


def test_device_code_family_remembers_the_device_network(rapp):
    from authsvc.extensions import get_redis
    from authsvc.oauth.clients import DEVICE_GRANT

    cid, _ = register(rapp, client_type="public", redirect_uris=[], grant_types=[DEVICE_GRANT, "refresh_token"])
    tv = _from(rapp.test_client(), HOME)
    d = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": "openid offline_access"}).json
    phone = _from(rapp.test_client(), OFFICE)  # the user approves on another device: the TV's network counts
    signed_in(rapp, phone)
    from tests.conftest import csrf_token

    page = phone.get("/device?user_code=" + d["user_code"])
    tok = csrf_token(page.get_data(as_text=True))
    done = phone.post("/device", data={"csrf_token": tok, "user_code": d["user_code"], "decision": "allow"})
    assert b"Device connected" in done.data
    with rapp.app_context():
        for k in get_redis().scan_iter("oauth:devpoll:*"):
            get_redis().delete(k)
    r = tv.post("/oauth2/token", data={"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": cid})
    assert r.status_code == 200, r.json
    assert _grant(rapp, r.json["refresh_token"]).birth.startswith("1|198.51.100.0/24|")
    assert _refresh(_caller(rapp, "deployed", HOME), cid, None, r.json["refresh_token"]).status_code == 200


# --- introspection where the resource server forwards the end user's context ------------------------------------------
def _introspect(c, rs, at, **fwd):
    return c.post("/oauth2/introspect", data={"token": at, **fwd}, headers=basic(*rs))


@pytest.mark.parametrize("path", PATHS)
def test_introspection_with_forwarded_context_scores_the_family(rapp, path):
    rs = register(rapp, name="API", redirect_uris=[], grant_types=["client_credentials"], resource=API)
    cid, secret, t = _family(rapp, HOME, audiences=[API])
    c = rapp.test_client() if path == "deployed" else _flask_only(rapp)
    # without the parameters nothing changes, wherever the RS itself calls from
    assert _introspect(c, rs, t["access_token"]).json["active"] is True
    # the owner at home, then at the office hours later: active
    assert _introspect(c, rs, t["access_token"], authsvc_client_ip=HOME, authsvc_user_agent="App/1").json["active"]
    # the access token replayed from abroad: inactive, and the whole family revoked
    r = _introspect(c, rs, t["access_token"], authsvc_client_ip=ABROAD, authsvc_user_agent="curl/8")
    assert r.status_code == 200 and r.json == {"active": False}
    assert _introspect(c, rs, t["access_token"]).json == {"active": False}
    _assert_dead(rapp, cid, secret, t)
    ev = _events(rapp, "oauth:introspect:drift")
    assert len(ev) == 1 and ev[0].ip == ABROAD and ev[0].user_agent == "curl/8"
    assert json.loads(ev[0].details)["reasons"] == ["new_country"]
    assert len(_mails(rapp)) == 1


def test_introspection_forwarded_garbage_or_confidential_family_changes_nothing(rapp):
    rs = register(rapp, name="API", redirect_uris=[], grant_types=["client_credentials"], resource=API)
    _, _, pub = _family(rapp, HOME, audiences=[API])
    _, _, conf = _family(rapp, HOME, client_type="confidential", audiences=[API])
    c = rapp.test_client()
    assert _introspect(c, rs, pub["access_token"], authsvc_client_ip="not an address").json["active"] is True
    assert _introspect(c, rs, conf["access_token"], authsvc_client_ip=ABROAD).json["active"] is True
    assert _events(rapp, "oauth:introspect:drift") == []


def test_introspection_answered_by_authlibs_endpoint_scores_forwarded_context_too(rapp):
    """A resource server not in the client cache yet is answered by Authlib's endpoint (the same hooks)."""
    from authsvc.extensions import get_redis

    rs = register(rapp, name="API", redirect_uris=[], grant_types=["client_credentials"], resource=API)
    cid, secret, t = _family(rapp, HOME, audiences=[API])
    provider = rapp.extensions["authsvc.oauth"]
    with rapp.app_context():
        get_redis().delete(provider.clients.cache_key(rs[0]))
    r = _introspect(_flask_only(rapp), rs, t["access_token"], authsvc_client_ip=ABROAD)
    assert r.status_code == 200 and r.json == {"active": False}
    _assert_dead(rapp, cid, secret, t)
    assert len(_events(rapp, "oauth:introspect:drift")) == 1
