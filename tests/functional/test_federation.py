"""Federated sign-in (issue 17) against a real upstream OpenID provider (a second authsvc over TLS, see
federation_helpers.py), attacker first: the five pre-hijacking attacks of Sudhodanan & Paverd (USENIX Security 2022),
nOAuth, an upstream that omits email_verified, state / nonce / iss mix-ups, replays, another user's link, CSRF."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD, create_user, csrf_token
from tests.functional.federation_helpers import (RP, add_provider, federated_sign_in, start, upstream,  # noqa: F401
                                                 upstream_idp)
from tests.functional.helpers import form_post, login

pytestmark = pytest.mark.slow


@pytest.fixture
def rp(make_app):
    return make_app(base_url=RP)


def _user(app, email):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def _identities(app, user_id=None):
    from authsvc.extensions import db
    from authsvc.models import FederatedIdentity

    with app.app_context():
        q = select(FederatedIdentity)
        if user_id is not None:
            q = q.where(FederatedIdentity.user_id == user_id)
        return list(db.session.execute(q).scalars())


def _signed_in_as(client):
    """The e-mail of the account this browser is signed in to at the RP, or None."""
    r = client.get("/account")
    if r.status_code != 200:
        return None
    import re

    m = re.search(r"Signed in as <strong>([^<]+)</strong>", r.get_data(as_text=True))
    return m.group(1) if m else None


def _audit_tags(app):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return [e.tag for e in db.session.execute(select(SecurityEvent).order_by(SecurityEvent.id)).scalars()]


# --- the happy path, so the attacks below are known to run against a working flow ---------------------------------
def test_new_user_signs_up_with_a_verified_upstream_identity(rp, upstream):
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    r = federated_sign_in(client, upstream, upstream.browser(), "carol@example.com")
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    assert _signed_in_as(client) == "carol@example.com"
    carol = _user(rp, "carol@example.com")
    assert carol.password_hash is None and carol.email_verified_at is not None
    [ident] = _identities(rp, carol.id)
    assert ident.issuer == upstream.url and ident.subject and ident.email == "carol@example.com"
    tags = _audit_tags(rp)
    assert "federation:signup:success" in tags and "account:login:success" in tags
    # A second sign-in finds the same account by (issuer, subject) and records a receipt for it.
    client2 = rp.test_client()
    r = federated_sign_in(client2, upstream, upstream.browser(), "carol@example.com")
    assert r.status_code == 302 and _signed_in_as(client2) == "carol@example.com"
    from authsvc.extensions import db
    from authsvc.models import LoginEvent

    with rp.app_context():
        methods = db.session.execute(select(LoginEvent.method).where(LoginEvent.user_id == carol.id,
                                                                     LoginEvent.outcome == "success")).scalars().all()
    assert methods == ["fed", "fed"]


# --- the five pre-hijacking attacks (Sudhodanan & Paverd, USENIX Security 2022) ----------------------------------------
def test_attack_classic_federated_merge(rp, upstream):
    """The attacker registers the victim's address with a password and never verifies it; the victim later uses
    "Continue with ...". Vulnerable services merge the two, so the attacker's password opens the victim's account.
    Here the unverified registration is discarded when the provider verifies the address: the password is dead."""
    add_provider(rp, upstream)
    attacker_rp = rp.test_client()
    r = form_post(attacker_rp, "/register", {"email": "victim@example.com", "password": PASSWORD})
    assert r.status_code == 200 and _user(rp, "victim@example.com").email_verified_at is None
    planted_id = _user(rp, "victim@example.com").id

    upstream.user("victim@example.com")
    victim = rp.test_client()
    r = federated_sign_in(victim, upstream, upstream.browser(), "victim@example.com")
    assert r.status_code == 302 and _signed_in_as(victim) == "victim@example.com"
    account = _user(rp, "victim@example.com")
    assert account.id != planted_id and account.password_hash is None  # a new account; the attacker's is gone
    # The attacker's password does not open it.
    r = login(attacker_rp, "victim@example.com", PASSWORD)
    assert r.status_code == 401 and _signed_in_as(attacker_rp) is None
    assert "account:discarded:unverified" in _audit_tags(rp)


def test_attack_classic_federated_merge_of_a_verified_account_needs_proof(rp, upstream):
    """The other direction: the address has a verified account here and someone arrives from a provider asserting
    it. No merge and no session until the account itself is proven (see the link tests)."""
    add_provider(rp, upstream)
    create_user(rp, email="victim@example.com")
    upstream.user("victim@example.com")
    stranger = rp.test_client()
    r = federated_sign_in(stranger, upstream, upstream.browser(), "victim@example.com")
    assert r.status_code == 302 and "/federation/link/" in r.location
    assert _signed_in_as(stranger) is None and _identities(rp) == []
    page = stranger.get(r.location).get_data(as_text=True)
    assert "Sign in to link" in page and "<button" not in page.split("<h1>")[1]  # no confirm button offered


def test_attack_unexpired_session_identifier(make_app, upstream):
    """The attacker registers the victim's address (a service that lets unverified accounts sign in), keeps the
    session alive, and waits for the victim to claim the address. Here the claim by a verifying provider discards the
    unverified account and ends every session it had."""
    rp = make_app(base_url=RP, require_verified_email=False, risk_enabled=False)
    add_provider(rp, upstream)
    attacker = rp.test_client()
    form_post(attacker, "/register", {"email": "victim@example.com", "password": PASSWORD})
    assert login(attacker, "victim@example.com").status_code == 302
    assert _signed_in_as(attacker) == "victim@example.com"

    upstream.user("victim@example.com")
    victim = rp.test_client()
    federated_sign_in(victim, upstream, upstream.browser(), "victim@example.com")
    assert _signed_in_as(victim) == "victim@example.com"
    assert _signed_in_as(attacker) is None  # the planted session died with the planted account
    assert attacker.get("/account").status_code == 302


def test_attack_trojan_identifier(make_app, upstream):
    """The attacker registers the victim's address and links an identity of their own (the trojan), hoping it
    survives the victim's recovery of the account. An unverified account cannot link anything."""
    rp = make_app(base_url=RP, require_verified_email=False, risk_enabled=False)
    add_provider(rp, upstream)
    attacker = rp.test_client()
    form_post(attacker, "/register", {"email": "victim@example.com", "password": PASSWORD})
    assert login(attacker, "victim@example.com").status_code == 302
    r = attacker.get("/account/federation/up/link")
    assert r.status_code == 403 and _identities(rp) == []
    # And a federated sign-in with the attacker's own upstream account lands in the attacker's own new account.
    upstream.user("mallory@example.com")
    mallory = rp.test_client()
    federated_sign_in(mallory, upstream, upstream.browser(), "mallory@example.com")
    assert _signed_in_as(mallory) == "mallory@example.com"
    assert _identities(rp, _user(rp, "victim@example.com").id) == []


