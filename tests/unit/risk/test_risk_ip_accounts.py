"""Issue 16: ``ip_accounts_day`` — accounts that failed from one IP in a day-long fixed window.

Low-and-slow password spraying (a few IPs, weeks, a fraction of an attempt per IP per hour) stays under every 1-hour
counter and under the spray block (20 failures in 30 min). The defense layer keeps a set of (hashes of) the accounts that
failed from each IP over ``risk_ip_accounts_window`` and passes its count to the engine; the offline replay derives
the same count from earlier rows. These tests hold the two to the same definition (one model, one place)."""

from __future__ import annotations

import random

import pytest

from authsvc.config import Settings
from authsvc.defense.redis_throttle import RedisThrottle
from authsvc.risk import LoginContext, RiskEngine
from authsvc.risk.config import DEFAULT_VELOCITY_RULES
from authsvc.risk.evaluation.velocity import IP_ACCOUNTS_WINDOW, VelocityTracker
from authsvc.risk.live import LiveRiskScorer


class _Ctx:
    def __init__(self, ip, user_agent="Mozilla/5.0", device_id=None):
        self.ip, self.user_agent, self.device_id = ip, user_agent, device_id


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _throttle(redis_client, **overrides):
    settings = Settings(spray_min_failures=10**6, throttle_ip_limit=10**6, throttle_prefix_limit=10**6,
                        throttle_pair_limit=10**6, account_lockout_threshold=10**6, **overrides)
    return RedisThrottle(redis_getter=lambda: redis_client, settings=settings, secret=b"k" * 32)


def _observe(tr: VelocityTracker, ts: float, user: str, ip: str, success: bool = False) -> None:
    tr.observe(ts, user, ip, ip.rsplit(".", 1)[0] + ".0/24", "AS1", success, True)


def test_replay_and_live_windows_are_the_same_setting() -> None:
    assert Settings().risk_ip_accounts_window == IP_ACCOUNTS_WINDOW == VelocityTracker().ip_accounts_window
    rule = {r.counter: r for r in DEFAULT_VELOCITY_RULES}["ip_accounts_day"]
    assert rule.code == "ip_many_accounts_day"


def test_repeating_one_account_does_not_inflate_the_count() -> None:
    # Attacker's view first: hammering one account from one IP is one account, not a spray.
    tr = VelocityTracker()
    for i in range(50):
        _observe(tr, 1000.0 + i, "victim", "198.51.100.7")
    assert tr.counters(2000.0, "x", "198.51.100.7", "198.51.100.0/24", "AS1")["ip_accounts_day"] == 1.0


def test_successes_are_not_counted_and_the_current_attempt_is_excluded() -> None:
    tr = VelocityTracker()
    for i in range(8):  # a family behind one NAT signing in fine: not a spray
        _observe(tr, 1000.0 + i, f"owner{i}", "203.0.113.9", success=True)
    assert "ip_accounts_day" not in tr.counters(2000.0, "u", "203.0.113.9", "203.0.113.0/24", "AS1")
    _observe(tr, 2000.0, "a", "203.0.113.9")
    # counters() is called before observe() for an attempt: the count is of earlier failures only.
    assert tr.counters(2001.0, "b", "203.0.113.9", "203.0.113.0/24", "AS1")["ip_accounts_day"] == 1.0


def test_slow_spray_over_hours_is_counted_where_the_hour_window_forgets_it() -> None:
    tr = VelocityTracker()
    t = 0.0
    for i in range(12):  # one account every 100 minutes: never 2 in the same hour
        _observe(tr, t, f"acct{i}", "192.0.2.77")
        t += 6000.0
    c = tr.counters(t, "next", "192.0.2.77", "192.0.2.0/24", "AS1")
    assert c["ip_accounts_day"] == 12.0
    assert c.get("ip_distinct_users", 0.0) <= 1.0  # the 1-hour counter sees at most the last one


def test_the_window_is_fixed_from_the_first_failure_like_redis_expire() -> None:
    tr = VelocityTracker(ip_accounts_window=100.0)
    _observe(tr, 0.0, "a", "192.0.2.1")
    _observe(tr, 90.0, "b", "192.0.2.1")
    assert tr.counters(99.0, "c", "192.0.2.1", "192.0.2.0/24", "AS1")["ip_accounts_day"] == 2.0
    # At 100 s the key armed at 0 s has expired, although "b" is only 10 s old: a fixed window, as in Redis.
    assert "ip_accounts_day" not in tr.counters(100.0, "c", "192.0.2.1", "192.0.2.0/24", "AS1")
    _observe(tr, 150.0, "c", "192.0.2.1")
    assert tr.counters(151.0, "d", "192.0.2.1", "192.0.2.0/24", "AS1")["ip_accounts_day"] == 1.0


