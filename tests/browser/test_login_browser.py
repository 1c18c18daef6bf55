"""A person in Chromium: register, confirm the e-mail, sign in on two devices, see both, end the other one."""

import pytest

from tests.conftest import PASSWORD, outbox_link

pytestmark = pytest.mark.browser


def test_register_login_sessions_and_revoke_in_chromium(app, live_server, browser_context):
    base = live_server.url  # http://localhost:PORT — Chromium keeps __Host- Secure cookies on localhost
    laptop = browser_context()
    page = laptop.page
    page.goto(base + "/register")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Check your e-mail").wait_for()

    verify = outbox_link(app, "alice@example.com", "verify").replace("http://localhost:5000", base)
    page.goto(verify)
    page.get_by_role("button", name="Confirm my address").click()
    page.get_by_text("Your e-mail address is confirmed").wait_for()

    def sign_in(p):
        p.goto(base + "/login")
        p.get_by_label("E-mail").fill("alice@example.com")
        p.get_by_label("Password").fill(PASSWORD)
        p.get_by_role("button", name="Sign in").click()
        p.get_by_role("heading", name="Your security").wait_for()

    sign_in(page)
    cookies = {c["name"]: c for c in laptop.context.cookies()}
    session_cookie = cookies["__Host-authsvc"]
    assert session_cookie["secure"] and session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"

    phone = browser_context()
    sign_in(phone.page)
    page.reload()
    assert page.locator("li.session").count() == 2
    assert page.locator("li.session.current").count() == 1

    page.get_by_role("button", name="Sign out all other sessions").click()
    page.get_by_text("Signed out 1 other session").wait_for()
    assert page.locator("li.session").count() == 1

    phone.page.goto(base + "/account")
    assert phone.page.url.startswith(base + "/login")

    page.get_by_role("button", name="Sign out", exact=True).first.click()
    page.wait_for_url(base + "/login")


def test_wrong_password_message_in_chromium(app, live_server, browser_context):
    from tests.conftest import create_user

    create_user(app)
    page = browser_context().page
    page.goto(live_server.url + "/login")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Password").fill("not the right password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Incorrect e-mail or password." in alert.inner_text()
