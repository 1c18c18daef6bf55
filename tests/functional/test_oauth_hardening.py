"""Issue #12 (OAuth): hostile redirect URIs, grants that outlive their session, scope widening at refresh,
client-supplied freshness markers, device user-code guessing, forced password change, and bad input that used to
answer 500. Real Redis and SQL throughout; every attack goes through the real endpoints."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest

from authsvc.oauth.clients import ClientError
from tests.conftest import csrf_token
from tests.functional.oauth_helpers import (REDIRECT, authorize, basic, get_code, pkce, query, redeem, register,
                                            signed_in, token)

LOOPBACK = "http://127.0.0.1:8000/callback"

# (1) Redirect URIs a public loopback client must never be sent to: the code must not leave for a foreign host.
HOSTILE = [
    "http://127.0.0.1:8000@evil.example/callback",
    "http://127.0.0.1@evil.example:8000/callback",
    "http://user:pw@127.0.0.1:8000/callback",
    "http://127.0.0.1:8000\\@evil.example/callback",
    "http://127.0.0.1:8000\\evil.example/callback",
    "http://127.0.0.1:8000%40evil.example/callback",
    "http://127.0.0.1%40evil.example:8000/callback",
    "http://[::1]:8000@evil.example/callback",
    "http://[::1]@evil.example/callback",
    "http://localhost.evil:8000/callback",
    "http://localhost:8000/callback",
    "http://127.0.0.1.evil.example:8000/callback",
    "http://127.0.0.1.evil.example/callback",
    "http://127.0.0.1:8000/callback#frag",
    "http://127.0.0.1:8000/callback#@evil.example",
    "http://127.0.0.1:8000/callback\t",
    "http://127.0.0.1:8000/call\tback",
    "http://127.0.0.1:8000/callback\r\nLocation: https://evil.example/",
    "http://127.0.0.1:8000/callback\n",
    " http://127.0.0.1:8000/callback",
    "http://127.0.0.1:8000/callback ",
    "HTTP://127.0.0.1:8000/callback",
    "http://127.0.0.1:8000/CALLBACK",
    "hTTp://evil.example/callback",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.1:-1/callback",
    "http://127.0.0.1:0/callback",
    "http://127.0.0.1:/callback",
    "http://127.0.0.1:08000/callback",
    "http://127.0.0.1:8000:9000/callback",
    "http://127.0.0.1:8000/callback/../../evil",
    "http://127.0.0.1:8000/call\"back",
    "http://127.0.0.1:8000/callback?x=1",
    "https://127.0.0.1:8000@evil.example/callback",
    "//evil.example/callback",
    "http:/\\evil.example/callback",
    "http://evil.example/callback",
    "http://127.0.0.1:8000／callback",
]


def _assert_code_stays_home(r, uri):
    """No redirect to anywhere but the registered loopback host; a clear 400 page instead (RFC 6749 §4.1.2.1)."""
    assert r.status_code == 400, (uri, r.status_code, r.location)
    assert r.location is None, (uri, r.location)
    assert b"code=" not in r.data
    assert "text/html" in r.headers["Content-Type"]


@pytest.mark.parametrize("uri", HOSTILE)
def test_hostile_loopback_redirect_uris_never_receive_the_code(app, client, uri):
    cid, _ = register(app, client_type="public", redirect_uris=[LOOPBACK, "http://[::1]:8000/callback"])
    signed_in(app, client)
    _, challenge = pkce()
    _assert_code_stays_home(authorize(client, cid, redirect_uri=uri, challenge=challenge), uri)


def test_loopback_port_still_varies_and_ipv6_loopback_works(app, client):
    cid, _ = register(app, client_type="public", redirect_uris=[LOOPBACK, "http://[::1]:8000/callback"])
    signed_in(app, client)
    for uri in ("http://127.0.0.1:8000/callback", "http://127.0.0.1:53111/callback", "http://127.0.0.1/callback",
                "http://[::1]:40000/callback"):
        _, challenge = pkce()
        r = authorize(client, cid, redirect_uri=uri, challenge=challenge)
        assert r.status_code == 302, (uri, r.get_data(as_text=True)[:300])
        parts = urlsplit(r.location)
        assert parts.hostname in ("127.0.0.1", "::1") and parts.username is None and "code" in query(r.location)


def test_userinfo_redirect_attack_end_to_end_code_never_reaches_attacker(app, client):
    """The reported attack: the victim follows the attacker's authorize link; the code must not go to evil.example,
    so the attacker has nothing to redeem with their own PKCE verifier."""
    cid, _ = register(app, client_type="public", redirect_uris=[LOOPBACK])
    signed_in(app, client)
    verifier, challenge = pkce()
    evil = "http://127.0.0.1:8000@evil.example/callback"
    r = authorize(client, cid, redirect_uri=evil, challenge=challenge)
    _assert_code_stays_home(r, evil)
    # The consent page must not be shown for it either (its form-action would name the foreign origin).
    r = client.get("/oauth2/authorize", query_string={"response_type": "code", "client_id": cid, "redirect_uri": evil,
                                                      "scope": "openid", "code_challenge": challenge,
                                                      "code_challenge_method": "S256"})
    assert r.status_code == 400 and "evil.example" not in r.headers.get("Content-Security-Policy", "")


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:8000@evil.example/callback", "https://user@rp.example/cb", "https://rp.example@evil.example/cb",
    "http://127.0.0.1:8000\\@evil.example/cb", "http://127.0.0.1:8000%40evil.example/cb", "https://rp.example/c b",
    "https://rp.example/cb\t", "https://rp.example/cb\n", "http://localhost.evil/cb", "http://127.0.0.1.evil.example/cb",
    "http://127.0.0.1:99999/cb", "https://rp.example:99999/cb", "https://rp.example/cb#x", "HTTP://127.0.0.1/cb",
    "https:///cb", "http://[::1]@evil.example/cb", "com.example.app://user@evil.example/cb",
])
def test_registration_refuses_hostile_redirect_uris(app, uri):
    with pytest.raises(ClientError) as exc:
        register(app, client_type="public", redirect_uris=[uri])
    assert exc.value.field == "redirect_uri"


def test_registration_accepts_the_documented_forms(app):
    for uri in ("https://rp.example/cb", "https://rp.example:8443/cb?x=1", "http://127.0.0.1/cb",
                "http://127.0.0.1:8000/cb", "http://[::1]:8000/cb", "com.example.app:/oauth2redirect"):
        register(app, client_type="public", redirect_uris=[uri])


def test_authlib_client_refused_for_userinfo_redirect(app, live_server):
    """A real OAuth client library (Authlib's OAuth2Session) builds the hostile authorize URL; the server answers 400
    and does not redirect."""
    import requests
    from authlib.integrations.requests_client import OAuth2Session

    cid, _ = register(app, client_type="public", redirect_uris=[LOOPBACK])
    verifier, _ = pkce()
    sess = OAuth2Session(cid, redirect_uri="http://127.0.0.1:8000@evil.example/callback", scope="openid",
                         code_challenge_method="S256")
    url, _state = sess.create_authorization_url(live_server.url + "/oauth2/authorize", code_verifier=verifier)
    r = requests.get(url, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers


# (8) Bad input: a clear 4xx, never 500.
@pytest.mark.parametrize("field,value", [
    ("redirect_uri", "http://127.0.0.1:8000/cb\\x"), ("redirect_uri", 'http://127.0.0.1:8000/c"b'),
    ("redirect_uri", "http://127.0.0.1:8000/cb\t"), ("redirect_uri", "http://127.0.0.1:8000%40evil.example/cb"),
    ("response_type", "co\\de"), ("response_type", 'co"de'), ("response_type", "code\t"),
    ("response_type", "code\x00"), ("scope", 'openid "x'), ("state", 's"\\t\t'), ("client_id", 'a"b\\'),
])
def test_authorize_bad_characters_answer_400_not_500(app, client, field, value):
    cid, _ = register(app, client_type="public", redirect_uris=["http://127.0.0.1:8000/cb"])
    signed_in(app, client)
    _, challenge = pkce()
    params = {"response_type": "code", "client_id": cid, "redirect_uri": "http://127.0.0.1:8000/cb", "scope": "openid",
              "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", field: value}
    r = client.get("/oauth2/authorize", query_string=params)
    assert r.status_code < 500, r.status_code
    if field in ("redirect_uri", "response_type"):
        assert r.status_code == 400 and r.location is None, (r.status_code, r.location)
    if r.status_code == 302:  # only to the registered URI, with an error
        assert r.location.startswith("http://127.0.0.1:8000/cb?") and "error=" in r.location
    assert r.headers.get("X-Content-Type-Options") == "nosniff"


BAD_BASIC = [
    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "Basic " + base64.b64encode(b"abc:\xff").decode(),
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic ",
    "Basic " + base64.b64encode(b"abc:secret").decode()[:-2],
]
ENDPOINTS = {
    "/oauth2/token": {"grant_type": "refresh_token", "refresh_token": "0" * 32 + ".x"},
    "/oauth2/introspect": {"token": "x"},
    "/oauth2/revoke": {"token": "x"},
    "/oauth2/device_authorization": {"scope": "openid"},
}


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
@pytest.mark.parametrize("header", BAD_BASIC, ids=range(len(BAD_BASIC)))
def test_malformed_basic_credentials_answer_401_invalid_client(app, client, path, header):
    cid, _ = register(app, client_type="public", redirect_uris=[REDIRECT],
                      grant_types=["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"])
    r = client.post(path, data={**ENDPOINTS[path], "client_id": cid}, headers={"Authorization": header})
    assert r.status_code == 401, (r.status_code, r.data[:200])
    assert r.json["error"] == "invalid_client"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in r.headers
    # The grant-type form too (authorization_code goes to Authlib, not the lean path).
    if path == "/oauth2/token":
        r = client.post(path, data={"grant_type": "authorization_code", "code": "x", "code_verifier": "y" * 43,
                                    "redirect_uri": REDIRECT}, headers={"Authorization": header})
        assert r.status_code == 401 and r.json["error"] == "invalid_client"


def test_malformed_basic_through_live_server_fast_path(app, live_server):
    """Over a real socket, through the lean WSGI path: JSON 401 with the security headers, never a raw 500."""
    import requests

    header = "Basic " + base64.b64encode(b"\xff\xfe:x").decode()
    for path, data in ENDPOINTS.items():
        r = requests.post(live_server.url + path, data=data, headers={"Authorization": header})
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert r.json()["error"] == "invalid_client"
        assert r.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in r.headers
        assert r.headers["Cache-Control"] == "no-store"


# (2) A code or a device approval dies with the login session that minted it.
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def _end_session(app, client, how):
    """End alice's browser session: logout, sign out everywhere, or "this wasn't me" (from the e-mail link)."""
    page = client.get("/account")
    tok = csrf_token(page.get_data(as_text=True))
    if how == "logout":
        r = client.post("/logout", data={"csrf_token": tok})
    elif how == "everywhere":
        r = client.post("/account/sessions/revoke-all", data={"csrf_token": tok})
    else:
        from authsvc.extensions import db
        from authsvc.models import User
        from authsvc.services import services

        with app.app_context():
            uid = db.session.execute(db.select(User.id).where(User.email == "alice@example.com")).scalar_one()
            link = services().tokens.issue("notme", uid, 3600)
        other = app.test_client()  # the owner clicks the link in the e-mail, maybe on another device
        page = other.get(f"/not-me/{link}")
        r = other.post(f"/not-me/{link}", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]


@pytest.mark.parametrize("how", ["logout", "everywhere", "not_me"])
def test_unredeemed_code_dies_with_its_session(app, client, how):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid email offline_access")
    _end_session(app, client, how)
    r = redeem(app.test_client(), cid, secret, code, verifier)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant", r.json
    assert "refresh_token" not in r.json and "access_token" not in r.json


def _approved_device_code(app, client, cid):
    tv = app.test_client()
    d = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": "openid offline_access"}).json
    page = client.get("/device?user_code=" + d["user_code"])
    tok = csrf_token(page.get_data(as_text=True))
    done = client.post("/device", data={"csrf_token": tok, "user_code": d["user_code"], "decision": "allow"})
    assert b"Device connected" in done.data
    return tv, {"grant_type": DEVICE, "device_code": d["device_code"], "client_id": cid}


@pytest.mark.parametrize("how", ["logout", "everywhere", "not_me"])
def test_unredeemed_device_approval_dies_with_its_session(app, client, how):
    cid, _ = register(app, client_type="public", redirect_uris=[], grant_types=[DEVICE, "refresh_token"])
    signed_in(app, client)
    tv, poll = _approved_device_code(app, client, cid)
    _end_session(app, client, how)
    r = tv.post("/oauth2/token", data=poll)
    assert r.status_code == 400 and r.json["error"] in ("access_denied", "invalid_grant"), r.json
    assert "access_token" not in r.json


def test_device_approval_still_works_while_the_session_lives(app, client):
    cid, _ = register(app, client_type="public", redirect_uris=[], grant_types=[DEVICE, "refresh_token"])
    signed_in(app, client)
    tv, poll = _approved_device_code(app, client, cid)
    r = tv.post("/oauth2/token", data=poll)
    assert r.status_code == 200 and r.json["refresh_token"], r.json


@pytest.mark.parametrize("how", ["logout", "everywhere", "not_me"])
def test_refresh_family_of_a_session_stops_when_the_session_ends(app, client, how):
    """Refresh families are tied to their login session by design (the session-revocation listener): keep it so."""
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid email offline_access")
    r = redeem(client, cid, secret, code, verifier)
    assert r.status_code == 200
    _end_session(app, client, how)
    r = token(app.test_client(), {"grant_type": "refresh_token", "refresh_token": r.json["refresh_token"]},
              auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"


def test_grant_created_while_its_session_is_revoked_is_revoked(app, client):
    """The race: the session ends between the code check and the grant's creation (the revocation listener found no
    grant yet). The grant is re-checked once written and revoked; no token is handed out."""
    from authsvc.oauth.provider import OAuthProvider

    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid offline_access")
    original = OAuthProvider.session_live
    calls = []

    def live_then_revoked(self, user_id, sid):
        calls.append(sid)
        if len(calls) == 1:
            return original(self, user_id, sid)
        from authsvc.models import User
        from authsvc.services import services

        services().sessions.revoke(self.db.session.get(User, int(user_id)), sid, "logout")
        return original(self, user_id, sid)

    OAuthProvider.session_live = live_then_revoked
    try:
        r = redeem(app.test_client(), cid, secret, code, verifier)
    finally:
        OAuthProvider.session_live = original
    assert len(calls) == 2
    assert r.status_code == 400 and r.json["error"] == "invalid_grant", r.json
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant

    with app.app_context():
        grants = db.session.execute(db.select(OAuthGrant).where(OAuthGrant.client_id == cid)).scalars().all()
        assert grants and all(g.revoked_at is not None for g in grants)


# (6a) A refresh asking for more scope than granted is refused as invalid_scope, not treated as theft.
def _fresh_family(app, client, **reg):
    cid, secret = register(app, **reg)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid email")
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT}
    r = token(client, {**data, "client_id": cid}) if secret is None else token(client, data, auth=(cid, secret))
    assert r.status_code == 200 and r.json["refresh_token"], r.json
    return cid, secret, r.json["refresh_token"]


def _refresh(client, cid, secret, rt, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": rt, **extra}
    if secret is None:
        return client.post("/oauth2/token", data={**data, "client_id": cid})
    return client.post("/oauth2/token", data=data, headers=basic(cid, secret))


@pytest.mark.parametrize("kind", ["confidential", "public"])
@pytest.mark.parametrize("flask_only", [False, True], ids=["as-deployed", "flask-only"])
def test_refresh_with_wider_scope_is_invalid_scope_and_keeps_the_token(app, client, kind, flask_only):
    from tests.functional.test_oauth_fastpath import _flask_only

    cid, secret, rt = _fresh_family(app, client, client_type=kind)
    c = _flask_only(app) if flask_only else client
    r = _refresh(c, cid, secret, rt, scope="openid email profile")
    assert r.status_code == 400 and r.json["error"] == "invalid_scope", r.json
    r = _refresh(c, cid, secret, rt, scope="openid email offline_access")
    assert r.status_code == 400 and r.json["error"] == "invalid_scope", r.json
    # The same token still works: nothing was rotated, nothing revoked as "theft".
    r = _refresh(c, cid, secret, rt, scope="openid")
    assert r.status_code == 200 and r.json["scope"] == "openid", r.json
    r2 = _refresh(c, cid, secret, r.json["refresh_token"])
    assert r2.status_code == 200, r2.json
    assert not _reuse_events(app)


def test_stale_refresh_token_with_wider_scope_is_still_reuse(app, client):
    """Only the live token gets the gentle invalid_scope: a replayed (rotated) one is still caught as reuse."""
    cid, secret, rt = _fresh_family(app, client)
    r = _refresh(client, cid, secret, rt)
    assert r.status_code == 200
    r = _refresh(client, cid, secret, rt, scope="openid email profile")
    assert r.status_code == 400 and r.json["error"] == "invalid_grant", r.json
    assert _reuse_events(app)


def _reuse_events(app):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == "oauth:refresh:reuse")).all()


