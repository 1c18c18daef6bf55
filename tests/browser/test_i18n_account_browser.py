"""The security center in German in Chromium, whose clock runs in Tokyo: the page offers the browser's zone (from
Intl, by static/js/timezone.js under the strict CSP), saving it shows the session times at Tokyo's wall-clock time."""

import datetime as dt
import re

import pytest

from tests.conftest import PASSWORD, create_user

pytestmark = pytest.mark.browser

TOKYO = dt.timezone(dt.timedelta(hours=9))  # Asia/Tokyo: UTC+9, no daylight saving


def test_security_center_in_german_shows_times_in_the_zone_offered_by_the_browser(app, live_server,
                                                                                     browser_context):
    from authsvc.services import services

    create_user(app)
    base = live_server.url
    page = browser_context(locale="de-DE", timezone_id="Asia/Tokyo").page  # Accept-Language: de-DE
    page.goto(base + "/login")
    page.get_by_label("E-Mail").fill("alice@example.com")
    page.get_by_label("Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden", exact=True).click()
    page.get_by_role("heading", name="Ihre Sicherheit").wait_for()
    with app.app_context():
        signed_in = services().clock.now()

    # Before: no zone set, times in UTC.
    offer = page.get_by_role("button", name=re.compile("Zeitzone dieses Geräts verwenden"))
    offer.wait_for()
    assert "Asia/Tokyo" in offer.inner_text()
    offer.click()
    assert page.get_by_label("Zeitzone", exact=True).input_value() == "Asia/Tokyo"
    page.get_by_role("combobox", name="Sprache").select_option("de")
    page.get_by_role("button", name="Sprache und Zeitzone speichern").click()
    page.get_by_text("Sprache und Zeitzone gespeichert.").wait_for()

    assert page.locator("html").get_attribute("lang") == "de"
    first_time = page.locator("li.session.current time").first
    local = (signed_in if signed_in.tzinfo else signed_in.replace(tzinfo=dt.UTC)).astimezone(TOKYO)
    allowed = {(local + dt.timedelta(minutes=m)).strftime("%d.%m.%y, %H:%M") for m in (-1, 0, 1)}
    assert first_time.inner_text() in allowed, (first_time.inner_text(), allowed)
    assert first_time.get_attribute("datetime").startswith(signed_in.strftime("%Y-%m-%dT%H"))  # ISO, UTC
    # The field now holds the browser's zone, so the offer is not shown again.
    assert page.get_by_label("Zeitzone", exact=True).input_value() == "Asia/Tokyo"
    assert not offer.is_visible()
