"""The DBSC wire format against the examples of the W3C draft."""

import pytest

from authsvc.dbsc.protocol import (ProofError, challenge_header, parse_sf_string, registration_header, sf_string,
                                   verify_proof)
from tests.dbsc_client import DeviceKey, parse_challenge, parse_registration


def test_headers_match_the_drafts_examples():
    assert registration_header("reg", "cv", algorithms=("ES256", "RS256")) == '(ES256 RS256);path="reg";challenge="cv"'
    assert registration_header("reg", "cv", algorithms=("ES256",), authorization="ac") == \
        '(ES256);path="reg";challenge="cv";authorization="ac"'
    assert challenge_header("new challenge", "my session") == '"new challenge";id="my session"'
    assert parse_challenge(challenge_header('a"b\\c', "s")) == ('a\\"b\\\\c', "s")


@pytest.mark.parametrize("raw,want", [('"abc"', "abc"), ('"a\\"b"', 'a"b'), ('"x";p=1', "x"),
                                      ('"unterminated', None), ('"bad\x01"', None), ('"é"', None), ("", None),
                                      (None, None), ('"' + "a" * 9000 + '"', None),
                                      # bare values, as Chromium 156 sends both headers: a compact JWS or an id only
                                      ("abc", "abc"), ("eyJh.eyJq.sig-_~", "eyJh.eyJq.sig-_~"), (" eyJh.b.c ", "eyJh.b.c"),
                                      ("abc def", None), ("abc;p=1", None), ('a"b', None), ("ab\x00", None), ("é", None),
                                      ("a,b", None), ("a\r\nSet-Cookie: x", None), ("a" * 9000, None)])
def test_sf_string_parsing(raw, want):
    assert parse_sf_string(raw) == want


def test_sf_string_refuses_what_it_cannot_carry():
    with pytest.raises(ValueError):
        sf_string("tab\there")
    assert parse_sf_string(sf_string('q"\\')) == 'q"\\'


def test_registration_header_is_what_the_client_parses():
    parsed = parse_registration(registration_header("/dbsc/register", "c1"))
    assert parsed == {"algorithms": ["ES256", "RS256"], "path": "/dbsc/register", "challenge": "c1"}


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_proof_round_trip_and_key_pinning(alg):
    key = DeviceKey(alg)
    reg = verify_proof(key.proof("c", registration=True), registration=True)
    assert reg.jti == "c" and reg.jwk == key.jwk
    ok = verify_proof(key.proof("d", registration=False), registration=False, stored_jwk=reg.jwk, stored_alg=alg)
    assert ok.jti == "d"
    other = DeviceKey(alg)
    with pytest.raises(ProofError) as exc:
        verify_proof(other.proof("d", registration=False), registration=False, stored_jwk=reg.jwk, stored_alg=alg)
    assert exc.value.code == "bad_signature"


def test_refresh_with_another_algorithm_than_the_bound_one_is_refused():
    es, rs = DeviceKey("ES256"), DeviceKey("RS256")
    with pytest.raises(ProofError) as exc:
        verify_proof(rs.proof("x", registration=False), registration=False, stored_jwk=es.jwk, stored_alg="ES256")
    assert exc.value.code == "wrong_key"
