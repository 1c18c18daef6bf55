"""The service's Redis-backed risk store gives the same scores as the in-memory store the evaluation uses."""

import random

from authsvc.risk import InMemoryRiskStore, LoginContext, RiskEngine
from authsvc.risk.live import LiveRiskScorer, RedisRiskStore

UAS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
]


def _logins(n=300, seed=3):
    rnd = random.Random(seed)
    t = 1_700_000_000.0
    for _ in range(n):
        t += rnd.uniform(60, 7200)
        user = f"{rnd.randint(1, 12)}"
        home = int(user)
        ip = f"203.0.{home}.{rnd.randint(1, 5)}" if rnd.random() < 0.8 else f"198.51.{rnd.randint(0, 255)}.9"
        yield LoginContext(user=user, ip=ip, user_agent=UAS[(home + (rnd.random() < 0.1)) % 3], timestamp=t)


def test_redis_store_scores_exactly_like_the_in_memory_store(redis_client):
    live = RiskEngine(store=RedisRiskStore(lambda: redis_client))
    ref = RiskEngine(store=InMemoryRiskStore())
    compared = 0
    for ctx in _logins():
        a, b = live.score(ctx), ref.score(ctx)
        assert (a.action, [r.code for r in a.reasons]) == (b.action, [r.code for r in b.reasons])
        assert abs(a.score - b.score) < 1e-9
        live.learn(ctx)
        ref.learn(ctx)
        compared += 1
    assert compared == 300


def test_history_is_capped_and_aged(redis_client):
    store = RedisRiskStore(lambda: redis_client, max_entries=5, max_age_days=1)
    engine = RiskEngine(store=store)
    t = 1_700_000_000.0
    for i in range(8):
        engine.learn(LoginContext(user="7", ip="203.0.113.5", user_agent=UAS[0], timestamp=t + i))
    assert store.user_profile("7", t + 10).n == 5  # capped
    assert store.user_profile("7", t + 2 * 86400).n == 0  # aged out
    assert store.global_stats().n_logins == 8 and store.global_stats().n_users == 1


class _User:
    id = 42


class _Ctx:
    ip = "203.0.113.5"
    user_agent = UAS[0]
    device_id = None


def test_every_challenge_has_a_reason(redis_client):
    scorer = LiveRiskScorer(RiskEngine(store=RedisRiskStore(lambda: redis_client)))
    first = scorer.score(_User(), _Ctx(), breached=False)
    assert first.action == "step_up" and first.reasons  # no history: said so
    scorer.learn(_User(), _Ctx())
    breached = scorer.score(_User(), _Ctx(), breached=True)
    assert breached.action != "allow" and "breached_password" in [r.code for r in breached.reasons]


def test_throw_away_accounts_do_not_dilute_the_global_statistics(redis_client):
    """Issue #19: 45 throw-away accounts with one login each shifted every score by 0.5–1.1. Only verified accounts
    with a few learned logins (or old ones) count in the global statistics."""
    import datetime as dt
    from types import SimpleNamespace

    now = 1_700_000_000.0
    scorer = LiveRiskScorer(RiskEngine(store=RedisRiskStore(lambda: redis_client)), clock=lambda: now)
    created = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
    verified = created

    def user(uid, ok=True):
        return SimpleNamespace(id=uid, email_verified_at=verified if ok else None, created_at=created)

    def ctx(ip, ua=UAS[0]):
        return SimpleNamespace(ip=ip, user_agent=ua, device_id=None)

    for uid in range(1, 6):  # five established users, four logins each from home
        for _ in range(4):
            scorer.learn(user(uid), ctx(f"203.0.{uid}.1"))
    owner, attacker = user(1), ctx("198.51.100.9", UAS[1])
    before_home, before_away = (scorer.score(owner, ctx("203.0.1.1"), breached=False).score,
                                scorer.score(owner, attacker, breached=False).score)
    for uid in range(100, 145):  # 45 throw-away accounts, one login each (verified or not)
        scorer.learn(user(uid, ok=uid % 2 == 0), ctx(f"192.0.2.{uid}", UAS[2]))
    assert scorer.score(owner, ctx("203.0.1.1"), breached=False).score == before_home
    assert scorer.score(owner, attacker, breached=False).score == before_away
    # An old verified account counts from its first login.
    old = SimpleNamespace(id=200, email_verified_at=verified, created_at=created - dt.timedelta(days=60))
    assert scorer.established(old) and not scorer.established(user(201)) and not scorer.established(user(1, ok=False))
