"""E-mail change confirmed at the new address (accounts/emailchange.py): hostile input first."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import create_user, csrf_token, outbox_link
from tests.functional.helpers import form_post, login


def _user(app, email):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def _confirm(client, app, to):
    path = outbox_link(app, to, "email-change").split("://", 1)[1].split("/", 1)[1]
    path = "/" + path
    return client.post(path, data={"csrf_token": csrf_token(client.get(path).get_data(as_text=True))}), path


def test_bad_addresses_are_a_clear_400(app):
    create_user(app, email="erin@example.com")
    client = app.test_client()
    login(client, "erin@example.com")
    for bad in ("", "not-an-address", "erin@example.com", "ERIN@example.com ", "a@b@c.example",
                "x" * 400 + "@example.com", "evil@example.com\r\nBcc: x@example.com", "ｅｒｉｎ@example.com\u0000"):
        r = form_post(client, "/account/email", {"email": bad})
        assert r.status_code == 400, bad
    assert client.post("/account/email", data={"email": "new@example.com"}).status_code == 400  # no CSRF token


def test_change_needs_a_fresh_sign_in(app):
    create_user(app, email="erin@example.com")
    client = app.test_client()
    login(client, "erin@example.com")
    app.extensions["authsvc"].clock.advance(1200)
    r = client.get("/account/email")
    assert r.status_code == 302 and "/mfa/step-up" in r.location
    assert client.get("/account/email", follow_redirects=False).status_code == 302


def test_address_taken_meanwhile_or_replaced_request_does_not_confirm(app):
    create_user(app, email="erin@example.com")
    client = app.test_client()
    login(client, "erin@example.com")
    assert form_post(client, "/account/email", {"email": "first@example.com"}).status_code == 200
    first = "/" + outbox_link(app, "first@example.com", "email-change").split("://", 1)[1].split("/", 1)[1]
    assert form_post(client, "/account/email", {"email": "second@example.com"}).status_code == 200
    r = client.post(first, data={"csrf_token": csrf_token(client.get(first).get_data(as_text=True))})
    assert r.status_code == 400 and _user(app, "first@example.com") is None  # replaced by the newer request
    create_user(app, email="second@example.com")  # someone else takes the address before the click
    r, _ = _confirm(client, app, "second@example.com")
    assert r.status_code == 400 and _user(app, "erin@example.com") is not None


def test_happy_path_changes_only_at_the_new_address_and_once(app):
    create_user(app, email="erin@example.com")
    client = app.test_client()
    login(client, "erin@example.com")
    assert form_post(client, "/account/email", {"email": "Erin.New@example.com"}).status_code == 200
    assert _user(app, "erin@example.com") is not None  # nothing changed yet
    r, path = _confirm(client, app, "erin.new@example.com")
    assert r.status_code == 302 and _user(app, "erin.new@example.com") is not None
    r = client.post(path, data={"csrf_token": csrf_token(client.get(path).get_data(as_text=True))})
    assert r.status_code == 400
    for junk in ("x", "a" * 500, "%00" * 20):
        assert app.test_client().post("/email-change/" + junk).status_code == 400
