"""Issue 18 in Debian Chromium: one destructive action confirmed with a reason (the empty reason refused, then a real
one), and the users list with its bulk bar on a 390 px phone: no sideways scroll, rows stacked, the bulk flow through
its confirmation page. The fixture fails a test on any console error or CSP violation."""

import json

import pytest

from tests.browser.seed import seed
from tests.browser.test_pages import PHONE, _admin_in, _no_sideways_scroll

pytestmark = pytest.mark.browser


def _events(app, tag):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(db.select(SecurityEvent).where(SecurityEvent.tag == tag)).scalars())


def test_disable_with_a_reason_and_bulk_end_sessions_on_a_phone(app, live_server, browser_context):
    data = seed(app, traffic=False)
    base = live_server.url
    page = browser_context().page
    page.set_viewport_size(PHONE)
    _admin_in(page, base, app, data)

    # One action, confirmed with a reason.
    page.goto(base + f"/admin/users/{data['bob']}")
    page.get_by_role("button", name="Disable account").click()
    page.get_by_role("heading", name="Disable bob@example.com").wait_for()
    assert page.get_by_text(f"#{data['bob']}").is_visible()
    _no_sideways_scroll(page, "confirmation page")
    page.get_by_role("button", name="Confirm").click()  # no reason: refused, nothing changes
    page.get_by_role("alert").filter(has_text="at least 3 characters").wait_for()
    page.get_by_label("Reason (written to the audit log)").fill("Browser test: fraud report 881")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Account disabled; its sessions ended.").wait_for()
    [ev] = _events(app, "admin:user:disable")
    assert json.loads(ev.details)["reason"] == "Browser test: fraud report 881"

    # The users list on a phone: stacked rows, no sideways scroll; bulk end sessions for alice.
    page.goto(base + "/admin/users")
    _no_sideways_scroll(page, "/admin/users")
    assert page.locator("table.users thead").bounding_box()["height"] <= 1  # headers folded into cell labels
    page.get_by_label("Select alice@example.com").check()
    assert page.get_by_label("Select root@example.com").count() == 0  # administrators cannot be selected
    page.get_by_label("With the selected accounts").select_option("end-sessions")
    page.get_by_role("button", name="Review…").click()
    page.get_by_role("heading", name="End every session of 1 account").wait_for()
    _no_sideways_scroll(page, "bulk confirmation")
    page.get_by_label("Reason (written to the audit log)").fill("Browser test: lost laptop")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Done for 1 account.").wait_for()
    assert [json.loads(e.details)["reason"] for e in _events(app, "admin:user:sessions_revoke")] == [
        "Browser test: lost laptop"]
