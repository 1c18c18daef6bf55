"""Conformance fixes of issue 14, each reproduced first as a failing request (the Flask test client plays curl).

Tests are named after the OpenID conformance suite module where one exists (``oidcc-…`` → ``test_oidcc_…``). The
attacker's cases come first in each group: a POSTed authorization request must not become a way to skip the consent
form's CSRF check, a form_post page must not post to an unregistered URI, a wrong hint must not hide a token, etc.
"""

from __future__ import annotations

import re
import secrets

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import csrf_token
from tests.functional.oauth_helpers import (REDIRECT, authorize, basic, code_tokens, get_code, pkce, query, redeem,
                                            register, signed_in, token)

ISS = "http://localhost:5000"


def _params(cid, challenge, **extra):
    p = {"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT, "scope": "openid email",
         "state": "st-" + secrets.token_hex(4), "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return {k: v for k, v in p.items() if v is not None}


def _consent_once(client, cid):
    """Approve the consent screen for ``cid`` once (through the real form), so later requests get a code."""
    code, _ = get_code(client, cid)
    return code


# --- authorization request by POST (OIDC Core §3.1.2.1: MUST support GET and POST) --------------------------------------
def test_post_authorization_request_cannot_grant_consent_without_csrf(app, client):
    """A cross-site POST carrying decision=allow but no CSRF token must not record consent or issue a code."""
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = client.post("/oauth2/authorize", data={**_params(cid, challenge), "decision": "allow"})
    assert r.status_code == 400 and r.location is None
    r = client.get("/oauth2/authorize", query_string=_params(cid, challenge))
    assert r.status_code == 200 and b"decision" in r.data  # still asks: nothing was consented


def test_post_authorization_request_with_bad_csrf_and_decision_is_refused(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = client.post("/oauth2/authorize", data={**_params(cid, challenge), "decision": "allow",
                                               "csrf_token": "forged"})
    assert r.status_code == 400 and r.location is None


def test_oidcc_ensure_post_request_succeeds(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    _consent_once(client, cid)
    verifier, challenge = pkce()
    r = client.post("/oauth2/authorize", data=_params(cid, challenge, nonce="n-1"))
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    q = query(r.location)
    assert q["iss"] == ISS and q["code"]
    t = redeem(client, cid, secret, q["code"], verifier)
    assert t.status_code == 200 and jwt.decode(t.json["id_token"], _keys(client)).claims["nonce"] == "n-1"


def test_post_authorization_request_shows_consent_that_keeps_the_parameters(app, client):
    """First visit by POST: the consent page's form must carry the request on (its action is a GET-able URL)."""
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    params = _params(cid, challenge)
    r = client.post("/oauth2/authorize", data=params)
    assert r.status_code == 200 and b"decision" in r.data
    html = r.get_data(as_text=True)
    action = re.search(r'<form[^>]*action="(/oauth2/[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "client_id=" + cid in action and "code_challenge=" + challenge in action
    r = client.post(action, data={"csrf_token": csrf_token(html), "decision": "allow"})
    assert r.status_code == 302 and "code" in query(r.location)


def test_post_authorization_request_signed_out_goes_to_login_with_the_request(app, client):
    cid, _ = register(app)
    _, challenge = pkce()
    r = client.post("/oauth2/authorize", data=_params(cid, challenge))
    # no session cookie (as for a cross-site POST under SameSite=Lax): continue as a top-level GET…
    assert r.status_code == 303 and r.location.startswith("/oauth2/authorize?") and "client_id=" + cid in r.location
    r = client.get(r.location)  # …which, still signed out, goes to the login page with the request
    assert r.status_code == 302 and "/login" in r.location and "client_id" in r.location


# --- request / request_uri (OIDC Core §6: not supported → request_not_supported / request_uri_not_supported) ----------
def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _consent_once(client, cid)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, request="eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.")
    assert r.status_code == 302 and query(r.location)["error"] == "request_not_supported"
    assert "code" not in query(r.location)


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _consent_once(client, cid)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, request_uri="https://evil.example/req.jwt")
    assert r.status_code == 302 and query(r.location)["error"] == "request_uri_not_supported"
    assert "code" not in query(r.location)


def test_request_object_with_untrusted_redirect_is_an_error_page(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, redirect_uri="https://evil.example/cb", request="x.y.z")
    assert r.status_code == 400 and r.location is None


# --- scopes --------------------------------------------------------------------------------------------------------------
def test_unknown_scope_is_ignored_not_invalid_scope(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid email x-unknown-scope")
    t = redeem(client, cid, secret, code, verifier)
    assert t.status_code == 200 and t.json["scope"].split() == ["openid", "email"]


def test_unknown_scope_never_widens_a_grant(app, client):
    """Known scopes the client is not registered for are still refused; an unknown one never shows up granted."""
    cid, _ = register(app, scopes=["openid", "email"])
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, scope="openid profile")
    assert query(r.location)["error"] == "invalid_scope"


def test_oidcc_scope_profile(app, client):
    from authsvc.extensions import db
    from authsvc.models import User

    cid, secret, body = code_tokens(app, client)
    with app.app_context():
        u = db.session.execute(db.select(User).where(User.email == "alice@example.com")).scalar_one()
        u.name, u.preferred_username = "Alice Liddell", "alice"
        db.session.commit()
    code, verifier = get_code(client, cid, scope="openid profile")
    t = redeem(client, cid, secret, code, verifier)
    assert t.status_code == 200
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + t.json["access_token"]}).json
    assert u["name"] == "Alice Liddell" and u["preferred_username"] == "alice" and "email" not in u
    idt = jwt.decode(t.json["id_token"], _keys(client)).claims
    assert idt["name"] == "Alice Liddell"
    meta = client.get("/.well-known/openid-configuration").json
    assert {"name", "preferred_username"} <= set(meta["claims_supported"])