def test_attack_non_verifying_idp(rp, upstream):
    """The attacker signs up at a provider that does not verify addresses, with the victim's address, and uses it
    here — before or after the victim has an account. Neither creates nor reaches an account."""
    add_provider(rp, upstream)
    upstream.app.extensions["authsvc"].login.require_verified_email = False  # the IdP lets unverified users in
    upstream.user("victim@example.com", verified=False)
    browser = upstream.browser()
    attacker = rp.test_client()
    r = federated_sign_in(attacker, upstream, browser, "victim@example.com")
    assert r.status_code == 400 and _user(rp, "victim@example.com") is None  # no pre-hijacked account to wait in
    create_user(rp, email="victim@example.com")  # the victim's real account
    r = federated_sign_in(attacker, upstream, browser, "victim@example.com")
    assert r.status_code == 400 and _signed_in_as(attacker) is None and _identities(rp) == []
    assert "federation:signup:refused" in _audit_tags(rp)


def test_attack_noauth_mutable_email_claim(rp, upstream):
    """nOAuth: the attacker's upstream account (its own, stable sub) changes its address to the victim's; an app that
    keys accounts by the email claim hands over the victim's account. Here the identity is (iss, sub): the attacker
    lands in the attacker's own account, even when the upstream marks the new address verified."""
    add_provider(rp, upstream)
    upstream.app.extensions["authsvc"].login.require_verified_email = False  # lets users in with any address
    create_user(rp, email="victim@example.com")
    mallory_up = upstream.user("mallory@example.com")
    mallory = rp.test_client()
    browser = upstream.browser()
    federated_sign_in(mallory, upstream, browser, "mallory@example.com")
    assert _signed_in_as(mallory) == "mallory@example.com"

    for verified in (False, True):
        upstream.set_email(mallory_up, "victim@example.com", verified=verified)
        again = rp.test_client()
        r = federated_sign_in(again, upstream, upstream.browser(), "victim@example.com")
        assert r.status_code == 302, r.get_data(as_text=True)[:300]
        assert _signed_in_as(again) == "mallory@example.com"
        upstream.set_email(mallory_up, "mallory@example.com", verified=True)
    assert _identities(rp, _user(rp, "victim@example.com").id) == []


