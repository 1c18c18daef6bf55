"""WebAuthn over HTTP with a software authenticator (real P-256 signatures, verified by py_webauthn)."""

import json

import pytest
from webauthn.helpers import bytes_to_base64url

from tests.conftest import create_user
from tests.functional.helpers import form_post, login
from tests.functional.mfa_helpers import PENDING, SESSION, cookie, meta_csrf, post_json
from tests.softauthn import SoftAuthenticator, challenge_of

ORIGIN = "http://localhost:5000"


@pytest.fixture
def wa_app(make_app):
    return make_app(webauthn_rp_id="localhost", webauthn_origins=ORIGIN)


def _register(app, client, auth, name="Laptop"):
    token = meta_csrf(client.get("/mfa/passkeys").get_data(as_text=True))
    options = post_json(client, "/mfa/webauthn/register/options", {}, token)
    assert options.status_code == 200, options.get_data(as_text=True)
    opts = options.get_json()
    assert len(challenge_of(opts)) >= 16  # ≥ 128 bits (we send 256)
    assert opts["rp"]["id"] == "localhost"
    resp = post_json(client, "/mfa/webauthn/register/verify", {"credential": auth.create(opts), "name": name}, token)
    return resp


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == tag)
                                       .order_by(SecurityEvent.id)).scalars())


def _info(app, token):
    from authsvc.services import services

    with app.app_context():
        found = services().sessions.check(token)
        return found[0] if found else None


def _setup_user_with_key(app):
    create_user(app)
    client = app.test_client()
    login(client)
    auth = SoftAuthenticator(origin=ORIGIN)
    resp = _register(app, client, auth)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    form_post(client, "/account", {}, post_url="/logout")
    return client, auth


def test_register_then_use_as_second_factor(wa_app):
    client, auth = _setup_user_with_key(wa_app)
    assert [e.outcome for e in _events(wa_app, "mfa:webauthn:register")] == ["success"]
    assert login(client).headers["Location"].endswith("/mfa/challenge")
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    assert [c["id"] for c in opts["allowCredentials"]] == [bytes_to_base64url(auth.credential_id)]
    resp = post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": auth.get(opts, uv=False)}, token)
    assert resp.status_code == 200 and resp.get_json()["redirect"] == "/account"
    info = _info(wa_app, cookie(client, SESSION))
    assert info.aal == 2 and info.methods == ("pwd", "hwk")


def test_passkey_login_without_username_requires_user_verification(wa_app):
    _, auth = _setup_user_with_key(wa_app)
    client = wa_app.test_client()
    token = meta_csrf(client.get("/mfa/passkey").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "passkey"}, token).get_json()
    assert opts["userVerification"] == "required" and not opts.get("allowCredentials")
    no_uv = post_json(client, "/mfa/webauthn/authenticate/verify",
                      {"flow": "passkey", "credential": auth.get(opts, uv=False)}, token)
    assert no_uv.status_code == 401 and cookie(client, SESSION) is None

    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "passkey"}, token).get_json()
    ok = post_json(client, "/mfa/webauthn/authenticate/verify", {"flow": "passkey", "credential": auth.get(opts)},
                   token)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    info = _info(wa_app, cookie(client, SESSION))
    assert info.aal == 2 and info.methods == ("hwk", "uv")


def test_replayed_assertion_and_wrong_origin_are_refused(wa_app):
    client, auth = _setup_user_with_key(wa_app)
    login(client)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    wrong_origin = auth.get(opts, origin="https://evil.example")
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": wrong_origin}, token).status_code == 401
    # the failed try consumed the challenge too: a correct assertion for it is now refused
    stale = auth.get(opts)
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": stale}, token).status_code == 401

    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    good = auth.get(opts)
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": good}, token).status_code == 200
    # replay of the accepted assertion in a fresh login (new challenge issued, old assertion sent)
    form_post(client, "/account", {}, post_url="/logout")
    login(client)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token)
    replay = post_json(client, "/mfa/webauthn/authenticate/verify", {"flow": "login", "credential": good}, token)
    assert replay.status_code == 401 and cookie(client, SESSION) is None
    reasons = [e.reason for e in _events(wa_app, "mfa:webauthn:verify") if e.outcome == "failure"]
    assert any("origin" in r for r in reasons) and any("challenge" in r.lower() for r in reasons)


def test_wrong_rp_id_is_refused(wa_app):
    client, auth = _setup_user_with_key(wa_app)
    login(client)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    bad = auth.get(opts, rp_id="evil.example")
    assert post_json(client, "/mfa/webauthn/authenticate/verify", {"flow": "login", "credential": bad},
                     token).status_code == 401


def test_sign_count_regression_is_refused_flagged_and_audited(wa_app):
    client, auth = _setup_user_with_key(wa_app)
    login(client)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": auth.get(opts, counter=10)}, token).status_code == 200
    form_post(client, "/account", {}, post_url="/logout")
    login(client)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    cloned = auth.get(opts, counter=5)  # a correctly signed assertion from a "clone" with an older counter
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "login", "credential": cloned}, token).status_code == 401
    ev = _events(wa_app, "mfa:webauthn:signcount")
    assert len(ev) == 1 and json.loads(ev[0].details)["received"] == 5
    from authsvc.extensions import db
    from authsvc.models import WebAuthnCredential

    with wa_app.app_context():
        assert db.session.execute(db.select(WebAuthnCredential)).scalar_one().flagged_at is not None


