"""A DPoP client written from RFC 9449 with ``cryptography`` only — no server code, no JOSE library — so the tests
check the server against the RFC, not against itself.

``DPoPKey.generate("ES256")`` makes a key; ``key.proof("POST", url, ath=..., nonce=...)`` a proof JWT;
``key.jkt`` the RFC 7638 thumbprint the server should bind tokens to. ``forge=`` hooks let attacker tests tamper
with the header, the claims or the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

from cryptography.hazmat.primitives import hashes, hmac as chmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int, length: int | None = None) -> str:
    length = length or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(length, "big"))


def ath(access_token: str) -> str:
    return b64u(hashlib.sha256(access_token.encode("ascii")).digest())


class DPoPKey:
    def __init__(self, alg: str, private):
        self.alg = alg
        self.private = private

    @classmethod
    def generate(cls, alg: str = "ES256", rsa_bits: int = 2048) -> "DPoPKey":
        if alg == "ES256":
            return cls(alg, ec.generate_private_key(ec.SECP256R1()))
        if alg in ("RS256", "PS256"):
            return cls(alg, rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits))
        if alg == "EdDSA":
            return cls(alg, ed25519.Ed25519PrivateKey.generate())
        raise ValueError(alg)

    # --- the public JWK and its RFC 7638 thumbprint ---------------------------------------------------------------
    @property
    def public_jwk(self) -> dict:
        if self.alg == "ES256":
            nums = self.private.public_key().public_numbers()
            return {"kty": "EC", "crv": "P-256", "x": _int_b64(nums.x, 32), "y": _int_b64(nums.y, 32)}
        if self.alg in ("RS256", "PS256"):
            nums = self.private.public_key().public_numbers()
            return {"kty": "RSA", "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}

    @property
    def private_jwk(self) -> dict:
        """The public JWK plus the private members — what a careless client might put in a proof header."""
        jwk = dict(self.public_jwk)
        if self.alg == "ES256":
            jwk["d"] = _int_b64(self.private.private_numbers().private_value, 32)
        elif self.alg in ("RS256", "PS256"):
            p = self.private.private_numbers()
            jwk.update(d=_int_b64(p.d), p=_int_b64(p.p), q=_int_b64(p.q), dp=_int_b64(p.dmp1), dq=_int_b64(p.dmq1),
                       qi=_int_b64(p.iqmp))
        return jwk

    @property
    def jkt(self) -> str:
        jwk = self.public_jwk
        members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
        canon = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
        return b64u(hashlib.sha256(canon.encode()).digest())

    # --- signing ---------------------------------------------------------------------------------------------------
    def sign(self, signing_input: bytes) -> bytes:
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if self.alg == "RS256":
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == "PS256":
            return self.private.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                                salt_length=32), hashes.SHA256())
        return self.private.sign(signing_input)

    def proof(self, htm: str, htu: str, *, ath_of: str | None = None, nonce: str | None = None,
              iat: int | None = None, jti: str | None = None, header: dict | None = None, claims: dict | None = None,
              drop: tuple = (), alg: str | None = None, hmac_key: bytes | None = None, unsigned: bool = False) -> str:
        """A DPoP proof JWT (RFC 9449 §4.2). ``header``/``claims`` override or add members, ``drop`` removes claims;
        ``hmac_key`` signs with HS256 instead of the key (an attack), ``unsigned`` produces ``alg: none``."""
        h = {"typ": "dpop+jwt", "alg": alg or self.alg, "jwk": self.public_jwk}
        h.update(header or {})
        c = {"jti": jti or secrets.token_urlsafe(16), "htm": htm, "htu": htu,
             "iat": int(time.time()) if iat is None else iat}
        if ath_of is not None:
            c["ath"] = ath(ath_of)
        if nonce is not None:
            c["nonce"] = nonce
        c.update(claims or {})
        for name in drop:
            c.pop(name, None)
        signing_input = f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(c).encode())}".encode()
        if unsigned:
            return signing_input.decode() + "."
        if hmac_key is not None:
            mac = chmac.HMAC(hmac_key, hashes.SHA256())
            mac.update(signing_input)
            return f"{signing_input.decode()}.{b64u(mac.finalize())}"
        return f"{signing_input.decode()}.{b64u(self.sign(signing_input))}"
