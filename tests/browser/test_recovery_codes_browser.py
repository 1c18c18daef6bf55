"""Recovery codes in Debian Chromium: copy to the clipboard, download as a text file, print styles, and no code is
ever broken across lines, on a phone included. The codes shown are the ones that work (one is redeemed after)."""

import pytest

from tests.browser.test_mfa_webauthn import _password_login, _virtual_authenticator, wa_server  # noqa: F401
from tests.conftest import create_user

pytestmark = pytest.mark.browser


def test_codes_copy_download_print_and_never_wrap(wa_server, browser_context):  # noqa: F811
    create_user(wa_server.app)
    w = browser_context()
    w.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=wa_server.url)
    page = w.page
    page.set_viewport_size({"width": 320, "height": 700})  # a small phone: the narrowest layout
    _virtual_authenticator(w.context, page)
    _password_login(page, wa_server.url)
    page.get_by_role("heading", name="Your security").wait_for()
    page.get_by_role("link", name="Add a passkey or security key").click()
    page.get_by_label("Name for this passkey or security key").fill("Phone")
    page.get_by_role("button", name="Add passkey").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    shown = [c.strip() for c in page.locator("ul.codes code").all_inner_texts()]
    assert len(shown) == 10

    # No mid-code wrap: every code is one line box high.
    heights = page.evaluate("""() => [...document.querySelectorAll('ul.codes code')].map(c => {
        const r = document.createRange(); r.selectNodeContents(c); return r.getClientRects().length; })""")
    assert heights == [1] * 10, heights

    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied 10 codes.").wait_for()
    clip = page.evaluate("navigator.clipboard.readText()")
    assert clip.splitlines()[1:] == shown and "alice@example.com" in clip.splitlines()[0]

    with page.expect_download() as dl:
        page.get_by_role("button", name="Download .txt").click()
    download = dl.value
    assert download.suggested_filename == "authsvc-recovery-codes.txt"
    assert open(download.path()).read().splitlines()[1:] == shown

    page.emulate_media(media="print")  # the printout: codes only, no header or buttons
    assert not page.get_by_role("button", name="Copy").is_visible()
    assert not page.locator("header.top").is_visible()
    assert page.locator("ul.codes").is_visible()
    page.emulate_media(media="screen")

    # The copied codes are the working ones: one redeems exactly once.
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with wa_server.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email="alice@example.com")).scalar_one()
        recovery = services().mfa.recovery
        assert recovery.use(user, clip.splitlines()[4]) is True
        assert recovery.use(user, shown[3]) is False  # the same code, as shown on the page: already used
