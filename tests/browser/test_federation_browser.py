"""A person in Chromium clicks "Continue with Upstream", signs in at the upstream provider (a second authsvc over
TLS), approves, and lands in a new account whose security center lists the linked identity. With
AUTHSVC_SCREENSHOTS=1 it also refreshes docs/screenshots/federation-*.png (off by default: the tree stays clean)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tests.conftest import PASSWORD
from tests.functional.federation_helpers import upstream, upstream_idp  # noqa: F401

pytestmark = pytest.mark.browser
SHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                     "screenshots")
SAVE = os.environ.get("AUTHSVC_SCREENSHOTS") == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_continue_with_upstream_in_chromium(make_app, upstream, chromium):
    from werkzeug.serving import make_server

    port = _free_port()
    base = f"http://127.0.0.1:{port}"  # an http loopback redirect URI is allowed (RFC 8252 §7.3)
    rp = make_app(base_url=base, webauthn_rp_id="127.0.0.1")
    cid, secret = upstream.client(base + "/federation/up/callback")
    with rp.app_context():
        rp.extensions["authsvc_federation"].add_provider(slug="up", kind="oidc", issuer=upstream.url, client_id=cid,
                                                         client_secret=secret, name="Upstream")
    upstream.user("carol@example.com")
    server = make_server("127.0.0.1", port, rp, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = chromium.new_context(ignore_https_errors=True)  # the upstream's throwaway CA
    problems = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(base + "/login")
        button = page.get_by_role("button", name="Continue with Upstream")  # a link styled and named as a button
        button.wait_for()
        if SAVE:
            page.screenshot(path=os.path.join(SHOTS, "federation-login.png"), full_page=True)
        button.click()
        page.get_by_label("E-mail").wait_for()
        assert page.url.startswith(upstream.url + "/login"), (page.url, page.content()[:800])
        page.get_by_label("E-mail").fill("carol@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("button", name="Allow").click()
        page.get_by_role("heading", name="Your security").wait_for()
        assert page.url.startswith(base)
        assert "carol@example.com" in page.locator("section.center-head").inner_text()
        linked = page.locator("section[aria-labelledby=linked-h]")
        assert "Upstream" in linked.inner_text() and "carol@example.com" in linked.inner_text()
        if SAVE:
            linked.screenshot(path=os.path.join(SHOTS, "federation-linked.png"))
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["__Host-authsvc-fed"]["httpOnly"] and cookies["__Host-authsvc-fed"]["secure"]
        # Unlinking the only way in is refused, in words.
        page.get_by_role("button", name="Unlink Upstream (carol@example.com)").click()
        assert "only way to sign in" in page.content()
    finally:
        context.close()
        server.shutdown()
        thread.join(5)
    assert problems == []
