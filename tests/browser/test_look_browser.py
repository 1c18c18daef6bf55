"""Dark mode and operator branding in Debian Chromium: the palette follows prefers-color-scheme on every kind of
page (sign-in, security center), text keeps WCAG AA contrast in both, and a brand accent reaches buttons in both
schemes without any CSP violation (the fixture fails the test on one)."""

import pytest

from tests.browser.seed import PASSWORD, seed
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

_COLOURS = """() => {
  const rgb = s => s.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= .03928 ? c / 12.92 : ((c + .055) / 1.055) ** 2.4; };
                               return .2126 * f(r) + .7152 * f(g) + .0722 * f(b); };
  const body = getComputedStyle(document.body);
  const card = document.querySelector('.card') ? getComputedStyle(document.querySelector('.card')).backgroundColor
                                               : body.backgroundColor;
  const bg = lum(rgb(body.backgroundColor)), fg = lum(rgb(body.color)), cardL = lum(rgb(card));
  const ratio = (a, b) => (Math.max(a, b) + .05) / (Math.min(a, b) + .05);
  const primary = document.querySelector('button.primary');
  return {bg, fg, contrast: ratio(bg, fg), cardContrast: ratio(cardL, fg),
          accent: primary ? getComputedStyle(primary).backgroundColor : null};
}"""


def _sign_in(page, base):
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your security").wait_for()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_follow_the_colour_scheme_with_readable_text(app, live_server, browser_context, scheme):
    seed(app, traffic=False)
    w = browser_context()
    page = w.page
    page.emulate_media(color_scheme=scheme)
    page.goto(live_server.url + "/login")
    page.wait_for_load_state("load")  # stylesheets applied (a loaded box can be slow to get there)
    login = page.evaluate(_COLOURS)
    _sign_in(page, live_server.url)
    page.wait_for_load_state("load")
    center = page.evaluate(_COLOURS)
    for where, c in (("login", login), ("security center", center)):
        if scheme == "dark":
            assert c["bg"] < 0.05 and c["fg"] > 0.6, (where, c)
        else:
            assert c["bg"] > 0.85 and c["fg"] < 0.05, (where, c)
        assert c["contrast"] >= 4.5 and c["cardContrast"] >= 4.5, (where, c)


def test_brand_accent_reaches_buttons_in_both_schemes(make_app, tmp_path, browser_context):
    app = make_app(brand_accent="#aa0055", brand_accent_dark="#ff77aa", service_name="StreamCo")
    server = LiveServer(app, tls=False, tmp_path=tmp_path)
    try:
        w = browser_context()
        page = w.page
        page.goto(server.url + "/login")
        assert page.evaluate(_COLOURS)["accent"] == "rgb(170, 0, 85)"
        page.emulate_media(color_scheme="dark")
        page.reload()
        assert page.evaluate(_COLOURS)["accent"] == "rgb(255, 119, 170)"
        assert page.title().endswith("StreamCo")
    finally:
        server.stop()