def test_attack_noauth_new_identity_with_victims_address(rp, upstream):
    """nOAuth, first contact: a new upstream identity claiming the victim's address (verified or not) gets no
    session in the victim's account."""
    add_provider(rp, upstream)
    create_user(rp, email="victim@example.com")
    upstream.user("victim@example.com", verified=False)
    upstream.app.extensions["authsvc"].login.require_verified_email = False
    attacker = rp.test_client()
    r = federated_sign_in(attacker, upstream, upstream.browser(), "victim@example.com")
    assert r.status_code == 400 and _signed_in_as(attacker) is None


def test_upstream_omitting_email_verified_counts_as_unverified(rp, upstream, monkeypatch):
    add_provider(rp, upstream)
    provider = upstream.app.extensions["authsvc.oauth"]
    real = provider.user_claims

    def without_flag(user, scope):
        claims = real(user, scope)
        claims.pop("email_verified", None)
        return claims

    monkeypatch.setattr(provider, "user_claims", without_flag)
    upstream.user("dave@example.com")
    client = rp.test_client()
    r = federated_sign_in(client, upstream, upstream.browser(), "dave@example.com")
    assert r.status_code == 400 and _user(rp, "dave@example.com") is None and _signed_in_as(client) is None


def test_attack_unexpired_email_change(rp, upstream):
    """The attacker registers the victim's address, asks to change it to the attacker's own, and keeps the
    confirmation link; the victim claims the address. Here the claim discards the unverified account and with it
    the pending change: the attacker's link confirms nothing."""
    add_provider(rp, upstream)
    attacker = rp.test_client()
    form_post(attacker, "/register", {"email": "victim@example.com", "password": PASSWORD})
    planted = _user(rp, "victim@example.com")
    from authsvc.accounts.login import RequestContext

    with rp.app_context():
        from authsvc.services import services

        link = services().accounts.email_changes.request(planted, "mallory@example.com",
                                                         RequestContext("127.0.0.1", "pytest"))
    upstream.user("victim@example.com")
    victim = rp.test_client()
    federated_sign_in(victim, upstream, upstream.browser(), "victim@example.com")
    assert _signed_in_as(victim) == "victim@example.com"
    path = link[len(RP):]
    page = attacker.get(path)
    r = attacker.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 400
    assert _user(rp, "mallory@example.com") is None
    assert _user(rp, "victim@example.com").password_hash is None  # still the victim's federated account


def test_attack_unexpired_email_change_voided_by_password_reset(rp):
    """The paper's own sequence, without federation: the planted account's pending change (to the attacker's
    address) does not survive the victim's password reset."""
    from authsvc.accounts.login import RequestContext
    from tests.conftest import outbox_link

    attacker = rp.test_client()
    form_post(attacker, "/register", {"email": "victim@example.com", "password": PASSWORD})
    with rp.app_context():
        from authsvc.services import services

        planted = _user(rp, "victim@example.com")
        link = services().accounts.email_changes.request(planted, "mallory@example.com",
                                                         RequestContext("127.0.0.1", "pytest"))
    victim = rp.test_client()
    form_post(victim, "/reset", {"email": "victim@example.com"})
    reset = outbox_link(rp, "victim@example.com", "reset")[len(RP):]
    r = form_post(victim, reset, {"new_password": "a brand new passphrase for me", "confirm": "a brand new passphrase for me"})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    path = link[len(RP):]
    r = attacker.post(path, data={"csrf_token": csrf_token(attacker.get(path).get_data(as_text=True))})
    assert r.status_code == 400 and _user(rp, "victim@example.com") is not None
    assert _user(rp, "mallory@example.com") is None


# --- the protocol: state, code, iss, nonce, browser binding, CSRF ------------------------------------------------
def _callback_query(url):
    from urllib.parse import parse_qs, urlsplit

    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_callback_replay_is_refused(rp, upstream):
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    callback = upstream.authorize(upstream.browser(), start(client), "carol@example.com")
    assert client.get(callback[len(RP):]).status_code == 302
    again = client.get(callback[len(RP):])
    assert again.status_code == 400  # the state was used up: nothing is exchanged twice
    from authsvc.extensions import db
    from authsvc.models import UserSession

    with rp.app_context():
        assert db.session.execute(select(func.count()).select_from(UserSession)).scalar() == 1


