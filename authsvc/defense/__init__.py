"""Throttles that run *before* any password hashing (issue: risk-scored logins and attack defense).

The foundation ships the contract and a no-op twin; the Redis implementation replaces ``NullThrottle`` in
``authsvc.services`` without touching the pipeline.
"""

from __future__ import annotations

from typing import Protocol

from authsvc.errors import Throttled  # noqa: F401  (re-exported: the exception a throttle raises)


class Throttle(Protocol):
    def precheck(self, email: str, ctx) -> None:
        """Raise ``Throttled`` if this attempt must be refused without hashing."""

    def record_failure(self, email: str, ctx, *, user_exists: bool) -> None: ...

    def record_success(self, email: str, ctx) -> None: ...


class NullThrottle:
    def precheck(self, email: str, ctx) -> None:
        return None

    def record_failure(self, email: str, ctx, *, user_exists: bool) -> None:
        return None

    def record_success(self, email: str, ctx) -> None:
        return None
