"""Device Bound Session Credentials: a stolen login cookie is useless without the device key.

Driven by ``tests/dbsc_client.py``, a user agent written from the W3C draft with its own parsing and signing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.conftest import create_user
from tests.dbsc_client import DbscAgent, DeviceKey, parse_challenge, parse_registration, sf
from tests.functional.helpers import login

COOKIE = "__Host-authsvc"
BOUND = COOKIE + "-bound"


def _bound_login(app, client, alg="ES256"):
    create_user(app)
    resp = login(client)
    assert resp.status_code == 302
    agent = DbscAgent(client, COOKIE, alg)
    reg = agent.register_from(resp)
    assert reg.status_code == 200, reg.get_data(as_text=True)
    return agent


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars())


def _advance(app, seconds):
    # Not the ``svc`` fixture: it holds an app context open, and Flask then shares ``g`` (the per-request session
    # cache) across the test client's requests.
    app.extensions["authsvc"].clock.advance(seconds)


def _thief(app, client):
    """Another browser holding a copy of the victim's login cookie (an infostealer's loot), nothing else."""
    other = app.test_client()
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value, domain="localhost")
    return other


# --- attacks first -------------------------------------------------------------------------------------------------
def _past_registration_window(app):
    """The seconds after the binding in which a page requested before the browser held its short cookie is served."""
    _advance(app, 16)


def test_stolen_login_cookie_alone_is_refused_on_a_bound_session(app, client):
    _bound_login(app, client)
    _past_registration_window(app)
    thief = _thief(app, client)
    assert thief.get("/account").status_code == 302  # sent to sign in
    assert client.get("/account").status_code == 200  # the owner's session keeps working
    assert _events(app, "session:dbsc:missing")


def test_the_registration_window_serves_only_a_bare_login_cookie_and_only_until_the_first_refresh(app, client):
    """A browser follows the sign-in's redirect while it registers: that page may arrive after the binding without
    the short cookie (Chromium did under CI load). For 15 s after the binding, and only before any refresh, a request
    with no short cookie is served; a made-up short cookie is not, and neither is a bare login cookie afterwards."""
    _bound_login(app, client)
    thief = _thief(app, client)
    assert thief.get("/account").status_code == 200  # in flight at registration: the same cookie was good a moment ago
    forged = _thief(app, client)
    forged.set_cookie(BOUND, "x" * 43, domain="localhost")
    assert forged.get("/account").status_code == 302  # a short cookie this session never issued: no window
    _advance(app, 16)
    assert thief.get("/account").status_code == 302
    assert client.get("/account").status_code == 200

    # A refresh closes the window at once, even within its 15 s.
    thief2, owner2 = _bound_login_again(app)
    assert thief2.get("/account").status_code == 200
    refreshed = owner2.refresh()
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert thief2.get("/account").status_code == 302


def _bound_login_again(app):
    """A second owner (another account) bound just now, and a copy of its login cookie."""
    from tests.conftest import create_user as make

    make(app, email="bob@example.com")
    owner = app.test_client()
    resp = login(owner, email="bob@example.com")
    assert resp.status_code == 302
    agent = DbscAgent(owner, COOKIE, "ES256")
    assert agent.register_from(resp).status_code == 200
    return _thief(app, owner), agent


def test_stolen_cookies_replayed_after_the_short_cookie_expired_end_the_session(app, client):
    _bound_login(app, client)
    thief = _thief(app, client)
    thief.set_cookie(BOUND, client.get_cookie(BOUND).value, domain="localhost")
    assert thief.get("/account").status_code == 200  # within its minutes the copy works (the window DBSC leaves)
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 60)
    assert thief.get("/account").status_code == 302
    ended = _events(app, "session:dbsc:violation")
    assert ended and ended[0].reason == "dbsc_cookie_replay" and json.loads(ended[0].details)["takeover_signal"] is True
    # The owner is told in plain words, with the way out.
    with app.app_context():
        from authsvc.services import services

        mails = [m for m in services().outbox.messages(to="alice@example.com") if "We ended a sign-in" in m.subject]
    assert len(mails) == 1 and "expired" in mails[0].body and "/not-me/" in mails[0].body
    # Ended, not just refused: even the owner's device cannot refresh it any more.
    agent_resp = client.post("/dbsc/refresh", headers={"Sec-Secure-Session-Id": sf("x")})
    assert agent_resp.status_code == 401
    assert client.get("/account").status_code == 302


def test_refresh_signed_by_another_key_ends_the_session(app, client):
    agent = _bound_login(app, client)
    thief = _thief(app, client)
    robber = DbscAgent(thief, COOKIE)
    robber.session_id, robber.refresh_url = agent.session_id, agent.refresh_url
    resp = robber.refresh(challenge=None)  # 403 → signs the fresh challenge with the wrong key
    assert resp.status_code == 401
    assert BOUND not in resp.headers.get("Set-Cookie", "")
    assert _events(app, "session:dbsc:violation")[0].reason == "dbsc_bad_signature"
    assert client.get("/account").status_code == 302  # the session is over for everyone


def test_replayed_refresh_proof_gets_no_cookie(app, client):
    agent = _bound_login(app, client)
    proof = agent.key.proof(agent.cached_challenge, registration=False)
    headers = {"Sec-Secure-Session-Id": sf(agent.session_id), "Secure-Session-Response": sf(proof)}
    first = client.post("/dbsc/refresh", headers=headers)
    assert first.status_code == 200 and BOUND in first.headers["Set-Cookie"]
    again = client.post("/dbsc/refresh", headers=headers)
    assert again.status_code == 403
    assert "Set-Cookie" not in again.headers
    assert "Secure-Session-Challenge" in again.headers  # a genuine browser just signs the new one
    assert client.get("/account").status_code == 200


def test_refresh_needs_the_bound_login_session(app, client):
    agent = _bound_login(app, client)
    stranger = app.test_client()  # no login cookie at all, knows the DBSC identifier
    resp = stranger.post("/dbsc/refresh", headers={
        "Sec-Secure-Session-Id": sf(agent.session_id),
        "Secure-Session-Response": sf(agent.key.proof(agent.cached_challenge, registration=False))})
    assert resp.status_code == 401
    create_user(app, "bob@example.com")
    bob = app.test_client()
    login(bob, "bob@example.com")
    resp = bob.post("/dbsc/refresh", headers={"Sec-Secure-Session-Id": sf(agent.session_id)})
    assert resp.status_code == 401  # Bob's session is not the one bound under Alice's identifier


def test_bound_session_is_never_a_bearer_token(app, client):
    _bound_login(app, client)
    token = client.get_cookie(COOKIE).value
    anon = app.test_client()
    assert anon.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert anon.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert anon.post("/api/v1/sessions/revoke-all", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/account").status_code == 200


@pytest.mark.parametrize("case", ["alg_none", "hs256", "typ", "no_jwk", "private_jwk", "jti_unknown", "garbage",
                                  "bare_with_junk", "oversized", "small_rsa", "wrong_curve"])
def test_hostile_registration_proofs_are_refused(app, client, case):
    create_user(app)
    offer = parse_registration(login(client).headers["Secure-Session-Registration"])
    key = DeviceKey()
    header = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": key.jwk}
    payload = {"jti": offer["challenge"]}
    if case == "alg_none":
        import base64
        import json

        def b(d):
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
        value = sf(b({"alg": "none", "typ": "dbsc+jwt"}) + "." + b(payload) + ".")
    elif case == "hs256":
        value = sf(key.sign({**header, "alg": "HS256"}, payload))
    elif case == "typ":
        value = sf(key.sign({**header, "typ": "JWT"}, payload))
    elif case == "no_jwk":
        value = sf(key.sign({"alg": "ES256", "typ": "dbsc+jwt"}, payload))
    elif case == "private_jwk":
        priv = key.key.private_numbers().private_value
        value = sf(key.sign({**header, "jwk": {**key.jwk, "d": "AA" + str(priv)[:8]}}, payload))
    elif case == "jti_unknown":
        value = sf(key.sign(header, {"jti": "not-a-challenge-we-issued"}))
    elif case == "garbage":
        value = sf("a.b.c")
    elif case == "bare_with_junk":
        value = key.sign(header, payload) + ' x;p="1"'  # neither an sf-string nor a bare JWS
    elif case == "oversized":
        value = sf(key.sign(header, {"jti": offer["challenge"], "pad": "x" * 20000}))
    elif case == "small_rsa":
        small = DeviceKey("RS256", rsa_bits=1024)
        value = sf(small.proof(offer["challenge"], registration=True))
    else:  # wrong_curve
        value = sf(key.sign({**header, "jwk": {**key.jwk, "crv": "P-384"}}, payload))
    resp = client.post(offer["path"], headers={"Secure-Session-Response": value})
    assert 400 <= resp.status_code < 500 and resp.is_json
    assert BOUND not in resp.headers.get("Set-Cookie", "")
    assert client.get("/account").status_code == 200  # still a plain, unbound session
    assert "Device-bound" not in client.get("/account").get_data(as_text=True)


def test_a_bare_proof_as_chromium_sends_it_registers(app, client):
    """Chromium 156 sends Secure-Session-Response without the draft's sf-string quotes (and the browser test shows
    it); the proof is the same JWT and is verified the same way."""
    create_user(app)
    offer = parse_registration(login(client).headers["Secure-Session-Registration"])
    key = DeviceKey()
    resp = client.post(offer["path"], headers={"Secure-Session-Response": key.proof(offer["challenge"], registration=True)})
    assert resp.status_code == 200 and resp.json["session_identifier"]
    assert BOUND in resp.headers.get("Set-Cookie", "")


def test_registration_challenge_is_single_use_and_tied_to_its_session(app, client):
    create_user(app)
    create_user(app, "bob@example.com")
    offer = parse_registration(login(client).headers["Secure-Session-Registration"])
    bob = app.test_client()
    login(bob, "bob@example.com")
    key = DeviceKey()
    proof = {"Secure-Session-Response": sf(key.proof(offer["challenge"], registration=True))}
    # Bob's browser cannot use the challenge issued for Alice's session...
    assert bob.post(offer["path"], headers=proof).status_code == 400
    # ...Alice's can, once.
    assert client.post(offer["path"], headers=proof).status_code == 200
    assert client.post(offer["path"], headers=proof).status_code == 400


def test_stale_registration_challenge_is_refused(app, client):
    create_user(app)
    offer = parse_registration(login(client).headers["Secure-Session-Registration"])
    _advance(app, 301)
    resp = client.post(offer["path"], headers={"Secure-Session-Response": sf(DeviceKey().proof(
        offer["challenge"], registration=True))})
    assert resp.status_code == 400 and resp.get_json()["error"] == "bad_challenge"


def test_a_bound_session_cannot_be_rebound_to_another_key(app, client):
    agent = _bound_login(app, client)
    from authsvc.dbsc import service
    from authsvc.sessions import token_hash

    with app.app_context():
        challenge = service().registration_challenge(token_hash(client.get_cookie(COOKIE).value))
    resp = client.post("/dbsc/register", headers={"Secure-Session-Response": sf(DeviceKey().proof(
        challenge, registration=True))})
    assert resp.status_code == 409
    assert agent.refresh().status_code == 200  # the original key still rules


def test_refresh_proof_with_a_jwk_header_is_refused(app, client):
    agent = _bound_login(app, client)
    proof = agent.key.proof(agent.cached_challenge, registration=False, jwk=agent.key.jwk)
    resp = client.post("/dbsc/refresh", headers={"Sec-Secure-Session-Id": sf(agent.session_id),
                                                 "Secure-Session-Response": sf(proof)})
    assert resp.status_code == 401  # MUST NOT be present on refresh: treated as a forged proof


# --- the owner's path -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_register_refresh_and_use_a_bound_session(app, client, alg):
    create_user(app)
    resp = login(client)
    offer = parse_registration(resp.headers["Secure-Session-Registration"])
    assert offer["algorithms"] == ["ES256", "RS256"] and offer["path"] == "/dbsc/register"
    agent = DbscAgent(client, COOKIE, alg)
    reg = agent.register_from(resp)
    body = reg.get_json()
    assert reg.headers["Cache-Control"] == "no-store"
    assert body["refresh_url"] == "/dbsc/refresh" and body["scope"]["include_site"] is False
    assert body["credentials"] == [{"type": "cookie", "name": BOUND,
                                    "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}]
    set_cookie = reg.headers["Set-Cookie"]
    assert set_cookie.startswith(BOUND + "=") and "Max-Age=600" in set_cookie and "HttpOnly" in set_cookie
    page = client.get("/account")
    assert page.status_code == 200 and "Device-bound" in page.get_data(as_text=True)
    # Minutes later the browser lets the short cookie expire and refreshes it with a proof.
    _advance(app, 590)
    client.delete_cookie(BOUND, domain="localhost")
    assert client.get("/account").status_code == 302  # without it: refused, but the session lives on
    first = client.post("/dbsc/refresh", headers={"Sec-Secure-Session-Id": sf(agent.session_id)})
    assert first.status_code == 403  # no proof yet: here is a challenge
    challenge, sid = parse_challenge(first.headers["Secure-Session-Challenge"])
    assert sid == agent.session_id
    assert agent.refresh(challenge=challenge).status_code == 200
    assert client.get("/account").status_code == 200
    assert _events(app, "session:dbsc:bound")


def test_browsers_without_dbsc_keep_plain_sessions(app, client):
    create_user(app)
    resp = login(client)
    assert "Secure-Session-Registration" in resp.headers  # offered; a browser that does not know it ignores it
    assert client.get("/account").status_code == 200
    token = client.get_cookie(COOKIE).value
    assert app.test_client().get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_api_login_gets_no_offer_and_dbsc_can_be_switched_off(make_app):
    app = make_app(dbsc_enabled=False)
    create_user(app)
    client = app.test_client()
    resp = login(client)
    assert "Secure-Session-Registration" not in resp.headers
    assert client.post("/dbsc/register").status_code == 404


def test_ending_a_stolen_session_ends_the_oauth_tokens_it_minted(app, client):
    from tests.functional.oauth_helpers import basic, get_code, redeem, register

    agent = _bound_login(app, client)
    assert agent.session_id
    cid, secret = register(app)
    code, verifier = get_code(client, cid)
    issued = redeem(client, cid, secret, code, verifier).json
    assert "refresh_token" in issued
    thief = _thief(app, client)
    thief.set_cookie(BOUND, client.get_cookie(BOUND).value, domain="localhost")
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 60)
    assert thief.get("/account").status_code == 302  # replay caught: the session ends...
    rp = app.test_client()
    r = rp.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
                headers=basic(cid, secret))
    assert r.status_code == 400 and r.json["error"] == "invalid_grant"  # ...and so does what it minted
    intro = rp.post("/oauth2/introspect", data={"token": issued["access_token"]}, headers=basic(cid, secret))
    assert intro.json["active"] is False


# --- found by an outside attack on a running instance (2026-11-26) -------------------------------------------------------
def test_a_copied_unbound_cookie_never_gets_a_registration_challenge(app, client):
    """Was: any page of an unbound session re-offered registration once the first challenge went stale, so a thief
    holding only the cookie bound the session to THEIR key and locked the owner out. The offer now rides only on the
    response that starts the session, which the thief never sees."""
    create_user(app)
    login(client)  # a browser without DBSC: ignores the offer
    thief = _thief(app, client)
    for wait in (0, 310, 400):
        _advance(app, wait)
        resp = thief.get("/account")
        assert resp.status_code == 200 and "Secure-Session-Registration" not in resp.headers
    assert client.get("/account").status_code == 200


def test_an_api_session_token_used_as_a_cookie_gets_no_registration_challenge(app):
    create_user(app)
    api = app.test_client()
    token = api.post("/api/v1/login", json={"email": "alice@example.com",
                                            "password": "correct horse battery staple"}).json["session_token"]
    thief = app.test_client()
    thief.set_cookie(COOKIE, token, domain="localhost")
    resp = thief.get("/account")
    assert "Secure-Session-Registration" not in resp.headers


def test_registration_from_another_network_or_browser_than_the_sign_in_is_refused(make_app):
    """A thief who somehow holds the challenge (a proxy in the middle) but registers from elsewhere gets no binding;
    the owner's own browser still binds."""
    app = make_app(trusted_proxies=("127.0.0.1/32",))
    create_user(app)
    owner = app.test_client()
    owner.environ_base.update({"HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux "
                               "x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"})
    resp = login(owner)
    offer = parse_registration(resp.headers["Secure-Session-Registration"])
    thief = _thief(app, owner)
    thief.environ_base.update({"HTTP_X_FORWARDED_FOR": "203.0.113.9", "HTTP_USER_AGENT": owner.environ_base[
        "HTTP_USER_AGENT"]})
    proof = {"Secure-Session-Response": sf(DeviceKey().proof(offer["challenge"], registration=True))}
    r = thief.post(offer["path"], headers=proof)
    assert r.status_code == 403 and r.get_json()["error"] == "wrong_context"
    agent = DbscAgent(owner, COOKIE)
    assert agent.register_from(resp).status_code == 200  # the attempt did not burn the owner's challenge


