"""TOTP codes: non-ASCII digits (issue #12 item 8) and the cap on consecutive wrong codes across windows (#19)."""

import pytest

from tests.conftest import create_user, csrf_token
from tests.functional.helpers import login
from tests.functional.mfa_helpers import SESSION, cookie, current_code, enrol_totp, next_step, submit_recovery, \
    submit_totp

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _mails(app, to="alice@example.com"):
    from authsvc.services import services

    with app.app_context():
        return [m.subject for m in services().outbox.messages(to=to)]


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == tag)
                                       .order_by(SecurityEvent.id)).scalars())


# --- non-ASCII digits: Unicode decimal digits count as their value; anything else is "not valid", never a 500 ------
@pytest.mark.parametrize("table", [ARABIC_INDIC, FULLWIDTH], ids=["arabic-indic", "fullwidth"])
def test_totp_in_other_decimal_digits_signs_in(app, client, table):
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    login(client)
    r = submit_totp(client, current_code(app, secret).translate(table))
    assert r.status_code == 302 and r.headers["Location"] == "/account"


@pytest.mark.parametrize("code", ["¹²³⁴⁵⁶", "١٢٣٤٥", "12345６7", "１２３ ４５x", "٣" * 7, "\u0660\u06f1\u0967\u0e53"])
def test_totp_junk_in_unicode_is_an_invalid_code_not_a_500(app, client, code):
    uid = create_user(app)
    enrol_totp(app, uid)
    login(client)
    r = submit_totp(client, code)
    assert r.status_code == 401 and "That code is not valid" in r.get_data(as_text=True)
    assert cookie(client, SESSION) is None


def test_step_up_and_enrolment_pages_take_the_same_digits(app, client):
    """The same rule on every page that takes a code: enrolment (confirm) and step-up."""
    import re

    create_user(app)
    login(client)
    html = client.get("/mfa/totp").get_data(as_text=True)
    secret = re.search(r"data-secret>([A-Z2-7 ]+)<", html).group(1).replace(" ", "")
    junk = client.post("/mfa/totp", data={"csrf_token": csrf_token(html), "code": "¹²³⁴⁵⁶"})
    assert junk.status_code == 400 and "not valid" in junk.get_data(as_text=True)
    ok = client.post("/mfa/totp", data={"csrf_token": csrf_token(html),
                                        "code": current_code(app, secret).translate(FULLWIDTH)})
    assert ok.status_code == 200 and "recovery" in ok.get_data(as_text=True).lower()
    next_step(app)
    r = submit_totp(client, "¹²³⁴⁵⁶", url="/mfa/step-up?next=/account")
    assert r.status_code == 401
    r = submit_totp(client, current_code(app, secret).translate(ARABIC_INDIC), url="/mfa/step-up?next=/account")
    assert r.status_code == 302 and r.headers["Location"] == "/account"


def test_ascii_code_unit():
    from authsvc.mfa.totp import ascii_code

    assert ascii_code("123 456") == "123456"
    assert ascii_code("١٢٣٤٥٦") == "123456" and ascii_code("１２３４５６") == "123456"
    assert ascii_code("¹²³⁴⁵⁶") is None and ascii_code("12345") is None and ascii_code(None) is None


# --- consecutive wrong codes across windows: notice, then suspension -------------------------------------------------
@pytest.fixture
def cap_app(make_app):
    # A big per-window budget so the test reaches the cap without waiting out 5-minute windows; the cap itself is
    # what is under test (it counts across windows: only a right code, a recovery code or a reset clears it).
    return make_app(mfa_max_failures=1000, mfa_totp_notify_failures=3, mfa_totp_lock_failures=6)


def test_defaults_follow_nist_100():
    from authsvc.mfa.config import MfaSettings

    s = MfaSettings(encryption_keys=(), webauthn_rp_id="x", webauthn_rp_name="x", webauthn_origins=(), totp_issuer="x")
    assert s.totp_notify_failures == 10 and s.totp_lock_failures == 100


def test_consecutive_wrong_codes_notify_once_then_suspend_totp_until_a_recovery_code(cap_app):
    app = cap_app
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        codes = services().mfa.recovery.generate(db.session.get(User, uid))
    client = app.test_client()
    login(client)
    wrong = "000000" if current_code(app, secret) != "000000" else "111111"
    assert submit_totp(client, wrong).status_code == 401
    assert submit_totp(client, wrong).status_code == 401
    next_step(app)
    assert submit_totp(client, current_code(app, secret)).status_code == 302  # a right code: the count starts over
    client = app.test_client()
    login(client)
    for _ in range(5):
        assert submit_totp(client, wrong).status_code == 401
    assert _mails(app).count("Wrong codes for your authenticator app") == 1
    assert submit_totp(client, wrong).status_code == 401  # the 6th in a row: suspended
    assert "Your authenticator app was switched off" in _mails(app)
    assert [e.outcome for e in _events(app, "mfa:totp:suspend")] == ["success"]
    next_step(app)
    r = submit_totp(client, current_code(app, secret))  # even the right code no longer signs in
    assert r.status_code == 403 and "suspended" in r.get_data(as_text=True) and cookie(client, SESSION) is None
    r = client.post("/mfa/challenge", data={"code": current_code(app, secret), "method": "totp",
                                            "csrf_token": csrf_token(client.get("/mfa/challenge").get_data(True))},
                    headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.get_json()["error"] == "totp_suspended"
    assert submit_recovery(client, codes[0]).status_code == 302  # a recovery code signs in and switches it on again
    client = app.test_client()
    login(client)
    next_step(app)
    assert submit_totp(client, current_code(app, secret)).status_code == 302


def test_a_password_reset_switches_a_suspended_totp_back_on(cap_app):
    app = cap_app
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(8 * 86400)  # an established factor: the reset keeps it
    client = app.test_client()
    login(client)
    for _ in range(6):
        submit_totp(client, "000000" if current_code(app, secret) != "000000" else "111111")
    from tests.conftest import outbox_link
    from tests.functional.helpers import form_post

    form_post(app.test_client(), "/reset", {"email": "alice@example.com"})
    link = outbox_link(app, "alice@example.com", "reset").split(":5000", 1)[1]
    new = "a brand new owner passphrase 42"
    assert form_post(app.test_client(), link, {"new_password": new}).status_code == 302
    client = app.test_client()
    login(client, password=new)
    next_step(app)
    assert submit_totp(client, current_code(app, secret)).status_code == 302
