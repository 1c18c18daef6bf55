"""In-memory sliding-window velocity counters for replay.

The live service gets these counters from the Redis-backed defense layer; replay has no such layer, so this
tracker derives the same counters from the earlier rows of the file (outcomes of *earlier* attempts are
known to a live service too). Counter names match ``RiskConfig.velocity_rules``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["VelocityTracker", "IP_ACCOUNTS_WINDOW", "IP_ACCOUNTS_WEEK_WINDOW"]

# ``ip_accounts_day``: distinct accounts that *failed* from the IP in a fixed window armed by the first failure — the
# live defense layer's set ``th:{ip:…}:ua`` (authsvc/defense/redis_throttle.py, Settings.risk_ip_accounts_window,
# which a test keeps equal to this). Fixed, not sliding, so that replay and Redis count exactly the same thing.
IP_ACCOUNTS_WINDOW = 86400.0
# ``ip_accounts_week``: the same count over a week (``th:{ip:…}:uw``, Settings.risk_ip_accounts_week_window): slow
# spraying campaigns stay under 5 accounts per IP a day for weeks (docs/RISK.md §6, v3.2). 0 = not kept.
IP_ACCOUNTS_WEEK_WINDOW = 7 * 86400.0
_NEVER = float("-inf")  # the end of a window that is not kept


class VelocityTracker:
    def __init__(self, window_seconds: float = 3600.0, min_attempts_for_share: int = 10,
                 ip_accounts_window: float = IP_ACCOUNTS_WINDOW,
                 ip_accounts_week_window: float = IP_ACCOUNTS_WEEK_WINDOW) -> None:
        self.window = window_seconds
        self.min_attempts_for_share = min_attempts_for_share
        self.ip_accounts_window = ip_accounts_window
        self.ip_accounts_week_window = ip_accounts_week_window
        # ip → [day window end, the one account that failed from it since the start, or a set once there are several,
        #       week window end, the same for the week] (one entry for both: this runs for every attempt; most IPs fail
        # for one account only: no set for them). Each window is fixed and armed by its own first failure.
        self._ip_failed_accounts: dict[str, list] = {}
        # failures per key kind; deque of timestamps
        self._fail: dict[str, dict[str, deque[float]]] = {k: {} for k in ("account", "ip", "prefix", "asn")}
        # attempts per IP: (timestamp, user, user_was_unknown)
        self._ip_attempts: dict[str, deque[tuple[float, str, bool]]] = {}
        self._ip_users: dict[str, dict[str, int]] = {}
        self._ip_unknown: dict[str, int] = {}
        self._observed = 0

    def counters(self, ts: float, user: str, ip: str, prefix: str, asn: str) -> dict[str, float]:
        """Counters over attempts strictly before this one."""
        out: dict[str, float] = {}
        cutoff = ts - self.window
        fail = self._fail
        for kind, key, name in (
            ("account", user, "account_failures"),
            ("ip", ip, "ip_failures"),
            ("prefix", prefix, "prefix_failures"),
            ("asn", asn, "asn_failures"),
        ):
            q = fail[kind].get(key)
            if q:
                while q and q[0] < cutoff:  # inlined prune: this loop runs four times per attempt
                    q.popleft()
                if q:
                    out[name] = float(len(q))
        fa = self._ip_failed_accounts.get(ip)
        if fa is not None:
            if ts < fa[0]:  # the Redis key has not expired yet
                out["ip_accounts_day"] = _size(fa[1])
            if ts < fa[2]:  # the week's own window: it can end before the day's does
                out["ip_accounts_week"] = _size(fa[3])
        attempts = self._ip_attempts.get(ip)
        if attempts:
            self._prune_ip(ip, attempts, ts)
            n = len(attempts)
            if n:
                out["ip_distinct_users"] = float(len(self._ip_users[ip]))
                if n >= self.min_attempts_for_share:
                    out["ip_unknown_user_share"] = self._ip_unknown[ip] / n
        return out

    def observe(self, ts: float, user: str, ip: str, prefix: str, asn: str, success: bool, user_known: bool) -> None:
        if not success:
            for kind, key in (("account", user), ("ip", ip), ("prefix", prefix), ("asn", asn)):
                d = self._fail[kind]
                q = d.get(key)
                if q is None:
                    q = d[key] = deque()
                q.append(ts)
            fa = self._ip_failed_accounts.get(ip)
            if fa is None:
                week = self.ip_accounts_week_window
                self._ip_failed_accounts[ip] = [ts + self.ip_accounts_window, user, ts + week if week else _NEVER, user]
            else:  # the Redis script's SADD, with EXPIRE armed by the first failure of each window
                if ts >= fa[0]:
                    fa[0], fa[1] = ts + self.ip_accounts_window, user
                else:
                    _add(fa, 1, user)
                if ts >= fa[2]:
                    if self.ip_accounts_week_window:
                        fa[2], fa[3] = ts + self.ip_accounts_week_window, user
                else:
                    _add(fa, 3, user)
        attempts = self._ip_attempts.get(ip)
        if attempts is None:
            attempts = self._ip_attempts[ip] = deque()
            self._ip_users[ip] = {}
            self._ip_unknown[ip] = 0
        attempts.append((ts, user, not user_known))
        users = self._ip_users[ip]
        users[user] = users.get(user, 0) + 1
        if not user_known:
            self._ip_unknown[ip] += 1
        self._observed += 1
        if self._observed % 200_000 == 0:
            self._sweep(ts)

    def _prune_ts(self, q: deque[float], now: float) -> None:
        cutoff = now - self.window
        while q and q[0] < cutoff:
            q.popleft()

    def _prune_ip(self, ip: str, attempts: deque[tuple[float, str, bool]], now: float) -> None:
        cutoff = now - self.window
        users = self._ip_users[ip]
        while attempts and attempts[0][0] < cutoff:
            _, user, unknown = attempts.popleft()
            c = users[user] - 1
            if c:
                users[user] = c
            else:
                del users[user]
            if unknown:
                self._ip_unknown[ip] -= 1

    def _sweep(self, now: float) -> None:
        """Drop keys whose windows emptied, so memory follows the window, not the whole file."""
        fa = self._ip_failed_accounts
        for ip in [ip for ip, (day_end, _, week_end, _) in fa.items() if now >= day_end and now >= week_end]:
            del fa[ip]
        for d in self._fail.values():
            for key in list(d):
                q = d[key]
                self._prune_ts(q, now)
                if not q:
                    del d[key]
        for ip in list(self._ip_attempts):
            q = self._ip_attempts[ip]
            self._prune_ip(ip, q, now)
            if not q:
                del self._ip_attempts[ip], self._ip_users[ip], self._ip_unknown[ip]


def _add(entry: list, slot: int, user: str) -> None:
    """Add an account to a window of an ``_ip_failed_accounts`` entry: one account stays a str, several a set."""
    accounts = entry[slot]
    if accounts.__class__ is str:
        if accounts != user:
            entry[slot] = {accounts, user}
    else:
        accounts.add(user)


def _size(accounts: str | set[str]) -> float:
    return 1.0 if accounts.__class__ is str else float(len(accounts))
