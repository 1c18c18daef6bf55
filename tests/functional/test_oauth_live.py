"""The whole OIDC flow over real TLS with an independent client: Authlib's OAuth2Session (requests) as the relying
party, a second requests.Session as the user's browser signing in through the real /login form."""

from __future__ import annotations

import re
import secrets

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import PASSWORD, create_user
from tests.functional.oauth_helpers import register

CB = "https://rp.example/cb"
BYE = "https://rp.example/bye"


def _csrf(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _session(tls_server, cls=requests.Session, **kw):
    s = cls(**kw)
    s.trust_env = False
    s.verify = tls_server.ca_path
    return s


def test_oidc_code_flow_end_to_end_over_tls(app, tls_server):
    base = tls_server.url
    app.config["OAUTH_ISSUER"] = base  # the issuer is the public URL; here, the test server's ephemeral port
    create_user(app, email="alice@example.com")
    cid, secret = register(app, name="Live RP", redirect_uris=[CB], post_logout_redirect_uris=[BYE])

    browser = _session(tls_server)
    meta = browser.get(base + "/.well-known/openid-configuration").json()
    assert meta["issuer"] == base and meta["code_challenge_methods_supported"] == ["S256"]

    rp = _session(tls_server, OAuth2Session, client_id=cid, client_secret=secret,
                  scope="openid email offline_access", redirect_uri=CB, code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    # Browser: authorize → /login → authorize → consent → back to the RP with a code.
    r = browser.get(url, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    login_url = base + r.headers["Location"]
    page = browser.get(login_url)
    assert "form-action 'self' https://rp.example" in page.headers["Content-Security-Policy"]
    r = browser.post(login_url, data={"email": "alice@example.com", "password": PASSWORD,
                                      "csrf_token": _csrf(page.text)},
                     headers={"Referer": login_url}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/oauth2/authorize?")
    consent_url = base + r.headers["Location"]
    page = browser.get(consent_url)
    assert page.status_code == 200 and "Live RP" in page.text
    r = browser.post(consent_url, data={"csrf_token": _csrf(page.text), "decision": "allow"},
                     headers={"Referer": consent_url}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(CB + "?")
    callback = r.headers["Location"]
    assert f"iss={requests.utils.quote(base, safe='')}" in callback  # RFC 9207

    tok = rp.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert tok["token_type"].lower() == "bearer" and tok["refresh_token"] and tok["id_token"]

    # ID token verified against the published JWKS, with the allow-listed algorithm only.
    jwks = KeySet.import_key_set(browser.get(meta["jwks_uri"]).json())
    assert len(jwks.keys) >= 2  # current and next
    id_token = jwt.decode(tok["id_token"], jwks, algorithms=meta["id_token_signing_alg_values_supported"])
    assert id_token.header["kid"]
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": base}, aud={"essential": True, "value": cid},
                          exp={"essential": True}, nonce={"essential": True, "value": nonce},
                          auth_time={"essential": True}, acr={"essential": True, "value": "urn:authsvc:aal1"},
                          ).validate(id_token.claims)
    assert id_token.claims["amr"] == ["pwd"] and id_token.claims["email"] == "alice@example.com"

    info = rp.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == id_token.claims["sub"] and info["email"] == "alice@example.com"

    new = rp.refresh_token(meta["token_endpoint"])
    assert new["refresh_token"] != tok["refresh_token"] and new["access_token"] != tok["access_token"]
    assert rp.get(meta["userinfo_endpoint"]).status_code == 200

    r = rp.revoke_token(meta["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token")
    assert r.status_code == 200
    assert rp.introspect_token(meta["introspection_endpoint"], token=new["access_token"]).json() == {"active": False}
    live = rp.introspect_token(meta["introspection_endpoint"], token=new["refresh_token"]).json()
    assert live["active"] is True and live["client_id"] == cid and live["iss"] == base

    # RP-initiated logout: ends the browser's session, and with it the tokens issued from it.
    r = browser.get(meta["end_session_endpoint"], params={"id_token_hint": tok["id_token"],
                                                          "post_logout_redirect_uri": BYE, "state": "bye1"},
                    allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == BYE + "?state=bye1"
    assert rp.introspect_token(meta["introspection_endpoint"], token=new["refresh_token"]).json() == {"active": False}
    assert browser.get(base + "/account", allow_redirects=False).status_code == 302  # signed out


def test_logout_with_unregistered_post_logout_uri_does_not_redirect(app, tls_server):
    base = tls_server.url
    app.config["OAUTH_ISSUER"] = base
    register(app, name="RP", redirect_uris=[CB], post_logout_redirect_uris=[BYE])
    browser = _session(tls_server)
    r = browser.get(base + "/oauth2/logout", params={"post_logout_redirect_uri": "https://evil.example/"},
                    allow_redirects=False)
    assert r.status_code == 200 and "evil.example" not in r.headers.get("Location", "")
    r = browser.get(base + "/oauth2/logout", params={"id_token_hint": "not.a.jwt"}, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers
    assert create_s256_code_challenge("x" * 43)  # the helper the RP uses exists (S256)
