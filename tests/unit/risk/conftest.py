"""Shared fixtures for the risk-engine tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real offline IP data shipped for tests; the product never reads this folder.
GEOIP_DIR = Path(os.environ.get("AUTHSVC_TEST_GEOIP_DIR", "/work/shared/data/geoip"))


@pytest.fixture(scope="session")
def geoip_dir() -> Path:
    if not (GEOIP_DIR / "asn-ipv4-num.csv.gz").exists() or not (GEOIP_DIR / "geo-whois-asn-country.mmdb").exists():
        pytest.skip(f"offline GeoIP test data not found in {GEOIP_DIR} (set AUTHSVC_TEST_GEOIP_DIR)")
    return GEOIP_DIR