def test_an_old_short_cookie_replayed_after_the_owner_refreshed_ends_the_session(app, client):
    """Was: only the current and the previous short cookie were known, so a copy two refreshes old was merely
    refused (no end, no notice). Every short cookie this session was given is remembered."""
    agent = _bound_login(app, client)
    stolen = client.get_cookie(BOUND).value
    for _ in range(3):  # the owner's browser keeps refreshing, every few minutes
        _advance(app, 200)
        assert agent.refresh().status_code == 200
    thief = _thief(app, client)
    thief.set_cookie(BOUND, stolen, domain="localhost")
    assert thief.get("/account").status_code == 302
    ended = _events(app, "session:dbsc:violation")
    assert ended and ended[0].reason == "dbsc_cookie_replay"
    assert client.get("/account").status_code == 302


def test_an_expired_short_cookie_is_not_revived_by_the_owners_next_refresh(app, client):
    """Found by an outside attack: the previous short cookie's grace (requests in flight during a refresh) counted
    from the refresh, so a copy presented after its own deadline but within seconds of the owner's next refresh was
    accepted again. The grace now ends at the old cookie's deadline at the latest."""
    agent = _bound_login(app, client)
    stolen = client.get_cookie(BOUND).value
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 30)  # the copy is past its deadline (TTL + 15 s grace)
    assert agent.refresh().status_code == 200  # the owner's browser refreshes
    thief = _thief(app, client)
    thief.set_cookie(BOUND, stolen, domain="localhost")
    assert thief.get("/account").status_code == 302
    ended = _events(app, "session:dbsc:violation")
    assert ended and ended[0].reason == "dbsc_cookie_replay"


