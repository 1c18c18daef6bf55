"""The admin panel in German in Debian Chromium on a 390 px phone (issue 18, admin scope): an operator whose account
is set to German gets the dashboard (its SVG chart's title, description and series names from the server, in
German; times in the operator's zone) and the users list in German, with no sideways scroll. The fixture fails the
test on any console error or CSP violation."""

import re

import pytest

from tests.browser.seed import seed
from tests.browser.test_pages import PHONE, _admin_in, _no_sideways_scroll

pytestmark = pytest.mark.browser

ENGLISH = ("Sign-ins per hour", "Risk scores", "Show the numbers", "throttles in force", "Newest 100 accounts",
           "Find by e-mail", "With the selected accounts", "stepped up", "Two-step verification adoption")


def _set_region(app, uid, locale, timezone):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        user = db.session.get(User, uid)
        user.locale, user.timezone = locale, timezone
        db.session.commit()


def test_german_dashboard_and_users_list_on_a_phone(app, live_server, browser_context):
    data = seed(app, traffic=True)
    base = live_server.url
    page = browser_context().page  # the browser asks for English: the account's setting must win
    page.set_viewport_size(PHONE)
    _admin_in(page, base, app, data)
    _set_region(app, data["root"], "de", "Asia/Kolkata")

    page.goto(base + "/admin/")
    assert page.locator("html").get_attribute("lang") == "de"
    page.get_by_role("heading", name="Übersicht", exact=True).wait_for()
    _no_sideways_scroll(page, "/admin/ (de)")
    chart = page.locator("svg#logins-chart")
    assert chart.locator("title").first.text_content() == "Anmeldungen pro Stunde, letzte 24 Stunden"
    assert "zusätzlich geprüft" in chart.locator("desc").text_content()
    assert page.locator("ul.legend").first.inner_text().split("\n")[:2] == ["zugelassen", "zusätzlich geprüft"]
    # The hour labels are in the operator's zone: Kolkata is UTC+5:30, so every label ends in :30.
    labels = chart.locator("text.axis").all_text_contents()
    hours = [t for t in labels if ":" in t]
    assert hours and all(re.fullmatch(r"\d{2}:30", t) for t in hours), hours
    body = page.locator("body").inner_text()
    assert not [e for e in ENGLISH if e in body], [e for e in ENGLISH if e in body]
    page.get_by_text("Zahlen anzeigen").first.click()  # the numbers behind the chart, in German too
    page.get_by_role("columnheader", name="Stunde").wait_for()

    page.goto(base + "/admin/users")
    page.get_by_role("heading", name="Benutzer", exact=True).wait_for()
    _no_sideways_scroll(page, "/admin/users (de)")
    assert page.locator("table.users thead").bounding_box()["height"] <= 1  # headers folded into cell labels
    page.get_by_label("Suchen nach E-Mail, ID oder IP-Adresse").fill("bob@")
    page.get_by_role("button", name="Suchen", exact=True).click()
    page.get_by_role("status").filter(has_text=re.compile(r"Treffer für E-Mail „bob@“")).wait_for()
    page.get_by_label("bob@example.com auswählen").check()
    body = page.locator("body").inner_text()
    assert not [e for e in ENGLISH if e in body], [e for e in ENGLISH if e in body]
