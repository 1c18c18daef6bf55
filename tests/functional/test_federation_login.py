"""A federated login is a login (issue 17): the same stages as a password login, on the real app (SQL, Redis),
without the upstream round trip (test_federation.py has that)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from authsvc.accounts import login as L
from authsvc.accounts.login import RequestContext
from authsvc.errors import Throttled
from authsvc.federation.service import FederationRefused, Upstream
from tests.conftest import create_user
from tests.functional.mfa_helpers import enrol_totp

CTX = RequestContext("203.0.113.7", "pytest")


def _setup(app, svc, *, trust_mfa):
    fed = app.extensions["authsvc_federation"]
    provider = fed.add_provider(slug="corp", kind="oidc", issuer="https://idp.corp.example", client_id="c",
                                client_secret="s", trust_mfa=trust_mfa)
    uid = create_user(app, email="alice@example.com")
    from authsvc.models import User

    return fed, provider, svc.accounts.db.session.get(User, uid)


@pytest.mark.parametrize("trust,amr,expected", [
    (False, ("pwd", "otp", "mfa"), L.MFA_REQUIRED),  # the operator does not trust this provider's amr
    (True, ("pwd",), L.MFA_REQUIRED),  # trusted, but the upstream did not do a second factor
    (True, ("pwd", "otp", "mfa"), L.SUCCESS),
    (True, ("hwk",), L.SUCCESS),
    (True, ("MFA",), L.MFA_REQUIRED),  # amr values are case-sensitive (RFC 8176)
])
def test_upstream_amr_counts_only_for_a_trusted_provider(app, svc, trust, amr, expected):
    fed, provider, user = _setup(app, svc, trust_mfa=trust)
    enrol_totp(app, user.id)
    up = Upstream(issuer=provider.issuer, subject="s1", email=user.email, email_verified=True, amr=amr)
    result = fed.login_with(user, provider, up, CTX, None)
    assert result.outcome == expected
    if expected == L.SUCCESS:
        assert result.session.info.aal == 2 and "fed" in result.session.info.methods


def test_federated_login_is_throttled_like_a_password_login(app, svc, monkeypatch):
    fed, provider, user = _setup(app, svc, trust_mfa=False)

    def refuse(*a, **kw):
        raise Throttled(30, "account")

    monkeypatch.setattr(svc.login.throttle, "precheck", refuse)
    with pytest.raises(Throttled):
        fed.login_with(user, provider, Upstream(provider.issuer, "s1", user.email, True), CTX, None)


def test_disabled_account_gets_no_session(app, svc):
    fed, provider, user = _setup(app, svc, trust_mfa=False)
    user.status = "disabled"
    svc.accounts.db.session.commit()
    result = fed.login_with(user, provider, Upstream(provider.issuer, "s1", user.email, True), CTX, None)
    assert result.outcome == L.INVALID and result.token is None


def test_provider_config_is_validated_and_the_secret_sealed(app, svc):
    fed = app.extensions["authsvc_federation"]
    for bad in [dict(slug="Bad Slug", kind="oidc", issuer="https://x.example", client_id="c"),
                dict(slug="x", kind="saml", issuer="https://x.example", client_id="c"),
                dict(slug="x", kind="oidc", issuer="http://x.example", client_id="c"),
                dict(slug="x", kind="oidc", issuer=None, client_id="c"),
                dict(slug="x" * 40, kind="oidc", issuer="https://x.example", client_id="c")]:
        with pytest.raises(FederationRefused):
            fed.add_provider(**bad)
    row = fed.add_provider(slug="google", kind="google", client_id="cid", client_secret="very-secret")
    assert row.issuer == "https://accounts.google.com" and row.discovery_url.endswith("openid-configuration")
    assert "very-secret" not in (row.client_secret or "")
    with pytest.raises(FederationRefused):
        fed.add_provider(slug="google2", kind="google", client_id="cid")  # same issuer twice


def test_idp_cli_add_list_remove(app):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["idp", "add", "google", "--client-id", "cid"], env={"AUTHSVC_IDP_CLIENT_SECRET": "s"})
    assert r.exit_code == 0, r.output
    assert "/federation/google/callback" in r.output
    r = runner.invoke(args=["idp", "list"])
    assert "google\tgoogle\tGoogle\thttps://accounts.google.com" in r.output
    r = runner.invoke(args=["idp", "add", "oidc", "--slug", "Bad!", "--client-id", "c", "--issuer", "https://a.b"])
    assert r.exit_code != 0 and "slug" in r.output
    assert runner.invoke(args=["idp", "remove", "google"]).exit_code == 0
    assert runner.invoke(args=["idp", "remove", "google"]).exit_code != 0
    from authsvc.extensions import db
    from authsvc.models import UpstreamProvider

    with app.app_context():
        assert db.session.execute(select(UpstreamProvider)).first() is None
