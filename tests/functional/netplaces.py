"""A small, fixed world of networks for the drift, step-up and device-phishing tests: a home provider (two /24s),
an office provider, a hosting network (a phishing proxy's), a carrier abroad. The IP→ASN table is written in the
product's own CSV format; countries come from a small map wrapped around the real resolver (the tests have no
country database)."""

from __future__ import annotations

import dataclasses

HOME, HOME2, OFFICE, PROXY, ABROAD = "198.51.100.7", "198.51.101.20", "203.0.113.9", "192.0.2.44", "100.64.0.5"
HOSTING = PROXY
COUNTRY = {"198.51.100.": "DE", "198.51.101.": "DE", "203.0.113.": "DE", "192.0.2.": "DE", "100.64.0.": "BR"}
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/141.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
ASN_ROWS = ("198.51.100.0,198.51.101.255,3320,Home ISP\n203.0.113.0,203.0.113.255,2119,Office ISP\n"
            "192.0.2.0,192.0.2.255,14061,DigitalOcean Hosting\n100.64.0.0,100.64.0.255,28573,Claro BR\n")


def write_asn_file(tmp_path) -> str:
    path = tmp_path / "asn.csv"
    path.write_text(ASN_ROWS)
    return str(path)


def networked_app(make_app, tmp_path, **settings):
    """An app behind a trusted proxy (the tests speak for many clients through X-Forwarded-For) that knows the ASNs
    above; DBSC off unless asked, so a session is a plain cookie session."""
    settings.setdefault("dbsc_enabled", False)
    return make_app(trusted_proxies=("127.0.0.1/32",), risk_asn_file=write_asn_file(tmp_path), **settings)


def with_countries(app, record_calls: bool = False):
    """Give the OAuth provider's resolver the countries above (it has no country database here)."""
    provider = app.extensions["authsvc.oauth"]
    real = provider.geo_of
    assert real is not None
    app.geo_calls = []

    def geo_of(ip):
        if record_calls:
            app.geo_calls.append(ip)
        info = real(ip)
        cc = next((c for p, c in COUNTRY.items() if ip and ip.startswith(p)), None)
        return dataclasses.replace(info, country=cc) if info is not None else None

    provider.geo_of = geo_of
    return app


def from_place(client, ip, ua=None):
    """``client``'s next requests come from ``ip`` (and ``ua`` if given)."""
    client.environ_base["HTTP_X_FORWARDED_FOR"] = ip
    if ua is not None:
        client.environ_base["HTTP_USER_AGENT"] = ua
    return client
