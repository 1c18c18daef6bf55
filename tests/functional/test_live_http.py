"""Over a real socket with TLS and an independent HTTP client (requests): the cookie is Secure, so we serve TLS
with a throwaway CA rather than dropping Secure (see docs/ARCHITECTURE.md)."""

import re

import requests

from tests.conftest import PASSWORD, outbox_link
from tests.functional.mfa_helpers import mailed_code


def _csrf(html):
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _post_form(s, url, data):
    page = s.get(url)
    page.raise_for_status()
    # A browser sends the Referer (our Referrer-Policy is same-origin); Flask-WTF requires it over HTTPS.
    return s.post(url, data=dict(data, csrf_token=_csrf(page.text)), allow_redirects=False,
                  headers={"Referer": url})


def test_register_login_list_and_revoke_over_https(app, tls_server):
    base = tls_server.url
    laptop, phone = requests.Session(), requests.Session()
    for s in (laptop, phone):
        s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override our throwaway CA
        s.verify = tls_server.ca_path
    laptop.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    phone.headers["User-Agent"] = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                                   "Chrome/131.0.0.0 Mobile Safari/537.36")

    r = _post_form(laptop, base + "/register", {"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200 and "Check your e-mail" in r.text
    verify_path = outbox_link(app, "alice@example.com", "verify").split(":5000", 1)[1]
    r = _post_form(laptop, base + verify_path, {})
    assert r.status_code == 302

    for s in (laptop, phone):
        r = _post_form(s, base + "/login", {"email": "alice@example.com", "password": PASSWORD})
        assert r.status_code == 302
        if s is phone:
            # The confirmation seeded the account's risk history with the laptop (docs/RISK.md §6 v3): a phone is a
            # new device type, so its first sign-in meets the code mailed to the address, over the same HTTPS.
            assert r.headers["Location"].endswith("/mfa/challenge")
            r = _post_form(s, base + "/mfa/challenge", {"email_code": mailed_code(app), "method": "email"})
            assert r.status_code == 302
        cookie = [c for c in s.cookies if c.name == "__Host-authsvc"][0]
        assert cookie.secure and cookie.path == "/" and not cookie.domain_specified
    page = laptop.get(base + "/account", allow_redirects=False)
    assert page.status_code == 200
    assert "Firefox 128 on Linux" in page.text and "Chrome Mobile 131 on Android 14" in page.text
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    # Without the Referer (or from another origin) an HTTPS form post is refused even with a valid token.
    r = laptop.post(base + "/account/sessions/revoke-others", data={"csrf_token": _csrf(page.text)},
                    allow_redirects=False, headers={"Referer": "https://evil.example/"})
    assert r.status_code == 400

    r = laptop.post(base + "/account/sessions/revoke-others", data={"csrf_token": _csrf(page.text)},
                    allow_redirects=False, headers={"Referer": base + "/account"})
    assert r.status_code == 302
    assert phone.get(base + "/account", allow_redirects=False).status_code == 302
    assert laptop.get(base + "/account", allow_redirects=False).status_code == 200


def test_plain_http_client_never_gets_the_secure_cookie_back(app, live_server):
    """requests follows the cookie rules: a Secure cookie is not sent over http — so the session can't leak there."""
    s = requests.Session()
    s.trust_env = False
    page = s.get(live_server.url + "/login")
    r = s.post(live_server.url + "/login", data={"email": "x@example.com", "password": "y" * 20,
                                                 "csrf_token": _csrf(page.text)})
    # The CSRF cookie is Secure as well, so over plain http the form cannot even be submitted.
    assert r.status_code == 400