def test_code_replay_under_a_fresh_state_is_refused(rp, upstream):
    """A code that was already redeemed, pasted into a new flow: the upstream refuses it (single use, and the PKCE
    verifier of the new flow does not match the code's challenge)."""
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    first = upstream.authorize(upstream.browser(), start(client), "carol@example.com")
    assert client.get(first[len(RP):]).status_code == 302
    fresh = _callback_query(start(client))  # a new state in the same browser, never finished at the upstream
    r = client.get("/federation/up/callback", query_string={"state": fresh["state"],
                                                            "code": _callback_query(first)["code"],
                                                            "iss": upstream.url})
    assert r.status_code == 400
    assert any(t == "federation:callback:refused" for t in _audit_tags(rp))


def test_code_injection_into_the_attackers_browser_is_refused(rp, upstream):
    """Login CSRF / code injection: the victim's callback URL (code + state) opened in another browser. The state is
    bound to the browser that started the flow."""
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    victim = rp.test_client()
    callback = upstream.authorize(upstream.browser(), start(victim), "carol@example.com")
    attacker = rp.test_client()
    start(attacker)  # the attacker has a binding cookie of their own
    assert attacker.get(callback[len(RP):]).status_code == 400
    assert _signed_in_as(attacker) is None
    # ... and it was used up: the victim's own browser cannot finish it either (start again).
    assert victim.get(callback[len(RP):]).status_code == 400


def test_mixup_state_of_one_provider_at_another_providers_callback(rp, upstream):
    add_provider(rp, upstream)
    with rp.app_context():
        rp.extensions["authsvc_federation"].add_provider(slug="other", kind="oidc", issuer="https://other.example",
                                                         client_id="x", client_secret="y")
    upstream.user("carol@example.com")
    client = rp.test_client()
    callback = upstream.authorize(upstream.browser(), start(client), "carol@example.com")
    q = _callback_query(callback)
    assert q["iss"] == upstream.url  # RFC 9207: the upstream names itself in the response
    r = client.get("/federation/other/callback", query_string=q)
    assert r.status_code == 400 and _signed_in_as(client) is None


@pytest.mark.parametrize("iss", ["https://evil.example", None, ""])
def test_rfc9207_iss_missing_or_wrong_is_refused(rp, upstream, iss):
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    q = _callback_query(upstream.authorize(upstream.browser(), start(client), "carol@example.com"))
    if iss is None:
        q.pop("iss")
    else:
        q["iss"] = iss
    r = client.get("/federation/up/callback", query_string=q)
    assert r.status_code == 400 and _signed_in_as(client) is None
    expected = "mix-up" if iss else "without iss"
    assert any(expected in (reason or "") for reason in _reasons(rp))


def test_id_token_for_another_audience_or_nonce_is_refused(rp, upstream):
    """The ID token is checked by Authlib against our client id and the nonce we kept: a second RP client at the
    same upstream (another audience) cannot have its code redeemed here, and our own nonce must match."""
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    q = _callback_query(upstream.authorize(upstream.browser(), start(client), "carol@example.com"))
    # Tamper with the nonce we kept for this state: the ID token's nonce no longer matches.
    import hashlib
    import json as _json

    from authsvc.extensions import RedisExtension

    r = RedisExtension.client_for(rp)
    key = f"fed:state:{{{hashlib.sha256(q['state'].encode()).hexdigest()}}}"
    rec = _json.loads(r.get(key))
    rec["nonce"] = "not-the-nonce-that-was-sent"
    r.set(key, _json.dumps(rec), ex=60)
    resp = client.get("/federation/up/callback", query_string=q)
    assert resp.status_code == 400 and _signed_in_as(client) is None
    assert any("ID token rejected" in (e or "") for e in _reasons(rp))


def _reasons(app):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return [e.reason for e in db.session.execute(select(SecurityEvent)).scalars()]


@pytest.mark.parametrize("query", [
    {},
    {"state": "x" * 5000, "code": "c"},
    {"state": "short"},
    {"state": "ａｂｃｄｅｆｇｈｉｊ", "code": "c"},  # full-width: never matches a stored state
    {"state": ["a" * 20, "b" * 20], "code": ["c", "d"]},
    {"error": "access_denied"},
])
def test_hostile_callback_input_is_a_clear_4xx(rp, upstream, query):
    add_provider(rp, upstream)
    client = rp.test_client()
    start(client)
    r = client.get("/federation/up/callback", query_string=query)
    assert r.status_code == 400, r.status_code
    r = client.post("/federation/up/callback", data=query)
    assert r.status_code == 400
    assert client.get("/federation/nope/callback").status_code == 404
    assert client.get("/federation/" + "a" * 300 + "/callback").status_code == 404


