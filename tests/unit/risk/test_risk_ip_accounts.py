"""Issue 16: ``ip_accounts_day`` — accounts that failed from one IP in a day-long fixed window.

Low-and-slow password spraying (a few IPs, weeks, a fraction of an attempt per IP per hour) stays under every 1-hour
counter and under the spray block (20 failures in 30 min). The defense layer keeps a set of (hashes of) the accounts that
failed from each IP over ``risk_ip_accounts_window`` and passes its count to the engine; the offline replay derives
the same count from earlier rows. These tests hold the two to the same definition (one model, one place)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from authsvc.config import Settings
from authsvc.defense.redis_throttle import RedisThrottle
from authsvc.risk import LoginContext, RiskEngine
from authsvc.risk.config import DEFAULT_VELOCITY_RULES, VelocityRule
from authsvc.risk.evaluation.velocity import IP_ACCOUNTS_WEEK_WINDOW, IP_ACCOUNTS_WINDOW, VelocityTracker
from authsvc.risk.signals import velocity_terms
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
    assert (Settings().risk_ip_accounts_week_window == IP_ACCOUNTS_WEEK_WINDOW
            == VelocityTracker().ip_accounts_week_window == 7 * 86400)
    week = {r.counter: r for r in DEFAULT_VELOCITY_RULES}["ip_accounts_week"]
    assert week.code == "ip_many_accounts_week" and week.group == rule.group == "ip_accounts"


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
    _live_and_replay_agree(redis_client, seed=5, ips=(10, 11, 12), accounts=60, attempts=300)


def _live_and_replay_agree(redis_client, *, seed: int, ips, accounts: int, attempts: int) -> dict:
    """Random failures and successes from a few IPs: before every attempt, Redis's day and week counts equal the
    replay's. Returns the last live counts."""
    th = _throttle(redis_client)
    tr = VelocityTracker()
    rnd = random.Random(seed)
    addresses = [f"192.0.2.{i}" for i in ips]
    for k in range(attempts):
        ip, user = rnd.choice(addresses), f"user{rnd.randint(1, accounts)}@example.com"
        live = th.precheck(user, _Ctx(ip)).counts
        replay = tr.counters(float(k), user, ip, "192.0.2.0/24", "AS1")
        assert live["ip_accounts_day"] == replay.get("ip_accounts_day", 0.0)
        assert live["ip_accounts_week"] == replay.get("ip_accounts_week", 0.0)
        ok = rnd.random() < 0.2
        if ok:
            th.record_success(user, _Ctx(ip))
        else:
            th.record_failure(user, _Ctx(ip), user_exists=True)
        _observe(tr, float(k), user, ip, success=ok)
    return live

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


# --- v3.2: the same count over a week (slow spraying campaigns) --------------------------------------------------------

@pytest.mark.parametrize("window", [-1, 1, 59, 31 * 86400])
def test_week_window_setting_is_validated(window) -> None:
    from authsvc.config import ConfigError

    with pytest.raises(ConfigError, match="(?i)risk_ip_accounts_week_window"):
        Settings(risk_ip_accounts_week_window=window).validate()
    Settings(risk_ip_accounts_week_window=0).validate()  # off


def test_slow_spray_under_the_day_rule_is_caught_by_the_week_rule() -> None:
    """Two accounts a day from one IP for a week: never 5 in a day, 14 in the week."""
    tr = VelocityTracker()
    for day in range(7):
        for k in range(2):
            _observe(tr, day * 86400 + k * 3000, f"acct{day}-{k}", "192.0.2.77")
    c = tr.counters(7 * 86400 - 1, "next", "192.0.2.77", "192.0.2.0/24", "AS1")
    assert c["ip_accounts_day"] == 2.0 and c["ip_accounts_week"] == 14.0
    total, reasons = velocity_terms(c, DEFAULT_VELOCITY_RULES)
    assert [r.code for r in reasons] == ["ip_many_accounts_week"] and total == pytest.approx(1.5 * (1 + math.log2(1.4)))
    # The same IP's owner signing in again and again, and one account hammered, stay at one account.
    tr = VelocityTracker()
    for i in range(200):
        _observe(tr, i * 3600.0, "victim", "198.51.100.7")
        _observe(tr, i * 3600.0 + 1, "owner", "198.51.100.7", success=True)
    assert tr.counters(200 * 3600.0, "x", "198.51.100.7", "198.51.100.0/24", "AS1")["ip_accounts_week"] == 1.0


def test_week_window_is_fixed_and_can_end_before_the_day_window() -> None:
    tr = VelocityTracker(ip_accounts_window=100.0, ip_accounts_week_window=300.0)
    _observe(tr, 0.0, "a", "192.0.2.1")
    _observe(tr, 250.0, "b", "192.0.2.1")   # a new day window (0–100 ended), the week armed at 0 s still open
    c = tr.counters(299.0, "c", "192.0.2.1", "192.0.2.0/24", "AS1")
    assert c["ip_accounts_day"] == 1.0 and c["ip_accounts_week"] == 2.0
    c = tr.counters(300.0, "c", "192.0.2.1", "192.0.2.0/24", "AS1")
    assert c["ip_accounts_day"] == 1.0 and "ip_accounts_week" not in c  # the week ended, the day armed at 250 s not
    off = VelocityTracker(ip_accounts_week_window=0)
    for i in range(20):
        _observe(off, float(i), f"u{i}", "192.0.2.1")
    assert "ip_accounts_week" not in off.counters(30.0, "x", "192.0.2.1", "192.0.2.0/24", "AS1")


