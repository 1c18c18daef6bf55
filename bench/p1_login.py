"""P1 — full-stack password logins/s ÷ raw argon2 verifies/s (same parameters, same process count).

    .venv/bin/python bench/p1_login.py [--duration 20] [--params default owasp]

The full stack is gunicorn (one sync worker per core) + PostgreSQL + Redis, every request a real login through
the whole pipeline (throttle check, argon2id, breach check, risk, session in Redis + SQL, receipt, audit chain).
Users have signed in once before from the same place (returning users), so the throttle treats them as familiar.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import base_env, dump, ensure_database, make_users, reset_state, server, tmpdir, wrk  # noqa: E402

PARAMS = {
    "default": {"argon2_time_cost": 3, "argon2_memory_cost": 65536, "argon2_parallelism": 4},  # RFC 9106 #2
    "owasp": {"argon2_time_cost": 2, "argon2_memory_cost": 19456, "argon2_parallelism": 1},  # OWASP 19 MiB row
}
PASSWORD = "bench password that is long enough"
USERS = 64

LUA = """
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"email":"user%%d@bench.test","password":"%s"}', n %% %d)
  return wrk.format("POST", "/api/v1/login", {["Content-Type"] = "application/json"}, body)
end
"""


def _verify_loop(args):
    params, seconds = args
    from argon2 import PasswordHasher

    ph = PasswordHasher(time_cost=params["argon2_time_cost"], memory_cost=params["argon2_memory_cost"],
                        parallelism=params["argon2_parallelism"])
    h = ph.hash(PASSWORD)
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        ph.verify(h, PASSWORD)
        n += 1
    return n


def raw_argon2(params: dict, procs: int, seconds: float) -> float:
    with mp.get_context("spawn").Pool(procs) as pool:
        counts = pool.map(_verify_loop, [(params, seconds)] * procs)
    return sum(counts) / seconds


def run(name: str, params: dict, duration: int, workers: int) -> dict:
    instance = tmpdir()
    env = base_env(instance, **params, throttle_unfamiliar_per_second=100000)
    reset_state(env)
    make_users(env, USERS, PASSWORD)
    with server(env, workers) as (url, _proc):
        import requests

        for i in range(USERS):  # each user has signed in here before
            requests.post(url + "/api/v1/login", json={"email": f"user{i}@bench.test", "password": PASSWORD},
                          timeout=30).raise_for_status()
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(LUA % (PASSWORD, USERS))
        stack = wrk(url, duration=duration, threads=2, connections=2 * workers, script=fh.name)
    baseline = raw_argon2(params, workers, duration)
    ratio = stack["rps"] / baseline
    print(f"[{name}] full stack {stack['rps']:.2f} logins/s (non-2xx {stack['non2xx']}, p50 {stack['p50_ms']:.0f} ms, "
          f"p99 {stack['p99_ms']:.0f} ms) ÷ raw argon2 {baseline:.2f} verifies/s = {ratio:.3f}  (bar ≥ 0.90)")
    stack.pop("raw")
    return {"params": params, "workers": workers, "stack": stack, "raw_argon2_per_s": baseline, "ratio": ratio}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--params", nargs="+", default=["default", "owasp"], choices=list(PARAMS))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    from bench.harness import PG_URL

    ensure_database(PG_URL)
    out = {name: run(name, PARAMS[name], a.duration, a.workers) for name in a.params}
    dump("p1_login", out)


if __name__ == "__main__":
    main()