def test_engine_scores_the_counter_as_a_named_velocity_term() -> None:
    engine = RiskEngine()
    base = dict(user="1", ip="192.0.2.77", user_agent="Mozilla/5.0", timestamp=1_700_000_000.0)
    quiet = engine.score(LoginContext(**base, velocity={"ip_accounts_day": 4}))
    spray = engine.score(LoginContext(**base, velocity={"ip_accounts_day": 40}))
    assert "ip_many_accounts_day" not in [r.code for r in quiet.reasons]
    assert "ip_many_accounts_day" in [r.code for r in spray.reasons]
    assert spray.score > quiet.score


def test_live_counter_hostile_addresses_and_accounts(redis_client) -> None:
    th = _throttle(redis_client)
    # Unicode look-alike and case variants of an address are different submitted accounts (counted as such);
    # the IP is keyed canonically, so the IPv4-mapped spelling is the same source.
    for email in ("alice@example.com", "ALICE@example.com", "ａlice@example.com", "x" * 300 + "@example.com"):
        th.record_failure(email, _Ctx("::ffff:198.51.100.7"), user_exists=False)
    v = th.precheck("someone@example.com", _Ctx("198.51.100.7"))
    assert v.counts["ip_accounts_day"] == 4
    # Another IP, and a request without an address, see nothing.
    assert th.precheck("someone@example.com", _Ctx("198.51.100.8")).counts["ip_accounts_day"] == 0
    assert th.precheck("someone@example.com", _Ctx(None)).counts["ip_accounts_day"] == 0


def test_live_counter_expires_with_its_window(redis_client) -> None:
    th = _throttle(redis_client, risk_ip_accounts_window=60)
    th.record_failure("a@example.com", _Ctx("192.0.2.44"), user_exists=True)
    ttl = redis_client.ttl("th:{ip:192.0.2.44}:ua")
    assert 0 < ttl <= 60
    th.record_failure("b@example.com", _Ctx("192.0.2.44"), user_exists=True)
    assert 0 < redis_client.ttl("th:{ip:192.0.2.44}:ua") <= ttl  # not re-armed: a fixed window
    assert redis_client.ttl("th:{pfx:192.0.2.0/24}:ua") == -2  # kept for IP sources only


def test_live_and_replay_count_the_same(redis_client) -> None:
    """A random mix of failures and successes from a few IPs: the Redis count equals the replay's before every
    attempt."""
    th = _throttle(redis_client)
    tr = VelocityTracker()
    rnd = random.Random(5)
    ips = [f"192.0.2.{i}" for i in (10, 11, 12)]
    for k in range(300):
        ip, user = rnd.choice(ips), f"user{rnd.randint(1, 60)}@example.com"
        live = th.precheck(user, _Ctx(ip)).counts["ip_accounts_day"]
        replay = tr.counters(float(k), user, ip, "192.0.2.0/24", "AS1").get("ip_accounts_day", 0.0)
        assert live == replay
        ok = rnd.random() < 0.2
        if ok:
            th.record_success(user, _Ctx(ip))
        else:
            th.record_failure(user, _Ctx(ip), user_exists=True)
        _observe(tr, float(k), user, ip, success=ok)


def test_live_scorer_passes_the_counter_to_the_engine(redis_client) -> None:
    from authsvc.risk.live import RedisRiskStore

    th = _throttle(redis_client)
    for i in range(30):
        th.record_failure(f"acct{i}@example.com", _Ctx("192.0.2.99"), user_exists=True)
    verdict = th.precheck("victim@example.com", _Ctx("192.0.2.99"))

    class _User:
        id = 77

    scorer = LiveRiskScorer(RiskEngine(store=RedisRiskStore(lambda: redis_client)), clock=_Clock(1_700_000_000.0))
    d = scorer.score(_User(), _Ctx("192.0.2.99"), breached=False, velocity=verdict.counts)
    assert "ip_many_accounts_day" in [r.code for r in d.reasons]


@pytest.mark.parametrize("window", [0, 59, 31 * 86400])
def test_window_setting_is_validated(window) -> None:
    from authsvc.config import ConfigError

    with pytest.raises(ConfigError, match="(?i)risk_ip_accounts_window"):
        Settings(risk_ip_accounts_window=window).validate()
