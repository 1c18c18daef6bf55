"""The risk engine inside the running service: a Redis-backed store and the adapter the login pipeline calls.

``RedisRiskStore`` implements :class:`~authsvc.risk.store.RiskStore`:

* a user's history is a capped Redis list ``risk:{u<id>}:h`` of compact JSON entries (time, the eight hierarchy
  values, hour, country, coordinates); counts are derived on read (≤ 200 entries), which makes ageing exact;
* global value counts live in one hash ``risk:{g}:c`` (field ``level|value``) and the totals in ``risk:{g}:s``; one
  Lua script updates both and counts a distinct value when its counter goes 0 → 1 (both keys share the ``{g}`` tag).

Scoring costs one round trip (``prefetch`` pipelines history, totals and global counts); learning costs one.
"""

from __future__ import annotations

import json
import threading
import time

from redis.cluster import RedisCluster

from authsvc import redis_scripts
from authsvc.redis_scripts import ScriptCache
from authsvc.risk.context import LoginContext, Reason
from authsvc.risk.signals import Features, LastLogin, extract_features
from authsvc.risk.store import HOUR_KEY, LEVELS, GlobalStats, UserProfile

_LEARN = """
local stats = KEYS[2]
for i = 1, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], 1) == 1 then
    local level = string.match(ARGV[i], '^([^|]+)|')
    redis.call('HINCRBY', stats, 'd:' .. level, 1)
  end
end
redis.call('HINCRBY', stats, 'n', 1)
return 1
"""

_GLOBAL_COUNTS = "risk:{g}:c"
_GLOBAL_STATS = "risk:{g}:s"


def _ukey(user: str) -> str:
    return f"risk:{{u{user}}}:h"


def _gflag(user: str) -> str:
    return f"risk:{{u{user}}}:g"


class RedisRiskStore:
    def __init__(self, redis_getter, *, max_entries: int = 200, max_age_days: float = 183.0):
        self._redis = redis_getter
        self.max_entries = max_entries
        self.max_age = max_age_days * 86400.0
        self._scripts = ScriptCache(redis_getter)
        self._local = threading.local()

    def _learn_script(self):
        return self._scripts.get("learn", _LEARN)

    def prefetch(self, user: str, keys) -> None:
        """One pipelined round trip for the history, the totals and every global count a score may ask for; the
        three reads below are then answered from it (per thread, for this user, until the next learn)."""
        pipe = self._redis().pipeline(transaction=False)
        pipe.lrange(_ukey(user), 0, -1)
        pipe.hgetall(_GLOBAL_STATS)
        pipe.hmget(_GLOBAL_COUNTS, [f"{level}|{value}" for level, value in keys])
        raw, stats, counts = pipe.execute()
        self._local.cache = (user, raw, stats, dict(zip(keys, counts)))

    def _cached(self, user: str | None = None):
        cache = getattr(self._local, "cache", None)
        if cache is None or (user is not None and cache[0] != user):
            return None
        return cache

    def user_profile(self, user: str, now: float) -> UserProfile:
        cache = self._cached(user)
        raw = cache[1] if cache else self._redis().lrange(_ukey(user), 0, -1)
        prof = UserProfile()
        cutoff = now - self.max_age
        last = None
        for item in raw:
            e = json.loads(item)
            if e["t"] < cutoff:
                continue
            for level, value in zip(LEVELS, e["v"]):
                counts = prof.counts[level]
                counts[value] = counts.get(value, 0) + 1
            prof.hours[e["h"]] += 1
            prof.n += 1
            if last is None or e["t"] >= last["t"]:
                last = e
        if last is not None:
            prof.last = LastLogin(last["t"], last.get("c"), last.get("la"), last.get("lo"))
        return prof

    def global_counts(self, keys) -> list[int]:
        if not keys:
            return []
        cache = self._cached()
        if cache is not None and all(k in cache[3] for k in keys):
            vals = [cache[3][k] for k in keys]
        else:
            vals = self._redis().hmget(_GLOBAL_COUNTS, [f"{level}|{value}" for level, value in keys])
        return [int(v) if v else 0 for v in vals]

    def global_stats(self) -> GlobalStats:
        cache = self._cached()
        s = cache[2] if cache is not None else self._redis().hgetall(_GLOBAL_STATS)
        distinct = {lvl: int(s.get(f"d:{lvl}", 0)) for lvl in (*LEVELS, HOUR_KEY)}
        return GlobalStats(int(s.get("n", 0)), int(s.get("users", 0)), distinct)

    def learned_count(self, user: str) -> int:
        """How many logins of ``user`` are in the history (the prefetched copy when this thread just scored)."""
        cache = self._cached(user)
        return len(cache[1]) if cache is not None else int(self._redis().llen(_ukey(user)))

    def learn(self, user: str, features: Features, timestamp: float, *, global_counts: bool = True) -> None:
        """Add the login to the user's history and — with ``global_counts`` — to the global statistics. The caller
        (LiveRiskScorer) leaves those out for accounts that are not established, so that throw-away accounts
        cannot dilute what "common" means for everyone (issue #19)."""
        self._local.cache = None  # what was prefetched is about to change
        values = list(features.ip_values + features.ua_values)
        entry = json.dumps({"t": timestamp, "v": values, "h": features.hour, "c": features.country,
                            "la": features.lat, "lo": features.lon}, separators=(",", ":"))
        r = self._redis()
        fields = [f"{level}|{value}" for level, value in zip(LEVELS, values)]
        fields.append(f"{HOUR_KEY}|{features.hour}")
        script = self._learn_script()
        pipe = r.pipeline(transaction=False)  # one round trip for the user's list and the global counts
        pipe.rpush(_ukey(user), entry)
        pipe.ltrim(_ukey(user), -self.max_entries, -1)
        pipe.expire(_ukey(user), int(self.max_age))
        if not global_counts:
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception):
                    raise reply
            return
        # "users" (U in the prior) counts accounts that contribute to the global statistics: the first time one
        # does, its flag (same hash tag as its history) is new.
        pipe.set(_gflag(user), 1, nx=True, ex=int(self.max_age))
        pipe.expire(_gflag(user), int(self.max_age))
        clustered = isinstance(r, RedisCluster)
        keys = [_GLOBAL_COUNTS, _GLOBAL_STATS]
        if not clustered:
            redis_scripts.queue(pipe, script, keys, fields)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[:5]:
            if isinstance(reply, Exception):
                raise reply
        first = bool(replies[3])
        if clustered:  # a Cluster pipeline refuses EVALSHA: the global update is its own round trip there
            script(keys=keys, args=fields)
        else:
            redis_scripts.settle(replies[5], script, keys, fields)
        if first:  # the user's first contribution to the global statistics
            r.hincrby(_GLOBAL_STATS, "users", 1)


