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
