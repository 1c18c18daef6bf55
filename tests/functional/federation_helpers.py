"""The upstream identity provider the federation tests sign in with: a second, real authsvc instance (its own SQLite
file, its own redis-server, served over TLS with a throwaway CA), which is a complete OpenID provider (discovery,
JWKS, PKCE, RFC 9207 ``iss``, single-use codes). Being ours, it can be made to misbehave the way real providers do:
let users set any address (nOAuth), skip verification (a non-verifying IdP), omit ``email_verified``."""

from __future__ import annotations

import os
import re

import pytest
import requests

from tests.conftest import FAST_ARGON2, PASSWORD, LiveServer, _REDIS_TOPOLOGY, _reset, csrf_token

RP = "https://localhost"  # the relying party's base_url: its callback is RP + /federation/<slug>/callback


class Upstream:
    def __init__(self, app, server):
        self.app, self.server = app, server
        self.url = server.url

    def user(self, email: str, *, verified: bool = True, password: str = PASSWORD) -> int:
        from tests.conftest import create_user

        return create_user(self.app, email=email, password=password, verified=verified)

    def set_email(self, user_id: int, email: str, *, verified: bool) -> None:
        """What a provider that lets users edit their address does (nOAuth): same ``sub``, any e-mail."""
        from authsvc.extensions import db
        from authsvc.models import User
        from authsvc.services import services

        with self.app.app_context():
            user = db.session.get(User, user_id)
            user.email = email
            user.email_verified_at = services().clock.now() if verified else None
            db.session.commit()

    def client(self, redirect_uri: str) -> tuple[str, str]:
        with self.app.app_context():
            row, secret = self.app.extensions["authsvc.oauth"].clients.create(
                name="Relying party", redirect_uris=[redirect_uri])
            return row.id, secret

    def browser(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = self.server.ca_path
        return s

    def authorize(self, browser: requests.Session, authorize_url: str, email: str, password: str = PASSWORD) -> str:
        """Sign in at the upstream (login + consent pages) and return where it sends the browser back (our
        callback URL with code, state and iss)."""
        r = browser.get(authorize_url, allow_redirects=False)
        for _ in range(6):
            loc = r.headers.get("Location", "")
            if loc.startswith(RP):
                return loc
            if r.status_code in (301, 302, 303):
                url = loc if loc.startswith("http") else self.url + loc
                r = browser.get(url, allow_redirects=False)
                continue
            assert r.status_code == 200, (r.status_code, r.text[:300])
            if 'name="password"' in r.text:
                r = browser.post(r.url, data={"email": email, "password": password, "csrf_token": _csrf(r.text)},
                                 headers={"Referer": r.url}, allow_redirects=False)
            elif 'name="decision"' in r.text or "decision" in r.text:
                r = browser.post(r.url, data={"csrf_token": _csrf(r.text), "decision": "allow"},
                                 headers={"Referer": r.url}, allow_redirects=False)
            else:
                raise AssertionError(r.text[:500])
        raise AssertionError("upstream never sent the browser back")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


@pytest.fixture(scope="session")
def upstream_idp(migrated, tmp_path_factory):
    from authsvc import create_app, embedded_redis
    from authsvc.cli import upgrade_database

    folder = tmp_path_factory.mktemp("upstream-idp")
    redis_url = embedded_redis.ensure_running(str(folder / "redis"))
    cfg = {"database_url": "sqlite:///" + str(folder / "idp.db"), "redis_url": redis_url,
           "instance_path": str(folder / "instance"), "secret_key": "upstream-idp-secret", "TESTING": True,
           "service_name": "Upstream IdP", **FAST_ARGON2}
    if "breach_corpus" in _REDIS_TOPOLOGY:
        cfg["breach_corpus"] = _REDIS_TOPOLOGY["breach_corpus"]
    app = create_app(cfg)
    with app.app_context():
        upgrade_database()
    server = LiveServer(app, tls=True, tmp_path=folder)
    app.config["OAUTH_ISSUER"] = server.url
    yield Upstream(app, server)
    server.stop()
    embedded_redis.stop(str(folder / "redis"))


@pytest.fixture
def upstream(upstream_idp, monkeypatch):
    """The upstream, emptied for this test; the RP's HTTP client trusts its CA."""
    _reset(upstream_idp.app)
    from authsvc.accounts.login import NullRiskScorer

    upstream_idp.app.extensions["authsvc"].login.require_verified_email = True
    # The upstream's own risk engine would ask its users for an e-mailed code on a first sign-in: that is the
    # upstream's business, not what these tests are about.
    monkeypatch.setattr(upstream_idp.app.extensions["authsvc"].login, "risk", NullRiskScorer())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", upstream_idp.server.ca_path)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return upstream_idp


def add_provider(app, upstream: Upstream, slug: str = "up", **kw) -> None:
    cid, secret = upstream.client(f"{RP}/federation/{slug}/callback")
    with app.app_context():
        app.extensions["authsvc_federation"].add_provider(slug=slug, kind="oidc", issuer=upstream.url,
                                                          client_id=cid, client_secret=secret,
                                                          name="Upstream", **kw)


def start(client, slug: str = "up") -> str:
    r = client.get(f"/federation/{slug}/start")
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return r.location


def federated_sign_in(client, upstream: Upstream, browser, email: str, password: str = PASSWORD, slug: str = "up"):
    """The whole round trip; returns our callback's response."""
    callback = upstream.authorize(browser, start(client, slug), email, password)
    return client.get(callback[len(RP):])


__all__ = ["RP", "Upstream", "add_provider", "start", "federated_sign_in", "os"]