# Throttle counters (authsvc.defense) → the engine's velocity names (RiskConfig.velocity_rules).
_VELOCITY = {"account_consecutive": "account_failures", "ip": "ip_failures", "pfx": "prefix_failures",
             "asn": "asn_failures", "ip_accounts": "ip_distinct_users", "ip_accounts_day": "ip_accounts_day",
             "ip_accounts_week": "ip_accounts_week",
             "ip_unknown_share": "ip_unknown_user_share",
             "password_accounts": "password_spray_accounts"}


class LiveRiskScorer:
    """The login pipeline's ``RiskScorer``: builds the engine's context from the request and the account."""

    def __init__(self, engine, *, is_trusted_device=None, clock=time.time, global_min_logins: int = 3,
                 global_min_age_days: float = 30.0):
        self.engine = engine
        self.is_trusted_device = is_trusted_device  # (user, device_id) → bool, from the MFA package
        self.clock = clock
        # Which accounts' logins count in the global statistics (what is "common" for everyone): verified ones
        # with this many learned logins (this one included), or this old. 45 throw-away accounts with one login
        # each shifted every score by 0.5–1.1 before (issue #19).
        self.global_min_logins = global_min_logins
        self.global_min_age_days = global_min_age_days

    def _ctx(self, user, ctx, *, breached: bool = False, velocity: dict | None = None,
             familiar: bool = False) -> LoginContext:
        trusted = bool(ctx.device_id and self.is_trusted_device and self.is_trusted_device(user, ctx.device_id))
        vel = {_VELOCITY[k]: float(v) for k, v in (velocity or {}).items() if k in _VELOCITY}
        return LoginContext(user=str(user.id), ip=ctx.ip or "0.0.0.0", user_agent=ctx.user_agent or "",
                            timestamp=self.clock(), trusted_device=trusted, breached_password=breached,
                            velocity=vel or None, familiar_place=familiar)

    def score(self, user, ctx, *, breached: bool, velocity: dict | None = None, familiar: bool = False):
        decision = self.engine.score(self._ctx(user, ctx, breached=breached, velocity=velocity, familiar=familiar))
        if decision.action != "allow" and not decision.reasons and decision.score > 0:
            # When no single signal stands out but the combination scores as more likely an attacker than the owner
            # (score > 0), say so. At a score ≤ 0 the sign-in looks *like* the owner's (the step-up threshold can
            # sit below 0), so that sentence would be false: no reason is better than an untrue one (issue #12).
            decision.reasons.append(Reason("unusual_context", "this sign-in looks different from your usual ones",
                                           decision.score))
        return decision

    def established(self, user) -> bool:
        """Whether this account's logins may shape the global statistics (see __init__)."""
        if not getattr(user, "email_verified_at", None):
            return False
        created = getattr(user, "created_at", None)
        if created is not None and self.clock() - created.timestamp() >= self.global_min_age_days * 86400:
            return True
        store = self.engine.store
        counted = getattr(store, "learned_count", None)
        return counted is not None and counted(str(user.id)) + 1 >= self.global_min_logins

    def learn(self, user, ctx) -> None:
        lctx = self._ctx(user, ctx)
        store = self.engine.store
        if not isinstance(store, RedisRiskStore):
            self.engine.learn(lctx)
            return
        store.learn(lctx.user, extract_features(lctx, self.engine.geo), lctx.timestamp,
                    global_counts=self.established(user))
