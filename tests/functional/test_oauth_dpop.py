"""DPoP (RFC 9449) end to end through the app (lean WSGI paths included), real SQL and Redis. The client side is
tests/dpop_client.py: proofs built from the RFC with ``cryptography``, no server code. Attacks first: a stolen
token or refresh token used from another key, a replayed proof, a bound token used as a bearer token, a missing
nonce."""

from __future__ import annotations

import os

import pytest

from tests.conftest import csrf_token
from tests.dpop_client import DPoPKey
from tests.functional.oauth_helpers import REDIRECT, basic, get_code, pkce, authorize, query, register, signed_in

TOKEN, USERINFO = "/oauth2/token", "/oauth2/userinfo"


@pytest.fixture(scope="module")
def key():
    return DPoPKey.generate("ES256")


@pytest.fixture(scope="module")
def thief():
    return DPoPKey.generate("ES256")


def iss(app):
    with app.app_context():
        return app.extensions["authsvc.oauth"].issuer


def post_token(app, client, data, *, dpop_key=None, proof=None, auth=None, nonce=None):
    headers = basic(*auth) if auth else {}
    if proof is None and dpop_key is not None:
        proof = dpop_key.proof("POST", iss(app) + TOKEN, nonce=nonce)
    if proof is not None:
        headers["DPoP"] = proof
    return client.post(TOKEN, data=data, headers=headers)


def userinfo(app, client, at, *, dpop_key=None, scheme="DPoP", proof=None, nonce=None, method="GET"):
    headers = {"Authorization": f"{scheme} {at}"}
    if proof is None and dpop_key is not None:
        proof = dpop_key.proof(method, iss(app) + USERINFO, ath_of=at, nonce=nonce)
    if proof is not None:
        headers["DPoP"] = proof
    return client.open(USERINFO, method=method, headers=headers)


def public_code_tokens(app, client, key, **reg):
    """Code flow for a public client, the token request with a DPoP proof of ``key``."""
    reg.setdefault("client_type", "public")
    cid, _ = register(app, **reg)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid email offline_access")
    r = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                 "redirect_uri": REDIRECT, "client_id": cid}, dpop_key=key)
    assert r.status_code == 200, r.json
    return cid, r.json


def refresh(app, client, cid, rt, **kw):
    return post_token(app, client, {"grant_type": "refresh_token", "refresh_token": rt, "client_id": cid}, **kw)


def introspect(app, client, tok):
    rs = register(app, name="RS", redirect_uris=[], grant_types=["client_credentials"], resource=iss(app))
    return client.post("/oauth2/introspect", data={"token": tok}, headers=basic(*rs))


def grant_row(app, cid):
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant

    with app.app_context():
        return db.session.execute(db.select(OAuthGrant).where(OAuthGrant.client_id == cid)).scalars().all()


# --- issue: token_type DPoP, cnf.jkt everywhere ------------------------------------------------------------------------
def test_code_flow_with_dpop_binds_access_and_public_refresh_token_to_the_key(app, client, key):
    cid, body = public_code_tokens(app, client, key)
    assert body["token_type"] == "DPoP" and body["refresh_token"]
    [grant] = grant_row(app, cid)
    assert grant.dpop_jkt == key.jkt  # the family is bound durably (SQL), not only in Redis
    r = introspect(app, client, body["access_token"])  # the lean path (one Redis round trip)
    assert r.json["active"] and r.json["token_type"] == "DPoP" and r.json["cnf"] == {"jkt": key.jkt}
    assert userinfo(app, client, body["access_token"], dpop_key=key).json["email"] == "alice@example.com"


def test_discovery_lists_dpop_signing_algs(app, client):
    algs = client.get("/.well-known/openid-configuration").json["dpop_signing_alg_values_supported"]
    assert "ES256" in algs and not any(a.startswith("HS") or a == "none" for a in algs)


