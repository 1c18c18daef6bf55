"""A software WebAuthn authenticator (P-256, "none" attestation) built on ``cryptography`` + CBOR.

Not a mock: it produces real registration and assertion responses that py_webauthn verifies byte for byte, so the
functional tests can exercise origins, replays, counters and user handles without a browser.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

UP, UV, AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    def __init__(self, rp_id: str = "localhost", origin: str = "http://localhost:5000"):
        self.rp_id, self.origin = rp_id, origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: str | None = None

    def _cose(self) -> bytes:
        n = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict | str, *, origin: str | None = None, uv: bool = True) -> dict:
        options = json.loads(options) if isinstance(options, str) else options
        self.user_handle = options["user"]["id"]
        rp_hash = hashlib.sha256((options.get("rp", {}).get("id") or self.rp_id).encode()).digest()
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose()
        auth_data = rp_hash + bytes([UP | (UV if uv else 0) | AT]) + struct.pack(">I", self.sign_count) + attested
        cdj = self._client_data("webauthn.create", options["challenge"], origin)
        att = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        cid = bytes_to_base64url(self.credential_id)
        return {"id": cid, "rawId": cid, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(cdj), "attestationObject": bytes_to_base64url(att),
                             "transports": ["internal"]}}

    def get(self, options: dict | str, *, origin: str | None = None, uv: bool = True, counter: int | None = None,
            rp_id: str | None = None) -> dict:
        options = json.loads(options) if isinstance(options, str) else options
        if counter is None:
            self.sign_count += 1
            counter = self.sign_count
        rp_hash = hashlib.sha256((rp_id or options.get("rpId") or self.rp_id).encode()).digest()
        auth_data = rp_hash + bytes([UP | (UV if uv else 0)]) + struct.pack(">I", counter)
        cdj = self._client_data("webauthn.get", options["challenge"], origin)
        sig = self.key.sign(auth_data + hashlib.sha256(cdj).digest(), ec.ECDSA(hashes.SHA256()))
        cid = bytes_to_base64url(self.credential_id)
        return {"id": cid, "rawId": cid, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": bytes_to_base64url(cdj),
                             "authenticatorData": bytes_to_base64url(auth_data),
                             "signature": bytes_to_base64url(sig), "userHandle": self.user_handle}}


def challenge_of(options: dict | str) -> bytes:
    options = json.loads(options) if isinstance(options, str) else options
    return base64url_to_bytes(options["challenge"])