def test_start_is_a_known_providers_link_that_grants_nothing(rp, upstream):
    add_provider(rp, upstream)
    client = rp.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Continue with Upstream" in page and 'href="/federation/up/start"' in page
    assert client.post("/federation/up/start").status_code == 405
    for bad in ("nope", "UP%00", "%E2%80%AEup", "up%20", "a" * 200):
        assert client.get(f"/federation/{bad}/start").status_code == 404
    # A forged start (login CSRF attempt) makes a state bound to this browser and nothing else: no session.
    assert client.get("/federation/up/start").status_code == 302 and _signed_in_as(client) is None
    # The sign-in page links to it only for enabled providers.
    from authsvc.extensions import db
    from authsvc.models import UpstreamProvider

    with rp.app_context():
        db.session.execute(UpstreamProvider.__table__.update().values(enabled=False))
        db.session.commit()
    assert "Continue with Upstream" not in client.get("/login").get_data(as_text=True)
    assert client.get("/federation/up/start").status_code == 404


# --- linking, unlinking, and a federated login being a login ------------------------------------------------------
def _link_page(rp, upstream, email="alice@example.com"):
    create_user(rp, email=email)
    upstream.user(email)
    client = rp.test_client()
    r = federated_sign_in(client, upstream, upstream.browser(), email)
    assert r.status_code == 302 and "/federation/link/" in r.location
    return client, r.location