def test_token_request_without_dpop_still_gets_a_bearer_token(app, client):
    cid, _ = register(app, client_type="public")
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    r = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                 "redirect_uri": REDIRECT, "client_id": cid})
    assert r.status_code == 200 and r.json["token_type"] == "Bearer"
    assert "cnf" not in introspect(app, client, r.json["access_token"]).json
    assert grant_row(app, cid)[0].dpop_jkt is None


def test_jwt_access_token_carries_cnf_jkt(app, client, key):
    from joserfc import jwt as jose_jwt

    _, body = public_code_tokens(app, client, key, token_format="jwt", access_token_ttl=300)
    claims = jose_jwt.decode(body["access_token"], _keyset(app)).claims
    assert claims["cnf"] == {"jkt": key.jkt}


def _keyset(app):
    with app.app_context():
        return app.extensions["authsvc.oauth"].keys.public_keyset()


def test_client_credentials_with_dpop_is_bound(app, client, key):
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    r = post_token(app, client, {"grant_type": "client_credentials"}, dpop_key=key, auth=(cid, secret))
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"
    assert introspect(app, client, r.json["access_token"]).json["cnf"] == {"jkt": key.jkt}


# --- proofs at the token endpoint: replay, htm/htu, malformed -------------------------------------------------------------
def test_replayed_proof_at_the_token_endpoint_is_refused(app, client, key):
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    proof = key.proof("POST", iss(app) + TOKEN)
    assert post_token(app, client, {"grant_type": "client_credentials"}, proof=proof,
                      auth=(cid, secret)).status_code == 200
    r = post_token(app, client, {"grant_type": "client_credentials"}, proof=proof, auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof" and "jti" in r.json["error_description"]


@pytest.mark.parametrize("htm,path", [("GET", TOKEN), ("POST", USERINFO), ("POST", "/oauth2/tokens")])
def test_proof_for_another_method_or_uri_is_refused_at_the_token_endpoint(app, client, key, htm, path):
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    r = post_token(app, client, {"grant_type": "client_credentials"}, proof=key.proof(htm, iss(app) + path),
                   auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"


def test_proof_with_a_private_key_or_hs256_is_refused_at_the_token_endpoint(app, client, key):
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    url = iss(app) + TOKEN
    for proof in (key.proof("POST", url, header={"jwk": key.private_jwk}),
                  key.proof("POST", url, alg="HS256", hmac_key=b"x" * 32),
                  key.proof("POST", url, alg="none", unsigned=True)):
        r = post_token(app, client, {"grant_type": "client_credentials"}, proof=proof, auth=(cid, secret))
        assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof", proof


# --- refresh: bound families (public clients) ---------------------------------------------------------------------------
def test_refresh_with_the_bound_key_rotates_and_stays_bound(app, client, key):
    cid, body = public_code_tokens(app, client, key)
    r = refresh(app, client, cid, body["refresh_token"], dpop_key=key)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP", r.json
    assert introspect(app, client, r.json["access_token"]).json["cnf"] == {"jkt": key.jkt}


def test_refresh_from_another_key_is_refused_and_does_not_burn_the_family(app, client, key, thief):
    cid, body = public_code_tokens(app, client, key)
    r = refresh(app, client, cid, body["refresh_token"], dpop_key=thief)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    # The stolen copy did nothing: the owner's refresh still works, the family is not revoked.
    r = refresh(app, client, cid, body["refresh_token"], dpop_key=key)
    assert r.status_code == 200, r.json
    [grant] = grant_row(app, cid)
    assert grant.revoked_at is None and grant.generation == 1


def test_refresh_without_a_proof_is_refused_on_the_lean_path(app, client, key):
    cid, body = public_code_tokens(app, client, key)
    r = refresh(app, client, cid, body["refresh_token"])  # no DPoP header: the WSGI fast path answers
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"
    assert refresh(app, client, cid, body["refresh_token"], dpop_key=key).status_code == 200


def test_bound_family_is_enforced_by_sql_when_redis_lost_the_twin(app, client, key, thief):
    from authsvc.extensions import get_redis

    cid, body = public_code_tokens(app, client, key)
    gid = body["refresh_token"].split(".")[0]
    with app.app_context():
        get_redis().delete(f"oauth:grant:{{{gid}}}")
    assert refresh(app, client, cid, body["refresh_token"], dpop_key=thief).json["error"] == "invalid_grant"
    assert refresh(app, client, cid, body["refresh_token"]).json["error"] == "invalid_dpop_proof"
    r = refresh(app, client, cid, body["refresh_token"], dpop_key=key)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP", r.json
    with app.app_context():  # the twin came back from SQL with its binding
        assert get_redis().hget(f"oauth:grant:{{{gid}}}", "jkt") == key.jkt


def test_confidential_client_refresh_may_use_a_new_key(app, client, key, thief):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid offline_access")
    r = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                 "redirect_uri": REDIRECT}, dpop_key=key, auth=(cid, secret))
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"
    assert grant_row(app, cid)[0].dpop_jkt is None  # RFC 9449 §5: bound to the client's credentials instead
    r2 = post_token(app, client, {"grant_type": "refresh_token", "refresh_token": r.json["refresh_token"]},
                    dpop_key=thief, auth=(cid, secret))
    assert r2.status_code == 200 and introspect(app, client, r2.json["access_token"]).json["cnf"]["jkt"] == thief.jkt


