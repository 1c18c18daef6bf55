"""authsvc.oauth.dpop — RFC 9449 §4.3 proof checks, attacker first. Proofs come from tests/dpop_client.py (RFC 9449
written with ``cryptography``, no server code). Replay uses the real Redis of the test run."""

from __future__ import annotations

import base64
import json
import time

import pytest

from authsvc.oauth.dpop import (DPoPProofValidator, InvalidDPoPProofError, NonceSource, RedisReplayCache,
                                UseDPoPNonceError, ath_for, jwk_thumbprint, normalise_htu, www_authenticate)
from tests.dpop_client import DPoPKey

URL = "https://as.example/oauth2/token"


@pytest.fixture(scope="module")
def key():
    return DPoPKey.generate("ES256")


@pytest.fixture
def validator(redis_client):
    return DPoPProofValidator(replay=RedisReplayCache(lambda: redis_client))


def refused(validator, proof, match, **kw):
    kw.setdefault("method", "POST")
    kw.setdefault("uri", URL)
    with pytest.raises(InvalidDPoPProofError, match=match) as exc:
        validator.validate(proof, **kw)
    assert exc.value.error == "invalid_dpop_proof" and exc.value.status_code == 400
    return exc.value


# --- the happy path, per algorithm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_valid_proof_is_accepted_and_bound_to_the_rfc7638_thumbprint(validator, alg):
    k = DPoPKey.generate(alg)
    proof = validator.validate(k.proof("POST", URL), method="POST", uri=URL)
    assert proof.jkt == k.jkt and proof.alg == alg and proof.claims["htm"] == "POST"


def test_thumbprint_matches_rfc7638_section_3_1_example():
    jwk = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
                "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
                "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_x"
                "BniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- replay (§11.1) -------------------------------------------------------------------------------------------------------
def test_replayed_proof_is_refused(validator, key):
    p = key.proof("POST", URL)
    validator.validate(p, method="POST", uri=URL)
    refused(validator, p, "already used")


def test_same_jti_under_another_key_is_not_a_replay_of_the_first(validator, key):
    other = DPoPKey.generate("ES256")
    validator.validate(key.proof("POST", URL, jti="same"), method="POST", uri=URL)
    validator.validate(other.proof("POST", URL, jti="same"), method="POST", uri=URL)
    refused(validator, other.proof("POST", URL, jti="same"), "already used")


def test_refused_proof_does_not_burn_its_jti(validator, key):
    # A proof refused for its htu must not have written the replay cache (only fully valid proofs do).
    refused(validator, key.proof("POST", "https://evil.example/oauth2/token", jti="j1"), "htu")
    validator.validate(key.proof("POST", URL, jti="j1"), method="POST", uri=URL)


def test_replay_cache_ttl_covers_the_acceptance_window(redis_client, key):
    v = DPoPProofValidator(replay=RedisReplayCache(lambda: redis_client), max_age=120, leeway=10)
    v.validate(key.proof("POST", URL), method="POST", uri=URL)
    keys = list(redis_client.scan_iter("dpop:jti:*"))
    assert len(keys) == 1 and 120 < redis_client.ttl(keys[0]) <= 131


# --- htm / htu (§4.3 checks 8, 9) -------------------------------------------------------------------------------------------
def test_wrong_htm_is_refused(validator, key):
    refused(validator, key.proof("GET", URL), "htm")


def test_htm_is_case_sensitive(validator, key):
    refused(validator, key.proof("post", URL), "htm")


@pytest.mark.parametrize("htu", ["https://evil.example/oauth2/token", "https://as.example/oauth2/userinfo",
                                 "http://as.example/oauth2/token", "https://as.example:8443/oauth2/token",
                                 "https://user@as.example/oauth2/token", "/oauth2/token", "", "https://as.example"])
def test_wrong_htu_is_refused(validator, key, htu):
    refused(validator, key.proof("POST", htu), "htu")


def test_htu_missing_or_not_a_string_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, drop=("htu",)), "htu")
    refused(validator, key.proof("POST", URL, claims={"htu": ["https://as.example/oauth2/token"]}), "htu")


@pytest.mark.parametrize("htu", ["https://as.example/oauth2/token?x=1", "https://as.example/oauth2/token#f",
                                 "HTTPS://AS.EXAMPLE:443/oauth2/token", "https://as.example/oauth2/./token",
                                 "https://as.example/oauth2/%74oken"])
def test_htu_compared_without_query_fragment_after_normalisation(validator, key, htu):
    validator.validate(key.proof("POST", htu), method="POST", uri=URL + "?ignored=1")