def test_link_after_proving_the_existing_account(rp, upstream):
    add_provider(rp, upstream)
    client, link = _link_page(rp, upstream)
    page = client.get(link).get_data(as_text=True)
    assert "Sign in to link" in page
    r = form_post(client, "/login?next=" + link, {"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 302 and r.location.endswith(link)
    page = client.get(link).get_data(as_text=True)
    assert "Link Upstream" in page
    r = client.post(link, data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302
    alice = _user(rp, "alice@example.com")
    assert [i.email for i in _identities(rp, alice.id)] == ["alice@example.com"]
    assert client.post(link, data={"csrf_token": csrf_token(page)}).status_code == 400  # single use
    # From now on the provider signs in to alice's account directly.
    other = rp.test_client()
    federated_sign_in(other, upstream, upstream.browser(), "alice@example.com")
    assert _signed_in_as(other) == "alice@example.com"
    assert "federation:link:success" in _audit_tags(rp)
    # The owner is told by e-mail.
    with rp.app_context():
        from authsvc.services import services

        assert any("linked" in m.subject for m in services().outbox.messages(to="alice@example.com"))


def test_link_confirmation_of_another_user_is_refused(rp, upstream):
    add_provider(rp, upstream)
    client, link = _link_page(rp, upstream)
    create_user(rp, email="mallory@example.com")
    # Same browser (it holds the binding cookie) but signed in to another account: refused, nothing linked.
    assert login(client, "mallory@example.com").status_code == 302
    page = client.get(link).get_data(as_text=True)
    assert "signed in to a different account" in page
    r = client.post(link, data={"csrf_token": csrf_token(page)})
    assert r.status_code == 403 and _identities(rp) == []
    # Another browser cannot even see it (the pending link is bound to the browser that started the flow).
    stranger = rp.test_client()
    assert login(stranger, "alice@example.com").status_code == 302
    assert stranger.get(link).status_code == 400
    r = stranger.post(link, data={"csrf_token": csrf_token(stranger.get("/account").get_data(as_text=True))})
    assert r.status_code == 400 and _identities(rp) == []


def test_link_needs_the_second_factor_when_the_account_has_one(rp, upstream):
    from tests.functional.mfa_helpers import enrol_totp

    add_provider(rp, upstream)
    client, link = _link_page(rp, upstream)
    enrol_totp(rp, _user(rp, "alice@example.com").id)
    r = form_post(client, "/login?next=" + link, {"email": "alice@example.com", "password": PASSWORD})
    assert "/mfa/challenge" in r.location  # the password alone is not the proof
    page = client.get(link).get_data(as_text=True)
    assert "Sign in to link" in page
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post(link, data={"csrf_token": token}).status_code in (302, 400)  # to the login page, or refused
    assert _identities(rp) == []


def test_federated_login_asks_for_the_accounts_second_factor(rp, upstream):
    from tests.functional.mfa_helpers import enrol_totp

    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    federated_sign_in(client, upstream, upstream.browser(), "carol@example.com")
    carol = _user(rp, "carol@example.com")
    enrol_totp(rp, carol.id)
    client2 = rp.test_client()
    r = federated_sign_in(client2, upstream, upstream.browser(), "carol@example.com")
    assert r.status_code == 302 and r.location.endswith("/mfa/challenge")
    assert _signed_in_as(client2) is None
    assert "account:login:mfa_required" in _audit_tags(rp)


def test_unlinking_the_last_way_in_is_refused(rp, upstream):
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    federated_sign_in(client, upstream, upstream.browser(), "carol@example.com")
    carol = _user(rp, "carol@example.com")
    [ident] = _identities(rp, carol.id)
    page = client.get("/account").get_data(as_text=True)
    assert "Linked sign-in methods" in page and "Unlink" in page
    r = client.post(f"/account/federation/unlink/{ident.id}", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 409 and len(_identities(rp, carol.id)) == 1
    # Another user's identity id, junk ids: 404, nothing removed.
    create_user(rp, email="mallory@example.com")
    mallory = rp.test_client()
    login(mallory, "mallory@example.com")
    mpage = mallory.get("/account").get_data(as_text=True)
    assert mallory.post(f"/account/federation/unlink/{ident.id}", data={"csrf_token": csrf_token(mpage)}
                        ).status_code == 404
    for junk in ("0", "-1", "99999999999", "１"):
        assert mallory.post(f"/account/federation/unlink/{junk}", data={"csrf_token": csrf_token(mpage)}
                            ).status_code == 404
    assert client.post(f"/account/federation/unlink/{ident.id}").status_code == 400  # no CSRF token
    assert len(_identities(rp, carol.id)) == 1


def test_unlink_with_a_password_left(rp, upstream):
    add_provider(rp, upstream)
    client, link = _link_page(rp, upstream)
    form_post(client, "/login?next=" + link, {"email": "alice@example.com", "password": PASSWORD})
    client.post(link, data={"csrf_token": csrf_token(client.get(link).get_data(as_text=True))})
    alice = _user(rp, "alice@example.com")
    [ident] = _identities(rp, alice.id)
    page = client.get("/account").get_data(as_text=True)
    r = client.post(f"/account/federation/unlink/{ident.id}", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and _identities(rp, alice.id) == []


def test_stale_session_cannot_link_or_unlink(rp, upstream):
    add_provider(rp, upstream)
    create_user(rp, email="alice@example.com")
    client = rp.test_client()
    login(client, "alice@example.com")
    page = client.get("/account").get_data(as_text=True)
    rp.extensions["authsvc"].clock.advance(1200)  # beyond fresh_auth_seconds (600), within the idle timeout
    r = client.get("/account/federation/up/link")
    assert r.status_code == 302 and "/mfa/step-up" in r.location
    r = client.post("/account/federation/unlink/1", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and "/mfa/step-up" in r.location


def test_form_post_callback_as_apple_sends_it(rp, upstream):
    """response_mode=form_post (Apple): the same callback answers a POST with the parameters in the body; no CSRF
    token is needed there (the browser-bound single-use state is the defence), and a replay is refused just the same."""
    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    client = rp.test_client()
    q = _callback_query(upstream.authorize(upstream.browser(), start(client), "carol@example.com"))
    q["user"] = '{"name": {"firstName": "Carol", "lastName": "<script>"}}'  # Apple: first sign-in only, unsigned
    r = client.post("/federation/up/callback", data=q)
    assert r.status_code == 302 and _signed_in_as(client) == "carol@example.com"
    assert client.post("/federation/up/callback", data=q).status_code == 400


def test_two_racing_callbacks_with_one_state_make_one_session(rp, upstream):
    from concurrent.futures import ThreadPoolExecutor

    add_provider(rp, upstream)
    upstream.user("carol@example.com")
    first = rp.test_client()
    callback = upstream.authorize(upstream.browser(), start(first), "carol@example.com")[len(RP):]
    second = rp.test_client()
    cookie = first.get_cookie("__Host-authsvc-fed")
    second.set_cookie("__Host-authsvc-fed", cookie.value, domain=cookie.domain)

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda c: c.get(callback).status_code, (first, second)))
    assert codes == [302, 400]
    from authsvc.extensions import db
    from authsvc.models import UserSession

    with rp.app_context():
        assert db.session.execute(select(func.count()).select_from(UserSession)).scalar() == 1