# --- resources: userinfo --------------------------------------------------------------------------------------------------
def test_bound_token_used_as_a_bearer_token_is_refused(app, client, key):
    _, body = public_code_tokens(app, client, key)
    r = userinfo(app, client, body["access_token"], scheme="Bearer")
    assert r.status_code == 401 and r.json["error"] == "invalid_token"
    assert r.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"') and "algs=" in r.headers[
        "WWW-Authenticate"]
    # …also with a valid proof attached: the scheme must be DPoP.
    r = userinfo(app, client, body["access_token"], scheme="Bearer",
                 proof=key.proof("GET", iss(app) + USERINFO, ath_of=body["access_token"]))
    assert r.status_code == 401


def test_bound_token_with_another_keys_proof_is_refused(app, client, key, thief):
    _, body = public_code_tokens(app, client, key)
    r = userinfo(app, client, body["access_token"], dpop_key=thief)
    assert r.status_code == 401 and 'DPoP error="invalid_dpop_proof"' in r.headers["WWW-Authenticate"]


def test_userinfo_proof_without_or_with_wrong_ath_is_refused(app, client, key):
    _, body = public_code_tokens(app, client, key)
    at = body["access_token"]
    for proof in (key.proof("GET", iss(app) + USERINFO), key.proof("GET", iss(app) + USERINFO, ath_of=at + "x")):
        r = userinfo(app, client, at, proof=proof)
        assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"
    r = userinfo(app, client, at)  # DPoP scheme, no proof at all
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"


def test_userinfo_proof_replay_and_wrong_htm_are_refused(app, client, key):
    _, body = public_code_tokens(app, client, key)
    at = body["access_token"]
    proof = key.proof("GET", iss(app) + USERINFO, ath_of=at)
    assert userinfo(app, client, at, proof=proof).status_code == 200
    assert userinfo(app, client, at, proof=proof).status_code == 401  # replay
    assert userinfo(app, client, at, proof=key.proof("POST", iss(app) + USERINFO, ath_of=at)).status_code == 401
    assert userinfo(app, client, at, dpop_key=key, method="POST").status_code == 200  # htm = POST for a POST


def test_unbound_token_under_the_dpop_scheme_is_refused(app, client, key):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    at = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                  "redirect_uri": REDIRECT}, auth=(cid, secret)).json["access_token"]
    r = userinfo(app, client, at, dpop_key=key)
    assert r.status_code == 401 and r.json["error"] == "invalid_token"
    assert userinfo(app, client, at, scheme="Bearer").status_code == 200


