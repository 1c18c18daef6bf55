"""argon2id hashing with transparent rehash, and equal work for users that do not exist."""

from __future__ import annotations

import secrets
import statistics
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
        # One *cold* hash's wall time (first allocation of the memory, often while every worker boots at once): a
        # rough figure only. The throttle's budget uses measure_seconds_per_hash(), taken warm and shared per host.
        self.seconds_per_hash = time.perf_counter() - started

    @property
    def parameters(self) -> dict[str, int]:
        return {
            "time_cost": self._ph.time_cost,
            "memory_cost": self._ph.memory_cost,
            "parallelism": self._ph.parallelism,
        }

    def measure_seconds_per_hash(self, samples: int = 5, warmup: int = 1) -> float:
        """Warm CPU time of one hash at the current parameters: ``warmup`` hashes first (page faults, caches), then
        the median of ``samples`` — robust to a worker being preempted during one of them.

        CPU time of the whole process (every thread), not wall time: argon2 runs ``parallelism`` lanes on threads, so
        with p = 4 on 2 idle CPUs a hash takes about half its CPU time in wall time, and ``CPUs ÷ wall time`` said the
        host could do twice the hashes it can (the stuffing budget's "quarter of the capacity" was half of it). CPU
        time is also what a preempted worker does not accrue, so a busy box does not shrink the figure either."""
        for _ in range(warmup):
            self._ph.hash(secrets.token_urlsafe(16))
        times = []
        for _ in range(max(1, samples)):
            started = time.process_time()
            self._ph.hash(secrets.token_urlsafe(16))
            times.append(time.process_time() - started)
        return max(statistics.median(times), 1e-6)

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
