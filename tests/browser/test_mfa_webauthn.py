"""Passkeys in Debian Chromium with its virtual authenticator (CDP WebAuthn domain): register a passkey, sign in
with it without typing a username, use it as a second factor after the password, remove it. A real assertion
captured from the browser is then replayed and checked against a wrong origin through py_webauthn."""

import json
import socket
import threading

import pytest

from tests.conftest import LiveServer, PASSWORD, create_user

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def wa_server(make_app, tmp_path):
    """The app on a real socket, with the RP ID and origin set to the server's own http://localhost:PORT."""
    from werkzeug.serving import make_server

    port = _free_port()
    app = make_app(webauthn_rp_id="localhost", webauthn_origins=f"http://localhost:{port}")
    server = LiveServer.__new__(LiveServer)  # same shape and stop() as conftest's, on a port we chose first
    server.server = make_server("127.0.0.1", port, app, threaded=True)
    server.port, server.url, server.ca_path = port, f"http://localhost:{port}", None
    server.thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    server.thread.start()
    server.app = app
    yield server
    server.stop()


def _virtual_authenticator(context, page):
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, made["authenticatorId"]


def _no_autofill(context):
    """Chromium's virtual authenticator answers a conditional (autofill) request at once, as if the user had picked
    the passkey: a test of the password form or of the passkey *button* switches autofill off first."""
    context.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")


def _password_login(page, base):
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _sign_out(page):
    page.get_by_role("button", name="Sign out", exact=True).first.click()
    page.wait_for_url("**/login")


def _register_passkey(page, base, name="Virtual laptop"):
    """Password login (so the session is fresh), add a passkey, get past the first recovery codes."""
    _password_login(page, base)
    page.get_by_role("heading", name="Your security").wait_for()
    page.get_by_role("link", name="Add a passkey or security key").click()
    page.get_by_label("Name for this passkey or security key").fill(name)
    page.get_by_role("button", name="Add passkey").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()  # first factor → codes shown once
    assert page.locator("ul.codes li").count() == 10
    page.get_by_role("link", name="I have saved them").click()
    page.get_by_text(name).wait_for()


def _session(app, context):
    from authsvc.services import services

    with app.app_context():
        return services().sessions.check(next(c["value"] for c in context.cookies()
                                              if c["name"] == "__Host-authsvc"))


def test_passkey_register_login_second_factor_and_remove(wa_server, browser_context):
    app, base = wa_server.app, wa_server.url
    create_user(app)
    w = browser_context()
    _no_autofill(w.context)
    page = w.page
    cdp, authenticator = _virtual_authenticator(w.context, page)

    # 1. register a passkey (after a password login, so the session is fresh)
    _register_passkey(page, base)
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(creds) == 1 and creds[0]["isResidentCredential"]
    _sign_out(page)

    # 2. passkey login: no e-mail, no password; capture the assertion the browser sends
    page.goto(base + "/mfa/passkey")
    with page.expect_request("**/mfa/webauthn/authenticate/verify") as req:
        page.get_by_role("button", name="Sign in with a passkey").click()
    captured = json.loads(req.value.post_data)["credential"]
    page.get_by_role("heading", name="Your security").wait_for()
    from authsvc.services import services

    with app.app_context():
        found = services().sessions.check(next(c["value"] for c in w.context.cookies()
                                               if c["name"] == "__Host-authsvc"))
        assert found[0].aal == 2 and found[0].methods == ("hwk", "uv")
    _sign_out(page)

    # 3. the same key as a second factor after the password
    _password_login(page, base)
    page.get_by_role("heading", name="Two-step verification").wait_for()
    page.get_by_role("button", name="Use a security key or passkey").click()
    page.get_by_role("heading", name="Your security").wait_for()
    with app.app_context():
        found = services().sessions.check(next(c["value"] for c in w.context.cookies()
                                               if c["name"] == "__Host-authsvc"))
        assert found[0].aal == 2 and found[0].methods == ("pwd", "hwk")

    # 4. the captured real assertion: replayed → refused (challenge used up); wrong origin → refused
    _replay_and_wrong_origin(app, captured)

    # 5. remove it (fresh session) → password-only again
    page.get_by_role("button", name="Remove Virtual laptop").click()
    page.get_by_role("heading", name="Remove “Virtual laptop”?").wait_for()  # one click is a question, not the act
    page.get_by_role("button", name="Remove it").click()
    page.get_by_text("was removed").wait_for()
    assert page.get_by_text("Virtual laptop").count() == 0
    _sign_out(page)
    _password_login(page, base)
    page.get_by_role("heading", name="Your security").wait_for()


