"""Single use of a DPoP proof's ``jti`` (RFC 9449 §4.3 check 11 note, §11.1): ``SET key 1 NX EX ttl`` in Redis.

The key is a hash of the key thumbprint and the ``jti`` (the ``jti`` alone is chosen by the client, so two clients
must not be able to collide, and no client-chosen text ends up in a key name). The TTL covers the whole time a proof
with that ``iat`` is accepted, so a replay inside the window always finds the key.
"""

from __future__ import annotations

import hashlib


class RedisReplayCache:
    def __init__(self, redis_getter, *, prefix: str = "dpop:jti:"):
        self._redis = redis_getter  # a callable returning a redis client (per request / per app)
        self.prefix = prefix

    def first_use(self, jkt: str, jti: str, ttl: int) -> bool:
        """True the first time (jkt, jti) is seen within ``ttl`` seconds, False for a replay. Raises if Redis does
        not answer (fail closed: a proof that cannot be checked for replay is not accepted)."""
        h = hashlib.sha256(f"{jkt}\x00{jti}".encode("utf-8")).hexdigest()
        return bool(self._redis().set(f"{self.prefix}{{{h}}}", 1, nx=True, ex=max(1, int(ttl))))