# (6b) The "fresh login" marker is server-side: a client cannot satisfy prompt=login / max_age by sending it.
@pytest.mark.parametrize("marker", ["0", "1", "9999999999", "abc", ""])
def test_client_supplied_reauth_marker_does_not_skip_prompt_login(app, client, marker):
    from authsvc.oauth.views import REAUTH_PARAM

    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        r = authorize(client, cid, challenge=challenge, **extra, **{REAUTH_PARAM: marker})
        assert r.status_code == 302 and r.location.startswith("/login?next="), (extra, r.location)
        assert "code=" not in r.location


def _follow_login(client, location):
    """The browser at /login?next=…: the user signs in again; follow the redirect back into /oauth2/authorize."""
    from tests.conftest import PASSWORD

    page = client.get(location)
    r = client.post(location, data={"email": "alice@example.com", "password": PASSWORD,
                                    "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302 and r.location.startswith("/oauth2/authorize?"), r.location
    return r.location


def test_prompt_login_honoured_after_a_real_login_and_marker_bound_to_user_and_client(app, client):
    from urllib.parse import parse_qs

    from authsvc.oauth.views import REAUTH_PARAM

    cid, _ = register(app)
    other_cid, _ = register(app, name="Other RP")
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, prompt="login", consent=False)
    back = _follow_login(client, r.location)
    marker = parse_qs(urlsplit(back).query)[REAUTH_PARAM][0]
    r = client.get(back)
    if r.status_code == 200:  # consent screen first time
        r = client.post(back, data={"csrf_token": csrf_token(r.get_data(as_text=True)), "decision": "allow"})
    assert r.status_code == 302 and "code=" in r.location, r.location
    # The marker is not a bearer ticket: another client's request carrying it still needs a login…
    r = authorize(client, other_cid, challenge=challenge, prompt="login", **{REAUTH_PARAM: marker})
    assert r.location.startswith("/login?next="), r.location
    # …and another user's browser carrying it too.
    bob = app.test_client()
    signed_in(app, bob, email="bob@example.com")
    r = authorize(bob, cid, challenge=challenge, prompt="login", **{REAUTH_PARAM: marker})
    assert r.location.startswith("/login?next="), r.location


# (7b) must_change_password: no code, no tokens, no API until the password is replaced.
def _force_change(app, email="alice@example.com"):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        user = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
        user.must_change_password = True
        db.session.commit()


def test_must_change_password_gets_no_code_and_comes_back_after_the_change(app, client):
    from tests.conftest import PASSWORD

    cid, secret = register(app)
    signed_in(app, client)
    _force_change(app)
    verifier, challenge = pkce()
    r = authorize(client, cid, challenge=challenge)
    assert r.status_code == 302 and r.location.startswith("/account/password?next="), r.location
    assert "code=" not in r.location
    r = authorize(client, cid, challenge=challenge, prompt="none")
    assert r.status_code == 302 and r.location.startswith(REDIRECT + "?") and "code=" not in r.location
    assert query(r.location)["error"] == "interaction_required"
    # The user changes the password and is sent back into the authorization, which now issues the code.
    page = client.get(authorize_location := authorize(client, cid, challenge=challenge).location)
    r = client.post(authorize_location, data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                              "current_password": PASSWORD,
                                              "new_password": "a new and long enough passphrase 42"})
    assert r.status_code == 302 and r.location.startswith("/oauth2/authorize?"), r.location
    back = r.location
    r = client.get(back)
    if r.status_code == 200:  # the consent screen, the first time
        r = client.post(back, data={"csrf_token": csrf_token(r.get_data(as_text=True)), "decision": "allow"})
    assert r.status_code == 302 and "code" in query(r.location), r.location
    assert redeem(client, cid, secret, query(r.location)["code"], verifier).status_code == 200


