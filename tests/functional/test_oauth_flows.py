"""OAuth 2.0 / OIDC flows through the Flask test client against real Redis and SQL (RFC 9700 requirements)."""

from __future__ import annotations

from tests.functional.oauth_helpers import (REDIRECT, authorize, basic, code_tokens, get_code, pkce, query, redeem,
                                            register, signed_in, token)


def test_code_flow_issues_tokens_and_iss(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    r = redeem(client, cid, secret, code, verifier)
    assert r.status_code == 200, r.json
    body = r.json
    assert body["token_type"] == "Bearer" and body["access_token"] and body["refresh_token"] and body["id_token"]
    u = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert u.status_code == 200 and u.json["email"] == "alice@example.com"


import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402

from tests.conftest import csrf_token  # noqa: E402


def _introspect(client, rs, tok, hint=None):
    data = {"token": tok}
    if hint:
        data["token_type_hint"] = hint
    return client.post("/oauth2/introspect", data=data, headers=basic(*rs))


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars().all()


# --- redirect URI ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["https://rp.example/cb/", "https://rp.example/cb?x=1", "https://evil.example/cb",
                                 "https://rp.example/CB", "http://rp.example/cb"])
def test_redirect_mismatch_shows_error_page_and_never_redirects(app, client, bad):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, redirect_uri=bad, challenge=challenge)
    assert r.status_code == 400 and r.location is None
    assert b"cannot be processed" in r.data and bad.encode() not in r.headers.get("Location", "").encode()


def test_loopback_redirect_port_may_vary_for_native_apps(app, client):
    cid, _ = register(app, client_type="public", redirect_uris=["http://127.0.0.1/callback"])
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, redirect_uri="http://127.0.0.1:53781/callback", challenge=challenge)
    assert r.status_code == 302 and r.location.startswith("http://127.0.0.1:53781/callback?code=")
    r = authorize(client, cid, redirect_uri="http://127.0.0.1:53781/other", challenge=challenge)
    assert r.status_code == 400 and r.location is None