def test_profile_claims_absent_when_unset_and_never_without_profile_scope(app, client):
    cid, secret, body = code_tokens(app, client)  # scope "openid email"
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).json
    assert "name" not in u and "preferred_username" not in u


# --- redirect_uri omitted (OIDC Core §3.1.2.1: REQUIRED for OpenID requests; RFC 6749 §3.1.2.3 otherwise) ---------------
def test_oidcc_ensure_redirect_uri_in_authorization_request(app, client):
    cid, _ = register(app)  # one registered URI: RFC 6749 alone would let it be omitted
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, redirect_uri=None)
    assert r.status_code == 400 and r.location is None  # error page, never a redirect


def test_redirect_uri_may_be_omitted_for_plain_oauth_with_one_registered_uri(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    verifier, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, redirect_uri=None, scope="email")
    assert r.status_code == 302 and r.location.startswith(REDIRECT + "?code=")
    code = query(r.location)["code"]
    t = token(client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
              auth=(cid, secret))
    assert t.status_code == 200, t.json


def test_redirect_uri_omitted_with_several_registered_uris_is_refused(app, client):
    cid, _ = register(app, redirect_uris=[REDIRECT, "https://rp.example/cb2"])
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, redirect_uri=None, scope="email")
    assert r.status_code == 400 and r.location is None


# --- token_type_hint (RFC 7009 §2.1 / RFC 7662 §2.1: a wrong hint MUST NOT hide the token) --------------------------------
def test_revoke_access_token_with_refresh_hint_still_revokes(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/revoke", data={"token": body["access_token"], "token_type_hint": "refresh_token"},
                    headers=basic(cid, secret))
    assert r.status_code == 200
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert u.status_code == 401


def test_revoke_refresh_token_with_access_hint_still_revokes(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/revoke", data={"token": body["refresh_token"], "token_type_hint": "access_token"},
                    headers=basic(cid, secret))
    assert r.status_code == 200
    t = token(client, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, auth=(cid, secret))
    assert t.status_code == 400 and t.json["error"] == "invalid_grant"


def test_introspect_with_wrong_hint_still_finds_the_token(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/introspect", data={"token": body["access_token"], "token_type_hint": "refresh_token"},
                    headers=basic(cid, secret))
    assert r.status_code == 200 and r.json["active"] is True and r.json["token_type"] == "Bearer"
    r = client.post("/oauth2/introspect", data={"token": body["refresh_token"], "token_type_hint": "access_token"},
                    headers=basic(cid, secret))
    assert r.status_code == 200 and r.json["active"] is True


