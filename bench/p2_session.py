"""P2 — session check req/s ÷ a hello-world route on the same server (and p50/p99).

    .venv/bin/python bench/p2_session.py [--duration 15]

Session check = GET /api/v1/session with a bearer token, answered by authsvc.api.fastpath: one Lua script in Redis
(expiry + touch); the SQL revocation cut-off is read at most every 5 s per process. Hello-world = GET /healthz on the
same gunicorn, same workers (`authsvc serve`'s default, 2×CPU+1 sync workers). Introspection: bench/p3_oauth.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import PG_URL, base_env, dump, ensure_database, make_users, reset_state, server, tmpdir, wrk  # noqa

PASSWORD = "bench password that is long enough"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)  # as `authsvc serve` runs
    ap.add_argument("--connections", type=int, default=16)
    a = ap.parse_args()
    ensure_database(PG_URL)
    env = base_env(tmpdir(), argon2_time_cost=1, argon2_memory_cost=8192, argon2_parallelism=1)
    reset_state(env)
    make_users(env, 1, PASSWORD)
    import requests

    with server(env, a.workers) as (url, _):
        # The app that signs in is the app that checks its session: same User-Agent (continuous session risk ends a
        # session used by another client, including one that sends no User-Agent at all).
        ua = "bench-app/1.0"
        token = requests.post(url + "/api/v1/login", json={"email": "user0@bench.test", "password": PASSWORD},
                              headers={"User-Agent": ua}, timeout=30).json()["session_token"]
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write('wrk.headers["Authorization"] = "Bearer %s"\n' % token)
            fh.write('wrk.headers["User-Agent"] = "%s"\n' % ua)
        wrk(url + "/healthz", duration=3, connections=a.connections)  # warm-up
        hello = wrk(url + "/healthz", duration=a.duration, connections=a.connections)
        check = wrk(url + "/api/v1/session", duration=a.duration, connections=a.connections, script=fh.name)
    assert check["non2xx"] == 0, "session checks failed"
    ratio = check["rps"] / hello["rps"]
    print(f"hello-world   {hello['rps']:8.0f} req/s  p50 {hello['p50_ms']:.2f} ms  p99 {hello['p99_ms']:.2f} ms")
    print(f"session check {check['rps']:8.0f} req/s  p50 {check['p50_ms']:.2f} ms  p99 {check['p99_ms']:.2f} ms")
    print(f"ratio session/hello = {ratio:.3f}  (bar ≥ 0.80; p99 bar ≤ 5 ms)")
    for r in (hello, check):
        r.pop("raw")
    dump("p2_session", {"workers": a.workers, "connections": a.connections, "hello": hello, "session": check,
                        "ratio": ratio})


if __name__ == "__main__":
    main()
