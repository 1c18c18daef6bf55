"""Helpers for MFA flows over HTTP (the Flask test client, real Redis and SQL)."""

import json
import re

from authsvc.mfa.totp import code_at
from tests.conftest import csrf_token
from tests.functional.helpers import form_post, login

PENDING = "__Host-authsvc-pending"
DEVICE = "__Host-authsvc-device"
SESSION = "__Host-authsvc"


def cookie(client, name):
    c = client.get_cookie(name)
    return c.value if c is not None else None


def enrol_totp(app, user_id):
    """Set up TOTP through the service (the enrolment pages have their own test); returns the base32 seed."""
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        user = db.session.get(User, user_id)
        totp = services().mfa.totp
        secret = totp.begin(user)
        assert totp.confirm(user, current_code(app, secret))
        services().clock.advance(30)  # the confirming code used its step up
        return secret


def current_code(app, secret, offset_steps=0):
    from authsvc.services import services

    with app.app_context():
        return code_at(secret, int(services().clock.timestamp()) // 30 + offset_steps)


def next_step(app):
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(30)


def submit_totp(client, code, remember=False, url="/mfa/challenge"):
    page = client.get(url)
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "code": code, "method": "totp"}
    if remember:
        data["remember"] = "y"
    return client.post(url, data=data)


def submit_recovery(client, code, url="/mfa/challenge"):
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), "recovery_code": code,
                                  "method": "recovery"})


def meta_csrf(html):
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert m, "no csrf meta"
    return m.group(1)


def post_json(client, url, body, token):
    return client.post(url, data=json.dumps(body), headers={"Content-Type": "application/json",
                                                            "Accept": "application/json", "X-CSRFToken": token})


__all__ = ["form_post", "login"]


def finish_with_mailed_code(app, client, resp, to="alice@example.com"):
    """Follow a password login through the risk step-up of an account without a factor: the page must offer only
    the code mailed to the owner's address (no factor anybody else planted); the code from the outbox finishes it."""
    import re as _re

    from tests.conftest import csrf_token as _csrf

    if resp.status_code != 302 or not resp.headers["Location"].endswith("/mfa/challenge"):
        return resp
    page = client.get("/mfa/challenge").get_data(as_text=True)
    assert "Check your e-mail" in page and "Authenticator app" not in page and "Passkey" not in page
    with app.app_context():
        from authsvc.services import services

        codes = [m.group(1) for msg in services().outbox.messages(to=to)
                 for m in [_re.search(r"sign-in code is (\d{8})\b", msg.body)] if m]
    assert codes, "no sign-in code mailed"
    return client.post("/mfa/challenge", data={"csrf_token": _csrf(page), "email_code": codes[-1], "method": "email"})


def mailed_code(app, to="alice@example.com"):
    """The first sign-in code (e-mail second step) found in the real outbox for ``to``."""
    from authsvc.services import services

    with app.app_context():
        for msg in services().outbox.messages(to=to):
            m = re.search(r"sign-in code is (\d{8})\b", msg.body)
            if m:
                return m.group(1)
    raise AssertionError("no sign-in code mailed")
