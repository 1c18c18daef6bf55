"""P6 — risk-scoring latency per login with a large population of history (default 1 M users).

    .venv/bin/python bench/p6_risk.py [--users 1000000] [--per-user 3] [--samples 20000]

authsvc keeps risk history in Redis (``authsvc.risk.live.RedisRiskStore``: a capped list per user, global counts in
one hash), not in PostgreSQL: scoring is three Redis round trips and learning two, whatever the population. The
bench fills a dedicated Redis database with N users' histories (pipelined, the same entry format the store writes),
then times ``RiskEngine.score`` + ``learn`` for random existing users, against a baseline of one Redis PING round
trip in the same process (the floor any networked store pays).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from authsvc.risk import LoginContext, RiskEngine  # noqa: E402
from authsvc.risk.live import RedisRiskStore  # noqa: E402
from authsvc.risk.signals import extract_features  # noqa: E402
from authsvc.risk.store import HOUR_KEY, LEVELS  # noqa: E402

UAS = ["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
       "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
       "Safari/537.36",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
       "Mobile/15E148 Safari/604.1"]


def ctx_for(uid: int, t: float, rnd: random.Random) -> LoginContext:
    ip = f"{10 + uid % 200}.{(uid >> 8) % 256}.{uid % 256}.{rnd.randint(1, 254)}"
    return LoginContext(user=str(uid), ip=ip, user_agent=UAS[uid % 3], timestamp=t)


def fill(r: redis.Redis, users: int, per_user: int, now: float) -> None:
    rnd = random.Random(1)
    pipe = r.pipeline(transaction=False)
    counts: dict[str, int] = {}
    t0 = time.time()
    for uid in range(users):
        for k in range(per_user):
            c = ctx_for(uid, now - 86400 * (k + 1), rnd)
            f = extract_features(c, None)
            values = list(f.ip_values + f.ua_values)
            pipe.rpush(f"risk:{{u{uid}}}:h", json.dumps({"t": c.timestamp, "v": values, "h": f.hour, "c": None,
                                                         "la": None, "lo": None}, separators=(",", ":")))
            for level, value in zip(LEVELS, values):
                key = f"{level}|{value}"
                counts[key] = counts.get(key, 0) + 1
            hk = f"{HOUR_KEY}|{f.hour}"
            counts[hk] = counts.get(hk, 0) + 1
        if uid % 5000 == 4999:
            pipe.execute()
            if uid % 100000 == 99999:
                print(f"  {uid + 1:,} users filled ({time.time() - t0:.0f} s)", flush=True)
    pipe.execute()
    items = iter(counts.items())
    while chunk := dict(itertools.islice(items, 10000)):
        r.hset("risk:{g}:c", mapping=chunk)
    distinct = {f"d:{lvl}": 0 for lvl in (*LEVELS, HOUR_KEY)}
    for key in counts:
        distinct["d:" + key.split("|", 1)[0]] += 1
    r.hset("risk:{g}:s", mapping={"n": users * per_user, "users": users, **distinct})


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--per-user", type=int, default=3)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--redis", default=os.environ.get("BENCH_RISK_REDIS_URL", "redis://127.0.0.1:6379/13"))
    a = ap.parse_args()
    r = redis.Redis.from_url(a.redis, decode_responses=True)
    r.flushdb()
    now = time.time()
    t0 = time.time()
    fill(r, a.users, a.per_user, now)
    print(f"filled {a.users:,} users × {a.per_user} logins in {time.time() - t0:.0f} s; "
          f"redis used {r.info('memory')['used_memory_human']}")
    engine = RiskEngine(store=RedisRiskStore(lambda: r))
    rnd = random.Random(2)
    ping, score, learn = [], [], []
    for _ in range(a.samples):
        uid = rnd.randrange(a.users)
        c = ctx_for(uid, now, rnd)
        t1 = time.perf_counter()
        r.ping()
        t2 = time.perf_counter()
        d = engine.score(c)
        t3 = time.perf_counter()
        engine.learn(c)
        t4 = time.perf_counter()
        ping.append(t2 - t1)
        score.append(t3 - t2)
        learn.append(t4 - t3)
        assert d.action in ("allow", "step_up", "deny")
    ms = lambda x: x * 1000  # noqa: E731
    res = {"users": a.users, "per_user": a.per_user, "samples": a.samples,
           "ping_p50_ms": ms(pct(ping, .5)), "ping_p99_ms": ms(pct(ping, .99)),
           "score_p50_ms": ms(pct(score, .5)), "score_p99_ms": ms(pct(score, .99)),
           "learn_p50_ms": ms(pct(learn, .5)), "learn_p99_ms": ms(pct(learn, .99)),
           "added_p50_ms": ms(statistics.median([s + l for s, l in zip(score, learn)])),
           "added_p99_ms": ms(pct([s + l for s, l in zip(score, learn)], .99))}
    print(f"redis PING round trip  p50 {res['ping_p50_ms']:.3f} ms  p99 {res['ping_p99_ms']:.3f} ms")
    print(f"score                  p50 {res['score_p50_ms']:.3f} ms  p99 {res['score_p99_ms']:.3f} ms")
    print(f"learn                  p50 {res['learn_p50_ms']:.3f} ms  p99 {res['learn_p99_ms']:.3f} ms")
    print(f"added per login        p50 {res['added_p50_ms']:.3f} ms  p99 {res['added_p99_ms']:.3f} ms (bar p99 ≤ 2 ms)"
          f"  = {res['added_p50_ms'] / res['ping_p50_ms']:.1f}× a PING")
    r.flushdb()
    from bench.harness import dump

    dump("p6_risk", res)


if __name__ == "__main__":
    main()
