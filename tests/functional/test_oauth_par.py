"""Pushed Authorization Requests (RFC 9126) against real Redis and SQL: the attacks first, then the flow."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import csrf_token
from tests.dpop_client import DPoPKey
from tests.functional.oauth_helpers import REDIRECT, basic, pkce, query, redeem, register, signed_in, token

PAR = "/oauth2/par"
ISS = "http://localhost:5000"


def _push(client, cid, secret=None, challenge=None, headers=None, **extra):
    data = {"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid email", "state": "st-par",
            "code_challenge": challenge or pkce()[1], "code_challenge_method": "S256", **extra}
    data = {k: v for k, v in data.items() if v is not None}
    h = dict(headers or {})
    if secret:
        h.update(basic(cid, secret))
    else:
        data.setdefault("client_id", cid)
    return client.post(PAR, data=data, headers=h)


def _authorize(client, cid, request_uri, **extra):
    """Visit /oauth2/authorize with the request_uri (approving consent if asked); the final response."""
    params = {"client_id": cid, "request_uri": request_uri, **extra}
    r = client.get("/oauth2/authorize", query_string=params)
    if r.status_code == 200 and b"decision" in r.data:
        import re

        html = r.get_data(as_text=True)
        action = re.search(r'<form[^>]*action="(/oauth2/[^"]+)"', html).group(1).replace("&amp;", "&")
        r = client.post(action, data={"csrf_token": csrf_token(html), "decision": "allow"})
    return r


# --- attacks -------------------------------------------------------------------------------------------------------------
def test_par_requires_client_authentication(app, client):
    cid, secret = register(app)
    r = client.post(PAR, data={"client_id": cid, "response_type": "code", "redirect_uri": REDIRECT})
    assert r.status_code == 401 and r.json["error"] == "invalid_client"
    r = _push(client, cid, "wrong-secret")
    assert r.status_code == 401 and r.json["error"] == "invalid_client"


def test_par_refuses_get_and_request_uri_in_the_push(app, client):
    cid, secret = register(app)
    assert client.get(PAR).status_code == 405
    r = _push(client, cid, secret, request_uri="urn:ietf:params:oauth:request_uri:" + "a" * 43)
    assert r.status_code == 400 and r.json["error"] == "invalid_request"  # RFC 9126 §2.1
    r = _push(client, cid, secret, request="e30.e30.")
    assert r.status_code == 400 and r.json["error"] == "request_not_supported"


@pytest.mark.parametrize("change, error", [
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid offline_access admin"}, None),  # unknown scope: ignored, accepted
    ({"resource": "https://evil.example"}, "invalid_target"),
    ({"redirect_uri": "https://rp.example/cb\\@evil.example"}, "invalid_request"),
    ({"dpop_jkt": "not-a-thumbprint"}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
])
def test_par_validates_like_the_authorization_endpoint_and_answers_json(app, client, change, error):
    cid, secret = register(app)
    r = _push(client, cid, secret, **change)
    assert r.location is None and r.is_json
    if error is None:
        assert r.status_code == 201
    else:
        assert r.status_code == 400 and r.json["error"] == error, r.json


def test_par_body_client_id_must_be_the_authenticated_client(app, client):
    cid, secret = register(app)
    other, _ = register(app, name="Other")
    r = _push(client, cid, secret, client_id=other)
    assert r.status_code == 400 and r.json["error"] == "invalid_request"


def test_request_uri_of_another_client_is_refused(app, client):
    cid, secret = register(app)
    other, _ = register(app, name="Other")
    uri = _push(client, cid, secret).json["request_uri"]
    signed_in(app, client)
    r = _authorize(client, other, uri)
    assert r.status_code == 400 and r.location is None and b"invalid_request_uri" in r.data
    r = _authorize(client, cid, uri)  # the rightful client's use still works: the attempt did not burn it
    assert r.status_code == 302 and "code" in query(r.location)


@pytest.mark.parametrize("uri", ["urn:ietf:params:oauth:request_uri:" + "A" * 43,
                                 "urn:ietf:params:oauth:request_uri:../../etc",
                                 "urn:ietf:params:oauth:request_uri:" + "é" * 43])
def test_guessed_or_malformed_request_uri_is_refused(app, client, uri):
    cid, _ = register(app)
    signed_in(app, client)
    r = _authorize(client, cid, uri)
    assert r.status_code == 400 and r.location is None


def test_request_uri_is_single_use(app, client):
    cid, secret = register(app)
    verifier, challenge = pkce()
    uri = _push(client, cid, secret, challenge=challenge).json["request_uri"]
    signed_in(app, client)
    r = _authorize(client, cid, uri)
    assert r.status_code == 302 and query(r.location)["code"]
    again = _authorize(client, cid, uri)  # replay (a reload, or a stolen URL)
    assert again.status_code == 400 and again.location is None and b"invalid_request_uri" in again.data


def test_request_uri_expires(app, client):
    from authsvc.extensions import get_redis

    cid, secret = register(app)
    body = _push(client, cid, secret).json
    assert 10 <= body["expires_in"] <= 600
    with app.app_context():
        for k in get_redis().scan_iter("oauth:par:*"):
            assert 0 < get_redis().ttl(k) <= body["expires_in"]
            get_redis().delete(k)  # what the TTL does when it runs out
    signed_in(app, client)
    r = _authorize(client, cid, body["request_uri"])
    assert r.status_code == 400 and r.location is None


def test_query_parameters_beside_request_uri_are_ignored(app, client):
    """Only the pushed parameters count (RFC 9126 §4 / RFC 9101 §5): a redirect_uri, scope or PKCE challenge added
    to the authorization URL by an attacker changes nothing."""
    cid, secret = register(app, redirect_uris=[REDIRECT, "https://rp.example/other"])
    verifier, challenge = pkce()
    uri = _push(client, cid, secret, challenge=challenge, scope="openid").json["request_uri"]
    signed_in(app, client)
    r = _authorize(client, cid, uri, redirect_uri="https://rp.example/other", scope="openid email",
                   code_challenge=pkce()[1])
    assert r.status_code == 302 and r.location.startswith(REDIRECT + "?")
    t = redeem(client, cid, secret, query(r.location)["code"], verifier)
    assert t.status_code == 200 and t.json["scope"] == "openid"


def test_racing_consumers_of_one_request_uri_get_one_response(app):
    p = app.extensions["authsvc.oauth"]
    with app.app_context():
        uri, _ = p.par.push("cid", {"client_id": ["cid"]})
        assert p.par.open(uri) is not None
    wins = []

    def use():
        with app.app_context():
            wins.append(p.par.consume(uri))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and wins.count(False) == 7


def test_par_required_client_cannot_skip_par(app, client):
    cid, secret = register(app, require_par=True)
    signed_in(app, client)
    r = client.get("/oauth2/authorize", query_string={"response_type": "code", "client_id": cid,
                                                      "redirect_uri": REDIRECT, "scope": "openid",
                                                      "code_challenge": pkce()[1], "code_challenge_method": "S256"})
    assert r.status_code == 302 and query(r.location)["error"] == "invalid_request" and "code" not in query(r.location)
    uri = _push(client, cid, secret).json["request_uri"]
    r = _authorize(client, cid, uri)
    assert r.status_code == 302 and "code" in query(r.location)


# --- DPoP at PAR (RFC 9449 §10.1) ------------------------------------------------------------------------------------------
def test_par_with_dpop_binds_the_code_to_the_key(app, client):
    key, thief = DPoPKey.generate(), DPoPKey.generate()
    cid, secret = register(app)
    verifier, challenge = pkce()
    r = _push(client, cid, secret, challenge=challenge, headers={"DPoP": key.proof("POST", ISS + PAR)})
    assert r.status_code == 201, r.json
    signed_in(app, client)
    code = query(_authorize(client, cid, r.json["request_uri"]).location)["code"]
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT}
    stolen = client.post("/oauth2/token", data=data, headers={**basic(cid, secret),
                                                              "DPoP": thief.proof("POST", ISS + "/oauth2/token")})
    assert stolen.status_code == 400 and stolen.json["error"] == "invalid_grant"


def test_par_dpop_jkt_must_match_the_proof(app, client):
    key, other = DPoPKey.generate(), DPoPKey.generate()
    cid, secret = register(app)
    r = _push(client, cid, secret, dpop_jkt=other.jkt, headers={"DPoP": key.proof("POST", ISS + PAR)})
    assert r.status_code == 400 and r.json["error"] == "invalid_request"
    r = _push(client, cid, secret, headers={"DPoP": key.proof("POST", ISS + "/oauth2/token")})  # wrong htu
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"


# --- the flow ------------------------------------------------------------------------------------------------------------
def test_par_code_flow_confidential_client(app, client):
    cid, secret = register(app)
    verifier, challenge = pkce()
    r = _push(client, cid, secret, challenge=challenge, nonce="n-par")
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    assert r.json["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    signed_in(app, client)
    r = _authorize(client, cid, r.json["request_uri"])
    q = query(r.location)
    assert r.status_code == 302 and q["state"] == "st-par" and q["iss"] == ISS
    t = redeem(client, cid, secret, q["code"], verifier)
    assert t.status_code == 200 and t.json["id_token"]


def test_par_public_client_and_login_in_between(app, client):
    from tests.conftest import create_user
    from tests.functional.helpers import login

    cid, _ = register(app, client_type="public")
    verifier, challenge = pkce()
    uri = _push(client, cid, challenge=challenge).json["request_uri"]
    create_user(app)
    r = client.get("/oauth2/authorize", query_string={"client_id": cid, "request_uri": uri})
    assert r.status_code == 302 and "/login" in r.location and "request_uri" in r.location
    assert "code_challenge" not in r.location  # the parameters stay on the server
    login(client)
    r = _authorize(client, cid, uri)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    t = token(client, {"grant_type": "authorization_code", "code": query(r.location)["code"],
                       "code_verifier": verifier, "redirect_uri": REDIRECT, "client_id": cid})
    assert t.status_code == 200, t.json


def test_discovery_advertises_par(app, client):
    m = client.get("/.well-known/openid-configuration").json
    assert m["pushed_authorization_request_endpoint"] == ISS + PAR
    assert m["require_pushed_authorization_requests"] is False


def test_cli_registers_par_required_spa_and_private_key_jwt_clients(app, tmp_path):
    import json

    from joserfc.jwk import ECKey

    from authsvc.extensions import db
    from authsvc.models import OAuthClient

    runner = app.test_cli_runner()
    r = runner.invoke(args=["clients", "create", "--name", "SPA", "--type", "public", "--redirect-uri",
                            "https://spa.example/cb", "--origin", "https://spa.example", "--require-par"])
    assert r.exit_code == 0, r.output
    cid = r.output.split("client_id:")[1].split()[0]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ECKey.generate_key("P-256", private=True).as_dict(private=False)]}))
    r = runner.invoke(args=["clients", "create", "--name", "M2M", "--grant", "client_credentials",
                            "--jwks-file", str(jwks)])
    assert r.exit_code == 0 and "client_secret" not in r.output, r.output
    r = runner.invoke(args=["clients", "create", "--name", "Bad", "--type", "public", "--redirect-uri",
                            "https://spa.example/cb", "--origin", "https://*.example"])
    assert r.exit_code != 0 and "allowed_origins" in r.output
    with app.app_context():
        row = db.session.get(OAuthClient, cid)
        assert row.require_pushed_authorization_requests and json.loads(row.allowed_origins) == ["https://spa.example"]