# --- dpop_jkt: the code is bound at the authorization endpoint (§10) ------------------------------------------------------
def _code_with_jkt(app, client, cid, jkt):
    verifier, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, scope="openid", dpop_jkt=jkt)
    assert r.status_code == 302, r.data[:300]
    return query(r.location), verifier


def test_dpop_jkt_binds_the_code_to_the_key(app, client, key, thief):
    cid, _ = register(app, client_type="public")
    signed_in(app, client)
    form = lambda code, v: {"grant_type": "authorization_code", "code": code, "code_verifier": v,  # noqa: E731
                            "redirect_uri": REDIRECT, "client_id": cid}
    q, v = _code_with_jkt(app, client, cid, key.jkt)
    r = post_token(app, client, form(q["code"], v))
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"  # no proof: refused
    q, v = _code_with_jkt(app, client, cid, key.jkt)
    r = post_token(app, client, form(q["code"], v), dpop_key=thief)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"  # another key: refused
    q, v = _code_with_jkt(app, client, cid, key.jkt)
    r = post_token(app, client, form(q["code"], v), dpop_key=key)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"


@pytest.mark.parametrize("bad", ["short", "x" * 44, "a+b/" * 11, "A" * 43 + "\n", ""])
def test_malformed_dpop_jkt_is_refused_at_authorize(app, client, bad):
    cid, _ = register(app, client_type="public")
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, dpop_jkt=bad)
    assert r.status_code == 302 and query(r.location)["error"] == "invalid_request"


# --- per-client "DPoP required" (dpop_bound_access_tokens) ----------------------------------------------------------------
def test_dpop_required_client_gets_no_token_without_a_proof(app, client, key):
    cid, body = public_code_tokens(app, client, key, dpop_bound_access_tokens=True)
    assert body["token_type"] == "DPoP"
    signed_in(app, client, email="bob@example.com")
    code, verifier = get_code(client, cid)
    r = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                 "redirect_uri": REDIRECT, "client_id": cid})
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"


