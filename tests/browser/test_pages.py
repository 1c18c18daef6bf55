"""Every end-user page and every admin page in Debian Chromium: no console error or CSP violation (the fixture fails
the test on either), no horizontal scrolling on a phone, and a keyboard-only pass (Tab / Enter) over the login and the
security center."""

import re

import pytest

from tests.browser.seed import PASSWORD, seed, totp_now

pytestmark = pytest.mark.browser

USER_PAGES = ["/account", "/account/activity", "/account/password", "/account/data", "/account/delete"]
ANON_PAGES = ["/login", "/register", "/reset"]
PHONE = {"width": 390, "height": 844}


def _sign_in(page, base, email="alice@example.com"):
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _admin_in(page, base, app, data):
    from authsvc.services import services

    with app.app_context():
        services().clock.advance(30)  # a TOTP step is accepted once: each sign-in needs the next code
    _sign_in(page, base, "root@example.com")
    page.get_by_label("6-digit code from your authenticator app").wait_for()
    page.get_by_label("6-digit code from your authenticator app").fill(totp_now(app, data["root_totp"]))
    page.get_by_role("button", name="Verify code").click()
    page.get_by_role("heading", name="Your security").wait_for()


def _no_sideways_scroll(page, path):
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 1:
        culprits = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .filter(e => { for (let p = e.parentElement; p; p = p.parentElement) {
                if (getComputedStyle(p).overflowX !== 'visible') return false; } return true; })
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + (e.innerText || '').slice(0, 40))""")
        raise AssertionError(f"{path} scrolls sideways by {overflow}px on a phone: {culprits}")


def test_every_user_page_on_desktop_and_phone(app, live_server, browser_context):
    seed(app, traffic=False)
    base = live_server.url
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        w = browser_context()
        page = w.page
        page.set_viewport_size(viewport)
        for path in ANON_PAGES:
            assert page.goto(base + path).status == 200, path
            page.locator("h1").first.wait_for()
        _sign_in(page, base)
        page.get_by_role("heading", name="Your security").wait_for()
        for path in USER_PAGES:
            assert page.goto(base + path).status == 200, path
            assert page.locator("h1").count() == 1, path
            if viewport is PHONE:
                _no_sideways_scroll(page, path)
        page.goto(base + "/account")
        assert page.get_by_text("Chrome 131 on Windows 10").count() == 0  # that session is alice's seeded receipt
        assert page.get_by_role("heading", name="Connected apps").is_visible()
        assert page.get_by_text("Photo Print Shop").is_visible()
        page.goto(base + "/account/activity")
        assert page.get_by_text("Lisbon to Singapore in 20 minutes is not possible").is_visible()
        assert page.get_by_text("First sign-in from Portugal").is_visible()
        with page.expect_download() as dl:
            page.goto(base + "/account/data")
            page.get_by_role("link", name="Download my data").click()
        assert dl.value.suggested_filename.startswith("authsvc-data-")


def test_every_admin_page_on_desktop_and_phone(app, live_server, browser_context):
    data = seed(app)
    base = live_server.url
    pages = ["/admin/", "/admin/users", f"/admin/users/{data['bob']}", "/admin/users?q=203.0.113.9",
             "/admin/attacks", "/admin/oauth", "/admin/oauth/new", f"/admin/oauth/{data['client_id']}/edit",
             "/admin/audit", "/admin/audit?tag=account:login&outcome=failure", "/admin/outbox", "/admin/users/new"]
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        w = browser_context()
        page = w.page
        page.set_viewport_size(viewport)
        _admin_in(page, base, app, data)
        for path in pages:
            resp = page.goto(base + path)
            assert resp.status == 200, path
            assert page.locator("nav.admin-nav a[aria-current=page]").count() == 1, path
            if viewport is PHONE:
                _no_sideways_scroll(page, path)
        page.goto(base + "/admin/")
        assert page.locator("svg#logins-chart rect").count() > 10
        assert page.get_by_role("img", name="Sign-ins per hour, last 24 hours").is_visible()
        # An action, end to end: end bob's sessions from his page.
        page.goto(base + f"/admin/users/{data['bob']}")
        page.get_by_role("button", name="End all sessions").click()
        page.get_by_label("Reason (written to the audit log)").fill("Browser test: routine check")
        page.get_by_role("button", name="Confirm").click()
        page.get_by_text("Ended 0 sessions.").wait_for()
        page.goto(base + "/admin/attacks")
        if page.get_by_role("button", name=re.compile("^Unblock")).count():
            page.get_by_role("button", name=re.compile("^Unblock")).first.click()
            page.get_by_label("Reason (written to the audit log)").fill("Browser test: false positive")
            page.get_by_role("button", name="Confirm").click()
            page.get_by_text(re.compile(r"Unblocked|Nothing to unblock")).wait_for()


def _tab_to(page, predicate, limit=80):
    """Press Tab until the focused element satisfies ``predicate``; returns the names seen on the way."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        el = page.evaluate("""() => { const e = document.activeElement;
            return {tag: e.tagName.toLowerCase(), name: (e.getAttribute('aria-label') || e.innerText || e.value ||
                    (e.labels && e.labels[0] && e.labels[0].innerText) || '').trim(), id: e.id, type: e.type || ''}; }""")
        seen.append(el)
        if predicate(el):
            return seen
    raise AssertionError(f"never reached the control; focus went through {[s['name'] for s in seen]}")


def test_keyboard_only_login_and_security_center(app, live_server, browser_context):
    seed(app, traffic=False)
    base = live_server.url
    other = browser_context()  # a second session, for "Sign out all other sessions"
    _sign_in(other.page, base)
    other.page.get_by_role("heading", name="Your security").wait_for()

    page = browser_context().page
    page.goto(base + "/login")
    seen = _tab_to(page, lambda e: e["id"] == "email")
    assert seen[0]["name"] == "Skip to content"  # the first stop skips the header
    page.keyboard.type("alice@example.com")
    seen = _tab_to(page, lambda e: e["id"] == "password", limit=2)
    page.keyboard.type(PASSWORD)
    seen = _tab_to(page, lambda e: e["tag"] == "button" and e["name"] == "Sign in", limit=2)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your security").wait_for()

    # Security center: the section links come first, then the controls in reading order.
    seen = _tab_to(page, lambda e: e["name"] == "Sign out all other sessions")
    names = [s["name"] for s in seen]
    assert names.index("Devices and sessions") < names.index("Sign out all other sessions")
    page.keyboard.press("Enter")
    page.get_by_text(re.compile(r"Signed out \d+ other sessions?")).wait_for()
    other.page.goto(base + "/account")
    assert "/login" in other.page.url

    # Notifications: reach the box and the save button with Tab; Enter submits the form.
    seen = _tab_to(page, lambda e: e["id"] == "new_sign_in")
    seen = _tab_to(page, lambda e: e["name"] == "Save notification settings", limit=2)
    page.keyboard.press("Enter")
    page.get_by_text("Sign-in alerts are on.").wait_for()

    # Delete: Tab to the link, Enter, then the form by keyboard (password, tick box via Enter is not possible:
    # the form refuses without it and says why, which is what a keyboard user then sees).
    _tab_to(page, lambda e: e["name"] == "Delete my account…")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Delete your account").wait_for()
    _tab_to(page, lambda e: e["id"] == "password")
    page.keyboard.type(PASSWORD)
    _tab_to(page, lambda e: e["tag"] == "button" and e["name"] == "Delete my account", limit=3)
    page.keyboard.press("Enter")
    page.get_by_role("alert").filter(has_text="Tick the box to confirm.").wait_for()
    _tab_to(page, lambda e: e["id"] == "password")  # a refused form never sends the password back
    page.keyboard.type(PASSWORD)
    _tab_to(page, lambda e: e["id"] == "confirm", limit=2)
    page.keyboard.press("Space")  # a checkbox's own key; everything else above was Tab / Enter
    _tab_to(page, lambda e: e["tag"] == "button" and e["name"] == "Delete my account", limit=3)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your account is deleted").wait_for()