def test_normalise_htu():
    assert normalise_htu("https://AS.example:443") == "https://as.example/"
    assert normalise_htu("http://127.0.0.1:80/a/b/../c") == "http://127.0.0.1/a/c"
    assert normalise_htu("https://[::1]:8443/x") == "https://[::1]:8443/x"
    assert normalise_htu("https://as.example/%2f") == "https://as.example/%2F"  # reserved stays encoded
    for bad in ("ftp://as.example/", "https://", "https://a@b/", "https://as.example/ x", "//as.example/", None):
        assert normalise_htu(bad) is None


# --- iat window (§4.3 check 11) -----------------------------------------------------------------------------------------------
def test_old_iat_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, iat=int(time.time()) - 121), "too old")


def test_future_iat_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, iat=int(time.time()) + 60), "future")


@pytest.mark.parametrize("iat", [None, "1700000000", True])
def test_missing_or_non_numeric_iat_is_refused(validator, key, iat):
    p = key.proof("POST", URL, drop=("iat",)) if iat is None else key.proof("POST", URL, claims={"iat": iat})
    refused(validator, p, "iat")


def test_jti_missing_empty_or_huge_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, drop=("jti",)), "jti")
    refused(validator, key.proof("POST", URL, claims={"jti": ""}), "jti")
    refused(validator, key.proof("POST", URL, claims={"jti": "x" * 257}), "jti")


# --- header: typ, alg, jwk (§4.3 checks 4–7) -------------------------------------------------------------------------------
def test_wrong_typ_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, header={"typ": "JWT"}), "typ")
    refused(validator, key.proof("POST", URL, header={"typ": None}), "typ")


def test_alg_none_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, alg="none", unsigned=True), "alg|compact")


def test_hs256_signed_with_the_public_key_is_refused(validator, key):
    # The classic confusion: HMAC keyed with the (public) JWK's bytes.
    forged = key.proof("POST", URL, alg="HS256", hmac_key=json.dumps(key.public_jwk).encode())
    refused(validator, forged, "alg")


def test_alg_not_in_the_allow_list_is_refused(redis_client):
    v = DPoPProofValidator(algorithms=("ES256",), replay=RedisReplayCache(lambda: redis_client))
    refused(v, DPoPKey.generate("RS256").proof("POST", URL), "alg")


def test_validator_refuses_symmetric_algorithms_in_its_configuration():
    with pytest.raises(ValueError):
        DPoPProofValidator(algorithms=("ES256", "HS256"))
    with pytest.raises(ValueError):
        DPoPProofValidator(algorithms=("none",))


def test_alg_that_does_not_fit_the_key_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, alg="RS256"), "does not match alg")
    p384 = {**key.public_jwk, "crv": "P-384"}
    refused(validator, key.proof("POST", URL, header={"jwk": p384}), "curve|invalid")


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_private_key_in_the_jwk_header_is_refused(validator, alg):
    k = DPoPKey.generate(alg)
    refused(validator, k.proof("POST", URL, header={"jwk": k.private_jwk}), "public key")


def test_symmetric_jwk_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}), "public key")


def test_missing_jwk_or_kid_instead_of_jwk_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, header={"jwk": None, "kid": "k1"}), "jwk")


def test_short_rsa_key_is_refused(validator):
    refused(validator, DPoPKey.generate("RS256", rsa_bits=1024).proof("POST", URL), "2048")


def test_signature_by_another_key_is_refused(validator, key):
    other = DPoPKey.generate("ES256")
    # Header names key's public JWK, but the proof is signed by `other`.
    forged = other.proof("POST", URL, header={"jwk": key.public_jwk})
    refused(validator, forged, "signature")


def test_tampered_claims_are_refused(validator, key):
    h, c, s = key.proof("POST", "https://evil.example/x").split(".")
    claims = json.loads(base64.urlsafe_b64decode(c + "=="))
    claims["htu"] = URL
    c2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused(validator, f"{h}.{c2}.{s}", "signature")


def test_crit_header_is_refused(validator, key):
    refused(validator, key.proof("POST", URL, header={"crit": ["exp"]}), "critical")


@pytest.mark.parametrize("value", ["", "abc", "a.b", "a.b.c.d.e", "x" * 9000, ["p1", "p2"], []])
def test_malformed_or_multiple_headers_are_refused(validator, value):
    refused(validator, value, "DPoP")


def test_two_headers_joined_by_a_comma_are_refused(validator, key):
    refused(validator, key.proof("POST", URL) + ", " + key.proof("POST", URL), "single")


