"""JWK helpers for DPoP: the RFC 7638 SHA-256 thumbprint (``cnf.jkt``, RFC 9449 §6.1) and the "public key only" rule
(RFC 9449 §4.3 check 7)."""

from __future__ import annotations

import base64
import hashlib
import json

# The members that make up each key type's thumbprint (RFC 7638 §3.2, RFC 8037 §2 for OKP), in lexicographic order.
_REQUIRED = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
# Members that only a private (or symmetric) key has: RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_public_jwk(jwk) -> bool:
    """True for an asymmetric public JWK: a JSON object of a known key type with none of the private members."""
    return (isinstance(jwk, dict) and jwk.get("kty") in _REQUIRED
            and not any(m in jwk for m in PRIVATE_MEMBERS))


def jwk_thumbprint(jwk: dict) -> str:
    """base64url(SHA-256(canonical JSON of the required members)) — RFC 7638 §3. Raises ValueError for a JWK that is
    not an RSA/EC/OKP key or misses a required member."""
    members = _REQUIRED.get(jwk.get("kty") if isinstance(jwk, dict) else None)
    if members is None:
        raise ValueError("unsupported key type")
    canon = {}
    for m in members:
        v = jwk.get(m)
        if not isinstance(v, str) or not v:
            raise ValueError(f"JWK member {m!r} missing")
        canon[m] = v
    text = json.dumps(canon, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url(hashlib.sha256(text.encode("utf-8")).digest())