def test_challenge_is_bound_to_the_pending_login_that_asked(wa_app):
    client, auth = _setup_user_with_key(wa_app)
    other = wa_app.test_client()
    login(client)
    login(other)
    token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
    other_token = meta_csrf(other.get("/mfa/challenge").get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
    # the other browser answers the first browser's challenge: there is no challenge bound to *its* login
    resp = post_json(other, "/mfa/webauthn/authenticate/verify", {"flow": "login", "credential": auth.get(opts)},
                     other_token)
    assert resp.status_code == 401 and cookie(other, SESSION) is None
    assert cookie(client, PENDING)


def test_registration_needs_fresh_auth_and_a_csrf_header(wa_app):
    create_user(wa_app)
    client = wa_app.test_client()
    login(client)
    token = meta_csrf(client.get("/mfa/passkeys").get_data(as_text=True))
    assert post_json(client, "/mfa/webauthn/register/options", {}, "wrong").status_code == 400
    from authsvc.services import services

    with wa_app.app_context():
        services().clock.advance(11 * 60)
    stale = post_json(client, "/mfa/webauthn/register/options", {}, token)
    assert stale.status_code == 403 and stale.get_json()["error"] == "reauth_required"
    assert stale.get_json()["redirect"].startswith("/mfa/step-up")


def test_removing_a_key_needs_fresh_auth_and_notifies(wa_app):
    create_user(wa_app)
    client = wa_app.test_client()
    login(client)
    auth = SoftAuthenticator(origin=ORIGIN)
    _register(wa_app, client, auth, name="Phone")
    from authsvc.extensions import db
    from authsvc.models import WebAuthnCredential
    from authsvc.services import services
    from tests.conftest import csrf_token

    with wa_app.app_context():
        cred_id = db.session.execute(db.select(WebAuthnCredential.id)).scalar_one()
    page = client.get("/account").get_data(as_text=True)
    assert "Phone" in page
    # the session proved only the password, and the account now has a second factor: prove it first
    stale = client.post(f"/mfa/webauthn/{cred_id}/remove", data={"csrf_token": csrf_token(page), "confirm": "yes"})
    assert stale.status_code == 302 and stale.headers["Location"].startswith("/mfa/step-up")
    token = meta_csrf(client.get(stale.headers["Location"]).get_data(as_text=True))
    opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "step-up"}, token).get_json()
    assert post_json(client, "/mfa/webauthn/authenticate/verify",
                     {"flow": "step-up", "credential": auth.get(opts), "next": "/account"}, token).status_code == 200
    page = client.get("/account").get_data(as_text=True)
    ask = client.post(f"/mfa/webauthn/{cred_id}/remove", data={"csrf_token": csrf_token(page)})
    assert ask.status_code == 200 and "Remove “Phone”?" in ask.get_data(as_text=True)  # a question first
    resp = client.post(f"/mfa/webauthn/{cred_id}/remove", data={"csrf_token": csrf_token(page), "confirm": "yes"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/account"
    with wa_app.app_context():
        assert db.session.execute(db.select(WebAuthnCredential)).first() is None
        subjects = [m.subject for m in services().outbox.messages(to="alice@example.com")]
    assert "Security key or passkey removed" in subjects and "Security key or passkey added" in subjects


def test_a_credential_flagged_as_a_clone_is_refused_until_cleared(wa_app):
    """Issue #12 item 7: once the sign count went backwards, even a correctly signed assertion with a higher counter
    is refused (audited, owner told) until the owner re-enrols or an administrator clears the flag."""
    client, auth = _setup_user_with_key(wa_app)

    def second_factor(counter):
        if cookie(client, SESSION):
            form_post(client, "/account", {}, post_url="/logout")
        login(client)
        token = meta_csrf(client.get("/mfa/challenge").get_data(as_text=True))
        opts = post_json(client, "/mfa/webauthn/authenticate/options", {"flow": "login"}, token).get_json()
        return post_json(client, "/mfa/webauthn/authenticate/verify",
                         {"flow": "login", "credential": auth.get(opts, counter=counter)}, token)

    assert second_factor(10).status_code == 200
    assert second_factor(5).status_code == 401  # the clone's answer: flagged
    assert second_factor(20).status_code == 401  # …and from then on refused, whatever the counter
    assert cookie(client, SESSION) is None
    reasons = [e.reason for e in _events(wa_app, "mfa:webauthn:verify") if e.outcome == "failure"]
    assert any("possible clone" in r for r in reasons)
    from authsvc.extensions import db
    from authsvc.models import WebAuthnCredential
    from authsvc.services import services

    with wa_app.app_context():
        subjects = [m.subject for m in services().outbox.messages(to="alice@example.com")]
        cred_id = db.session.execute(db.select(WebAuthnCredential.id)).scalar_one()
    assert subjects.count("A security key or passkey may have been copied") == 1
    result = wa_app.test_cli_runner().invoke(args=["mfa", "unflag", "--email", "alice@example.com",
                                                   "--credential", str(cred_id)])
    assert result.exit_code == 0, result.output
    assert [e.outcome for e in _events(wa_app, "mfa:webauthn:unflag")] == ["success"]
    assert second_factor(30).status_code == 200
