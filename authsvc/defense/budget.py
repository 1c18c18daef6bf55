"""The service-wide budget of password checks for *unfamiliar* attempts (credential stuffing from rotating IPs).

Per-source limits never fire when every attempt comes from a new address; this budget bounds how much hashing the
whole service spends on strangers, so owners (familiar device or network) keep the rest. Sizing and shape:

* **Warm, shared measurement.** One host's capacity is ``CPUs ÷ CPU seconds per argon2 hash``, where the hash time is
  the *median* CPU time (all of argon2's lane threads; wall time over-stated the capacity by up to ``parallelism``×)
  of several hashes after a warm-up hash (a cold first hash, taken while every worker boots at once, used to
  say 1/s on a 2-CPU box). The first worker (or ``authsvc serve`` before it forks) that finds no measurement takes a
  lock (``SET NX``), measures and stores it in Redis for ``MEASURE_TTL`` under ``th:{budget}:m:<host>:<params>``;
  every other worker of that host reads it and never measures. Changing the argon2 parameters changes the key.
* **Summed over live hosts.** Each worker refreshes its host's heartbeat (a sorted set of hosts scored by expiry plus a
  hash of their capacities, both under the ``{budget}`` hash tag, one Lua script) at most every ``REFRESH`` seconds
  while it serves logins; the script drops hosts whose heartbeat is older than ``HEARTBEAT_TTL`` and returns the sum.
  Budget = ``throttle_unfamiliar_share`` × that sum. ``throttle_unfamiliar_floor`` is the budget only while no
  live host has a measurement (the first seconds of a fresh deployment); it never raises a measured budget. It used
  to be a minimum (5/s), and on a small host the minimum, not the share, set the rate: a 2-CPU box hashing ~7/s
  gave strangers ~70 % of its capacity, its workers were all busy hashing them and the flood could not even be
  refused (docs/BENCHMARKS.md, stop 25). ``throttle_unfamiliar_per_second`` (> 0) is the operator's explicit figure
  and wins over all of this.
* **A token bucket, not a per-second window.** ``th:{global}:bucket`` holds up to ``rate × burst_seconds`` tokens and
  refills at ``rate`` per second (the app clock, so every host agrees within NTP). Stuffing stays bounded (over any
  period T at most ``rate × T + burst`` strangers' hashes), but a quiet service always has a full bucket: a lone new
  user is never refused because two strangers happened to share their second, as the old 1-second window did. The
  burst is thereby sized in hashes the service can spare: with a measured budget it is ``share × capacity ×
  burst_seconds`` — at the defaults (0.1, 10 s) one second of the whole service's hashing, however small the host
  (the old 10 s of a 5/s floor was 50 hashes, ~7 s of a 2-CPU box's CPU, taken at the start of every flood).

Fail closed: a Redis error propagates (503), as for every other limiter.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass

from authsvc.redis_scripts import ScriptCache

MEASURE_TTL = 86400  # seconds a host's measurement is trusted before one worker measures again
MEASURE_LOCK = 120  # a measuring worker that dies frees the lock after this long
HEARTBEAT_TTL = 60  # a host that has not refreshed for this long drops out of the sum
REFRESH = 10  # seconds between one worker's heartbeats (and re-reads of the sum)
REFRESH_UNKNOWN = 1  # while this host's measurement is not stored yet (another worker is measuring)

# Publish this host's capacity (when ARGV[3] is not empty), drop hosts whose heartbeat expired, sum the live ones.
# KEYS: live (zset host → expiry), cap (hash host → hashes/s)   ARGV: now, host, capacity, ttl
_HEARTBEAT = """
local now = tonumber(ARGV[1])
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, h in ipairs(stale) do
  redis.call('ZREM', KEYS[1], h)
  redis.call('HDEL', KEYS[2], h)
end
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local sum = 0
for _, h in ipairs(live) do
  sum = sum + (tonumber(redis.call('HGET', KEYS[2], h) or '0') or 0)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]) * 10)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]) * 10)
