"""Throttles that run *before* any password hashing.

``RedisThrottle`` (redis_throttle.py) is the real one; ``NullThrottle`` exists for operators who put an external
limiter in front and switch ours off (``AUTHSVC_THROTTLE_ENABLED=false``).
"""

from __future__ import annotations

from typing import Protocol

from authsvc.defense.redis_throttle import RedisThrottle, ResetRequired, Verdict, canonical_ip, prefix_of
from authsvc.errors import Throttled


class Throttle(Protocol):
    def precheck(self, email: str, ctx, password: str | None = None) -> Verdict:
        """Raise ``Throttled`` / ``ResetRequired`` if this attempt must be refused without hashing."""

    def record_failure(self, email: str, ctx, *, user_exists: bool, password: str | None = None,
                       familiar: bool = False) -> dict: ...

    def record_success(self, email: str, ctx) -> None: ...

    def record_proven_stop(self, email: str, ctx, *, denied: bool) -> dict:
        """Correct password, but denied or stopped at MFA: {count, retry_after, over, notify}."""

    def clear_account(self, email: str, *, pairs: bool = False) -> None: ...


class NullThrottle:
    def precheck(self, email: str, ctx, password: str | None = None) -> Verdict:
        return Verdict(familiar=False, counts={})

    def record_failure(self, email: str, ctx, *, user_exists: bool, password: str | None = None,
                       familiar: bool = False) -> dict:
        return {}

    def record_success(self, email: str, ctx) -> None:
        return None

    def record_proven_stop(self, email: str, ctx, *, denied: bool) -> dict:
        return {"count": 0, "retry_after": 1, "over": False, "notify": False}

    def clear_account(self, email: str, *, pairs: bool = False) -> None:
        return None


__all__ = ["NullThrottle", "RedisThrottle", "ResetRequired", "Throttle", "Throttled", "Verdict", "canonical_ip",
           "prefix_of"]
