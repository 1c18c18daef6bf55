"""E-mails are multipart/alternative: the text the code wrote plus the same as HTML from a Jinja template, with a
Date header; security notices say what, when, where (country from the operator's geo file), on what device, and
carry one link. Whatever an attacker controls (the User-Agent) is escaped in the HTML part."""

import email.policy
import os
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import pytest

from authsvc.notify.htmlmail import blocks
from tests.conftest import create_user
from tests.functional.test_receipts import api_login

GEO = "/work/shared/data/geoip"  # tests may use the shared data; the product reads what the operator configures
HOSTILE_UA = 'Mozilla/5.0 <script>alert(1)</script> "><img src=x onerror=alert(2)> Chrome/131.0.0.0 Safari/537.36'


def _raw_messages(app):
    folder = os.path.join(app.instance_path, "outbox")
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".eml") and not name.startswith("."):
            with open(os.path.join(folder, name), "rb") as fh:
                out.append(BytesParser(policy=email.policy.default).parse(fh))
    return out


@pytest.fixture
def geo_app(make_app):
    if not os.path.isfile(os.path.join(GEO, "geo-whois-asn-country.mmdb")):
        pytest.skip("shared geoip data not present")
    return make_app(risk_country_file=os.path.join(GEO, "geo-whois-asn-country.mmdb"))


def test_new_place_notice_is_text_and_html_with_what_when_where_device_and_one_link(geo_app):
    app = geo_app
    create_user(app)
    assert api_login(app, "203.0.113.10").status_code == 200
    assert api_login(app, "8.8.8.8", ua=HOSTILE_UA).status_code == 200  # a new network and browser → a notice
    (msg,) = [m for m in _raw_messages(app) if m["Subject"].startswith("New sign-in")]
    assert msg.get_content_type() == "multipart/alternative"
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    for fact in ("When:", "Where: United States, IP address 8.8.8.8", "Device: Chrome 131"):
        assert fact in text, fact
    # The HTML part: the same facts in a table, the one link as a button and as text, nothing of the UA unescaped.
    assert "<td" in html and "United States, IP address 8.8.8.8" in html and "Chrome 131" in html
    link = next(w for w in text.split() if "/not-me/" in w)
    assert html.count(f'href="{link}"') == 1 and "<script>" not in html and "<img src=x" not in html
    assert "alert(1)" not in html or "&lt;script&gt;" in html


def test_every_mail_has_an_html_part_and_the_text_stays_authoritative(app):
    create_user(app, verified=False, email="new@example.com")
    from authsvc.services import services

    with app.app_context():
        services().mailer.send("x@example.com", "Subject <b>bold</b>", "Hello <b>there</b>.\n\nhttps://a.example/x?y=1&z=2")
    (msg,) = [m for m in _raw_messages(app) if m["To"] == "x@example.com"]
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "Subject &lt;b&gt;bold&lt;/b&gt;" in html and "Hello &lt;b&gt;there&lt;/b&gt;." in html
    assert 'href="https://a.example/x?y=1&amp;z=2"' in html
    assert msg.get_body(preferencelist=("plain",)).get_content().startswith("Hello <b>there</b>.")


@pytest.mark.parametrize("body,kinds", [
    ("One.\n\nTwo.", ["p", "p"]),
    ("Do this:\n  - a;\n  - b.", ["p", "list"]),
    ("  When: now\n  Where: here", ["facts"]),
    ("If it was NOT you, open this link: https://x.example/not-me/abc\nIt signs you out.", ["p"]),
    ("Open this link: https://x.example/not-me/abc", ["p", "button"]),
    ("", []),
    ("\n\n\n", []),
    ("  - only\n  - items", ["list"]),
])
def test_text_to_blocks(body, kinds):
    assert [b.kind for b in blocks(body)] == kinds
