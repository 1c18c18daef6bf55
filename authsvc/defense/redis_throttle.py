"""Brute-force, stuffing and spraying defense in Redis, checked before any password hash is computed.

What is counted (failures only — a success never charges a limiter, it clears the account's streak):

| scope | key (hash tag = the entity) | refuses when |
|---|---|---|
| account × IP | ``th:{p:<acct>:<ip>}`` | ≥ pair_limit failures in the window (Auth0's pair block) |
| IP, prefix (/24, /48), ASN | ``th:{ip:<ip>}:f`` … | ≥ their limits in their windows |
| spray from an IP/prefix | ``th:{ip:<ip>}:u`` (HyperLogLog of accounts), ``:x`` (unknown-account failures) | ≥ spray_min_accounts distinct accounts and ≥ spray_min_failures failures, or unknown share ≥ spray_unknown_share: the source is blocked for spray_block |
| one password across accounts | ``th:{pw:<hmac>}`` HyperLogLog of accounts | ≥ password_spray_accounts: that password is refused from unfamiliar places |
| account, unfamiliar places | ``th:{a:<acct>}:fu`` | ≥ account_lockout_threshold → delay doubling with each further failure (60 s, 120 s, … ≤ 1 h) |
| account, familiar places | ``th:{a:<acct>}:ff`` | its own, larger budget — strangers cannot use it up |
| account, consecutive | ``th:{a:<acct>}:c`` | ≥ account_failure_cap (NIST 100) → a reset is required |
| whole service, unfamiliar attempts | ``th:{global}:bucket`` (token bucket; sizing in budget.py) | the bucket of password checks for strangers is empty |

Accounts and passwords appear only as keyed hashes (HMAC with the app's secret), never in clear. Counting is by the
*submitted* e-mail, so unknown and real accounts behave alike (no enumeration through throttling). Every Lua script
touches only keys of one hash tag, so the same code runs on Redis Cluster. "Familiar" means the request carries a
trusted-device id, or comes from an IP prefix where this account signed in successfully before.

Fail closed: if Redis cannot answer, the check raises and the request gets 503; we never skip the throttle.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from authsvc.config import Settings
from authsvc.errors import Throttled
from authsvc.redis_scripts import ScriptCache

# INCR a window counter; arm the expiry on first use. Returns {count, ttl}.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""

# One source (IP or prefix): failures in the limit window, and — in the shorter spray window — failures, distinct
# accounts (HyperLogLog) and unknown-account failures; sets the block key when the source looks like a spray.
# KEYS: f, sf, u, x, block   ARGV: window, spray_window, account, unknown(0/1), min_accounts, min_failures,
#                                 unknown_share, block_seconds
_SOURCE = """
local f = redis.call('INCR', KEYS[1])
if f == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local sf = redis.call('INCR', KEYS[2])
if sf == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.call('PFADD', KEYS[3], ARGV[3])
if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
local x = tonumber(redis.call('GET', KEYS[4]) or '0')
if ARGV[4] == '1' then
  x = redis.call('INCR', KEYS[4])
  if x == 1 then redis.call('EXPIRE', KEYS[4], ARGV[2]) end
end
local u = redis.call('PFCOUNT', KEYS[3])
local spray = 0
if sf >= tonumber(ARGV[6]) and (u >= tonumber(ARGV[5]) or x / sf >= tonumber(ARGV[7])) then
  redis.call('SET', KEYS[5], '1', 'EX', ARGV[8])
  spray = 1
end
return {f, u, x, spray}
"""

# Account: the right budget (familiar or not), consecutive streak, growing lock.
# KEYS: budget, consecutive, lock   ARGV: window, threshold, base, cap_ttl
_ACCOUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local c = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local t = tonumber(ARGV[2])
local lock = 0
if n >= t then
  lock = math.min(3600, tonumber(ARGV[3]) * 2 ^ math.min(n - t, 12))
  redis.call('SET', KEYS[3], '1', 'EX', lock)
end
return {n, c, lock}
"""

# Password spray: distinct accounts a failing password was tried on.  KEYS: hll, block  ARGV: window, acct, min
_PASSWORD = """
redis.call('PFADD', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local n = redis.call('PFCOUNT', KEYS[1])
if n >= tonumber(ARGV[3]) then redis.call('SET', KEYS[2], '1', 'EX', ARGV[1]) end
return n
"""


