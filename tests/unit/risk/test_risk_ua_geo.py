"""User-agent parsing and IP → prefix / ASN / country look-ups."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from authsvc.risk import AsnTable, GeoResolver, LoginContext
from authsvc.risk.geo import ip_network_fallback, ip_prefix
from authsvc.risk.signals import extract_features
from authsvc.risk.ua import parse_ua

from risk_testdata import ANDROID, IPHONE, WIN_CHROME


@pytest.mark.parametrize(
    ("ua", "browser", "os", "device"),
    [
        (WIN_CHROME, "Chrome 120", "Windows 10", "desktop"),
        (IPHONE, "Mobile Safari 17", "iOS 17.1", "mobile"),
        (ANDROID, "Chrome Mobile 90", "Android 11", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 "
         "Mobile/15E148 Safari/604.1", "Mobile Safari 14", "iOS 14.4", "tablet"),
        ("Mozilla/5.0 (Linux; Android 11; SM-T510) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.91 "
         "Safari/537.36", "Chrome 90", "Android 11", "tablet"),
        ("python-requests/2.25.1", "Python Requests 2", "Other", "bot"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot 2", "Other", "bot"),
        ("", "Other", "Other", "unknown"),
    ],
)
def test_parse_ua(ua: str, browser: str, os: str, device: str) -> None:
    info = parse_ua(ua)
    assert (info.browser, info.os, info.device_type) == (browser, os, device)


def test_parse_ua_is_cached() -> None:
    parse_ua.cache_clear()
    parse_ua(WIN_CHROME)
    parse_ua(WIN_CHROME)
    assert parse_ua.cache_info().hits == 1


def test_prefixes() -> None:
    assert ip_prefix("192.0.2.77") == "192.0.2.0/24"
    assert ip_prefix("2001:db8:abcd:12::1") == "2001:db8:abcd::/48"
    assert ip_network_fallback("192.0.2.77") == "net:192.0.0.0/16"
    assert ip_network_fallback("2001:db8:abcd:12::1") == "net:2001:db8::/32"
    assert ip_prefix("not-an-ip") == "not-an-ip"


def test_asn_table_from_tiny_csv(tmp_path: Path) -> None:
    # Both flavours of the ip-location-db format: integer IPv4 ranges, textual IPv6 ranges; gzip allowed.
    v4 = tmp_path / "v4.csv.gz"
    with gzip.open(v4, "wt", encoding="utf-8") as fh:
        # deliberately out of order: the table sorts
        fh.write('3221225984,3221226239,64501,"Example, Inc."\n16777216,16777471,13335,Cloudflare\n')
    v6 = tmp_path / "v6.csv"
    v6.write_text("2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64502,Doc Net\n", encoding="utf-8")
    table = AsnTable.from_csv(v4, v6)
    assert len(table) == 3
    assert table.lookup("192.0.2.1") == (64501, "Example, Inc.")  # 3221225984 = 192.0.2.0
    assert table.lookup("1.0.0.200") == (13335, "Cloudflare")
    assert table.lookup("1.0.1.0") is None  # just past the range end
    assert table.lookup("2001:db8:1::5") == (64502, "Doc Net")
    assert table.lookup("2001:db9::1") is None

    geo = GeoResolver(asn_csv=[v4, v6])
    feats = extract_features(LoginContext("u", "192.0.2.1", WIN_CHROME, 0.0), geo)
    assert feats.ip_values == ("192.0.2.1", "192.0.2.0/24", "AS64501", "??")  # no country file: unknown


def test_without_files_falls_back_to_networks() -> None:
    feats = extract_features(LoginContext("u", "198.51.100.7", WIN_CHROME, 0.0), None)
    assert feats.ip_values == ("198.51.100.7", "198.51.100.0/24", "net:198.51.0.0/16", "??")
    # a caller-supplied country/ASN (CDN header, replayed dataset) wins over look-ups
    feats = extract_features(LoginContext("u", "198.51.100.7", WIN_CHROME, 0.0, country="NO", asn="AS2119"), None)
    assert feats.ip_values[2:] == ("AS2119", "NO")


def test_real_mmdb_and_asn_csv(geoip_dir: Path) -> None:
    geo = GeoResolver(asn_csv=geoip_dir / "asn-ipv6.csv.gz", country_mmdb=geoip_dir / "geo-whois-asn-country.mmdb")
    info = geo.lookup("8.8.8.8")
    assert info.country == "US"
    assert info.lat is None  # a country-only database: impossible travel falls back to the country rule
    v6 = geo.lookup("2001:4860:4860::8888")  # Google public DNS over IPv6
    assert v6.asn == "AS15169"
    assert geo.lookup("not-an-ip").country is None
    geo.close()
