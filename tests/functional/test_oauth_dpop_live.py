"""DPoP over real TLS with an independent client: a public client (think SPA or mobile app) written from RFC 9449 —
``requests`` for HTTP, tests/dpop_client.py for proofs (``cryptography`` only) — that retries on ``use_dpop_nonce``
like client libraries do. The server requires nonces here, so every step also crosses the nonce dance on the wire.
A thief with a copy of the refresh and access tokens but not the private key gets nothing."""

from __future__ import annotations

import re
import secrets

import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.conftest import PASSWORD, create_user
from tests.dpop_client import DPoPKey
from tests.functional.oauth_helpers import basic, register

CB = "https://spa.example/cb"


@pytest.fixture
def app(make_app):
    return make_app(OAUTH_DPOP_REQUIRE_NONCE=1)


class DPoPClient:
    """What an RFC 9449 client does: a proof per request, ``ath`` at resources, remember the last ``DPoP-Nonce``,
    retry once on ``use_dpop_nonce``."""

    def __init__(self, session, key: DPoPKey):
        self.http = session
        self.key = key
        self.nonce = None

    def request(self, method, url, *, access_token=None, data=None, retry=True, scheme="DPoP"):
        headers = {"DPoP": self.key.proof(method, url, ath_of=access_token, nonce=self.nonce)}
        if access_token:
            headers["Authorization"] = f"{scheme} {access_token}"
        r = self.http.request(method, url, data=data, headers=headers)
        if r.headers.get("DPoP-Nonce"):
            self.nonce = r.headers["DPoP-Nonce"]
        nonce_error = (r.status_code == 400 and r.json().get("error") == "use_dpop_nonce") or (
            r.status_code == 401 and 'error="use_dpop_nonce"' in r.headers.get("WWW-Authenticate", ""))
        if nonce_error and retry:
            return self.request(method, url, access_token=access_token, data=data, retry=False, scheme=scheme)
        return r


def _csrf(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _session(tls_server):
    s = requests.Session()
    s.trust_env = False
    s.verify = tls_server.ca_path
    return s


def _code(base, browser, cid, verifier, dpop_jkt):
    params = {"response_type": "code", "client_id": cid, "redirect_uri": CB, "scope": "openid email offline_access",
              "state": secrets.token_hex(4), "code_challenge": create_s256_code_challenge(verifier),
              "code_challenge_method": "S256", "dpop_jkt": dpop_jkt}
    r = browser.get(base + "/oauth2/authorize", params=params, allow_redirects=False)
    login_url = base + r.headers["Location"]
    page = browser.get(login_url)
    r = browser.post(login_url, data={"email": "alice@example.com", "password": PASSWORD,
                                      "csrf_token": _csrf(page.text)}, headers={"Referer": login_url},
                     allow_redirects=False)
    consent_url = base + r.headers["Location"]
    page = browser.get(consent_url)
    r = browser.post(consent_url, data={"csrf_token": _csrf(page.text), "decision": "allow"},
                     headers={"Referer": consent_url}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(CB + "?"), r.text[:300]
    return requests.utils.urlparse(r.headers["Location"]).query.split("code=")[1].split("&")[0]


def test_public_client_dpop_flow_over_tls_and_a_thief_with_copied_tokens(app, tls_server):
    base = tls_server.url
    app.config["OAUTH_ISSUER"] = base
    create_user(app, email="alice@example.com")
    cid, _ = register(app, name="SPA", client_type="public", redirect_uris=[CB], dpop_bound_access_tokens=True)
    rs = register(app, name="API", redirect_uris=[], grant_types=["client_credentials"], resource=base)
    meta = _session(tls_server).get(base + "/.well-known/openid-configuration").json()
    assert "ES256" in meta["dpop_signing_alg_values_supported"]

    key, thief_key = DPoPKey.generate("ES256"), DPoPKey.generate("ES256")
    spa, thief = DPoPClient(_session(tls_server), key), DPoPClient(_session(tls_server), thief_key)
    verifier = secrets.token_urlsafe(48)
    code = _code(base, _session(tls_server), cid, verifier, key.jkt)

    # Token request: the first proof has no nonce → use_dpop_nonce + DPoP-Nonce, the client retries.
    first = spa.http.post(meta["token_endpoint"], headers={"DPoP": key.proof("POST", meta["token_endpoint"])},
                          data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                "redirect_uri": CB, "client_id": cid})
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce" and first.headers["DPoP-Nonce"]
    spa.nonce = first.headers["DPoP-Nonce"]
    tok = spa.request("POST", meta["token_endpoint"], data={"grant_type": "authorization_code", "code": code,
                                                            "code_verifier": verifier, "redirect_uri": CB,
                                                            "client_id": cid}).json()
    assert tok["token_type"] == "DPoP" and tok["refresh_token"], tok

    # Resource: DPoP scheme + proof with ath works; the same token as a bearer token, or with the thief's proof,
    # does not; a proof cannot be replayed.
    r = spa.request("GET", meta["userinfo_endpoint"], access_token=tok["access_token"])
    assert r.status_code == 200 and r.json()["email"] == "alice@example.com"
    bearer = spa.http.get(meta["userinfo_endpoint"], headers={"Authorization": "Bearer " + tok["access_token"]})
    assert bearer.status_code == 401 and bearer.headers["WWW-Authenticate"].startswith("DPoP ")
    assert thief.request("GET", meta["userinfo_endpoint"], access_token=tok["access_token"]).status_code == 401
    proof = key.proof("GET", meta["userinfo_endpoint"], ath_of=tok["access_token"], nonce=spa.nonce)
    hdrs = {"Authorization": "DPoP " + tok["access_token"], "DPoP": proof}
    assert spa.http.get(meta["userinfo_endpoint"], headers=hdrs).status_code == 200
    replay = spa.http.get(meta["userinfo_endpoint"], headers=hdrs)
    assert replay.status_code == 401 and 'error="invalid_dpop_proof"' in replay.headers["WWW-Authenticate"]

    # Introspection (the lean path) tells the resource server what the token is bound to.
    info = spa.http.post(meta["introspection_endpoint"], data={"token": tok["access_token"]}, headers=basic(*rs))
    assert info.json()["token_type"] == "DPoP" and info.json()["cnf"] == {"jkt": key.jkt}

    # Refresh: the thief's key and no key are refused without burning the family; the owner's key rotates.
    refresh = {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "client_id": cid}
    r = thief.request("POST", meta["token_endpoint"], data=refresh)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = spa.http.post(meta["token_endpoint"], data=refresh)  # no DPoP header: the WSGI fast path's refusal
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    new = spa.request("POST", meta["token_endpoint"], data=refresh)
    assert new.status_code == 200 and new.json()["token_type"] == "DPoP", new.json()
    assert spa.request("GET", meta["userinfo_endpoint"], access_token=new.json()["access_token"]).status_code == 200
