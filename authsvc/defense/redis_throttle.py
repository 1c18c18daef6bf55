"""Brute-force, stuffing and spraying defense in Redis, checked before any password hash is computed.

What is counted (failures only — a success never charges a limiter, it clears the account's streak):

| scope | key (hash tag = the entity) | refuses when |
|---|---|---|
| account × IP | ``th:{p:<acct>:<ip>}`` | ≥ pair_limit failures in the window (Auth0's pair block); never the account's own trusted device |
| IP, prefix (/24, /48), IPv6 /32, ASN | ``th:{ip:<ip>}:f``, ``th:{pfx:…}:f``, ``th:{p32:…}:f`` … | ≥ their limits in their windows |
| spray from an IP/prefix | ``th:{ip:<ip>}:u`` (HyperLogLog of addresses), ``:sf`` (failures) | ≥ spray_min_failures failures and either ≥ spray_min_accounts distinct addresses or distinct addresses ≥ spray_unknown_share of the failures (a list, not a typo): the source is blocked for spray_block |
| accounts failed from an IP, long windows | ``th:{ip:<ip>}:ua`` / ``:uw`` (sets of account hashes, ``risk_ip_accounts_window`` / ``risk_ip_accounts_week_window``) | never: their sizes go to the risk engine as ``ip_accounts_day`` / ``ip_accounts_week`` (issue 16) |
| one password across accounts | ``th:{pw:<hmac of NFKC>}`` HyperLogLog of accounts | ≥ password_spray_accounts: that password (and its NFKC twins) is refused from unfamiliar places |
| correct password, stopped (risk deny, MFA) | ``th:{pk:<acct>:<prefix>}`` | ≥ throttle_proven_limit in its window: refused before hashing, no more receipts; the owner is told once (``th:{a:<acct>}:n``) |
| account, unfamiliar places | ``th:{a:<acct>}:fu`` | ≥ account_lockout_threshold → delay doubling with each further failure (60 s, 120 s, … ≤ 1 h) |
| account, familiar places | ``th:{a:<acct>}:ff`` | its own, larger budget — strangers cannot use it up |
| account, consecutive | ``th:{a:<acct>}:c`` | ≥ account_failure_cap (NIST 100) → a reset is required |
| whole service, unfamiliar attempts | ``th:{global}:bucket`` (token bucket; sizing in budget.py) | the bucket of password checks for strangers is empty |

Accounts and passwords appear only as keyed hashes (HMAC with the app's secret), never in clear. Counting is by the
*submitted* e-mail, so unknown and real accounts behave alike (no enumeration through throttling). Whether the account
exists is counted (``:x``, for the operator's attacks page) but never decides a block: a prober who mixes own accounts
and random addresses could otherwise tip a share with one probe and read the answer from the next response (issue 12).
IPs are keyed in canonical form: IPv4-mapped IPv6 (``::ffff:a.b.c.d``) as the IPv4 address. Every Lua script
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
from functools import lru_cache

from redis.cluster import ClusterPipeline

from authsvc.config import Settings
from authsvc.errors import Throttled
from authsvc.passwords.policy import normalize as normalize_password
from authsvc.redis_scripts import ScriptCache

# INCR a window counter; arm the expiry on first use. Returns {count, ttl}.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""

# One source (IP or prefix): failures in the limit window, and — in the shorter spray window — failures, distinct
# addresses (HyperLogLog) and unknown-account failures; sets the block key when the source looks like a spray.
# The decision uses failures and distinct addresses only: unknown and known-but-wrong addresses look the same, so
# whether one address exists never changes what the source sees (x is kept for the operator, not for the verdict).
# KEYS[6] (issue 16): the set of (keyed hashes of) accounts that failed from the source in a longer fixed window
# (risk_ip_accounts_window, armed by the first failure): low-and-slow spraying stays under the spray rule for weeks,
# so its size goes to the risk engine as ``ip_accounts_day`` (a score term, never a block). SADD/SCARD are O(1); a
# set, not a HyperLogLog, so the count is exact and equals the replay's (the IP limit bounds its size per window).
# KEYS[7] is the same set over a week (risk_ip_accounts_week_window → ``ip_accounts_week``, v3.2: slow campaigns).
# Kept for IP sources only (accounts windows '0' for a prefix; a week window of '0' turns the week set off).
# KEYS: f, sf, u, x, block, ua, uw   ARGV: window, spray_window, account, unknown(0/1), min_accounts, min_failures,
#                                         distinct_share, block_seconds, accounts_window, accounts_week_window
_SOURCE = """
if ARGV[9] ~= '0' and redis.call('SADD', KEYS[6], ARGV[3]) == 1 and redis.call('TTL', KEYS[6]) < 0 then
  redis.call('EXPIRE', KEYS[6], ARGV[9])