def test_login_form_passkey_button_signs_in_and_keeps_next(wa_server, browser_context):
    """The login form's own passkey button: the same username-less ceremony as /mfa/passkey, by mouse and by
    keyboard; ?next= is honoured like the password form's, and never sends the browser off the site."""
    app, base = wa_server.app, wa_server.url
    create_user(app)
    w = browser_context()  # fails the test on any console error or CSP violation
    _no_autofill(w.context)
    page = w.page
    _virtual_authenticator(w.context, page)
    _register_passkey(page, base)
    _sign_out(page)

    # 1. /login?next=… → "Use a passkey" → signed in at aal2 (hwk + uv), on the page asked for
    page.goto(base + "/login?next=/account/activity")
    button = page.get_by_role("button", name="Use a passkey")
    assert button.get_attribute("type") == "button" and button.is_enabled()
    assert page.locator("#wa-unsupported").is_hidden() and page.get_by_role("alert").count() == 0
    with page.expect_request("**/mfa/webauthn/authenticate/verify") as req:
        button.click()
    sent = json.loads(req.value.post_data)
    assert sent["flow"] == "passkey" and sent["next"] == "/account/activity"
    page.wait_for_url(base + "/account/activity")
    page.get_by_role("heading", name="Recent activity").wait_for()
    found = _session(app, w.context)
    assert found is not None and found[0].aal == 2 and found[0].methods == ("hwk", "uv")
    _sign_out(page)

    # 2. keyboard only (Tab from the password button, Enter); off-site ?next= values land on the account page
    for hostile in ("//evil.example/x", "https://evil.example/x", "/%09/evil.example/x"):
        page.goto(base + "/login?next=" + hostile)
        page.get_by_role("button", name="Sign in", exact=True).focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent.trim()") == "Use a passkey"
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Your security").wait_for()
        assert page.url == base + "/account", hostile
        _sign_out(page)


def test_login_form_without_webauthn_explains_and_disables_the_passkey_button(wa_server, browser_context):
    w = browser_context()
    w.context.add_init_script("delete window.PublicKeyCredential;")
    page = w.page
    page.goto(wa_server.url + "/login")
    button = page.get_by_role("button", name="Use a passkey")
    assert button.is_disabled()
    note = page.locator("#wa-unsupported")
    assert note.is_visible() and "can't use passkeys" in note.inner_text()
    assert "wa-unsupported" in button.get_attribute("aria-describedby").split()
    # the password form is untouched
    assert page.get_by_role("button", name="Sign in", exact=True).is_enabled()


def _replay_and_wrong_origin(app, captured):
    from webauthn import base64url_to_bytes, verify_authentication_response
    from webauthn.helpers import parse_client_data_json
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse

    from authsvc.extensions import db
    from authsvc.mfa.webauthn import WebAuthnError
    from authsvc.models import WebAuthnCredential
    from authsvc.services import services

    with app.app_context():
        mfa = services().mfa
        row = db.session.execute(db.select(WebAuthnCredential)).scalar_one()
        challenge = parse_client_data_json(base64url_to_bytes(captured["response"]["clientDataJSON"])).challenge
        # Replay through the service: the challenge it answered was consumed → refused
        with pytest.raises(WebAuthnError, match="challenge"):
            mfa.webauthn.authenticate("p-replay", captured, user=None)
        # The same real assertion against an RP that expects another origin → py_webauthn refuses it
        with pytest.raises(InvalidAuthenticationResponse, match="origin"):
            verify_authentication_response(credential=captured, expected_challenge=challenge,
                                           expected_rp_id="localhost", expected_origin="https://login.example.com",
                                           credential_public_key=row.public_key, credential_current_sign_count=0,
                                           require_user_verification=True)
        # ...and through our service, even with its challenge put back: the counter has moved on → flagged
        mfa.store.put_challenge("auth", "p-replay", {"c": captured_challenge_b64(captured), "u": None, "uv": True})
        assert mfa.check_webauthn(None, "p-replay", captured, _ctx(), "passkey") is None
        from authsvc.models import SecurityEvent

        tags = [e.tag for e in db.session.execute(db.select(SecurityEvent)).scalars()]
        assert "mfa:webauthn:signcount" in tags


def captured_challenge_b64(captured):
    from webauthn import base64url_to_bytes
    from webauthn.helpers import bytes_to_base64url, parse_client_data_json

    return bytes_to_base64url(parse_client_data_json(
        base64url_to_bytes(captured["response"]["clientDataJSON"])).challenge)


def _ctx():
    from authsvc.accounts.login import RequestContext

    return RequestContext("127.0.0.1", "pytest")


