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


def test_admin_panel_adds_lists_and_removes_providers_and_shows_user_identities(app):
    from tests.conftest import csrf_token
    from tests.functional.admin_helpers import admin_client

    admin = admin_client(app)
    page = admin.get("/admin/idp/")
    assert page.status_code == 200 and "No provider yet" in page.get_data(as_text=True)
    token = csrf_token(page.get_data(as_text=True))
    r = admin.post("/admin/idp/", data={"csrf_token": token, "kind": "oidc", "slug": "corp", "client_id": "c",
                                        "issuer": "http://evil.example"})
    assert r.status_code == 400 and "https" in r.get_data(as_text=True)
    r = admin.post("/admin/idp/", data={"csrf_token": token, "kind": "microsoft", "slug": "ms", "client_id": "c",
                                        "client_secret": "s", "trust_mfa": "yes"})
    assert r.status_code == 302
    page = admin.get("/admin/idp/").get_data(as_text=True)
    assert "{tenantid}" in page and "/federation/ms/callback" in page
    # Per-user identities on the user page.
    from authsvc.extensions import db
    from authsvc.models import FederatedIdentity, UpstreamProvider

    uid = create_user(app, email="bob@example.com")
    with app.app_context():
        pid = db.session.execute(select(UpstreamProvider.id)).scalar_one()
        db.session.add(FederatedIdentity(user_id=uid, provider_id=pid, issuer="https://login.microsoftonline.com/t/v2.0",
                                         subject="sub-123", email="bob@example.com", email_verified=True))
        db.session.commit()
    user_page = admin.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "Linked sign-in methods (1)" in user_page and "sub-123" in user_page
    assert admin.post("/admin/idp/ms/remove").status_code == 400  # CSRF
    first = admin.post("/admin/idp/ms/remove", data={"csrf_token": token})  # the confirmation page: nothing yet
    assert first.status_code == 200 and "Linked sign-in methods (1)" in admin.get(f"/admin/users/{uid}").get_data(
        as_text=True)
    from tests.functional.admin_helpers import ticket_of

    body = first.get_data(as_text=True)
    assert admin.post("/admin/idp/ms/remove", data={"csrf_token": token, "ticket": ticket_of(body),
                                                    "reason": "Contract with the provider ended"}).status_code == 302
    assert admin.post("/admin/idp/ms/remove", data={"csrf_token": token}).status_code == 404
    # Not an admin: refused.
    from tests.functional.helpers import login

    plain = app.test_client()
    create_user(app, email="carl@example.com")
    login(plain, "carl@example.com")
    assert plain.get("/admin/idp/").status_code == 403


def test_provider_down_is_a_503_not_a_500(app):
    """Discovery unreachable (nothing listens on the port): the start answers 503 and no state is kept."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with app.app_context():
        app.extensions["authsvc_federation"].add_provider(slug="down", kind="oidc",
                                                          issuer=f"https://127.0.0.1:{port}", client_id="c")
    r = app.test_client().get("/federation/down/start")
    assert r.status_code == 503
    r = app.test_client().get("/federation/down/start", headers={"Accept": "application/json"})
    assert r.status_code == 503 and r.is_json


def test_client_secret_sealed_with_a_removed_key_is_a_503(app):
    from authsvc.extensions import db
    from authsvc.models import UpstreamProvider

    with app.app_context():
        app.extensions["authsvc_federation"].add_provider(slug="corp", kind="oidc", issuer="https://idp.corp.example",
                                                          client_id="c", client_secret="s")
        row = db.session.execute(select(UpstreamProvider)).scalar_one()
        row.client_secret = "gone:" + row.client_secret.split(":", 1)[1]  # a key version no longer configured
        db.session.commit()
    assert app.test_client().get("/federation/corp/start").status_code == 503