end
if ARGV[10] ~= '0' and redis.call('SADD', KEYS[7], ARGV[3]) == 1 and redis.call('TTL', KEYS[7]) < 0 then
  redis.call('EXPIRE', KEYS[7], ARGV[10])
end
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
if sf >= tonumber(ARGV[6]) and (u >= tonumber(ARGV[5]) or u / sf >= tonumber(ARGV[7])) then
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


@lru_cache(maxsize=65_536)
def _address(ip: str):
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d from a dual-stack socket is IPv4
        return addr.ipv4_mapped
    return addr


def canonical_ip(ip: str | None) -> str | None:
    """The one spelling of an address every key uses: IPv4-mapped IPv6 unmapped, IPv6 compressed and lower-case.
    Text that is not an address is returned unchanged (it keys only itself)."""
    if not ip:
        return ip
    addr = _address(ip)
    return str(addr) if addr is not None else ip


def prefix_of(ip: str | None) -> str | None:
    """The /24 (IPv4, also when IPv4-mapped) or /48 (IPv6) network of an address."""
    addr = _address(ip) if ip else None
    if addr is None:
        return None
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def prefix32_of(ip: str | None) -> str | None:
    """The IPv6 /32 (a typical provider allocation) of an address; None for IPv4, which has no such tier."""
    addr = _address(ip) if ip else None
    if addr is None or addr.version != 6:
        return None
    return str(ipaddress.ip_network(f"{addr}/32", strict=False))


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

    def account_hash(self, email: str) -> str:
        """The keyed hash an account's marks are filed under (``th:{a:<this>}``): the admin's attacks page hashes
        known addresses with it to put an e-mail next to a hash (authsvc/admin, ``_account_labels``)."""
        return self._h("a", email)

    def _pw(self, password: str) -> str:
        """The password's keyed hash, over the NFKC form the hasher verifies: twins (fullwidth letters, composed or
        decomposed accents) are one password to argon2, so they are one password to the spray limit too."""
        return self._h("pw", normalize_password(password))

    @staticmethod
    def _proven_key(acct: str, ip: str | None) -> str:
        return f"th:{{pk:{acct}:{prefix_of(ip) or ip or '-'}}}"

    def _script(self, name: str, body: str):
        return self._scripts.get(name, body)

    def _sources(self, ctx) -> list[tuple[str, str, int, int]]:
        """(kind, id, limit, window) for each network source of the request."""
        s = self.s
        out = []
        ip = canonical_ip(ctx.ip)
        if ip:
            out.append(("ip", ip, s.throttle_ip_limit, s.throttle_ip_window))
            pfx = prefix_of(ip)
            if pfx:
                out.append(("pfx", pfx, s.throttle_prefix_limit, s.throttle_prefix_window))
            p32 = prefix32_of(ip)
            if p32:  # counted like the ASN (no spray verdict): one /32 holds many customers' /48s
                out.append(("p32", p32, s.throttle_prefix32_limit, s.throttle_prefix32_window))
            asn = self.asn_lookup(ip) if self.asn_lookup else None
            if asn:
                out.append(("asn", str(asn), s.throttle_asn_limit, s.throttle_asn_window))
        return out

    # --- the check before hashing ------------------------------------------------------------------------------------
    def precheck(self, email: str, ctx, password: str | None = None) -> Verdict:
        """Raise Throttled/ResetRequired if this attempt must be refused; costs one Redis round trip, no hashing."""
        s = self.s
        acct = self._h("a", email)
        ip = canonical_ip(ctx.ip)
        pfx = prefix_of(ip)
        pipe = self._redis().pipeline(transaction=False)
        pipe.sismember(f"th:{{a:{acct}}}:known", self._h("k", pfx or "-"))
        if ctx.device_id:
            pipe.sismember(f"th:{{a:{acct}}}:known", self._h("d", ctx.device_id))
        else:
            pipe.exists("th:none")  # keeps result positions fixed
        pipe.get(f"th:{{a:{acct}}}:c")
        pipe.ttl(f"th:{{a:{acct}}}:lu")
        pipe.ttl(f"th:{{a:{acct}}}:lf")
        pipe.get(f"th:{{p:{acct}:{ip}}}")
        pipe.ttl(f"th:{{p:{acct}:{ip}}}")
        sources = self._sources(ctx)
        for kind, ident, _, _ in sources:
            tag = f"{kind}:{ident}"
            pipe.get(f"th:{{{tag}}}:f")
            pipe.ttl(f"th:{{{tag}}}:f")
            pipe.ttl(f"th:{{{tag}}}:b")
        pw_key = pw_hash = None
        if password is not None:
            pw_hash = self._pw(password)
            pw_key = f"th:{{pw:{pw_hash}}}:b"
            pipe.ttl(pw_key)
        proven_key = self._proven_key(acct, ip)
        pipe.get(proven_key)
        pipe.ttl(proven_key)
        # Accounts that failed from this IP in the longer window (a risk signal, not a limit; see _SOURCE).
        if ip:
            pipe.scard(f"th:{{ip:{ip}}}:ua")
            pipe.scard(f"th:{{ip:{ip}}}:uw")
        else:
            pipe.exists("th:none")  # keeps result positions fixed
            pipe.exists("th:none")
        # Risk signals the record_failure scripts keep (same round trip): distinct accounts that failed from this IP
        # within spray_window, and distinct accounts this password failed on within password_spray_window. Before,
        # only the replay filled them, so the velocity rules ip_distinct_users / password_spray_accounts never fired
        # live. Both count failures only: never more than the replay's attempt-based counts.
        hll_keys = [f"th:{{ip:{ip}}}:u" if ip else None, f"th:{{pw:{pw_hash}}}:u" if pw_hash else None]
        clustered = isinstance(pipe, ClusterPipeline)
        if not clustered:
            for key in hll_keys:
                pipe.pfcount(key) if key else pipe.exists("th:none")
        res = pipe.execute()
        if clustered:  # redis-py refuses PFCOUNT in a Cluster pipeline: one more round trip each, Cluster only
            res = list(res) + [self._redis().pfcount(key) if key else 0 for key in hll_keys]
        known_prefix, known_device, consec, lock_u, lock_f, pair_n, pair_ttl = res[:7]
        familiar = bool(known_prefix or known_device)
        waits: list[tuple[int, str]] = []

        if int(consec or 0) >= s.account_failure_cap:
            raise ResetRequired()
        lock_ttl = lock_f if familiar else lock_u
        if lock_ttl and lock_ttl > 0:
            waits.append((lock_ttl, "account"))
        if int(pair_n or 0) >= s.throttle_pair_limit and not known_device:
            # The account's own trusted device is exempt: a guesser on the owner's network (an office NAT) would
            # otherwise lock the owner out there for the pair window; the device cookie is what a guesser lacks.
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
            pos += 1
            if pw_ttl and pw_ttl > 0 and not familiar:
                waits.append((pw_ttl, "password_spray"))
        proven_n, proven_ttl = res[pos:pos + 2]
        counts["ip_accounts_day"] = int(res[pos + 2] or 0) if ip else 0
        counts["ip_accounts_week"] = int(res[pos + 3] or 0) if ip else 0
        counts["ip_accounts"] = int(res[pos + 4] or 0) if ip else 0
        counts["password_accounts"] = int(res[pos + 5] or 0) if pw_hash else 0
        if int(proven_n or 0) >= s.throttle_proven_limit:
            # The right password, stopped again and again (risk deny, MFA) from this network: whoever it is, more
            # tries here only burn hashes and write receipts. Familiar or not — it is the account's own password.
            waits.append((max(proven_ttl, 1), "account_password_stopped"))
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
            keys=[f"th:{{p:{acct}:{canonical_ip(ctx.ip)}}}"], args=[s.throttle_pair_window])[0]
        budget = "ff" if familiar else "fu"
        threshold = s.account_familiar_threshold if familiar else s.account_lockout_threshold
        n, consec, lock = self._script("account", _ACCOUNT)(
            keys=[f"th:{{a:{acct}}}:{budget}", f"th:{{a:{acct}}}:c", f"th:{{a:{acct}}}:l{budget[1]}"],
            args=[s.account_failure_window, threshold, s.account_lockout_base, 30 * 86400])
        out.update(account=n, account_consecutive=consec, account_lock=lock)
        for kind, ident, _limit, window in self._sources(ctx):
            tag = f"{kind}:{ident}"
            if kind in ("asn", "p32"):
                out[kind] = self._script("count", _COUNT)(keys=[f"th:{{{tag}}}:f"], args=[window])[0]
                continue
            f, u, x, spray = self._script("source", _SOURCE)(
                keys=[f"th:{{{tag}}}:f", f"th:{{{tag}}}:sf", f"th:{{{tag}}}:u", f"th:{{{tag}}}:x",
                      f"th:{{{tag}}}:b", f"th:{{{tag}}}:ua", f"th:{{{tag}}}:uw"],
                args=[window, s.spray_window, acct, int(not user_exists), s.spray_min_accounts,
                      s.spray_min_failures, s.spray_unknown_share, s.spray_block,
                      s.risk_ip_accounts_window if kind == "ip" else 0,
                      s.risk_ip_accounts_week_window if kind == "ip" else 0])
            out[kind] = f
            out[f"{kind}_accounts"] = u
            out[f"{kind}_unknown"] = x
            out[f"{kind}_spray"] = spray
        if password is not None:
            pw = self._pw(password)
            out["password_accounts"] = self._script("password", _PASSWORD)(
                keys=[f"th:{{pw:{pw}}}:u", f"th:{{pw:{pw}}}:b"],
                args=[s.password_spray_window, acct, s.password_spray_accounts])
        return out

    def record_proven_stop(self, email: str, ctx, *, denied: bool) -> dict:
        """A correct password that did not end in a session: refused by the risk engine (``denied``) or stopped at
        the second factor. Counted per account × network (/24, /48); ``over`` means this one is beyond the limit
        (parallel requests that all passed the precheck: write nothing for them). ``notify`` (true at most once per
        proven_notice_interval per account): tell the owner someone has the password — at once for a deny, after
        proven_notice_after stops for MFA (one stop is how every MFA sign-in starts)."""
        s = self.s
        acct = self._h("a", email)
        n, ttl = self._script("count", _COUNT)(keys=[self._proven_key(acct, canonical_ip(ctx.ip))],
                                               args=[s.throttle_proven_window])
        notify = False
        if denied or n >= s.proven_notice_after:
            notify = bool(self._redis().set(f"th:{{a:{acct}}}:n", "1", nx=True, ex=s.proven_notice_interval))
        return {"count": n, "retry_after": max(int(ttl), 1), "over": n > s.throttle_proven_limit, "notify": notify}

    def record_success(self, email: str, ctx) -> None:
        """Clear the streak and remember where the owner signs in, so that place keeps its own budget.

        The login pipeline calls this only once a login has fully succeeded (second step included), with
        ``ctx.device_id`` only when that trusted device is the account's own."""
        acct = self._h("a", email)
        pipe = self._redis().pipeline(transaction=False)
        for suffix in ("c", "fu", "lu", "ff", "lf"):  # one key per DEL: a Cluster pipeline takes no multi-key DEL
            pipe.delete(f"th:{{a:{acct}}}:{suffix}")
        pipe.delete(f"th:{{p:{acct}:{canonical_ip(ctx.ip)}}}")
        # A full sign-in (second step included) from this network: its earlier stops at the second step were the
        # owner's own, not a password in a stranger's hands.
        pipe.delete(self._proven_key(acct, canonical_ip(ctx.ip)))
        known = f"th:{{a:{acct}}}:known"
        marks = [self._h("k", prefix_of(ctx.ip) or "-")]
        if ctx.device_id:
            marks.append(self._h("d", ctx.device_id))
        pipe.sadd(known, *marks)
        pipe.expire(known, 180 * 86400)
        pipe.execute()

    def clear_account(self, email: str, *, pairs: bool = False) -> None:
        """After a password reset (the stronger proof), a password change or a lockdown, the account starts
        afresh: no streak, no locks, and no familiar places or devices (some may be the attacker's, who knew the old
        password). ``pairs`` also lifts its account×IP blocks (the admin's "unlock"); that needs a SCAN, so the
        reset path leaves them to expire."""
        acct = self._h("a", email)
        r = self._redis()
        r.delete(f"th:{{a:{acct}}}:c", f"th:{{a:{acct}}}:fu", f"th:{{a:{acct}}}:lu", f"th:{{a:{acct}}}:ff",
                 f"th:{{a:{acct}}}:lf", f"th:{{a:{acct}}}:known")
        if pairs:
            for pattern in (f"th:{{p:{acct}:*}}", f"th:{{pk:{acct}:*}}"):  # account×IP, and correct-password stops
                for key in list(r.scan_iter(match=pattern, count=1000)):
                    r.delete(key)
