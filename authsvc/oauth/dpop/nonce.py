"""Server-provided DPoP nonces (RFC 9449 §8, §9) without server state: a nonce is an HMAC of the current time slot.

A nonce issued in slot *n* is accepted during slots *n* and *n+1* (so for ``period`` to ``2 × period`` seconds).
Every worker that shares the secret issues and accepts the same values; nothing is stored. Replay of a whole proof is
stopped by the ``jti`` cache, not by the nonce: the nonce only bounds how far ahead of use a proof can be made
(pre-generated proofs, RFC 9449 §11.2).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .jwk import b64url


class NonceSource:
    def __init__(self, secret: bytes, *, period: int = 300, clock=time.time):
        if len(secret) < 16:
            raise ValueError("the DPoP nonce secret must have at least 128 bits")
        if period < 10:
            raise ValueError("period must be ≥ 10 seconds")
        self._secret = secret
        self.period = period
        self._clock = clock

    def _for(self, slot: int) -> str:
        mac = hmac.new(self._secret, b"dpop-nonce:" + str(slot).encode(), hashlib.sha256).digest()
        return b64url(mac[:18])

    def current(self) -> str:
        """The nonce to send in ``DPoP-Nonce`` now."""
        return self._for(int(self._clock()) // self.period)

    def is_valid(self, nonce) -> bool:
        if not isinstance(nonce, str) or len(nonce) != 24:
            return False
        slot = int(self._clock()) // self.period
        return any(hmac.compare_digest(nonce, self._for(s)) for s in (slot, slot - 1))
