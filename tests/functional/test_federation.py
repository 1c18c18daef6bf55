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