def test_another_clients_token_is_not_revoked_whatever_the_hint(app, client):
    cid, secret, body = code_tokens(app, client)
    other, other_secret = register(app, name="Other RP")
    for hint in ("refresh_token", "access_token"):
        client.post("/oauth2/revoke", data={"token": body["access_token"], "token_type_hint": hint},
                    headers=basic(other, other_secret))
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert u.status_code == 200


# --- resource indicators (RFC 8707 §2: invalid_target) -----------------------------------------------------------------
def test_client_credentials_unknown_resource_is_invalid_target(app, client):
    cid, secret = register(app, grant_types=["client_credentials"], redirect_uris=[],
                           audiences=["https://api.example"])
    t = token(client, {"grant_type": "client_credentials", "resource": "https://evil.example"}, auth=(cid, secret))
    assert t.status_code == 400 and t.json["error"] == "invalid_target"
    t = token(client, {"grant_type": "client_credentials", "resource": "https://api.example"}, auth=(cid, secret))
    assert t.status_code == 200


def test_code_token_request_resource_outside_grant_is_invalid_target(app, client):
    cid, secret = register(app, audiences=["https://api.example"])
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid")
    t = token(client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                       "redirect_uri": REDIRECT, "resource": "https://evil.example"}, auth=(cid, secret))
    assert t.status_code == 400 and t.json["error"] == "invalid_target"


# --- response_mode=form_post (OAuth 2.0 Form Post Response Mode) --------------------------------------------------------
def test_form_post_never_posts_to_an_unregistered_uri(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, redirect_uri="https://evil.example/cb", response_mode="form_post")
    assert r.status_code == 400 and r.location is None  # the error page, never a form to the untrusted URI
    assert b'action="https://evil.example' not in r.data


def test_unsupported_response_mode_is_refused(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _consent_once(client, cid)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, response_mode="fragment")
    assert r.status_code == 302 and query(r.location)["error"] == "invalid_request"


