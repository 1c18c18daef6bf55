"""Versioned authenticated encryption for TOTP seeds (AES-256-GCM).

Stored form: ``<version>:<base64(nonce ‖ ciphertext ‖ tag)>``. The associated data is ``version|context`` where
the context names the owner (``totp:u<id>``): a ciphertext copied onto another user's row does not decrypt, and a
version label cannot be swapped. Keys are listed newest first; the first encrypts, all decrypt, so rotation is:
prepend a new key, and rows are re-encrypted lazily the next time they are used (``stale`` tells the caller).
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class UnknownKeyVersion(Exception):
    """A row was encrypted with a key no longer configured — an operator error, never silently ignored."""


class SecretBox:
    def __init__(self, keys: tuple[tuple[str, bytes], ...]):
        if not keys:
            raise ValueError("at least one key")
        self._keys = {v: AESGCM(k) for v, k in keys}
        self.current = keys[0][0]

    @staticmethod
    def _aad(version: str, context: str) -> bytes:
        return f"{version}|{context}".encode()

    def encrypt(self, plaintext: bytes, *, context: str) -> str:
        nonce = secrets.token_bytes(12)  # random 96-bit nonce; a key encrypts few enough seeds for this to be safe
        ct = self._keys[self.current].encrypt(nonce, plaintext, self._aad(self.current, context))
        return f"{self.current}:{base64.b64encode(nonce + ct).decode()}"

    def decrypt(self, stored: str, *, context: str) -> tuple[bytes, bool]:
        """Plaintext and whether it should be re-encrypted with the current key."""
        version, _, b64 = stored.partition(":")
        aead = self._keys.get(version)
        if aead is None:
            raise UnknownKeyVersion(version)
        blob = base64.b64decode(b64)
        try:
            plaintext = aead.decrypt(blob[:12], blob[12:], self._aad(version, context))
        except InvalidTag:
            raise UnknownKeyVersion(f"{version} (wrong key or tampered row)") from None
        return plaintext, version != self.current