# --- PKCE ----------------------------------------------------------------------------------------------------------------
def test_pkce_missing_challenge_refused(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    r = authorize(client, cid, challenge=None)
    q = query(r.location)
    assert r.status_code == 302 and q["error"] == "invalid_request" and "code" not in q
    assert q["iss"] == "http://localhost:5000"  # RFC 9207 on error responses too


def test_pkce_plain_refused(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    verifier, _ = pkce()
    r = authorize(client, cid, challenge=verifier, code_challenge_method="plain")
    assert query(r.location)["error"] == "invalid_request"
    r = authorize(client, cid, challenge=verifier, code_challenge_method=None)  # absent method means plain
    assert query(r.location)["error"] == "invalid_request"


def test_pkce_downgrade_and_wrong_verifier_refused(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    # Downgrade: the token request drops the verifier (as if the authorization request had had no challenge).
    r = token(client, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_request"
    code, verifier = get_code(client, cid)
    r = redeem(client, cid, secret, code, pkce()[0])
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"


def test_discovery_advertises_s256_only_and_iss_support(app, client):
    m = client.get("/.well-known/openid-configuration").json
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["response_types_supported"] == ["code"]
    assert "implicit" not in m["grant_types_supported"] and "password" not in m["grant_types_supported"]
    assert m["authorization_response_iss_parameter_supported"] is True
    assert client.get("/.well-known/oauth-authorization-server").json["issuer"] == m["issuer"]


# --- authorization code ------------------------------------------------------------------------------------------------
def test_iss_in_authorization_response(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    verifier, challenge = pkce()
    r = authorize(client, cid, challenge=challenge)
    q = query(r.location)
    assert q["iss"] == "http://localhost:5000" and q["code"] and q["state"].startswith("st-")


def test_code_reuse_refused_and_revokes_tokens_issued_from_it(app, client):
    cid, secret = register(app)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    first = redeem(client, cid, secret, code, verifier).json
    again = redeem(client, cid, secret, code, verifier)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    assert _introspect(client, (cid, secret), first["access_token"]).json == {"active": False}
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400
    assert len(_events(app, "oauth:code:reuse")) == 1


def test_code_lifetime_at_most_ten_minutes(app, client, redis_client, make_app):
    cid, _ = register(app)
    signed_in(app, client)
    code, _ = get_code(client, cid)
    ttl = redis_client.ttl("oauth:code:{%s}" % hashlib.sha256(code.encode()).hexdigest())
    assert 0 < ttl <= 600
    from authsvc.config import ConfigError

    with pytest.raises(ConfigError, match="AUTHSVC_OAUTH_CODE_TTL"):
        make_app(OAUTH_CODE_TTL=601)


# --- grants that do not exist ------------------------------------------------------------------------------------------
def test_implicit_response_type_refused(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    r = client.get("/oauth2/authorize", query_string={"response_type": "token", "client_id": cid,
                                                      "redirect_uri": REDIRECT, "scope": "openid", "state": "s"})
    assert r.status_code == 302 and "#" not in r.location and "access_token" not in r.location
    assert query(r.location)["error"] == "unsupported_response_type"


def test_password_grant_refused(app, client):
    cid, secret = register(app)
    r = token(client, {"grant_type": "password", "username": "alice@example.com", "password": "x" * 20},
              auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "unsupported_grant_type"
    from authsvc.oauth.clients import ClientError

    with pytest.raises(ClientError):
        register(app, grant_types=["password"])
    with pytest.raises(ClientError):
        register(app, grant_types=["implicit"])


def test_token_endpoint_answers_json_errors(app, client):
    r = client.get("/oauth2/token")
    assert r.status_code == 405 and r.json["error"] == "invalid_request"
    r = client.post("/oauth2/token", data={"grant_type": "authorization_code", "code": "x"},
                    headers=basic("nope", "nope"))
    assert r.status_code == 401 and r.json["error"] == "invalid_client"


# --- refresh ---------------------------------------------------------------------------------------------------------------
def test_refresh_rotates_and_replay_revokes_family(app, client):
    cid, secret, first = code_tokens(app, client)
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 200
    second = r.json
    assert second["refresh_token"] != first["refresh_token"]
    # replay of the rotated token: refused, and the whole family (including the new tokens) dies
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"
    assert _introspect(client, (cid, secret), second["access_token"]).json == {"active": False}
    r = token(client, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400
    events = _events(app, "oauth:refresh:reuse")
    assert len(events) == 1 and "theft" in events[0].reason
    assert first["refresh_token"] not in (events[0].details or "")


def test_refresh_race_exactly_one_wins_and_family_revoked(app, client):
    cid, secret, first = code_tokens(app, client)
    results = []
    barrier = threading.Barrier(4)

    def go():
        c = app.test_client()
        barrier.wait()
        r = token(c, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
        results.append((r.status_code, r.json))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Exactly one rotation won the compare-and-set (generation 1); the losers were replays, so the family is
    # revoked — and with it whatever the winner got (its response may even be refused if the revocation landed
    # before its tokens were stored). Never two live successors.
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant

    assert len(results) == 4 and sum(1 for s, _ in results if s == 200) <= 1, results
    assert all(b["error"] == "invalid_grant" for s, b in results if s != 200)
    with app.app_context():
        grant = db.session.execute(db.select(OAuthGrant)).scalar_one()
        # generation 0 is legitimate too: a loser's revocation may reach SQL before the winner's compare-and-set.
        assert grant.generation <= 1 and grant.revoke_reason == "refresh_reuse"
    for s, b in results:
        if s == 200:
            assert _introspect(client, (cid, secret), b["access_token"]).json == {"active": False}
            r = token(client, {"grant_type": "refresh_token", "refresh_token": b["refresh_token"]}, auth=(cid, secret))
            assert r.status_code == 400


def test_refresh_token_of_other_client_refused(app, client):
    cid, secret, first = code_tokens(app, client)
    other, osecret = register(app, name="Other")
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(other, osecret))
    assert r.status_code == 400
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 200  # untouched by the other client's attempt


# --- audience / JWT ----------------------------------------------------------------------------------------------------
def test_wrong_audience_refused(app, client):
    api_a, api_b = "https://api-a.example", "https://api-b.example"
    cid, secret = register(app, audiences=[api_a])
    rs_a = register(app, name="API A", grant_types=["client_credentials"], redirect_uris=[], resource=api_a)
    rs_b = register(app, name="API B", grant_types=["client_credentials"], redirect_uris=[], resource=api_b)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    at = redeem(client, cid, secret, code, verifier).json["access_token"]
    assert _introspect(client, rs_a, at).json["active"] is True
    assert _introspect(client, rs_a, at).json["aud"] == [api_a]
    assert _introspect(client, rs_b, at).json == {"active": False}
    # and not for userinfo either: this token was minted for API A, not for this server
    r = client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + at})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # a resource the client may not ask for is refused
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, resource=api_b)
    assert query(r.location)["error"] == "invalid_target"


def _b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


def test_alg_none_jwt_refused(app, client):
    cid, secret, issued = code_tokens(app, client, token_format="jwt", access_token_ttl=300)
    at = issued["access_token"]
    assert at.count(".") == 2
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + at}).status_code == 200
    header, payload, _ = at.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = _b64({"alg": "none", "typ": "at+jwt"}) + "." + _b64(claims) + "."
    assert client.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + forged}).status_code == 401
    assert _introspect(client, (cid, secret), forged).json == {"active": False}
    # an ID token is not an access token
    assert client.get("/oauth2/userinfo",
                      headers={"Authorization": "Bearer " + issued["id_token"]}).status_code == 401


# --- consent -----------------------------------------------------------------------------------------------------------
def test_consent_recorded_remembered_and_revocable(app, client):
    cid, secret, issued = code_tokens(app, client)
    assert len(_events(app, "oauth:consent:grant")) == 1
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, consent=False)
    assert r.status_code == 302 and "code=" in r.location  # remembered: no second screen
    r = authorize(client, cid, challenge=challenge, consent=False, scope="openid email profile")
    assert r.status_code == 200 and b"decision" in r.data  # more scopes: asked again
    page = client.get("/account/apps")
    assert b"Test RP" in page.data
    r = client.post("/account/apps/revoke", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                   "target": cid})
    assert r.status_code == 302
    assert _introspect(client, (cid, secret), issued["access_token"]).json == {"active": False}
    assert len(_events(app, "oauth:consent:revoke")) == 1
    r = authorize(client, cid, challenge=challenge, consent=False)
    assert r.status_code == 200 and b"decision" in r.data  # asked again after revocation