class ResetRequired(Throttled):
    """NIST's cap: after this many consecutive failures, a password alone is not enough any more.

    Counted per *submitted* address, so an unknown address reaches the same answer as a real one.
    """

    code = "reset_required"

    def __init__(self):
        super().__init__(3600, "account_failure_cap")
        self.message = "Too many failed attempts on this account. Reset your password to continue."
        self.args = (self.message,)


def prefix_of(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass(frozen=True)
class Verdict:
    familiar: bool
    counts: dict


class RedisThrottle:
    def __init__(self, *, redis_getter, settings: Settings, secret: bytes, asn_lookup=None,
                 budget=None, clock=time.time):
        self._redis = redis_getter
        self.s = settings
        self._secret = secret
        self.budget = budget  # UnfamiliarBudget (defense/budget.py): the service-wide token bucket; None = none
        self.clock = clock
        self.asn_lookup = asn_lookup  # callable ip → "AS1234" or None (from the risk package's geo data)
        self._scripts = ScriptCache(redis_getter)

    # --- keys ---------------------------------------------------------------------------------------------------------
    def _h(self, kind: str, value: str) -> str:
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:24]

    def _script(self, name: str, body: str):
        return self._scripts.get(name, body)

    def _sources(self, ctx) -> list[tuple[str, str, int, int]]:
        """(kind, id, limit, window) for each network source of the request."""
        s = self.s
        out = []
        if ctx.ip:
            out.append(("ip", ctx.ip, s.throttle_ip_limit, s.throttle_ip_window))
            pfx = prefix_of(ctx.ip)
            if pfx:
                out.append(("pfx", pfx, s.throttle_prefix_limit, s.throttle_prefix_window))
            asn = self.asn_lookup(ctx.ip) if self.asn_lookup else None
            if asn:
                out.append(("asn", str(asn), s.throttle_asn_limit, s.throttle_asn_window))
        return out

    # --- the check before hashing ------------------------------------------------------------------------------------
    def precheck(self, email: str, ctx, password: str | None = None) -> Verdict:
        """Raise Throttled/ResetRequired if this attempt must be refused; costs one Redis round trip, no hashing."""
        s = self.s
        acct = self._h("a", email)
        pfx = prefix_of(ctx.ip)
        pipe = self._redis().pipeline(transaction=False)
        pipe.sismember(f"th:{{a:{acct}}}:known", self._h("k", pfx or "-"))
        if ctx.device_id:
            pipe.sismember(f"th:{{a:{acct}}}:known", self._h("d", ctx.device_id))
        else:
            pipe.exists("th:none")  # keeps result positions fixed
        pipe.get(f"th:{{a:{acct}}}:c")
        pipe.ttl(f"th:{{a:{acct}}}:lu")
        pipe.ttl(f"th:{{a:{acct}}}:lf")
        pipe.get(f"th:{{p:{acct}:{ctx.ip}}}")
        pipe.ttl(f"th:{{p:{acct}:{ctx.ip}}}")
        sources = self._sources(ctx)
        for kind, ident, _, _ in sources:
            tag = f"{kind}:{ident}"
            pipe.get(f"th:{{{tag}}}:f")
            pipe.ttl(f"th:{{{tag}}}:f")
            pipe.ttl(f"th:{{{tag}}}:b")
        pw_key = None
        if password is not None:
            pw_key = f"th:{{pw:{self._h('pw', password)}}}:b"
            pipe.ttl(pw_key)
        res = pipe.execute()
        known_prefix, known_device, consec, lock_u, lock_f, pair_n, pair_ttl = res[:7]
        familiar = bool(known_prefix or known_device)
        waits: list[tuple[int, str]] = []

        if int(consec or 0) >= s.account_failure_cap:
            raise ResetRequired()
        lock_ttl = lock_f if familiar else lock_u
        if lock_ttl and lock_ttl > 0:
            waits.append((lock_ttl, "account"))
        if int(pair_n or 0) >= s.throttle_pair_limit:
            waits.append((max(pair_ttl, 1), "account_ip"))
        pos = 7
        counts = {"account_consecutive": int(consec or 0), "account_ip": int(pair_n or 0)}
        for kind, ident, limit, _window in sources:
            n, ttl, block_ttl = res[pos:pos + 3]
            pos += 3
            counts[kind] = int(n or 0)
            if not familiar:
                # A familiar device/location is never refused for what strangers did from the same network.
                if int(n or 0) >= limit:
                    waits.append((max(ttl, 1), kind))
                if block_ttl and block_ttl > 0:
                    waits.append((block_ttl, f"{kind}_spray"))
        if pw_key is not None:
            pw_ttl = res[pos]
            if pw_ttl and pw_ttl > 0 and not familiar:
                waits.append((pw_ttl, "password_spray"))
        if waits:
            retry, scope = max(waits)
            raise Throttled(retry, scope)
        if not familiar and self.budget is not None:
            # Service-wide budget of password checks for strangers (budget.py). Familiar attempts never spend it, so
            # owners keep their capacity while a distributed flood is refused before hashing.
            ok, wait, snap = self.budget.take()
            counts["global_unfamiliar_rate"] = snap.rate
            if not ok:
                raise Throttled(wait, "global_unfamiliar")
        return Verdict(familiar, counts)

    # --- counting -------------------------------------------------------------------------------------------------------
    def record_failure(self, email: str, ctx, *, user_exists: bool, password: str | None = None,
                       familiar: bool = False) -> dict:
        s = self.s
        acct = self._h("a", email)
        out = {}
        out["account_ip"] = self._script("count", _COUNT)(
            keys=[f"th:{{p:{acct}:{ctx.ip}}}"], args=[s.throttle_pair_window])[0]
        budget = "ff" if familiar else "fu"
        threshold = s.account_familiar_threshold if familiar else s.account_lockout_threshold
        n, consec, lock = self._script("account", _ACCOUNT)(
            keys=[f"th:{{a:{acct}}}:{budget}", f"th:{{a:{acct}}}:c", f"th:{{a:{acct}}}:l{budget[1]}"],
            args=[s.account_failure_window, threshold, s.account_lockout_base, 30 * 86400])
        out.update(account=n, account_consecutive=consec, account_lock=lock)
        for kind, ident, _limit, window in self._sources(ctx):
            tag = f"{kind}:{ident}"
            if kind == "asn":
                out[kind] = self._script("count", _COUNT)(keys=[f"th:{{{tag}}}:f"], args=[window])[0]
                continue
            f, u, x, spray = self._script("source", _SOURCE)(
                keys=[f"th:{{{tag}}}:f", f"th:{{{tag}}}:sf", f"th:{{{tag}}}:u", f"th:{{{tag}}}:x",
                      f"th:{{{tag}}}:b"],
                args=[window, s.spray_window, acct, int(not user_exists), s.spray_min_accounts,
                      s.spray_min_failures, s.spray_unknown_share, s.spray_block])
            out[kind] = f
            out[f"{kind}_accounts"] = u
            out[f"{kind}_unknown"] = x
            out[f"{kind}_spray"] = spray
        if password is not None:
            pw = self._h("pw", password)
            out["password_accounts"] = self._script("password", _PASSWORD)(
                keys=[f"th:{{pw:{pw}}}:u", f"th:{{pw:{pw}}}:b"],
                args=[s.password_spray_window, acct, s.password_spray_accounts])
        return out

    def record_success(self, email: str, ctx) -> None:
        """Clear the streak and remember where the owner signs in, so that place keeps its own budget."""
        acct = self._h("a", email)
        pipe = self._redis().pipeline(transaction=False)
        for suffix in ("c", "fu", "lu", "ff", "lf"):  # one key per DEL: a Cluster pipeline takes no multi-key DEL
            pipe.delete(f"th:{{a:{acct}}}:{suffix}")
        pipe.delete(f"th:{{p:{acct}:{ctx.ip}}}")
        known = f"th:{{a:{acct}}}:known"
        marks = [self._h("k", prefix_of(ctx.ip) or "-")]
        if ctx.device_id:
            marks.append(self._h("d", ctx.device_id))
        pipe.sadd(known, *marks)
        pipe.expire(known, 180 * 86400)
        pipe.execute()

    def clear_account(self, email: str, *, pairs: bool = False) -> None:
        """After a password reset (the stronger proof), the account starts afresh. ``pairs`` also lifts its
        account×IP blocks (the admin's "unlock"); that needs a SCAN, so the reset path leaves them to expire."""
        acct = self._h("a", email)
        r = self._redis()
        r.delete(f"th:{{a:{acct}}}:c", f"th:{{a:{acct}}}:fu", f"th:{{a:{acct}}}:lu", f"th:{{a:{acct}}}:ff",
                 f"th:{{a:{acct}}}:lf")
        if pairs:
            for key in list(r.scan_iter(match=f"th:{{p:{acct}:*}}", count=1000)):
                r.delete(key)
