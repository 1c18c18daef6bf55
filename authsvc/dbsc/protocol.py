"""DBSC wire format (W3C WebAppSec "Device Bound Session Credentials", editor's draft of 2026-02).

Pure functions, no Flask and no Redis, so the module can be lifted out and offered on its own:

* ``registration_header`` / ``challenge_header``: RFC 9651 structured fields the server sends.
* ``parse_sf_string``: the one structured-field shape the server receives (``Sec-Secure-Session-Id`` and
  ``Secure-Session-Response`` are both an sf-string whose parameters are ignored).
* ``verify_proof``: checks a DBSC proof JWT (§ "DBSC Proof JWT Syntax"): ``typ`` = ``dbsc+jwt``; ``alg`` ES256 or
  RS256 (the spec also allows ``none``; a proof that proves nothing is refused here); at registration a public
  ``jwk`` in the header (never a private one), at refresh none (the key on file is used); the signature; a string
  ``jti`` (the server's challenge; whether it is one is the caller's business, it owns the challenge store).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

ALGORITHMS = ("ES256", "RS256")
MAX_PROOF_BYTES = 8192  # an RS256 proof with a 4096-bit JWK is ~2.5 kB; anything far larger is not a browser's
_BARE = re.compile(r"[A-Za-z0-9_\-.~]+")
_SF_STRING = re.compile(r'^\s*"((?:[^"\\\x00-\x1f\x7f-\U0010ffff]|\\["\\])*)"(?:\s*;.*)?\s*$', re.S)


class _Registry(jws.JWSRegistry):
    max_header_length = 4096  # an RS256 registration proof carries a 2048–4096-bit JWK in its header
    max_payload_length = 4096


_REGISTRY = _Registry(algorithms=list(ALGORITHMS))


class ProofError(ValueError):
    """A proof that must be refused. ``code`` is stable (tests and audit events use it)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Proof:
    alg: str
    jti: str
    jwk: dict | None  # the public key from the header (registration only)
    claims: dict


def sf_string(value: str) -> str:
    """Serialise an sf-string (RFC 9651 §4.1.6): printable ASCII, with ``"`` and ``\\`` escaped."""
    if any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value):
        raise ValueError("sf-string takes printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_sf_string(raw: str | None) -> str | None:
    """The string of an sf-string header value (parameters ignored), or None if it is not one.

    Interoperability: the draft makes ``Secure-Session-Response`` and ``Sec-Secure-Session-Id`` sf-strings, but
    Chromium 156 sends both bare (``Secure-Session-Response: eyJhbGci…``, as Chrome's developer guide shows them).
    A bare value made only of the characters of a compact JWS or a session identifier (base64url, ``.``, ``~``) is
    accepted as the same string; anything else — spaces, quotes half-open, parameters, other characters — is not.
    The value is verified as a proof, or looked up as an identifier, either way."""
    if not raw or len(raw) > MAX_PROOF_BYTES:
        return None
    m = _SF_STRING.match(raw)
    if m:
        return re.sub(r'\\(["\\])', r"\1", m.group(1))
    bare = _BARE.fullmatch(raw.strip(" \t"))
    return bare.group(0) if bare else None


def registration_header(path: str, challenge: str, *, algorithms=ALGORITHMS, authorization: str | None = None) -> str:
    """``Secure-Session-Registration: (ES256 RS256);path="...";challenge="..."``."""
    out = "(" + " ".join(algorithms) + ");path=" + sf_string(path) + ";challenge=" + sf_string(challenge)
    if authorization is not None:
        out += ";authorization=" + sf_string(authorization)
    return out


def challenge_header(challenge: str, session_id: str) -> str:
    """``Secure-Session-Challenge: "<challenge>";id="<session id>"``."""
    return sf_string(challenge) + ";id=" + sf_string(session_id)


def import_public_jwk(jwk: dict, alg: str):
    """The header's JWK as a key object for ``alg``; refuses private keys, other key types and weak RSA."""
    if not isinstance(jwk, dict):
        raise ProofError("bad_jwk", "jwk must be an object")
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ProofError("private_jwk", "jwk must be a public key")
    try:
        if alg == "ES256":
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                raise ProofError("bad_jwk", "ES256 needs an EC P-256 key")
            return ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
        if jwk.get("kty") != "RSA":
            raise ProofError("bad_jwk", "RS256 needs an RSA key")
        n = jwk["n"]
        if not isinstance(n, str) or len(n) < 342:  # base64url of a 2048-bit modulus; refuse before importing
            raise ProofError("bad_jwk", "RSA keys must be at least 2048 bits")
        key = RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")})
        if key.raw_value.key_size < 2048:
            raise ProofError("bad_jwk", "RSA keys must be at least 2048 bits")
        return key
    except ProofError:
        raise
    except (KeyError, TypeError, ValueError, JoseError) as exc:
        raise ProofError("bad_jwk", "jwk is not a valid public key") from exc


def public_jwk(key) -> dict:
    """The canonical public members of a key (what is stored and compared)."""
    data = key.as_dict(private=False)
    members = ("kty", "crv", "x", "y") if data["kty"] == "EC" else ("kty", "n", "e")
    return {k: data[k] for k in members}


def verify_proof(token: str | None, *, registration: bool, stored_jwk: dict | None = None,
                 stored_alg: str | None = None) -> Proof:
    """Verify a DBSC proof. Registration: the key comes from the header. Refresh: ``stored_jwk``/``stored_alg``."""
    if not token or len(token) > MAX_PROOF_BYTES or token.count(".") != 2:
        raise ProofError("malformed", "Secure-Session-Response must hold one compact JWS")
    try:
        header = jws.extract_compact(token.encode("ascii"), registry=_REGISTRY).protected
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise ProofError("malformed", "the proof is not a readable JWS") from exc
    if header.get("typ") != "dbsc+jwt":
        raise ProofError("bad_typ", "typ must be dbsc+jwt")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise ProofError("bad_alg", "alg must be ES256 or RS256")
    if registration:
        if "jwk" not in header:
            raise ProofError("no_jwk", "a registration proof carries its public key as jwk")
        key = import_public_jwk(header["jwk"], alg)
    else:
        if "jwk" in header:
            raise ProofError("jwk_on_refresh", "a refresh proof must not carry a jwk")
        if stored_jwk is None or alg != stored_alg:
            raise ProofError("wrong_key", "the proof's algorithm is not the session's")
        key = import_public_jwk(stored_jwk, alg)
    try:
        obj = jws.deserialize_compact(token.encode("ascii"), key, algorithms=[alg], registry=_REGISTRY)
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise ProofError("bad_signature", "the proof's signature does not verify") from exc
    if not isinstance(claims, dict):
        raise ProofError("malformed", "the proof's payload must be a JSON object")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise ProofError("no_jti", "the proof must carry the challenge as jti")
    return Proof(alg, jti, public_jwk(key) if registration else None, claims)
