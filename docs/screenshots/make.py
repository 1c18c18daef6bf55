#!/usr/bin/env python3
"""Screenshots of the main pages — desktop 1280×800 and phone 390×844 — into docs/screenshots/*.png.

    .venv/bin/python docs/screenshots/make.py          # needs Debian's chromium (apt install chromium)

Runs the real app on the embedded defaults in a temporary folder (SQLite + a private redis-server), seeds a day of
traffic through the real services (tests/browser/seed.py), signs in like a person (the admin with a TOTP code) and
drives Chromium through Playwright. Nothing outside the temporary folder is touched except the PNG files.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

USER_PAGES = [("login", "/login", False), ("security-center", "/account", True), ("activity", "/account/activity", True),
              ("delete-account", "/account/delete", True)]
ADMIN_PAGES = [("admin-dashboard", "/admin/"), ("admin-users", "/admin/users"), ("admin-user", "/admin/users/{bob}"),
               ("admin-attacks", "/admin/attacks"), ("admin-audit", "/admin/audit"), ("admin-oauth", "/admin/oauth")]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def main() -> int:
    from playwright.sync_api import sync_playwright

    from authsvc import create_app, embedded_redis
    from authsvc.cli import upgrade_database
    from tests.browser.conftest import CHROMIUM_ARGS
    from tests.browser.seed import PASSWORD, seed, totp_now
    from tests.conftest import FAST_ARGON2, LiveServer

    chromium = os.environ.get("AUTHSVC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="authsvc-screens-"))
    (tmp / "redis").mkdir()
    redis_url = embedded_redis.ensure_running(str(tmp / "redis"))
    server = None
    try:
        app = create_app({"instance_path": str(tmp / "instance"), "redis_url": redis_url,
                          "secret_key": "screenshots", **FAST_ARGON2})
        with app.app_context():
            upgrade_database()
        data = seed(app)
        server = LiveServer(app, tls=False, tmp_path=tmp)
        base = server.url
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            for vname, viewport in VIEWPORTS.items():
                ctx = browser.new_context(viewport=viewport, device_scale_factor=1)
                page = ctx.new_page()
                for name, path, signed_in in USER_PAGES:
                    if signed_in and "/login" in page.url or signed_in and page.url in ("about:blank", ""):
                        _sign_in(page, base, "alice@example.com", PASSWORD)
                    page.goto(base + path)
                    page.screenshot(path=str(HERE / f"{name}-{vname}.png"), full_page=True)
                    if name == "login":
                        _sign_in(page, base, "alice@example.com", PASSWORD)
                ctx.close()
                ctx = browser.new_context(viewport=viewport, device_scale_factor=1)
                page = ctx.new_page()
                with app.app_context():
                    from authsvc.services import services

                    services().clock.advance(30)  # each sign-in uses the next TOTP step
                _sign_in(page, base, "root@example.com", PASSWORD)
                page.get_by_label("6-digit code from your authenticator app").fill(totp_now(app, data["root_totp"]))
                page.get_by_role("button", name="Verify code").click()
                page.get_by_role("heading", name="Your security").wait_for()
                for name, path in ADMIN_PAGES:
                    page.goto(base + path.format(**data))
                    page.screenshot(path=str(HERE / f"{name}-{vname}.png"), full_page=True)
                ctx.close()
            # Dark mode (prefers-color-scheme: dark): the sign-in page and the security center, desktop only.
            ctx = browser.new_context(viewport=VIEWPORTS["desktop"], device_scale_factor=1, color_scheme="dark")
            page = ctx.new_page()
            page.goto(base + "/login")
            page.screenshot(path=str(HERE / "login-dark-desktop.png"), full_page=True)
            _sign_in(page, base, "alice@example.com", PASSWORD)
            page.goto(base + "/account")
            page.screenshot(path=str(HERE / "security-center-dark-desktop.png"), full_page=True)
            ctx.close()
            browser.close()
    finally:
        if server is not None:
            server.stop()
        embedded_redis.stop(str(tmp / "redis"))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"screenshots written to {HERE}")
    return 0


def _sign_in(page, base, email, password):
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


if __name__ == "__main__":
    raise SystemExit(main())