def test_day_and_week_terms_of_one_ip_never_add_up() -> None:
    """A busy IP is in both windows: only the larger term counts, so the week rule cannot double the day's."""
    both = {"ip_accounts_day": 40.0, "ip_accounts_week": 40.0}
    total, reasons = velocity_terms(both, DEFAULT_VELOCITY_RULES)
    day_only, _ = velocity_terms({"ip_accounts_day": 40.0}, DEFAULT_VELOCITY_RULES)
    assert total == day_only == pytest.approx(4.5) and [r.code for r in reasons] == ["ip_many_accounts_day"]
    total, reasons = velocity_terms({"ip_accounts_day": 6.0, "ip_accounts_week": 80.0}, DEFAULT_VELOCITY_RULES)
    assert [r.code for r in reasons] == ["ip_many_accounts_week"] and total == pytest.approx(4.5)
    # A group never swallows rules outside it, and rules of different groups add up.
    rules = (VelocityRule("a", 1, 1.0, "a", "{value}", group="g"), VelocityRule("b", 1, 2.0, "b", "{value}", group="g"),
             VelocityRule("c", 1, 1.0, "c", "{value}"), VelocityRule("d", 1, 0.5, "d", "{value}", group="h"))
    total, reasons = velocity_terms({"a": 1, "b": 1, "c": 1, "d": 1}, rules)
    assert total == 3.5 and sorted(r.code for r in reasons) == ["b", "c", "d"]
    # A tie keeps the first rule of the group (the day's reason for the same size).
    total, reasons = velocity_terms({"a": 2, "b": 1}, (rules[0], dataclasses.replace(rules[1], weight=1.0)))
    assert total == 2.0 and [r.code for r in reasons] == ["a"]


def test_live_week_set_hostile_addresses_expiry_and_off(redis_client) -> None:
    th = _throttle(redis_client, risk_ip_accounts_window=60, risk_ip_accounts_week_window=600)
    for email in ("alice@example.com", "ALICE@example.com", "ａlice@example.com", "x" * 300 + "@example.com",
                  "alice@example.com"):
        th.record_failure(email, _Ctx("::ffff:192.0.2.45"), user_exists=False)
    counts = th.precheck("someone@example.com", _Ctx("192.0.2.45")).counts
    assert counts["ip_accounts_week"] == counts["ip_accounts_day"] == 4
    ttl = redis_client.ttl("th:{ip:192.0.2.45}:uw")
    assert 60 < ttl <= 600
    th.record_failure("b@example.com", _Ctx("192.0.2.45"), user_exists=True)
    assert 0 < redis_client.ttl("th:{ip:192.0.2.45}:uw") <= ttl  # not re-armed: a fixed window
    assert redis_client.exists("th:{pfx:192.0.2.0/24}:uw") == 0  # kept for IP sources only
    assert th.precheck("someone@example.com", _Ctx(None)).counts["ip_accounts_week"] == 0
    off = _throttle(redis_client, risk_ip_accounts_week_window=0)
    off.record_failure("c@example.com", _Ctx("192.0.2.46"), user_exists=True)
    assert redis_client.exists("th:{ip:192.0.2.46}:uw") == 0
    assert off.precheck("someone@example.com", _Ctx("192.0.2.46")).counts["ip_accounts_week"] == 0


def test_live_and_replay_count_the_same_week(redis_client) -> None:
    """A random mix of failures and successes (successes never remove an account) from a few IPs: Redis's week and
    day counts equal the replay's before every attempt. Expiry is the tracker's fixed window (tested above) and the
    TTL armed once (test_live_week_set_hostile_addresses_expiry_and_off)."""
    live = _live_and_replay_agree(redis_client, seed=9, ips=(20, 21), accounts=40, attempts=200)
    assert live["ip_accounts_week"] > 10  # the run reached the rule's threshold

def test_live_scorer_names_the_week_when_the_day_is_quiet(redis_client) -> None:
    from authsvc.risk.live import RedisRiskStore

    th = _throttle(redis_client)
    for i in range(12):
        th.record_failure(f"slow{i}@example.com", _Ctx("192.0.2.98"), user_exists=True)
    redis_client.delete("th:{ip:192.0.2.98}:ua")  # the day window has ended; the week's has not
    verdict = th.precheck("victim@example.com", _Ctx("192.0.2.98"))
    assert verdict.counts["ip_accounts_day"] == 0 and verdict.counts["ip_accounts_week"] == 12

    class _User:
        id = 78

    scorer = LiveRiskScorer(RiskEngine(store=RedisRiskStore(lambda: redis_client)), clock=_Clock(1_700_000_000.0))
    d = scorer.score(_User(), _Ctx("192.0.2.98"), breached=False, velocity=verdict.counts)
    codes = [r.code for r in d.reasons]
    assert "ip_many_accounts_week" in codes and "ip_many_accounts_day" not in codes
