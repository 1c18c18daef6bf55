"""429 refusals made visible — to the operator (dashboard counts, audit rows) and to the owner (activity page) —
without letting a flood write a row per attempt.

Per refusal, one Redis round trip: ``HINCRBY`` of the limiter in this hour's hash (the dashboard's exact counts,
``rl:{h}:<YYYYmmddHH>``, kept 25 h), and a ``SET NX EX 60`` guard per limiter × source (IP) in a small script. Only the first refusal of
a limiter × source in a minute writes an audit row (``throttle:refused``), and at most ``AUDIT_PER_MINUTE`` rows per
limiter in a minute — a stuffing flood from ever-new IPs passes the per-source guard every time, the per-limiter cap
still holds. When the refused attempt named an account, a second guard in the same script (``ACCOUNT_EVERY`` seconds
per limiter × account) lets one receipt ("throttled") into that account's activity, so the owner sees that someone
was held off. Finding the account is a SQL read, so it too is capped: at most ``LOOKUPS_PER_MINUTE`` per limiter in a
minute. Without that cap a flood of ever-new usernames passed the account guard on every attempt and every refusal
read the users table and committed (stop 25: a third of a refused login's CPU); a refusal over the cap leaves the
account's guard unset, so a later refusal of that account still gets its receipt.

Accounts appear in Redis only as keyed hashes. Redis or SQL trouble here never changes the answer (the request is
refused anyway); the recording is skipped and logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

from redis.cluster import RedisCluster

from authsvc import redis_scripts
from authsvc.redis_scripts import ScriptCache

log = logging.getLogger("authsvc")

AUDIT_PER_MINUTE = 30  # audit rows per limiter per minute, at most
ACCOUNT_EVERY = 600  # one receipt per limiter × account per 10 minutes, at most
LOOKUPS_PER_MINUTE = 60  # account look-ups (SQL reads) for receipts per limiter per minute, at most
HOURS_KEPT = 25


# The first refusal of a limiter × source in a minute (SET NX), and within the limiter's cap for that minute → audit.
# With an account (KEYS[3], KEYS[4]): the first refusal of a limiter × account in ACCOUNT_EVERY, within the limiter's
# look-up cap for that minute → look the account up for its receipt. The account guard is only set when the look-up
# is granted, so an account whose refusal fell over the cap gets its receipt with a later one.
# KEYS: guard, cap, [account guard, look-ups] (one hash tag: the limiter)   ARGV: cap, look-up cap, account every
# → {audit 0/1, look up 0/1}
_GUARD = """
local audit = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 60) then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], 120) end
  if n <= tonumber(ARGV[1]) then audit = 1 end
end
local lookup = 0
if #KEYS >= 4 and redis.call('EXISTS', KEYS[3]) == 0 then
  local m = tonumber(redis.call('GET', KEYS[4]) or '0')
  if m < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[3]))
    if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], 120) end
    lookup = 1
  end
end
return {audit, lookup}
"""


def _hour_key(at: dt.datetime) -> str:
    return "rl:{h}:" + at.strftime("%Y%m%d%H")


class RefusalLog:
    def __init__(self, *, redis_getter, secret: bytes, clock):
        self._redis = redis_getter
        self._secret = secret
        self.clock = clock
        self._scripts = ScriptCache(redis_getter)

    def _h(self, value: str) -> str:
        return hmac.new(self._secret, f"rl:{value}".encode(), hashlib.sha256).hexdigest()[:24]

    def record(self, exc, ctx, *, path: str | None = None, email: str | None = None) -> dict:
        """Count one 429 and write what the guards let through. Returns what was written (tests, logs)."""
        from authsvc.services import services

        now = self.clock.now()
        scope = getattr(exc, "scope", None) or "unknown"
        minute = int(now.timestamp() // 60)
        # One round trip: the hour's count and the guard script (limiter × source and the limiter's audit cap; the
        # limiter × account guard and the limiter's look-up cap). The script's keys share the limiter's hash tag, so
        # it runs on a Cluster too.
        r = self._redis()
        script = self._scripts.get("guard", _GUARD)
        keys = [f"rl:{{s:{scope}}}:g:{ctx.ip or 'none'}", f"rl:{{s:{scope}}}:c:{minute}"]
        if email:
            keys += [f"rl:{{s:{scope}}}:a:{self._h(email)}", f"rl:{{s:{scope}}}:l:{minute}"]
        args = [AUDIT_PER_MINUTE, LOOKUPS_PER_MINUTE, ACCOUNT_EVERY]
        pipe = r.pipeline(transaction=False)
        hour = _hour_key(now)
        pipe.hincrby(hour, scope, 1)
        pipe.expire(hour, HOURS_KEPT * 3600)
        clustered = isinstance(r, RedisCluster)
        if not clustered:
            redis_scripts.queue(pipe, script, keys, args)
        res = pipe.execute(raise_on_error=False)
        for reply in res[:2]:
            if isinstance(reply, Exception):
                raise reply
        if clustered:  # a Cluster pipeline refuses EVALSHA: the guard is its own round trip there
            audit, lookup = script(keys=keys, args=args)
        else:
            audit, lookup = redis_scripts.settle(res[-1], script, keys, args)
        audited, first_for_account = bool(int(audit)), bool(int(lookup))
        if not (audited or first_for_account):
            return {"audited": False, "receipt": False}
        svc = services()
        user = None
        if email:
            from authsvc.accounts.login import _USER_BY_EMAIL

            user = svc.audit.db.session.execute(_USER_BY_EMAIL, {"p_email": email}).scalar_one_or_none()
        receipt = bool(first_for_account and user is not None)
        if receipt:
            from sqlalchemy import insert

            from authsvc.models import LoginEvent

            svc.audit.db.session.execute(insert(LoginEvent.__table__).values(
                user_id=user.id, occurred_at=now, outcome="throttled", method="password", ip=ctx.ip,
                user_agent=(ctx.user_agent or "")[:512] or None, device_id=ctx.device_id))
        if audited:
            svc.audit.record("throttle:refused", "failure", subject_id=user.id if user else None, ip=ctx.ip,
                             user_agent=ctx.user_agent, reason=scope,
                             details={"path": (path or "")[:200], "retry_after": getattr(exc, "retry_after", None)},
                             commit=False)
        svc.audit.db.session.commit()
        return {"audited": audited, "receipt": receipt}

    def recent_counts(self, hours: int = 24) -> dict[str, int]:
        """Refusals per limiter over the last ``hours`` (exact: every 429 is counted, rows or not)."""
        now = self.clock.now()
        pipe = self._redis().pipeline(transaction=False)
        for i in range(hours):
            pipe.hgetall(_hour_key(now - dt.timedelta(hours=i)))
        out: dict[str, int] = {}
        for h in pipe.execute():
            for scope, n in (h or {}).items():
                out[scope] = out.get(scope, 0) + int(n)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