# --- ath (§4.3 check 12, §7) ------------------------------------------------------------------------------------------------
def test_ath_must_match_the_presented_access_token(validator, key):
    ui = "https://as.example/oauth2/userinfo"
    validator.validate(key.proof("GET", ui, ath_of="tok-1"), method="GET", uri=ui, access_token="tok-1")
    refused(validator, key.proof("GET", ui, ath_of="tok-2"), "ath", method="GET", uri=ui, access_token="tok-1")
    refused(validator, key.proof("GET", ui), "ath", method="GET", uri=ui, access_token="tok-1")


def test_ath_for_is_base64url_sha256():
    assert ath_for("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


# --- nonces (§8) --------------------------------------------------------------------------------------------------------------
def test_missing_nonce_when_required_answers_use_dpop_nonce_with_a_fresh_nonce(redis_client, key):
    nonces = NonceSource(b"k" * 32, period=300)
    v = DPoPProofValidator(replay=RedisReplayCache(lambda: redis_client), nonces=nonces)
    with pytest.raises(UseDPoPNonceError) as exc:
        v.validate(key.proof("POST", URL, jti="n1"), method="POST", uri=URL, require_nonce=True)
    err = exc.value
    assert err.error == "use_dpop_nonce" and err.status_code == 400
    assert ("DPoP-Nonce", nonces.current()) in err.get_headers()
    v.validate(key.proof("POST", URL, jti="n1", nonce=err.nonce), method="POST", uri=URL, require_nonce=True)


def test_wrong_or_expired_nonce_is_refused(redis_client, key):
    now = [1_000_000.0]
    nonces = NonceSource(b"k" * 32, period=60, clock=lambda: now[0])
    v = DPoPProofValidator(nonces=nonces, clock=lambda: now[0])
    old = nonces.current()
    with pytest.raises(UseDPoPNonceError):
        v.validate(key.proof("POST", URL, iat=int(now[0]), nonce="A" * 24), method="POST", uri=URL,
                   require_nonce=True)
    now[0] += 60  # next slot: the previous nonce is still good
    v.validate(key.proof("POST", URL, iat=int(now[0]), nonce=old), method="POST", uri=URL, require_nonce=True)
    now[0] += 60  # two slots later: stale
    with pytest.raises(UseDPoPNonceError):
        v.validate(key.proof("POST", URL, iat=int(now[0]), nonce=old), method="POST", uri=URL, require_nonce=True)


def test_nonce_from_another_server_secret_is_refused(key):
    v = DPoPProofValidator(nonces=NonceSource(b"a" * 32))
    foreign = NonceSource(b"b" * 32).current()
    with pytest.raises(UseDPoPNonceError):
        v.validate(key.proof("POST", URL, nonce=foreign), method="POST", uri=URL)


def test_www_authenticate_challenge():
    assert www_authenticate("invalid_token", "x", ["ES256", "RS256"]) == \
        'DPoP error="invalid_token", error_description="x", algs="ES256 RS256"'
    assert www_authenticate(None, None, ["ES256"]) == 'DPoP algs="ES256"'


def test_skewed_iat_with_nonces_asks_for_a_nonce_and_a_valid_nonce_stands_in_for_iat(redis_client, key):
    nonces = NonceSource(b"k" * 32, period=300)
    v = DPoPProofValidator(replay=RedisReplayCache(lambda: redis_client), nonces=nonces)
    for skew in (-3600, 3600):  # a device clock an hour off either way
        with pytest.raises(UseDPoPNonceError) as exc:
            v.validate(key.proof("POST", URL, iat=int(time.time()) + skew), method="POST", uri=URL)
        proof = key.proof("POST", URL, iat=int(time.time()) + skew, nonce=exc.value.nonce)
        v.validate(proof, method="POST", uri=URL)
        refused(v, proof, "already used")  # and the nonce-dated proof is single-use like any other
    # An invalid nonce does not excuse a bad iat.
    with pytest.raises(UseDPoPNonceError):
        v.validate(key.proof("POST", URL, iat=int(time.time()) - 3600, nonce="A" * 24), method="POST", uri=URL)


def test_replay_ttl_covers_the_nonce_lifetime(redis_client, key):
    v = DPoPProofValidator(replay=RedisReplayCache(lambda: redis_client), nonces=NonceSource(b"k" * 32, period=300))
    assert v.replay_ttl == 601
    assert DPoPProofValidator(max_age=120, leeway=10).replay_ttl == 131