return {#live, tostring(sum)}
"""

# Token bucket. KEYS: bucket (hash t, ts)   ARGV: rate, capacity, now   → {admitted 0/1, tokens left}
_TAKE = """
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then tokens = cap; ts = now end
if now > ts then
  tokens = tokens + (now - ts) * rate
  ts = now
end
if tokens > cap then tokens = cap end
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 60)
return {ok, tostring(tokens)}
"""

LIVE_KEY = "th:{budget}:live"
CAP_KEY = "th:{budget}:cap"
BUCKET_KEY = "th:{global}:bucket"


def host_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the whole machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Snapshot:
    rate: float  # admitted unfamiliar attempts per second, service-wide
    source: str  # "explicit" | "measured" | "floor"
    hosts: int  # live hosts whose capacity is summed (0 with an explicit rate)
    capacity: float  # sum of live hosts' hashes per second
    host_capacity: float | None  # this host's hashes per second (None: not measured yet / explicit)
    burst: float  # bucket size


class UnfamiliarBudget:
    def __init__(self, *, redis_getter, hasher, settings, host_id: str | None = None, cpus: int | None = None,
                 clock=time.time):
        self._redis = redis_getter
        self.hasher = hasher
        self.s = settings
        self.host_id = host_id or getattr(settings, "throttle_host_id", None) or socket.gethostname()
        self.cpus = cpus or host_cpus()
        self.clock = clock
        self._scripts = ScriptCache(redis_getter)
        self._snapshot: Snapshot | None = None
        self._next_refresh = 0.0
        self.measurements = 0  # hashes-per-second measurements this process made (tests: shared, not repeated)

    # --- this host's capacity --------------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        p = self.hasher.parameters
        # ".cpu": CPU time per hash (stop 25); a wall-time figure stored by an older version is not reused
        return f"t{p['time_cost']}.m{p['memory_cost']}.p{p['parallelism']}.cpu"

    def measurement_key(self) -> str:
        return f"th:{{budget}}:m:{self.host_id}:{self._fingerprint()}"

    def seconds_per_hash(self, *, wait: bool = False) -> float | None:
        """This host's warm seconds per hash: read from Redis, or measured here if no worker of this host has done it
        (lock in Redis). None while another worker measures (unless ``wait``)."""
        r = self._redis()
        key = self.measurement_key()
        stored = r.get(key)
        if stored is not None:
            return float(stored)
        lock = key.replace(":m:", ":ml:", 1)
        if not r.set(lock, self.host_id, nx=True, ex=MEASURE_LOCK):
            if not wait:
                return None
            deadline = time.monotonic() + MEASURE_LOCK
            while time.monotonic() < deadline:
                time.sleep(0.1)
                stored = r.get(key)
                if stored is not None:
                    return float(stored)
            return None
        try:
            value = float(f"{self.hasher.measure_seconds_per_hash():.9f}")  # what the siblings will read
            self.measurements += 1
            r.set(key, f"{value:.9f}", ex=MEASURE_TTL)
        finally:
            r.delete(lock)
        return value

    def host_capacity(self, *, wait: bool = False) -> float | None:
        sph = self.seconds_per_hash(wait=wait)
        return None if sph is None else self.cpus / max(sph, 1e-4)

    # --- the service-wide rate ---------------------------------------------------------------------------------------
    def snapshot(self, *, force: bool = False) -> Snapshot:
        """The current budget; refreshes this host's heartbeat and the sum over live hosts every ``REFRESH`` s."""
        now = self.clock()
        if self._snapshot is not None and not force and now < self._next_refresh:
            return self._snapshot
        s = self.s
        burst_seconds = max(1.0, float(s.throttle_unfamiliar_burst_seconds))
        if s.throttle_unfamiliar_per_second > 0:
            rate = float(s.throttle_unfamiliar_per_second)
            snap = Snapshot(rate, "explicit", 0, 0.0, None, max(1.0, rate * burst_seconds))
            self._next_refresh = now + REFRESH
        else:
            mine = self.host_capacity()
            hosts, total = self._scripts.get("heartbeat", _HEARTBEAT)(
                keys=[LIVE_KEY, CAP_KEY], args=[repr(now), self.host_id, "" if mine is None else repr(mine),
                                                HEARTBEAT_TTL])
            total = float(total)
            if total > 0:  # strangers never get more than the share of what the live hosts measured
                rate, source = s.throttle_unfamiliar_share * total, "measured"
            else:  # no live host has a measurement yet (one worker is measuring): the floor, until it is stored
                rate, source = float(s.throttle_unfamiliar_floor), "floor"
            snap = Snapshot(rate, source, int(hosts), total, mine, max(1.0, rate * burst_seconds))
            self._next_refresh = now + (REFRESH if mine is not None else REFRESH_UNKNOWN)
        self._snapshot = snap
        _publish(snap)
        return snap

    def take(self) -> tuple[bool, int, Snapshot]:
        """Spend one token: (admitted, seconds until the next token if refused, the budget used)."""
        snap = self.snapshot()
        ok, left = self._scripts.get("take", _TAKE)(keys=[BUCKET_KEY],
                                                    args=[repr(snap.rate), repr(snap.burst), repr(self.clock())])
        if int(ok):
            return True, 0, snap
        from authsvc import metrics

        metrics.BUDGET_REFUSALS.inc()
        return False, max(1, math.ceil((1.0 - float(left)) / snap.rate)), snap


def _publish(snap: Snapshot) -> None:
    from authsvc import metrics

    metrics.BUDGET_RATE.set(snap.rate)
    metrics.BUDGET_HOSTS.set(snap.hosts)
    metrics.BUDGET_CAPACITY.set(snap.capacity)
