"""Storage behind the model: a small Protocol and the in-memory implementation used for replay and tests.

The protocol is shaped for a networked backend: one call per question and batched global look-ups, so a Redis
store needs three round trips per score (``user_profile``, ``global_counts``, ``global_stats``) and one
pipeline per ``learn``. A Redis/SQL store would keep each user's history as a capped list of entries and
derive the counts on read; global counts are plain counters (HINCRBY) and the distinct-value counts can be
maintained by incrementing when a counter goes 0 → 1.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, runtime_checkable

from .config import IP_LEVELS, UA_LEVELS
from .signals import Features, LastLogin

__all__ = ["RiskStore", "UserProfile", "GlobalStats", "InMemoryRiskStore", "LEVELS", "HOUR_KEY"]

LEVELS: tuple[str, ...] = IP_LEVELS + UA_LEVELS
HOUR_KEY = "hour"  # global counts of the UTC hour are stored under ("hour", "0".."23")
SECONDS_PER_DAY = 86_400.0


@dataclass(slots=True)
class UserProfile:
    """A user's retained history, as counts. Read-only for callers."""

    n: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {lvl: {} for lvl in LEVELS})
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    last: LastLogin | None = None


@dataclass(slots=True)
class GlobalStats:
    n_logins: int  # N: successful logins learned, all users
    n_users: int  # users with at least one learned login
    distinct: Mapping[str, int]  # number of distinct values seen per level (M in the smoothing)


@runtime_checkable
class RiskStore(Protocol):
    def user_profile(self, user: str, now: float) -> UserProfile:
        """The user's history with entries older than the retention bound already dropped."""

    def global_counts(self, keys: Sequence[tuple[str, str]]) -> list[int]:
        """Global count of each (level, value) pair, 0 when never seen."""

    def global_stats(self) -> GlobalStats: ...

    def learn(self, user: str, features: Features, timestamp: float) -> None:
        """Record one successful login in the user's history and in the global counts."""


@dataclass(slots=True)
class _Entry:
    timestamp: float
    values: tuple[str, ...]  # aligned with LEVELS
    hour: int


class _UserState:
    __slots__ = ("profile", "entries")

    def __init__(self) -> None:
        self.profile = UserProfile()
        self.entries: deque[_Entry] = deque()


class InMemoryRiskStore:
    """Dict-based store: fast enough to replay millions of logins, state lost on exit."""

    def __init__(self, *, max_entries: int = 200, max_age_days: float = 183.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age_days * SECONDS_PER_DAY
        self._users: dict[str, _UserState] = {}
        # One flat dict keyed by (level, value): a single hash look-up per key on the hot path.
        self._global: dict[tuple[str, str], int] = {}
        self._distinct: dict[str, int] = {lvl: 0 for lvl in (*LEVELS, HOUR_KEY)}
        self._n_logins = 0

    # -- reads ---------------------------------------------------------------------------------------------------
    def user_profile(self, user: str, now: float) -> UserProfile:
        state = self._users.get(user)
        if state is None:
            return _EMPTY
        self._evict(state, now)
        return state.profile

    def global_counts(self, keys: Sequence[tuple[str, str]]) -> list[int]:
        get = self._global.get
        return [get(k, 0) for k in keys]

    def global_stats(self) -> GlobalStats:
        # `distinct` is shared, not copied: callers treat it as read-only and use it before the next learn().
        return GlobalStats(self._n_logins, len(self._users), self._distinct)

    # -- writes --------------------------------------------------------------------------------------------------
    def learn(self, user: str, features: Features, timestamp: float) -> None:
        values = features.ip_values + features.ua_values
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState()
        prof = state.profile
        g, distinct = self._global, self._distinct
        for level, value in zip(LEVELS, values):
            key = (level, value)
            c = g.get(key, 0)
            if not c:
                distinct[level] += 1
            g[key] = c + 1
            ucounts = prof.counts[level]
            ucounts[value] = ucounts.get(value, 0) + 1
        hkey = (HOUR_KEY, _HOUR_NAMES[features.hour])
        g[hkey] = g.get(hkey, 0) + 1
        prof.hours[features.hour] += 1
        prof.n += 1
        prof.last = LastLogin(timestamp, features.country, features.lat, features.lon)
        self._n_logins += 1
        state.entries.append(_Entry(timestamp, values, features.hour))
        self._evict(state, timestamp)

    def _evict(self, state: _UserState, now: float) -> None:
        entries = state.entries
        cutoff = now - self.max_age
        while entries and (len(entries) > self.max_entries or entries[0].timestamp < cutoff):
            old = entries.popleft()
            prof = state.profile
            for level, value in zip(LEVELS, old.values):
                counts = prof.counts[level]
                c = counts[value] - 1
                if c:
                    counts[value] = c
                else:
                    del counts[value]
            prof.hours[old.hour] -= 1
            prof.n -= 1
        if not entries:
            state.profile.last = None  # nothing retained: too old to judge travel against

    def __len__(self) -> int:
        return len(self._users)


_HOUR_NAMES = tuple(str(h) for h in range(24))
_EMPTY = UserProfile()
