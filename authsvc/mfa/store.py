"""Short-lived MFA state in Redis: failure counters, TOTP step claims, pending logins, WebAuthn challenges.

Every script touches exactly one key, so all of it runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import hashlib
import json
import secrets

from authsvc.errors import Throttled
from authsvc.redis_scripts import ScriptCache

# Count a failure; the window starts with the first failure (INCR then EXPIRE only when the key is new).
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# Count a consecutive miss; the count lives ARGV[1] seconds after the last miss (one key, atomic).
_MISS = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""

# Claim a TOTP time step: accept only a step newer than the last accepted one. Atomic, so two requests carrying the
# same code at the same moment cannot both win; monotonic, so an older (observed) code is refused as well.
_CLAIM_STEP = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
local step = tonumber(ARGV[1])
if step <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MfaStore:
    def __init__(self, redis_getter, *, max_failures: int, failure_window: int, pending_ttl: int,
                 challenge_ttl: int):
        self._redis = redis_getter
        self.max_failures, self.failure_window = max_failures, failure_window
        self.pending_ttl, self.challenge_ttl = pending_ttl, challenge_ttl
        self._scripts = ScriptCache(redis_getter)

    @property
    def redis(self):
        return self._redis()

    def _script(self, name: str, body: str):
        return self._scripts.get(name, body)

    # --- failures (per user, all guessable factors together) ----------------------------------------------------
    @staticmethod
    def _fail_key(user_id: int) -> str:
        return f"mfa:fail:{{u{user_id}}}"

    def precheck(self, user_id: int) -> None:
        """Raise Throttled before checking a code once the user has too many recent failures."""
        key = self._fail_key(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        count, ttl = pipe.execute()
        if count is not None and int(count) >= self.max_failures:
            raise Throttled(ttl if ttl and ttl > 0 else self.failure_window, scope="mfa")

    def record_failure(self, user_id: int) -> int:
        return int(self._script("fail", _FAIL)(keys=[self._fail_key(user_id)], args=[self.failure_window]))

    def clear_failures(self, user_id: int) -> None:
        self.redis.delete(self._fail_key(user_id))

    # --- consecutive wrong TOTP codes, across windows (reset by a right code, a recovery code or a password reset) --
    @staticmethod
    def _miss_key(user_id: int) -> str:
        return f"mfa:miss:{{u{user_id}}}"

    def count_miss(self, user_id: int, ttl: int = 90 * 86400) -> int:
        return int(self._script("miss", _MISS)(keys=[self._miss_key(user_id)], args=[ttl]))

    def clear_misses(self, user_id: int) -> None:
        self.redis.delete(self._miss_key(user_id))

    # --- TOTP steps ---------------------------------------------------------------------------------------------
    def claim_totp_step(self, user_id: int, step: int, ttl: int = 180) -> bool:
        return bool(self._script("claim", _CLAIM_STEP)(keys=[f"mfa:totp:{{u{user_id}}}:last"], args=[step, ttl]))

    # --- pending TOTP enrolment (the seed shown on screen, encrypted, until confirmed) -----------------------------
    def put_enrolment(self, user_id: int, sealed: str, ttl: int = 900) -> None:
        self.redis.set(f"mfa:totp:{{u{user_id}}}:enrol", sealed, ex=ttl)

    def get_enrolment(self, user_id: int) -> str | None:
        return self.redis.get(f"mfa:totp:{{u{user_id}}}:enrol")

    def drop_enrolment(self, user_id: int) -> None:
        self.redis.delete(f"mfa:totp:{{u{user_id}}}:enrol")

    # --- pending logins (password done, second factor outstanding), keyed by a random cookie token -----------------
    def create_pending(self, data: dict) -> str:
        token = secrets.token_urlsafe(32)
        self.redis.set(f"mfa:pending:{{{_hash(token)}}}", json.dumps(data), ex=self.pending_ttl)
        return token

    def get_pending(self, token: str | None) -> dict | None:
        if not token or len(token) > 128:
            return None
        raw = self.redis.get(f"mfa:pending:{{{_hash(token)}}}")
        return json.loads(raw) if raw else None

    def consume_pending(self, token: str) -> dict | None:
        """GETDEL: of two requests finishing the same login, exactly one gets the record (and a session)."""
        raw = self.redis.getdel(f"mfa:pending:{{{_hash(token)}}}")
        return json.loads(raw) if raw else None

    @staticmethod
    def binding(token: str) -> str:
        """What WebAuthn challenges of a pending login are bound to (never the token itself)."""
        return "p" + _hash(token)

    # --- WebAuthn challenges, bound to a session id or a pending-login hash --------------------------------------
    def put_challenge(self, purpose: str, binding: str, data: dict) -> None:
        self.redis.set(f"mfa:wa:{purpose}:{{{binding}}}", json.dumps(data), ex=self.challenge_ttl)

    def take_challenge(self, purpose: str, binding: str) -> dict | None:
        raw = self.redis.getdel(f"mfa:wa:{purpose}:{{{binding}}}")
        return json.loads(raw) if raw else None
