"""private_key_jwt client authentication (RFC 7523 §2.2/§3, OIDC Core §9): assertions signed by Authlib's client helper
(``private_key_jwt_sign``), checked at token, introspection, revocation and PAR, against real Redis and SQL. The
client's keys by value (``jwks``) or from a ``jwks_uri`` served by a real HTTP server on the loopback interface."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey, OctKey, RSAKey

from tests.functional.oauth_helpers import REDIRECT, get_code, pkce, register, signed_in

ISS = "http://localhost:5000"
TOKEN = ISS + "/oauth2/token"
TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def key():
    return ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)


def _jwks(*keys):
    return {"keys": [k.as_dict(private=False) for k in keys]}


def _assertion(key, cid, aud=TOKEN, alg="ES256", **claims):
    return private_key_jwt_sign(key, cid, aud, alg=alg, claims=claims or None, header={"kid": key.kid})


def _cc(client, cid, assertion, **extra):
    return client.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid,
                                              "client_assertion_type": TYPE, "client_assertion": assertion, **extra})


def _m2m(app, key, **kw):
    cid, secret = register(app, grant_types=["client_credentials"], redirect_uris=[],
                          token_endpoint_auth_method="private_key_jwt", jwks=_jwks(key), **kw)
    assert secret is None  # no shared secret exists for a private_key_jwt client
    return cid


# --- attacks -------------------------------------------------------------------------------------------------------------
def test_assertion_replay_is_refused(app, client, key):
    cid = _m2m(app, key)
    a = _assertion(key, cid)
    assert _cc(client, cid, a).status_code == 200
    r = _cc(client, cid, a)
    assert r.status_code in (400, 401) and r.json["error"] == "invalid_client"


def test_assertion_signed_by_another_key_is_refused(app, client, key):
    cid = _m2m(app, key)
    other = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    r = _cc(client, cid, _assertion(other, cid))
    assert r.json["error"] == "invalid_client"


def test_hmac_with_the_public_key_and_alg_none_are_refused(app, client, key):
    cid = _m2m(app, key)
    pub = json.dumps(key.as_dict(private=False)).encode()
    forged = private_key_jwt_sign(OctKey.import_key(pub), cid, TOKEN, alg="HS256")
    assert _cc(client, cid, forged).json["error"] == "invalid_client"
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    none = b64({"alg": "none"}) + "." + b64({"iss": cid, "sub": cid, "aud": TOKEN, "jti": "x",
                                             "exp": int(time.time()) + 60}) + "."
    assert _cc(client, cid, none).json["error"] == "invalid_client"


@pytest.mark.parametrize("aud", ["https://evil.example/oauth2/token", ISS + "/oauth2/tokenx", ""])
def test_wrong_audience_is_refused(app, client, key, aud):
    cid = _m2m(app, key)
    assert _cc(client, cid, _assertion(key, cid, aud=aud)).json["error"] == "invalid_client"


def test_expired_and_far_future_assertions_are_refused(app, client, key):
    cid = _m2m(app, key)
    now = int(time.time())
    old = private_key_jwt_sign(key, cid, TOKEN, alg="ES256", issued_at=now - 600, expires_at=now - 300)
    assert _cc(client, cid, old).json["error"] == "invalid_client"
    far = private_key_jwt_sign(key, cid, TOKEN, alg="ES256", expires_at=now + 7200)  # jti would be held too long
    assert _cc(client, cid, far).json["error"] == "invalid_client"


def test_iss_sub_must_be_the_client(app, client, key):
    cid = _m2m(app, key)
    other = _m2m(app, key)  # same key registered by two clients: one cannot speak for the other
    a = private_key_jwt_sign(key, cid, TOKEN, alg="ES256", claims={"iss": other})
    assert _cc(client, cid, a).json["error"] == "invalid_client"


def test_secret_methods_do_not_work_for_a_private_key_jwt_client(app, client, key):
    cid = _m2m(app, key)
    r = client.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid,
                                           "client_secret": "anything"})
    assert r.json["error"] == "invalid_client"
    r = client.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid})  # "none"
    assert r.json["error"] == "invalid_client"


def test_secret_client_cannot_use_an_assertion(app, client, key):
    cid, secret = register(app, grant_types=["client_credentials"], redirect_uris=[])
    assert _cc(client, cid, _assertion(key, cid)).json["error"] == "invalid_client"


@pytest.mark.parametrize("bad", [{"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "not json"])
def test_registration_refuses_unusable_or_private_jwks(app, bad):
    from authsvc.oauth.clients import ClientError

    with app.app_context(), pytest.raises(ClientError):
        app.extensions["authsvc.oauth"].clients.create(
            name="x", grant_types=["client_credentials"], token_endpoint_auth_method="private_key_jwt",
            jwks=bad if isinstance(bad, dict) else None, jwks_uri=None if isinstance(bad, dict) else bad)


def test_registration_refuses_private_key_material(app, key):
    from authsvc.oauth.clients import ClientError

    with app.app_context(), pytest.raises(ClientError):
        app.extensions["authsvc.oauth"].clients.create(
            name="x", grant_types=["client_credentials"], token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=True)]})


# --- the endpoints -------------------------------------------------------------------------------------------------------
def test_private_key_jwt_at_token_introspection_revocation_and_par(app, client, key):
    cid = _m2m(app, key)
    r = _cc(client, cid, _assertion(key, cid))
    assert r.status_code == 200, r.json
    at = r.json["access_token"]
    auth = {"client_id": cid, "client_assertion_type": TYPE}
    r = client.post("/oauth2/introspect", data={"token": at, **auth,
                                                "client_assertion": _assertion(key, cid, aud=ISS)})
    assert r.status_code == 200 and r.json["active"] is True
    r = client.post("/oauth2/revoke", data={"token": at, **auth,
                                            "client_assertion": _assertion(key, cid, aud=ISS + "/oauth2/revoke")})
    assert r.status_code == 200
    r = client.post("/oauth2/introspect", data={"token": at, **auth,
                                                "client_assertion": _assertion(key, cid, aud=ISS)})
    assert r.json == {"active": False}


def test_private_key_jwt_code_flow_with_par(app, client, key):
    cid, secret = register(app, token_endpoint_auth_method="private_key_jwt", jwks=_jwks(key))
    verifier, challenge = pkce()
    r = client.post("/oauth2/par", data={"response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                                         "code_challenge": challenge, "code_challenge_method": "S256",
                                         "client_id": cid, "client_assertion_type": TYPE,
                                         "client_assertion": _assertion(key, cid, aud=ISS)})
    assert r.status_code == 201, r.json
    signed_in(app, client)
    from tests.functional.test_oauth_par import _authorize
    from tests.functional.oauth_helpers import query

    code = query(_authorize(client, cid, r.json["request_uri"]).location)["code"]
    t = client.post("/oauth2/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                           "redirect_uri": REDIRECT, "client_id": cid, "client_assertion_type": TYPE,
                                           "client_assertion": _assertion(key, cid)})
    assert t.status_code == 200 and t.json["id_token"], t.json


# --- jwks_uri --------------------------------------------------------------------------------------------------------------
class _JWKSServer:
    def __init__(self, body: bytes, status: int = 200):
        outer = self
        self.body, self.status, self.hits = body, status, 0

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_jwks_uri_fetched_cached_and_rotated(app, client, key):
    srv = _JWKSServer(json.dumps(_jwks(key)).encode())
    try:
        cid, _ = register(app, grant_types=["client_credentials"], redirect_uris=[],
                          token_endpoint_auth_method="private_key_jwt", jwks_uri=srv.url)
        assert _cc(client, cid, _assertion(key, cid)).status_code == 200
        assert _cc(client, cid, _assertion(key, cid)).status_code == 200
        assert srv.hits == 1  # cached
        new = RSAKey.generate_key(2048, parameters={"kid": "k2"}, private=True)
        srv.body = json.dumps(_jwks(key, new)).encode()  # the client rotates: a new kid appears
        r = _cc(client, cid, _assertion(new, cid, alg="RS256"))
        assert r.status_code == 200, r.json
        assert srv.hits == 2
        stranger = RSAKey.generate_key(2048, parameters={"kid": "k3"}, private=True)
        assert _cc(client, cid, _assertion(stranger, cid, alg="RS256")).json["error"] == "invalid_client"
        assert srv.hits == 2  # a re-fetch at most once a minute: unknown kids cannot make us hammer the client
    finally:
        srv.close()


def test_jwks_uri_down_is_503_never_a_pass(app, client, key):
    srv = _JWKSServer(b"", status=500)
    try:
        cid, _ = register(app, grant_types=["client_credentials"], redirect_uris=[],
                          token_endpoint_auth_method="private_key_jwt", jwks_uri=srv.url)
        r = _cc(client, cid, _assertion(key, cid))
        assert r.status_code == 503 and r.json["error"] == "temporarily_unavailable"
    finally:
        srv.close()


def test_jwks_uri_oversized_answer_is_refused(app, client, key):
    srv = _JWKSServer(b'{"keys": [' + b" " * (70 * 1024) + b"]}")
    try:
        cid, _ = register(app, grant_types=["client_credentials"], redirect_uris=[],
                          token_endpoint_auth_method="private_key_jwt", jwks_uri=srv.url)
        r = _cc(client, cid, _assertion(key, cid))
        assert r.status_code == 503 and "access_token" not in r.json
    finally:
        srv.close()


def test_discovery_lists_private_key_jwt(app, client):
    m = client.get("/.well-known/openid-configuration").json
    assert "private_key_jwt" in m["token_endpoint_auth_methods_supported"]
    assert "client_secret_jwt" not in m["token_endpoint_auth_methods_supported"]
    assert "none" not in m["token_endpoint_auth_signing_alg_values_supported"]
    assert not any(a.startswith("HS") for a in m["token_endpoint_auth_signing_alg_values_supported"])