def test_passkey_autofill_on_the_login_form(wa_server, browser_context):
    """Conditional mediation: the e-mail field says `username webauthn`, the page starts a conditional request, and
    picking the passkey (Chromium's virtual authenticator picks it at once) signs in at aal2 on the page asked for;
    hostile ?next= still lands on the account page."""
    app, base = wa_server.app, wa_server.url
    create_user(app)
    w = browser_context()
    _no_autofill(w.context)  # registering the passkey is a password sign-in
    page = w.page
    cdp, authenticator = _virtual_authenticator(w.context, page)
    _register_passkey(page, base)
    _sign_out(page)
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    # The same passkey in a context with autofill on (a virtual authenticator belongs to its page: copy it over).
    w2 = browser_context()
    page = w2.page
    cdp2, authenticator2 = _virtual_authenticator(w2.context, page)
    for cred in creds:
        cdp2.send("WebAuthn.addCredential", {"authenticatorId": authenticator2, "credential": cred})
    assert 'autocomplete="username webauthn"' in page.request.get(base + "/login").text()
    with page.expect_request("**/mfa/webauthn/authenticate/verify") as req:
        page.goto(base + "/login?next=/account/activity")
    assert json.loads(req.value.post_data)["next"] == "/account/activity"
    page.get_by_role("heading", name="Recent activity").wait_for()
    found = _session(app, w2.context)
    assert found is not None and found[0].aal == 2 and found[0].methods == ("hwk", "uv")
    page.goto(base + "/login?next=//evil.example/x")  # signed in already or again by autofill: never off-site
    page.get_by_role("heading", name="Your security").wait_for()
    assert page.url == base + "/account"


def test_passkey_offer_after_password_sign_in_rename_and_signal(wa_server, browser_context):
    """After a password sign-in to an account without a passkey the security center offers one; creating it there
    names it after the browser; rename (hostile names cleaned, another user's id refused); after removal the page
    tells the passkey provider which passkeys still work (WebAuthn Signal API)."""
    app, base = wa_server.app, wa_server.url
    create_user(app)
    create_user(app, email="bob@example.com")
    w = browser_context()
    _no_autofill(w.context)
    w.context.add_init_script("""
        window.__signals = [];
        if (window.PublicKeyCredential) {
          PublicKeyCredential.signalAllAcceptedCredentials = async (o) => { window.__signals.push(o); };
        }""")
    page = w.page
    cdp, authenticator = _virtual_authenticator(w.context, page)
    _password_login(page, base)
    offer = page.get_by_role("heading", name="Sign in faster with a passkey")
    offer.wait_for()
    page.get_by_role("button", name="Create a passkey").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    page.get_by_role("link", name="I have saved them").click()
    page.get_by_role("heading", name="Your security").wait_for()
    assert page.get_by_role("heading", name="Sign in faster with a passkey").count() == 0  # has one now
    page.get_by_text("Passkey · HeadlessChrome").first.wait_for()

    from authsvc.extensions import db
    from authsvc.models import User, WebAuthnCredential

    with app.app_context():
        row = db.session.execute(db.select(WebAuthnCredential)).scalar_one()
        cred_id, handle, credential_id = row.id, row.user_handle, row.credential_id
    page.wait_for_function("window.__signals.length > 0")  # the script runs at DOMContentLoaded, after the text shows
    signals = page.evaluate("window.__signals")
    assert signals and signals[-1]["userId"] == handle and signals[-1]["allAcceptedCredentialIds"] == [credential_id]

    page.get_by_role("link", name=f"Rename Passkey · ").first.click()
    page.get_by_label("Name for this passkey or security key").fill("Work\u202e laptop\u0000\x07  phone")
    page.get_by_role("button", name="Save name").click()
    page.get_by_text("The passkey was renamed.").wait_for()
    with app.app_context():
        assert db.session.get(WebAuthnCredential, cred_id).name == "Work laptop phone"

    # Bob may not rename (or learn about) Alice's passkey: 404 like an unknown id, nothing changes.
    bob = browser_context()
    _no_autofill(bob.context)
    bob.page.goto(base + "/login")
    bob.page.get_by_label("E-mail").fill("bob@example.com")
    bob.page.get_by_label("Password").fill("correct horse battery staple")
    bob.page.get_by_role("button", name="Sign in", exact=True).click()
    bob.page.get_by_role("heading", name="Your security").wait_for()
    assert bob.page.goto(f"{base}/mfa/webauthn/{cred_id}/rename").status == 404
    for junk in ("0", "-1", "99999999999999999999", "1e3", "%00"):
        assert bob.page.goto(f"{base}/mfa/webauthn/{junk}/rename").status == 404, junk
    with app.app_context():
        assert db.session.get(WebAuthnCredential, cred_id).name == "Work laptop phone"

    # Remove it: the next page load signals an empty list of accepted passkeys.
    page.get_by_role("button", name="Remove Work laptop phone").click()
    page.get_by_role("heading", name="Confirm it's you").wait_for()  # a factor exists now: a fresh second step
    page.get_by_role("button", name="Use a security key or passkey").click()
    page.get_by_role("heading", name="Your security").wait_for()
    page.get_by_role("button", name="Remove Work laptop phone").click()
    page.get_by_role("button", name="Remove it").click()
    page.get_by_text("was removed").wait_for()
    page.wait_for_function("document.readyState === 'complete'")  # the page's script has run
    assert page.evaluate("window.__signals") == []  # no passkey left: no user handle to signal (docs/SECURITY.md)
    # No passkey left → no user handle → nothing to signal, and the offer may come back (password session).
    page.get_by_role("button", name="Not now").click()
    page.get_by_role("heading", name="Your security").wait_for()
    assert page.get_by_role("heading", name="Sign in faster with a passkey").count() == 0  # "not now" is kept
