"""TOTP against RFC 6238's vectors and an independent implementation (Debian's oathtool)."""

import base64
import datetime as dt
import subprocess

import pytest

from authsvc.mfa.totp import code_at, matching_step, new_secret, qr_data_uri
from tests.conftest import need_tool

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()  # RFC 6238 appendix B, SHA-1 seed

# (Unix time, 8-digit TOTP) from RFC 6238 appendix B, SHA-1 rows.
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
               (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize("t, expected", RFC_VECTORS)
def test_rfc6238_sha1_vectors(t, expected):
    assert code_at(RFC_SECRET, t // 30, digits=8) == expected
    assert code_at(RFC_SECRET, t // 30) == expected[-6:]  # 6 digits = the same value mod 10^6
    assert matching_step(RFC_SECRET, expected[-6:], t) == t // 30


def test_codes_match_oathtool():
    oathtool = need_tool("oathtool")
    secret = new_secret()
    for t in (90, 1_700_000_000, 1_700_000_029, 1_700_000_030, 2_000_000_000):
        now = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out = subprocess.run([oathtool, "--totp", "-b", "--now", now, secret], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == code_at(secret, t // 30)
        assert matching_step(secret, out, t) == t // 30
        # ±1 step accepted, ±2 refused
        assert matching_step(secret, out, t + 30) == t // 30
        assert matching_step(secret, out, t - 30) == t // 30
        assert matching_step(secret, out, t + 60) is None


def test_secret_is_160_bits_from_csprng_and_distinct():
    secrets_ = {new_secret() for _ in range(50)}
    assert len(secrets_) == 50
    assert all(len(base64.b32decode(s)) == 20 for s in secrets_)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None, "12 34 5x"])
def test_malformed_codes_never_match(code):
    assert matching_step(RFC_SECRET, code, 59) is None


def test_qr_is_a_local_svg_data_uri():
    uri = qr_data_uri("otpauth://totp/authsvc:alice%40example.com?secret=ABC&issuer=authsvc")
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert svg.startswith("<svg") and "<script" not in svg
