"""A DBSC user agent written from the W3C draft (§ "Send request", "DBSC Proof JWT Syntax"), independent of the
server's code: its own RFC 9651 parsing and JWS signing with ``cryptography``, no joserfc.

It holds one key pair per bound session, signs proofs over the server's challenges and drives the Flask test client
the way Chromium drives the network: register after a ``Secure-Session-Registration`` header, refresh with
``Sec-Secure-Session-Id`` + ``Secure-Session-Response``, and answer a 403 by re-signing the new challenge.
"""

from __future__ import annotations

import base64
import json
import re
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class DeviceKey:
    def __init__(self, alg: str = "ES256", rsa_bits: int = 2048):
        self.alg = alg
        if alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
                        "y": b64u(nums.y.to_bytes(32, "big"))}
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}

    def sign(self, header: dict, payload: dict) -> str:
        signing_input = (b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(payload).encode())).encode()
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64u(sig)

    def proof(self, challenge: str, *, registration: bool, aud: str = "", **extra_header) -> str:
        header = {"alg": self.alg, "typ": "dbsc+jwt", **extra_header}
        if registration:
            header["jwk"] = self.jwk
        payload = {"jti": challenge, "iat": int(time.time())}
        if aud:
            payload["aud"] = aud
        return self.sign(header, payload)


def sf(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_registration(header: str) -> dict:
    """One entry of a Secure-Session-Registration list: algorithms and the path/challenge parameters."""
    m = re.match(r'^\(([^)]*)\)((?:;[a-z_]+="(?:[^"\\]|\\.)*")*)$', header.strip())
    assert m, f"not an sf-inner-list with string parameters: {header!r}"
    params = {k: v.replace('\\"', '"').replace("\\\\", "\\")
              for k, v in re.findall(r';([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2))}
    return {"algorithms": m.group(1).split(), **params}


def parse_challenge(header: str) -> tuple[str, str]:
    m = re.match(r'^"((?:[^"\\]|\\.)*)";id="((?:[^"\\]|\\.)*)"$', header.strip())
    assert m, f"not an sf-string with an id parameter: {header!r}"
    return m.group(1), m.group(2)


class DbscAgent:
    """The browser side of one bound session, over a Flask test client."""

    def __init__(self, client, cookie_name: str, alg: str = "ES256"):
        self.client = client
        self.cookie_name = cookie_name
        self.key = DeviceKey(alg)
        self.session_id: str | None = None
        self.refresh_url: str | None = None
        self.cached_challenge: str | None = None

    def register_from(self, response):
        offer = parse_registration(response.headers["Secure-Session-Registration"])
        assert self.key.alg in offer["algorithms"]
        resp = self.client.post(offer["path"], headers={
            "Secure-Session-Response": sf(self.key.proof(offer["challenge"], registration=True))})
        if resp.status_code == 200:
            body = resp.get_json()
            self.session_id = body["session_identifier"]
            self.refresh_url = body.get("refresh_url") or offer["path"]
            self.cached_challenge, sid = parse_challenge(resp.headers["Secure-Session-Challenge"])
            assert sid == self.session_id
        return resp

    def refresh(self, *, key: DeviceKey | None = None, challenge: str | None = None):
        """One refresh as the spec's "send a request": a 403 with a new challenge is answered once."""
        key = key or self.key
        challenge = challenge or self.cached_challenge
        headers = {"Sec-Secure-Session-Id": sf(self.session_id)}
        if challenge:
            headers["Secure-Session-Response"] = sf(key.proof(challenge, registration=False))
        resp = self.client.post(self.refresh_url, headers=headers)
        if resp.status_code == 403 and "Secure-Session-Challenge" in resp.headers:
            self.cached_challenge, _ = parse_challenge(resp.headers["Secure-Session-Challenge"])
            headers["Secure-Session-Response"] = sf(key.proof(self.cached_challenge, registration=False))
            resp = self.client.post(self.refresh_url, headers=headers)
        if resp.status_code == 200 and "Secure-Session-Challenge" in resp.headers:
            self.cached_challenge, _ = parse_challenge(resp.headers["Secure-Session-Challenge"])
        return resp