def test_response_mode_form_post(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    _consent_once(client, cid)
    verifier, challenge = pkce()
    state = "st-<script>&\"x"
    r = authorize(client, cid, challenge=challenge, response_mode="form_post", state=state)
    assert r.status_code == 200 and r.location is None
    html = r.get_data(as_text=True)
    assert f'action="{REDIRECT}"' in html and 'method="post"' in html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    assert fields["iss"] == ISS and fields["state"] == "st-&lt;script&gt;&amp;&#34;x"  # escaped, never raw
    assert "<script>&" not in html
    assert "form-action" in r.headers["Content-Security-Policy"] and "https://rp.example" in \
        r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    t = redeem(client, cid, secret, fields["code"], verifier)
    assert t.status_code == 200
    meta = client.get("/.well-known/openid-configuration").json
    assert "form_post" in meta["response_modes_supported"]


def test_form_post_errors_are_posted_too(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    r = authorize(client, cid, challenge=None, response_mode="form_post")  # no PKCE → invalid_request
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and f'action="{REDIRECT}"' in html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    assert fields["error"] == "invalid_request" and fields["iss"] == ISS and "code" not in fields


# --- userinfo: access token in the POST body (RFC 6750 §2.2) ------------------------------------------------------------
def test_userinfo_body_token_must_be_form_encoded_post(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.get("/oauth2/userinfo", query_string={"access_token": body["access_token"]})  # §2.3 not supported
    assert r.status_code == 401
    r = client.post("/oauth2/userinfo", json={"access_token": body["access_token"]})
    assert r.status_code == 401


def test_userinfo_token_in_header_and_body_is_invalid_request(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/userinfo", data={"access_token": body["access_token"]},
                    headers={"Authorization": "Bearer " + body["access_token"]})
    assert r.status_code == 400 and r.json["error"] == "invalid_request"  # RFC 6750 §2: one method only


def test_userinfo_body_token_unknown_is_invalid_token(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/userinfo", data={"access_token": body["access_token"] + "x"})
    assert r.status_code == 401 and r.json["error"] == "invalid_token"


def test_oidcc_userinfo_post_body(app, client):
    cid, secret, body = code_tokens(app, client)
    r = client.post("/oauth2/userinfo", data={"access_token": body["access_token"]})
    assert r.status_code == 200 and r.json["email"] == "alice@example.com"


# --- RP-initiated logout by POST (RP-Initiated Logout 1.0 §2: MUST support GET and POST) --------------------------------
BYE = "https://rp.example/bye"


def test_post_logout_request_without_id_token_hint_still_asks_the_user(app, client):
    """A cross-site POST to the logout endpoint (no CSRF token, no valid hint) must not sign the user out silently."""
    cid, secret, body = code_tokens(app, client, post_logout_redirect_uris=[BYE])
    r = client.post("/oauth2/logout", data={"client_id": cid, "post_logout_redirect_uri": BYE})
    assert r.status_code == 200 and b"Sign out" in r.data and r.location is None
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code \
        == 200  # still signed in, tokens alive
    r = client.post("/oauth2/logout", data={"client_id": cid, "csrf_token": "forged"})
    assert r.status_code == 400


def test_post_logout_request_with_another_users_id_token_asks(app, client):
    cid, secret, body = code_tokens(app, client, post_logout_redirect_uris=[BYE])
    mallory = app.test_client()
    signed_in(app, mallory, email="mallory@example.com")
    r = mallory.post("/oauth2/logout", data={"id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE})
    assert r.status_code == 200 and b"Sign out" in r.data  # alice's hint does not sign mallory out unasked
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code \
        == 200


def test_oidcc_rp_initiated_logout_by_post(app, client):
    cid, secret, body = code_tokens(app, client, post_logout_redirect_uris=[BYE])
    r = client.post("/oauth2/logout", data={"id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE,
                                            "state": "s1"})
    assert r.status_code == 302 and r.location == BYE + "?state=s1", r.get_data(as_text=True)[:300]
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code \
        == 401


def test_post_logout_confirmation_form_still_works(app, client):
    cid, secret, body = code_tokens(app, client, post_logout_redirect_uris=[BYE])
    page = client.post("/oauth2/logout", data={"client_id": cid})
    html = page.get_data(as_text=True)
    action = re.search(r'<form[^>]*action="(/oauth2/[^"]+)"', html).group(1).replace("&amp;", "&")
    r = client.post(action, data={"csrf_token": csrf_token(html)})
    assert r.status_code == 200 and b"signed out" in r.data
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code \
        == 401


# --- device grant: an ID token for openid (OIDC Core §3.1.3.3 applies to any grant that issues one) --------------------
def _device_tokens(app, client, scope):
    from authsvc.extensions import get_redis
    from authsvc.oauth.clients import DEVICE_GRANT

    cid, _ = register(app, client_type="public", redirect_uris=[], grant_types=[DEVICE_GRANT, "refresh_token"])
    signed_in(app, client)
    tv = app.test_client()
    d = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": scope}).json
    page = client.get("/device?user_code=" + d["user_code"])
    tok = csrf_token(page.get_data(as_text=True))
    client.post("/device", data={"csrf_token": tok, "user_code": d["user_code"], "decision": "allow"})
    with app.app_context():
        for k in get_redis().scan_iter("oauth:devpoll:*"):
            get_redis().delete(k)
    r = tv.post("/oauth2/token", data={"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": cid})
    assert r.status_code == 200, r.json
    return cid, r.json


def test_device_grant_returns_id_token_for_openid(app, client):
    cid, body = _device_tokens(app, client, "openid email")
    claims = jwt.decode(body["id_token"], _keys(client)).claims
    assert claims["iss"] == ISS and claims["aud"] in ([cid], cid) and claims["sub"] and claims["auth_time"]
    assert claims["email"] == "alice@example.com" and claims["exp"] > claims["iat"]
    ui = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).json
    assert ui["sub"] == claims["sub"]


def test_device_grant_without_openid_has_no_id_token(app, client):
    cid, body = _device_tokens(app, client, "email")
    assert "id_token" not in body


# --- helpers -------------------------------------------------------------------------------------------------------------
def _keys(client):
    return KeySet.import_key_set(client.get("/oauth2/jwks").json)


def test_refresh_resource_outside_grant_is_invalid_target_and_keeps_the_token(app, client):
    cid, secret = register(app, audiences=["https://api.example"])
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid offline_access")
    body = redeem(client, cid, secret, code, verifier).json
    t = token(client, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                       "resource": "https://evil.example"}, auth=(cid, secret))
    assert t.status_code == 400 and t.json["error"] == "invalid_target"
    t = token(client, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                       "resource": "https://api.example"}, auth=(cid, secret))
    assert t.status_code == 200, t.json  # refused before the rotation: the token still works
