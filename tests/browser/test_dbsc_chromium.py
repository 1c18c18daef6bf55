"""Device Bound Session Credentials with a real browser: Debian Chromium 156 with DBSC enabled and software keys
(the manual-testing key provider: Linux has no TPM-backed provider), served over HTTPS. What Chromium does here is
the protocol of the W3C draft as Chromium ships it — not our own test client (tests/dbsc_client.py)."""

import base64
import hashlib
import json
import os
import time

import pytest

from tests.conftest import PASSWORD, LiveServer, create_user, need_tool

pytestmark = pytest.mark.browser
COOKIE = "__Host-authsvc"
BOUND = COOKIE + "-bound"
DBSC_FEATURES = ("DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,"
                 "EnableBoundSessionCredentialsSoftwareKeysForManualTesting")


@pytest.fixture
def dbsc_server(make_app, tmp_path):
    app = make_app(dbsc_enabled=True)
    server = LiveServer(app, tls=True, tmp_path=tmp_path)
    server.app = app
    yield server
    server.stop()


def _spki_pin(server) -> str:
    """The server key's SPKI hash, for --ignore-certificate-errors-spki-list: Chromium then treats the throwaway
    certificate as valid (a secure context without a certificate error — DBSC registers only there)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(server.leaf_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def dbsc_chromium(dbsc_server, sync_pw):
    from tests.browser.conftest import CHROMIUM_ARGS

    path = os.environ.get("AUTHSVC_CHROMIUM") or need_tool("chromium")
    browser = sync_pw.chromium.launch(executable_path=path, headless=True, args=[
        *CHROMIUM_ARGS, f"--enable-features={DBSC_FEATURES}",
        f"--ignore-certificate-errors-spki-list={_spki_pin(dbsc_server)}"])
    yield browser
    browser.close()


def _state(app, token):
    from authsvc.sessions import token_hash

    with app.app_context():
        return app.extensions["authsvc"].sessions.redis.hgetall(f"sess:{{{token_hash(token)}}}")


def _cookie(context, name):
    return next((c for c in context.cookies() if c["name"] == name), None)


def _until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _audit_tags(app):
    from sqlalchemy import select

    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return [t for (t,) in db.session.execute(select(SecurityEvent.tag).order_by(SecurityEvent.id))]


def test_chromium_registers_refreshes_and_a_copied_cookie_is_refused(dbsc_server, dbsc_chromium):
    app, base = dbsc_server.app, dbsc_server.url
    create_user(app)
    owner = dbsc_chromium.new_context()
    page = owner.new_page()
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your security").wait_for()

    # 1. Registration: the sign-in's 302 carried Secure-Session-Registration; Chromium generated a key (software
    #    provider), POSTed its proof to /dbsc/register and stored the short cookie the answer set.
    assert _until(lambda: _cookie(owner, BOUND) is not None), [c["name"] for c in owner.cookies()]
    token = _cookie(owner, COOKIE)["value"]
    key = json.loads(_state(app, token)["bk"])
    assert key["alg"] == "ES256" and key["jwk"]["kty"] == "EC" and "d" not in key["jwk"]
    assert "session:dbsc:bound" in _audit_tags(app)
    page.reload()
    assert page.locator(".badge", has_text="Device-bound").count() == 1  # the security center says so

    # 2. Refresh: without the short cookie, Chromium holds the next request, signs the challenge sent ahead with the
    #    registration answer (Secure-Session-Challenge) with the same key, POSTs it to /dbsc/refresh, gets a new
    #    short cookie, and only then sends the request — the user sees nothing but the page.
    first_short, first_challenge = _cookie(owner, BOUND)["value"], _state(app, token)["ch"]
    owner.clear_cookies(name=BOUND)
    resp = page.goto(base + "/account")
    assert resp.status == 200 and page.get_by_role("heading", name="Your security").is_visible()
    refreshed = _cookie(owner, BOUND)
    assert refreshed is not None and refreshed["value"] != first_short
    after = _state(app, token)
    assert after["ch"] != first_challenge  # /dbsc/refresh ran: each answer there carries the next challenge
    assert after["bk"] == _state(app, token)["bk"] and "su" not in after

    # 3. The infostealer's copy: every cookie of the owner's browser (the short one too) in another browser that
    #    does not hold the key. It works until the short cookie expires — then it has nothing to refresh with.
    thief = dbsc_chromium.new_context()
    thief.add_cookies([{k: c[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")}
                       for c in owner.cookies() if c["name"] in (COOKIE,)])
    tpage = thief.new_page()
    tpage.goto(base + "/account")
    assert "/login" in tpage.url  # the login cookie alone reaches nothing: the session is bound
    thief.close()
    # ... and the owner is unaffected.
    assert page.goto(base + "/account").status == 200
    owner.close()
