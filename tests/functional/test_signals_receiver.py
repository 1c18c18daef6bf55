"""RISC receiver: SETs from a configured upstream transmitter (its own keys, served as a JWKS over a real socket) make
us end the user's sessions, switch off the password, audit and e-mail — and anything forged, replayed, misaddressed
or unverifiable is refused or ignored, never acted on."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import func, select

from authsvc.models import SecurityEvent, User
from authsvc.signals.ssf import RISC
from tests.conftest import PASSWORD, create_user

UPSTREAM = "https://partner.example"


class Upstream:
    def __init__(self):
        self.key = ECKey.generate_key("P-256", parameters={"kid": "up-1"})
        app = Flask("upstream")
        app.get("/jwks")(lambda: KeySet([self.key]).as_dict(private=False))
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, event, subject, *, aud, iss=UPSTREAM, typ="secevent+jwt", key=None, jti=None, **extra):
        claims = {"iss": iss, "aud": aud, "iat": int(time.time()), "jti": jti or secrets.token_hex(8),
                  "sub_id": subject, "events": {event: extra}}
        header = {"alg": "ES256", "kid": "up-1"}
        if typ:
            header["typ"] = typ
        return jwt.encode(header, claims, key or self.key)

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.stop()


@pytest.fixture
def rx_app(make_app, upstream):
    return make_app(signals_upstream_issuer=UPSTREAM, signals_upstream_jwks_url=upstream.jwks_url)


def _post(client, token, content_type="application/secevent+jwt"):
    return client.post("/ssf/receiver/risc", data=token, content_type=content_type)


def _aud(client):
    return client.get("/.well-known/openid-configuration").get_json()["issuer"]


def _count(app, tag):
    from authsvc.extensions import db

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(SecurityEvent)
                                  .where(SecurityEvent.tag == tag)).scalar_one()


def _alice(app):
    from authsvc.extensions import db

    with app.app_context():
        return db.session.execute(select(User).where(User.email == "alice@example.com")).scalar_one()


def _login(client):
    r = client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200
    return r.get_json()["session_token"]


def test_forged_misaddressed_and_garbage_sets_are_refused(rx_app, upstream):
    client = rx_app.test_client()
    create_user(rx_app)
    aud, subj = _aud(client), {"format": "email", "email": "alice@example.com"}
    ev = RISC + "credential-compromise"
    other = ECKey.generate_key("P-256", parameters={"kid": "up-1"})  # same kid, not the upstream's key
    cases = [
        (upstream.set(ev, subj, aud=aud, key=other), 400, "invalid_key"),
        (upstream.set(ev, subj, aud=aud, iss="https://evil.example"), 400, "invalid_issuer"),
        (upstream.set(ev, subj, aud="https://someone-else.example"), 400, "invalid_audience"),
        (upstream.set(ev, subj, aud=aud, typ=None), 400, "invalid_request"),
        (upstream.set(ev, subj, aud=aud, typ="JWT"), 400, "invalid_request"),
        ("garbage", 400, "invalid_key"), ("a.b.c", 400, "invalid_key"), ("é" * 10, 400, "invalid_request"),
        ("x" * 20_000, 400, "invalid_request"),
    ]
    for token, status, err in cases:
        r = _post(client, token)
        assert (r.status_code, r.get_json()["err"]) == (status, err), token[:40]
    assert _post(client, upstream.set(ev, subj, aud=aud), "application/json").status_code == 400
    assert _count(rx_app, "ssf:receiver:credential_compromise") == 0
    assert _alice(rx_app).password_hash is not None


def test_credential_compromise_ends_sessions_switches_off_the_password_audits_and_mails(rx_app, upstream):
    from authsvc.services import services

    client = rx_app.test_client()
    create_user(rx_app)
    session_tok = _login(client)
    token = upstream.set(RISC + "credential-compromise", {"format": "email", "email": "Alice@Example.com"},
                         aud=_aud(client), credential_type="password")
    assert _post(client, token).status_code == 202
    alice = _alice(rx_app)
    assert alice.password_hash is None and alice.must_change_password and alice.must_change_reason == "upstream"
    assert client.get("/api/v1/session", headers={"Authorization": "Bearer " + session_tok}).status_code == 401
    assert _count(rx_app, "ssf:receiver:credential_compromise") == 1
    with rx_app.app_context():
        mails = services().outbox.messages(to="alice@example.com")
        assert any("We protected your" in m.subject and "/reset/" in m.body for m in mails)
    # The same SET again (a replay, or the sender's retry): accepted, nothing done twice.
    assert _post(client, token).status_code == 202
    assert _count(rx_app, "ssf:receiver:credential_compromise") == 1
    assert client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).status_code != 200


def test_account_disabled_upstream_acts_too_and_unknown_subjects_are_ignored(rx_app, upstream):
    client = rx_app.test_client()
    create_user(rx_app)
    aud = _aud(client)
    r = _post(client, upstream.set(RISC + "account-disabled", {"format": "email", "email": "nobody@example.com"},
                                   aud=aud, reason="hijacking"))
    assert r.status_code == 202 and _alice(rx_app).password_hash is not None
    r = _post(client, upstream.set(RISC + "account-enabled", {"format": "email", "email": "alice@example.com"},
                                   aud=aud))
    assert r.status_code == 202 and _alice(rx_app).password_hash is not None  # not an event we act on
    r = _post(client, upstream.set(RISC + "account-disabled", {"format": "email", "email": "alice@example.com"},
                                   aud=aud, reason="hijacking"))
    assert r.status_code == 202 and _alice(rx_app).password_hash is None
    assert _count(rx_app, "ssf:receiver:account_disabled") == 2  # one "no matching account" (info), one acted


def test_upstream_keys_unreachable_is_503_never_accepted(make_app, upstream):
    app = make_app(signals_upstream_issuer=UPSTREAM, signals_upstream_jwks_url="http://127.0.0.1:9/jwks")
    client = app.test_client()
    create_user(app)
    r = _post(client, upstream.set(RISC + "credential-compromise", {"format": "email", "email": "alice@example.com"},
                                   aud=_aud(client)))
    assert r.status_code == 503 and _alice(app).password_hash is not None


def test_redis_down_is_503(make_app, upstream, private_redis):
    app = make_app(signals_upstream_issuer=UPSTREAM, signals_upstream_jwks_url=upstream.jwks_url,
                   redis_url=private_redis.url)
    client = app.test_client()
    create_user(app)
    token = upstream.set(RISC + "credential-compromise", {"format": "email", "email": "alice@example.com"},
                         aud=_aud(client))
    private_redis.stop()
    assert _post(client, token).status_code == 503
    assert _alice(app).password_hash is not None


def test_no_upstream_configured_is_404(app):
    assert app.test_client().post("/ssf/receiver/risc", data="x", content_type="application/secevent+jwt") \
        .status_code == 404
