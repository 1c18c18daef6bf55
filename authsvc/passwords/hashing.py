"""argon2id hashing with transparent rehash, and equal work for users that do not exist."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from authsvc.passwords.policy import normalize


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    needs_rehash: bool = False


class PasswordHasherService:
    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int):
        self._ph = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        # A real hash of a random password at the *current* parameters. Verifying against it for an unknown or
        # disabled account costs exactly what a real verify costs, so timing does not tell accounts apart.
        started = time.perf_counter()
        self._dummy = self._ph.hash(secrets.token_urlsafe(32))
        # One hash's wall time at these parameters, measured here and now: sizes the throttle's global budget.
        self.seconds_per_hash = time.perf_counter() - started

    @property
    def parameters(self) -> dict[str, int]:
        return {
            "time_cost": self._ph.time_cost,
            "memory_cost": self._ph.memory_cost,
            "parallelism": self._ph.parallelism,
        }

    def hash(self, password: str) -> str:
        return self._ph.hash(normalize(password))

    def verify(self, stored: str | None, password: str) -> VerifyResult:
        """Check ``password`` against ``stored``; with ``stored=None`` do the same work and fail."""
        target = stored or self._dummy
        try:
            self._ph.verify(target, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(ok=False)
        if stored is None:
            return VerifyResult(ok=False)
        return VerifyResult(ok=True, needs_rehash=self._ph.check_needs_rehash(stored))

    def burn(self, password: str) -> None:
        """Spend one verify's work without a target (unknown user, disabled account)."""
        self.verify(None, password)