def test_code_issued_before_forced_change_is_not_redeemable(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    _force_change(app)
    r = redeem(client, cid, secret, code, verifier)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"


def test_login_with_forced_change_keeps_the_authorization_to_resume(app, client):
    from tests.conftest import create_user

    cid, _ = register(app)
    create_user(app, email="alice@example.com")
    _force_change(app)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge)
    assert r.location.startswith("/login?next=")
    page = client.get(r.location)
    from tests.conftest import PASSWORD

    r = client.post(r.location, data={"email": "alice@example.com", "password": PASSWORD,
                                      "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302 and r.location.startswith("/account/password?next=/oauth2/authorize?"), r.location


def _api_login(client):
    from tests.conftest import PASSWORD

    r = client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.json
    return {"Authorization": "Bearer " + r.json["session_token"]}


def test_api_refuses_everything_but_password_change_and_logout_when_change_is_forced(app, client):
    from tests.conftest import PASSWORD, create_user

    create_user(app, email="alice@example.com")
    auth = _api_login(client)
    assert client.get("/api/v1/sessions", headers=auth).status_code == 200
    _force_change(app)
    for method, path, body in (("get", "/api/v1/sessions", None), ("get", "/api/v1/me/export", None),
                               ("get", "/api/v1/session", None), ("delete", "/api/v1/me", {"password": PASSWORD})):
        r = getattr(client, method)(path, headers=auth, json=body)
        assert r.status_code == 403, (path, r.status_code)
        assert r.json["error"] == "password_change_required", (path, r.json)
        assert r.headers["Content-Type"].startswith("application/json")
    r = client.post("/api/v1/password/change", headers=auth,
                    json={"current_password": PASSWORD, "new_password": "a new and long enough passphrase 42"})
    assert r.status_code == 200, r.json
    auth = {"Authorization": "Bearer " + r.json["session_token"]}
    assert client.get("/api/v1/sessions", headers=auth).status_code == 200
    assert client.get("/api/v1/session", headers=auth).status_code == 200


def test_api_logout_still_works_when_change_is_forced(app, client):
    from tests.conftest import create_user

    create_user(app, email="alice@example.com")
    auth = _api_login(client)
    _force_change(app)
    assert client.post("/api/v1/logout", headers=auth).status_code == 204
    assert client.get("/api/v1/sessions", headers=auth).status_code == 401


# (7a) Device user-code guessing is limited per user and per network client, not only per login session.
def _guess(client, n):
    """n wrong user codes from this browser; returns the status codes."""
    page = client.get("/device")
    tok = csrf_token(page.get_data(as_text=True))
    return [client.post("/device", data={"csrf_token": tok, "user_code": f"BCDF-GHJ{'KLMNPQRSTVWXZ'[i % 13]}"}
                        ).status_code for i in range(n)]


def _start_of_a_minute(app):
    """The quotas count per clock minute: start right after a boundary so the test never straddles one."""
    from authsvc.services import services

    with app.app_context():
        clock = services().clock
        clock.advance(60 - clock.timestamp() % 60 + 0.5)


def test_device_code_guessing_limited_per_user_across_rotated_sessions(app):
    _start_of_a_minute(app)
    seen = []
    for i in range(4):  # a fresh login (a new session) every 9 guesses: under the per-session cap each time
        browser = app.test_client()
        signed_in(app, browser) if i == 0 else _relogin(browser)
        seen += _guess(browser, 9)
    assert seen[:9] == [400] * 9  # wrong codes are answered as such
    assert 429 in seen, seen
    assert seen.index(429) <= 20, seen


def test_device_code_guessing_limited_per_network_client_across_users(app):
    _start_of_a_minute(app)
    seen = []
    for i in range(5):  # five accounts, one session each, 9 guesses each: under the per-session and per-user caps
        browser = app.test_client()
        signed_in(app, browser, email=f"guesser{i}@example.com")
        seen += _guess(browser, 9)
    assert 429 in seen, seen
    assert seen.index(429) <= 30, seen


def _relogin(browser):
    from tests.functional.helpers import login

    assert login(browser).status_code == 302