def test_consent_denied_returns_access_denied(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    params = {"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT, "scope": "openid",
              "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256"}
    page = client.get("/oauth2/authorize", query_string=params)
    r = client.post("/oauth2/authorize", query_string=params,
                    data={"csrf_token": csrf_token(page.get_data(as_text=True)), "decision": "deny"})
    q = query(r.location)
    assert q["error"] == "access_denied" and q["state"] == "s1" and q["iss"]


def test_not_signed_in_redirects_to_login_and_prompt_none(app, client):
    cid, _ = register(app)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge)
    assert r.status_code == 302 and r.location.startswith("/login?next=") and "oauth2/authorize" in r.location
    r = authorize(client, cid, challenge=challenge, prompt="none")
    assert query(r.location)["error"] == "login_required"


def test_prompt_login_and_aal2_request_send_user_back_to_login(app, client):
    cid, _ = register(app)
    signed_in(app, client)
    _, challenge = pkce()
    r = authorize(client, cid, challenge=challenge, prompt="login")
    assert r.location.startswith("/login?next=")
    r = authorize(client, cid, challenge=challenge, max_age="0")
    assert r.location.startswith("/login?next=")
    r = authorize(client, cid, challenge=challenge, acr_values="urn:authsvc:aal2")
    assert r.location.startswith(("/login?next=", "/mfa/step-up?next="))


