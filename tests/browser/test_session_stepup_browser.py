"""The in-session step-up page in Debian Chromium: a session suspended for drift (authsvc.sessions.StepUpRequired)
sends every page to /mfa/resume; the owner re-proves with a passkey (the CDP virtual authenticator) or an
authenticator-app code, and lands back where they were, in the same session."""

import pytest

from tests.browser.test_mfa_webauthn import _register_passkey, _virtual_authenticator, wa_server  # noqa: F401
from tests.conftest import PASSWORD, create_user

pytestmark = pytest.mark.browser
COOKIE = "__Host-authsvc"


def _suspend(app, context):
    """Mark the browser's session suspended, as SessionService._drifted does on a "reauth" drift (one HSET)."""
    from authsvc.sessions import token_hash

    token = next(c["value"] for c in context.cookies() if c["name"] == COOKIE)
    with app.app_context():
        r = app.extensions["authsvc"].sessions.redis
        assert r.hset(f"sess:{{{token_hash(token)}}}", mapping={"su": "new_network_soon", "suf": 0}) >= 1
    return token


def _state(app, token):
    from authsvc.sessions import token_hash

    with app.app_context():
        return app.extensions["authsvc"].sessions.redis.hgetall(f"sess:{{{token_hash(token)}}}")


def test_suspended_session_steps_up_with_a_passkey_in_chromium(wa_server, browser_context):  # noqa: F811
    app, base = wa_server.app, wa_server.url
    create_user(app)
    w = browser_context()
    page = w.page
    _virtual_authenticator(w.context, page)
    _register_passkey(page, base)
    token = _suspend(app, w.context)
    page.goto(base + "/mfa/passkeys")
    page.get_by_role("heading", name="Confirm it's you").wait_for()
    assert "/mfa/resume" in page.url
    assert "alice" not in page.content()  # the page names nothing: not the account, not the factor's name
    assert "Virtual laptop" not in page.content()
    page.get_by_role("button", name="Use a security key or passkey").click()
    page.wait_for_url(lambda url: "/mfa/resume" not in url and url.endswith("/mfa/passkeys"))
    state = _state(app, token)
    assert "su" not in state and state["aal"] == "2" and "hwk" in state["methods"].split(",")
    assert next(c["value"] for c in w.context.cookies() if c["name"] == COOKIE) == token  # same session resumed


def test_suspended_session_steps_up_with_an_authenticator_code_in_chromium(wa_server, browser_context):  # noqa: F811
    from tests.functional.mfa_helpers import current_code, enrol_totp

    app, base = wa_server.app, wa_server.url
    user_id = create_user(app, email="bob@example.com")
    seed = enrol_totp(app, user_id)
    w = browser_context()
    page = w.page
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill("bob@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Two-step verification").wait_for()
    page.get_by_label("6-digit code from your authenticator app").fill(current_code(app, seed))
    page.get_by_role("button", name="Verify code").click()
    page.get_by_role("heading", name="Your security").wait_for()
    app.extensions["authsvc"].clock.advance(30)
    token = _suspend(app, w.context)
    page.goto(base + "/account")
    page.get_by_role("heading", name="Confirm it's you").wait_for()
    page.get_by_label("6-digit code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Verify code").click()
    page.get_by_text("That code is not valid").wait_for()
    assert _state(app, token)["suf"] == "1"
    page.get_by_label("6-digit code from your authenticator app").fill(current_code(app, seed))
    page.get_by_role("button", name="Verify code").click()
    page.get_by_role("heading", name="Your security").wait_for()
    assert "su" not in _state(app, token)
