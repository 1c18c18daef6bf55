"""CORS for single-page apps: token, userinfo and revoke answer a browser origin only if the client the request is
about registered it; unregistered origins get nothing; discovery and JWKS stay public. (The browser side — an SPA on
another origin doing code + PKCE + DPoP in Chromium — is tests/browser/test_spa_cors_browser.py.)"""

from __future__ import annotations

import pytest

from tests.functional.oauth_helpers import REDIRECT, code_tokens, get_code, register, signed_in, token

SPA = "https://spa.example"
EVIL = "https://evil.example"


def _spa(app):
    return register(app, client_type="public", allowed_origins=[SPA])


def _preflight(client, path, origin, method="POST"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                         "Access-Control-Request-Headers": "dpop, content-type"})


# --- attacks -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", [EVIL, "https://spa.example.evil.example", "https://SPA.example", "null",
                                    "https://spa.example:444", "http://spa.example"])
def test_unregistered_origin_gets_no_cors_headers(app, client, origin):
    cid, _ = _spa(app)
    for path in ("/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke"):
        r = _preflight(client, path, origin)
        assert "Access-Control-Allow-Origin" not in r.headers, (path, origin)
    r = client.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": cid},
                    headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_origin_of_another_client_is_not_allowed_for_this_one(app, client):
    """An origin registered by client A does not make client B's answers readable from it."""
    _spa(app)
    other, _ = register(app, client_type="public", name="Other SPA")
    r = client.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": other},
                    headers={"Origin": SPA})
    assert r.status_code == 400 and "Access-Control-Allow-Origin" not in r.headers


def test_userinfo_cors_follows_the_tokens_client(app, client):
    cid, secret, body = code_tokens(app, client)  # a confidential client without origins
    register(app, client_type="public", name="SPA", allowed_origins=[SPA])
    r = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"], "Origin": SPA})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_no_credentials_ever_allowed(app, client):
    _spa(app)
    r = _preflight(client, "/oauth2/token", SPA)
    assert "Access-Control-Allow-Credentials" not in r.headers


@pytest.mark.parametrize("bad", ["https://*.example", "https://spa.example/", "https://spa.example/path",
                                 "http://spa.example", "https://user@spa.example", "javascript:alert(1)", "*",
                                 "https://Spa.example", "https://spä.example"])
def test_registration_refuses_non_origins(app, bad):
    from authsvc.oauth.clients import ClientError

    with app.app_context(), pytest.raises(ClientError):
        app.extensions["authsvc.oauth"].clients.create(name="x", client_type="public", redirect_uris=[REDIRECT],
                                                       allowed_origins=[bad])


# --- the happy path ------------------------------------------------------------------------------------------------------
def test_registered_origin_gets_cors_on_token_userinfo_and_revoke(app, client):
    cid, _ = register(app, client_type="public", allowed_origins=[SPA], redirect_uris=[REDIRECT])
    for path, method in (("/oauth2/token", "POST"), ("/oauth2/userinfo", "GET"), ("/oauth2/revoke", "POST")):
        r = _preflight(client, path, SPA, method)
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SPA, path
        assert "DPoP" in r.headers["Access-Control-Allow-Headers"] and method in r.headers["Access-Control-Allow-Methods"]
        assert "Origin" in r.headers.get("Vary", "")
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    r = client.post("/oauth2/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                           "redirect_uri": REDIRECT, "client_id": cid}, headers={"Origin": SPA})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SPA
    assert "DPoP-Nonce" in r.headers["Access-Control-Expose-Headers"]
    at, rt = r.json["access_token"], r.json["refresh_token"]
    r = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + at, "Origin": SPA})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SPA
    # the refresh from the browser goes through Flask (not the lean WSGI path), so it gets its CORS headers too
    r = client.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": cid},
                    headers={"Origin": SPA})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SPA
    r = client.post("/oauth2/revoke", data={"token": r.json["refresh_token"], "client_id": cid},
                    headers={"Origin": SPA})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SPA


def test_discovery_and_jwks_stay_public(app, client):
    for path in ("/.well-known/openid-configuration", "/oauth2/jwks"):
        assert client.get(path, headers={"Origin": EVIL}).headers["Access-Control-Allow-Origin"] == "*"


def test_origin_list_changes_take_effect(app, client):
    cid, _ = _spa(app)
    assert _preflight(client, "/oauth2/token", SPA).headers.get("Access-Control-Allow-Origin") == SPA
    with app.app_context():
        app.extensions["authsvc.oauth"].clients.update(cid, allowed_origins=[])
    assert "Access-Control-Allow-Origin" not in _preflight(client, "/oauth2/token", SPA).headers


def test_preflight_and_token_with_redis_down_fail_closed(make_app, private_redis):
    """A real Redis stopped: the preflight is not a 500 and allows nothing; the token request is a 503 (JSON)."""
    app = make_app(redis_url=private_redis.url)
    client = app.test_client()
    cid, _ = _spa(app)
    assert _preflight(client, "/oauth2/token", SPA).headers.get("Access-Control-Allow-Origin") == SPA
    private_redis.stop()
    r = _preflight(client, "/oauth2/token", SPA)
    assert r.status_code < 500 and "Access-Control-Allow-Origin" not in r.headers
    r = client.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": cid},
                    headers={"Origin": SPA})
    assert r.status_code == 503 and r.json["error"] == "temporarily_unavailable"