def test_dpop_required_confidential_client_refresh_without_proof_is_refused_on_every_path(app, client, key):
    cid, secret = register(app, dpop_bound_access_tokens=True)
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid offline_access")
    r = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                 "redirect_uri": REDIRECT}, dpop_key=key, auth=(cid, secret))
    assert r.status_code == 200
    rt = r.json["refresh_token"]
    r = post_token(app, client, {"grant_type": "refresh_token", "refresh_token": rt}, auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"
    r = post_token(app, client, {"grant_type": "refresh_token", "refresh_token": rt}, dpop_key=key,
                   auth=(cid, secret))
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"


def test_dpop_required_flag_is_cached_with_the_client(app):
    cid, _ = register(app, client_type="public", dpop_bound_access_tokens=True)
    with app.app_context():
        assert app.extensions["authsvc.oauth"].clients.get(cid).dpop_bound_access_tokens is True
        app.extensions["authsvc.oauth"].clients.update(cid, dpop_bound_access_tokens=False)
        assert app.extensions["authsvc.oauth"].clients.get(cid).dpop_bound_access_tokens is False


# --- server nonces (§8) ---------------------------------------------------------------------------------------------------
@pytest.fixture
def nonce_app(make_app):
    return make_app(OAUTH_DPOP_REQUIRE_NONCE=1)


def test_missing_nonce_is_answered_with_use_dpop_nonce_and_a_nonce(nonce_app, key):
    app, client = nonce_app, nonce_app.test_client()
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    r = post_token(app, client, {"grant_type": "client_credentials"}, dpop_key=key, auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "use_dpop_nonce"
    nonce = r.headers["DPoP-Nonce"]
    r = post_token(app, client, {"grant_type": "client_credentials"}, dpop_key=key, auth=(cid, secret),
                   nonce="A" * 24)
    assert r.status_code == 400 and r.json["error"] == "use_dpop_nonce"  # a made-up nonce
    r = post_token(app, client, {"grant_type": "client_credentials"}, dpop_key=key, auth=(cid, secret), nonce=nonce)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP" and r.headers["DPoP-Nonce"]


def test_userinfo_missing_nonce_is_a_401_dpop_challenge(nonce_app, key):
    app, client = nonce_app, nonce_app.test_client()
    cid, _ = register(app, client_type="public")
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT,
            "client_id": cid}
    nonce = post_token(app, client, data, dpop_key=key).headers["DPoP-Nonce"]
    at = post_token(app, client, data, dpop_key=key, nonce=nonce).json["access_token"]
    r = userinfo(app, client, at, dpop_key=key)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
    r = userinfo(app, client, at, dpop_key=key, nonce=r.headers["DPoP-Nonce"])
    assert r.status_code == 200 and r.json["sub"]


# --- device grant -------------------------------------------------------------------------------------------------------
def test_device_grant_with_dpop_binds_tokens(app, client, key, thief):
    from authsvc.oauth.clients import DEVICE_GRANT

    cid, _ = register(app, client_type="public", redirect_uris=[], grant_types=[DEVICE_GRANT, "refresh_token"])
    tv = app.test_client()
    d = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": "openid offline_access"}).json
    signed_in(app, client)
    page = client.get("/device?user_code=" + d["user_code"])
    client.post("/device", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "user_code": d["user_code"],
                                 "decision": "allow"})
    r = post_token(app, tv, {"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": cid},
                   dpop_key=key)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP", r.json
    assert grant_row(app, cid)[0].dpop_jkt == key.jkt
    assert refresh(app, tv, cid, r.json["refresh_token"], dpop_key=thief).json["error"] == "invalid_grant"
    assert refresh(app, tv, cid, r.json["refresh_token"], dpop_key=key).json["token_type"] == "DPoP"


# --- the lean WSGI refresh path ---------------------------------------------------------------------------------------
def _authlib_unreachable(app, monkeypatch):
    """Make the Flask/Authlib token path fail loudly: whatever still answers was answered by the lean path."""
    def boom(*a, **kw):
        raise AssertionError("the request reached Authlib's token endpoint")

    monkeypatch.setattr(app.extensions["authsvc.oauth"].server, "create_token_response", boom)


def test_dpop_refresh_is_answered_by_the_lean_path_exactly_like_authlib(app, client, key, thief, monkeypatch):
    from tests.functional.test_oauth_fastpath import _flask_only, _same

    cid, first = public_code_tokens(app, client, key)
    code, verifier = get_code(client, cid, scope="openid email offline_access")
    second = post_token(app, client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                      "redirect_uri": REDIRECT, "client_id": cid}, dpop_key=key).json
    slow = refresh(app, _flask_only(app), cid, first["refresh_token"], dpop_key=key)
    _authlib_unreachable(app, monkeypatch)
    fast = refresh(app, client, cid, second["refresh_token"], dpop_key=key)
    _same(fast, slow)
    assert fast.json["token_type"] == "DPoP"
    assert introspect(app, client, fast.json["access_token"]).json["cnf"] == {"jkt": key.jkt}
    # On the lean path too: another key is refused without rotating, and a proof is single-use.
    r = refresh(app, client, cid, fast.json["refresh_token"], dpop_key=thief)
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    proof = key.proof("POST", iss(app) + TOKEN)
    r = refresh(app, client, cid, fast.json["refresh_token"], proof=proof)
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"
    r = refresh(app, client, cid, r.json["refresh_token"], proof=proof)
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof" and "jti" in r.json["error_description"]


