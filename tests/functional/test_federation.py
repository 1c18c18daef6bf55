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
    page = attacker.get("/account").get_data(as_text=True)
    r = attacker.post("/account/federation/up/link", data={"csrf_token": csrf_token(page)})
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


def test_email_change_happy_path_confirms_at_the_new_address_only(rp):
    create_user(rp, email="erin@example.com")
    client = rp.test_client()
    assert login(client, "erin@example.com").status_code == 302
    r = form_post(client, "/account/email", {"email": "Erin.New@example.com"})
    assert r.status_code == 200 and _user(rp, "erin@example.com") is not None  # nothing changed yet
    from tests.conftest import outbox_link

    path = outbox_link(rp, "erin.new@example.com", "email-change")[len(RP):]
    r = client.post(path, data={"csrf_token": csrf_token(client.get(path).get_data(as_text=True))})
    assert r.status_code == 302 and _user(rp, "erin.new@example.com") is not None
    r = client.post(path, data={"csrf_token": csrf_token(client.get(path).get_data(as_text=True))})
    assert r.status_code == 400  # single use