def test_a_step_up_keeps_the_device_binding_so_a_thief_cannot_rebind_to_his_key(app, client):
    """Found by an outside attack: a thief with the copied jar (login and live short cookie) and the password of an
    account without a second factor re-authenticated at /mfa/step-up, got a fresh unbound session with a new
    registration offer, bound it to his own key, and the owner's session was revoked. A re-issued session now keeps
    the binding (key, live short cookie, history) and is offered no registration; without the key it ends where the
    old one would have."""
    from tests.conftest import csrf_token

    agent = _bound_login(app, client)
    thief = _thief(app, client)
    thief.set_cookie(BOUND, client.get_cookie(BOUND).value, domain="localhost")
    page = thief.get("/mfa/step-up?next=/account")
    assert page.status_code == 200
    resp = thief.post("/mfa/step-up?next=/account", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "method": "password",
        "password": "correct horse battery staple"})
    assert resp.status_code == 302
    assert "Secure-Session-Registration" not in resp.headers  # no offer: the new session is already bound
    new_token = thief.get_cookie(COOKIE).value
    with app.app_context():
        from authsvc.sessions import token_hash

        state = app.extensions["authsvc"].sessions.redis.hgetall(f"sess:{{{token_hash(new_token)}}}")
    assert state.get("bk") and json.loads(state["bk"])["id"] == agent.session_id  # the owner's key, not a new one
    # The thief's copy of the short cookie lasts its minutes, then the new session needs the owner's key.
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 60)
    assert thief.get("/account").status_code == 302


def test_the_owners_step_up_keeps_the_session_bound_and_refreshable(app, client):
    from tests.conftest import csrf_token

    agent = _bound_login(app, client)
    page = client.get("/mfa/step-up?next=/account")
    resp = client.post("/mfa/step-up?next=/account", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "method": "password",
        "password": "correct horse battery staple"})
    assert resp.status_code == 302 and "Secure-Session-Registration" not in resp.headers
    assert client.get("/account").status_code == 200  # the live short cookie went with the session
    _advance(app, app.config["AUTHSVC"].dbsc_cookie_ttl + 60)
    assert agent.refresh().status_code == 200  # the device key refreshes the re-issued session
    assert client.get("/account").status_code == 200