# --- sessions, introspection, quotas ---------------------------------------------------------------------------------
def test_session_revoked_tokens_inactive(app, client):
    cid, secret, issued = code_tokens(app, client)
    assert _introspect(client, (cid, secret), issued["access_token"]).json["active"] is True
    page = client.get("/account")
    client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert _introspect(client, (cid, secret), issued["access_token"]).json == {"active": False}
    r = token(client, {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400


def test_revocation_and_introspection_authenticate_the_client(app, client):
    cid, secret, issued = code_tokens(app, client)
    assert client.post("/oauth2/introspect", data={"token": issued["access_token"]}).status_code == 401
    assert client.post("/oauth2/introspect", data={"token": issued["access_token"]},
                       headers=basic(cid, "wrong")).status_code == 401
    assert client.post("/oauth2/revoke", data={"token": issued["access_token"]},
                       headers=basic(cid, "wrong")).status_code == 401
    r = client.post("/oauth2/revoke", data={"token": issued["refresh_token"]}, headers=basic(cid, secret))
    assert r.status_code == 200
    assert _introspect(client, (cid, secret), issued["access_token"]).json == {"active": False}


def test_introspection_503_when_redis_down(make_app, private_redis):
    app = make_app(redis_url=private_redis.url)
    client = app.test_client()
    cid, secret, issued = code_tokens(app, client)
    assert _introspect(client, (cid, secret), issued["access_token"]).json["active"] is True
    private_redis.stop()
    r = _introspect(client, (cid, secret), issued["access_token"])
    assert r.status_code == 503 and r.json["error"] == "temporarily_unavailable" and "active" not in r.json
    assert r.headers["Retry-After"]


def test_client_quota_throttles_with_429(app, client):
    cid, secret = register(app, grant_types=["client_credentials"], redirect_uris=[], quota_per_minute=3)
    codes = [token(client, {"grant_type": "client_credentials"}, auth=(cid, secret)).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = token(client, {"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.json["error"] == "too_many_requests" and 1 <= int(r.headers["Retry-After"]) <= 60
    assert len(_events(app, "oauth:quota:exceeded")) == 1  # audited once per window, not per request
    # strangers with a wrong secret do not burn the client's quota
    other, osecret = register(app, grant_types=["client_credentials"], redirect_uris=[], quota_per_minute=2)
    for _ in range(5):
        token(client, {"grant_type": "client_credentials"}, auth=(other, "wrong"))
    assert token(client, {"grant_type": "client_credentials"}, auth=(other, osecret)).status_code == 200


def test_token_quota_at_userinfo(make_app):
    app = make_app(OAUTH_TOKEN_QUOTA_PER_MINUTE=2)
    client = app.test_client()
    _, _, issued = code_tokens(app, client)
    h = {"Authorization": "Bearer " + issued["access_token"]}
    assert [client.get("/oauth2/userinfo", headers=h).status_code for _ in range(3)] == [200, 200, 429]


# --- device flow -------------------------------------------------------------------------------------------------------
def test_device_flow_end_to_end(app, client):
    from authsvc.oauth.clients import DEVICE_GRANT

    cid, _ = register(app, client_type="public", redirect_uris=[], grant_types=[DEVICE_GRANT, "refresh_token"])
    tv = app.test_client()
    r = tv.post("/oauth2/device_authorization", data={"client_id": cid, "scope": "openid email"})
    assert r.status_code == 200, r.json
    d = r.json
    assert d["verification_uri"].endswith("/device") and d["interval"] >= 5
    poll = {"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": cid}
    assert tv.post("/oauth2/token", data=poll).json["error"] == "authorization_pending"
    assert tv.post("/oauth2/token", data=poll).json["error"] == "slow_down"
    signed_in(app, client)
    page = client.get("/device?user_code=" + d["user_code"])
    assert d["user_code"].encode() in page.data
    tok = csrf_token(page.get_data(as_text=True))
    confirm = client.post("/device", data={"csrf_token": tok, "user_code": d["user_code"].lower().replace("-", "")})
    assert b"Test RP" in confirm.data
    done = client.post("/device", data={"csrf_token": tok, "user_code": d["user_code"], "decision": "allow"})
    assert b"Device connected" in done.data
    from authsvc.extensions import get_redis

    with app.app_context():  # the polling interval has passed (Redis TTLs run on real time)
        for k in get_redis().scan_iter("oauth:devpoll:*"):
            get_redis().delete(k)
    r = tv.post("/oauth2/token", data=poll)
    assert r.status_code == 200, r.json
    at = r.json["access_token"]
    assert tv.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + at}).json["email"] == "alice@example.com"
    assert tv.post("/oauth2/token", data=poll).status_code == 400  # a device code yields tokens once
    assert len(_events(app, "oauth:device:approve")) == 1


def test_connected_apps_show_when_the_app_last_used_the_account(app, client):
    """The rotation stamps its grant (same UPDATE, no extra statement); both app lists show it."""
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant
    from authsvc.services import services

    cid, secret, first = code_tokens(app, client)
    with app.app_context():
        services().clock.advance(1800)  # half an hour later the app refreshes (the session is still live)
        later = services().clock.now()
    r = token(client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 200
    with app.app_context():
        grant = db.session.execute(db.select(OAuthGrant)).scalar_one()
        assert grant.generation == 1 and abs((grant.rotated_at - later).total_seconds()) < 5
    stamp = later.strftime("%Y-%m-%dT%H:%M")  # the <time datetime=…> attribute; its text is in the viewer's locale
    for page in ("/account/apps", "/account"):
        html = client.get(page).get_data(as_text=True)
        assert "Test RP" in html and "last used" in html and f'<time datetime="{stamp}' in html, page
