"""The shipped example relying party (examples/rp/app.py, Authlib's Flask client) signs a user in against a live
authsvc over TLS: discovery, authorize + PKCE, the real login and consent pages, the code exchange, ID-token checks
against the JWKS, userinfo claims, and RP-initiated logout. What the README tells an app developer to run, run."""

from __future__ import annotations

import importlib.util
import os
import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.conftest import PASSWORD, create_user
from tests.functional.oauth_helpers import register

RP = "http://127.0.0.1:8000"  # a native-style loopback redirect: allowed over http (RFC 8252 §7.3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _csrf(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _load_rp(monkeypatch, issuer, client_id, secret, ca_path):
    monkeypatch.setenv("AUTHSVC_ISSUER", issuer)
    monkeypatch.setenv("RP_CLIENT_ID", client_id)
    monkeypatch.setenv("RP_CLIENT_SECRET", secret)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_path)  # the RP's requests session trusts the test CA
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    spec = importlib.util.spec_from_file_location("example_rp_app", os.path.join(ROOT, "examples", "rp", "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_example_rp_signs_in_and_out_against_a_live_server(app, tls_server, monkeypatch):
    base = tls_server.url
    app.config["OAUTH_ISSUER"] = base
    create_user(app, email="alice@example.com")
    cid, secret = register(app, name="Example RP", redirect_uris=[RP + "/callback"],
                           post_logout_redirect_uris=[RP + "/"])
    rp = _load_rp(monkeypatch, base, cid, secret, tls_server.ca_path).test_client()

    browser = requests.Session()
    browser.trust_env = False
    browser.verify = tls_server.ca_path

    # The RP sends the user to authsvc with PKCE S256 and a nonce.
    r = rp.get("/login", base_url=RP)
    assert r.status_code == 302 and r.location.startswith(base + "/oauth2/authorize?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(r.location).query).items()}
    assert q["code_challenge_method"] == "S256" and q["nonce"] and q["client_id"] == cid

    # The user signs in on authsvc's pages and approves the consent screen.
    r = browser.get(r.location, allow_redirects=False)
    login_url = base + r.headers["Location"]
    page = browser.get(login_url)
    r = browser.post(login_url, data={"email": "alice@example.com", "password": PASSWORD,
                                      "csrf_token": _csrf(page.text)},
                     headers={"Referer": login_url}, allow_redirects=False)
    consent_url = base + r.headers["Location"]
    page = browser.get(consent_url)
    assert "Example RP" in page.text
    r = browser.post(consent_url, data={"csrf_token": _csrf(page.text), "decision": "allow"},
                     headers={"Referer": consent_url}, allow_redirects=False)
    callback = r.headers["Location"]
    assert callback.startswith(RP + "/callback?") and "code=" in callback

    # Back at the RP: it redeems the code over TLS and verifies the ID token (signature via JWKS, iss, aud, nonce).
    r = rp.get(callback[len(RP):], base_url=RP)
    assert r.status_code == 302 and r.location.endswith("/"), r.get_data(as_text=True)[:500]
    me = rp.get("/me", base_url=RP).json
    aud = me["aud"] if isinstance(me["aud"], list) else [me["aud"]]
    assert me["email"] == "alice@example.com" and me["iss"] == base and cid in aud and me["sub"]
    assert "Sign out" in rp.get("/", base_url=RP).get_data(as_text=True)

    # RP-initiated logout: the RP sends the user to end_session with the ID token; authsvc returns them to the RP.
    r = rp.get("/logout", base_url=RP)
    assert r.status_code == 302 and r.location.startswith(base + "/oauth2/logout?") and "id_token_hint=" in r.location
    r = browser.get(r.location, allow_redirects=False)
    if r.status_code == 200:  # a confirmation page: approve it as the user would
        r = browser.post(r.url, data={"csrf_token": _csrf(r.text), **_hidden(r.text)},
                         headers={"Referer": r.url}, allow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["Location"].startswith(RP + "/")
    assert browser.get(base + "/account", allow_redirects=False).status_code == 302  # signed out at authsvc too


def _hidden(html):
    return {m.group(1): m.group(2) for m in re.finditer(r'type="hidden" name="([^"]+)" value="([^"]*)"', html)
            if m.group(1) != "csrf_token"}