def test_dpop_refresh_with_a_bad_proof_goes_to_authlib_and_spends_nothing(app, client, key):
    cid, body = public_code_tokens(app, client, key)
    for proof in (key.proof("POST", iss(app) + USERINFO), key.proof("POST", iss(app) + TOKEN, header={"typ": "JWT"})):
        r = refresh(app, client, cid, body["refresh_token"], proof=proof)
        assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof"
    assert grant_row(app, cid)[0].generation == 0
    assert refresh(app, client, cid, body["refresh_token"], dpop_key=key).status_code == 200


def test_lean_dpop_refresh_with_nonces(nonce_app, key, monkeypatch):
    app, client = nonce_app, nonce_app.test_client()
    cid, _ = register(app, client_type="public")
    signed_in(app, client)
    code, verifier = get_code(client, cid, scope="openid offline_access")
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT,
            "client_id": cid}
    nonce = post_token(app, client, data, dpop_key=key).headers["DPoP-Nonce"]
    rt = post_token(app, client, data, dpop_key=key, nonce=nonce).json["refresh_token"]
    r = refresh(app, client, cid, rt, dpop_key=key)  # no nonce: Flask answers use_dpop_nonce
    assert r.status_code == 400 and r.json["error"] == "use_dpop_nonce" and r.headers["DPoP-Nonce"]
    _authlib_unreachable(app, monkeypatch)
    r = refresh(app, client, cid, rt, dpop_key=key, nonce=r.headers["DPoP-Nonce"])
    assert r.status_code == 200 and r.json["token_type"] == "DPoP" and r.headers["DPoP-Nonce"]


def test_cli_registers_a_dpop_required_client(app):
    r = app.test_cli_runner().invoke(args=["clients", "create", "--name", "Mobile", "--type", "public",
                                           "--redirect-uri", "com.example.app:/cb", "--dpop-required"],
                                     catch_exceptions=False)
    assert r.exit_code == 0, r.output
    cid = r.output.split("client_id:")[1].split()[0]
    with app.app_context():
        assert app.extensions["authsvc.oauth"].clients.get(cid).dpop_bound_access_tokens is True


@pytest.mark.skipif(os.environ.get("AUTHSVC_TEST_REDIS_MODE", "standalone") != "standalone",
                    reason="a Cluster pipeline is one round trip per node")
def test_introspection_of_a_dpop_bound_token_is_one_redis_round_trip(app, client, key, monkeypatch):
    import redis.connection

    _, body = public_code_tokens(app, client, key)
    rs = register(app, name="RS", redirect_uris=[], grant_types=["client_credentials"], resource=iss(app))
    ask = lambda: client.post("/oauth2/introspect", data={"token": body["access_token"]},  # noqa: E731
                              headers=basic(*rs))
    assert ask().json["active"]  # the first call caches the resource server's client record
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *a, **kw):
        sent.append(command)
        return original(self, command, *a, **kw)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    r = ask()
    assert r.json["token_type"] == "DPoP" and r.json["cnf"] == {"jkt": key.jkt}
    assert len(sent) == 1  # one pipeline: client, quota count, the token record (with its binding)


def test_client_with_a_skewed_clock_is_asked_for_a_nonce_and_then_accepted(app, client):
    import time

    skewed = DPoPKey.generate("ES256")
    cid, secret = register(app, redirect_uris=[], grant_types=["client_credentials"])
    url = iss(app) + TOKEN
    r = post_token(app, client, {"grant_type": "client_credentials"}, auth=(cid, secret),
                   proof=skewed.proof("POST", url, iat=int(time.time()) - 3600))
    assert r.status_code == 400 and r.json["error"] == "use_dpop_nonce" and r.headers["DPoP-Nonce"]
    r = post_token(app, client, {"grant_type": "client_credentials"}, auth=(cid, secret),
                   proof=skewed.proof("POST", url, iat=int(time.time()) - 3600, nonce=r.headers["DPoP-Nonce"]))
    assert r.status_code == 200 and r.json["token_type"] == "DPoP"
