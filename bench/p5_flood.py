"""P5 — password logins under a credential-stuffing flood.

    .venv/bin/python bench/p5_flood.py [--duration 30] [--legit 20]

A wrk flood sends wrong passwords for rotating usernames (real and unknown) from rotating client IPs (through the
trusted proxy header) as fast as it can — far above the box's argon2 capacity — while simulated legitimate users
log in from their familiar networks. Reported: flood rate ÷ argon2 capacity, legitimate success rate and p95
against the same users' p95 without the flood, and the server CPU spent per refused attempt ÷ CPU per argon2 hash.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import (PG_URL, base_env, dump, ensure_database, make_users, reset_state, server, tmpdir,  # noqa
                           worker_cpu_seconds, wrk)

PASSWORD = "bench password that is long enough"
PARAMS = {"argon2_time_cost": 3, "argon2_memory_cost": 65536, "argon2_parallelism": 4}

FLOOD_LUA = """
math.randomseed(os.time())
local statuses = {}
request = function()
  local ip = string.format("%d.%d.%d.%d", math.random(11, 223), math.random(0, 255), math.random(0, 255),
                           math.random(1, 254))
  local user
  if math.random() < 0.3 then user = string.format("user%d@bench.test", math.random(0, 199))
  else user = string.format("victim%d@example.org", math.random(0, 10000000)) end
  local body = string.format('{"email":"%s","password":"leaked-%d"}', user, math.random(0, 100000000))
  return wrk.format("POST", "/api/v1/login", {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
end
"""


def legit_round(url: str, n: int, seconds: float, out: list) -> None:
    """Each legitimate user logs in repeatedly from their home network, as a person would, one at a time."""
    import requests

    def user(i):
        s = requests.Session()
        s.trust_env = False
        end = time.time() + seconds
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                r = s.post(url + "/api/v1/login", json={"email": f"user{i}@bench.test", "password": PASSWORD},
                           headers={"X-Forwarded-For": f"10.20.{i}.5"}, timeout=30)
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - a timeout is a failed login for this measurement
                ok = False
            out.append((ok, time.perf_counter() - t0))
            time.sleep(1.0)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]


def p95(xs):
    return statistics.quantiles(xs, n=20)[18] if len(xs) >= 2 else float("nan")


def cpu_per_hash() -> float:
    from argon2 import PasswordHasher

    ph = PasswordHasher(time_cost=PARAMS["argon2_time_cost"], memory_cost=PARAMS["argon2_memory_cost"],
                        parallelism=PARAMS["argon2_parallelism"])
    h = ph.hash(PASSWORD)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(10):
        ph.verify(h, PASSWORD)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) / 10


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--legit", type=int, default=20)
    ap.add_argument("--flood-connections", type=int, default=32)
    # More sync workers than cores: while some hash a password, the others keep refusing the flood cheaply.
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    a = ap.parse_args()
    ensure_database(PG_URL)
    env = base_env(tmpdir(), **PARAMS)
    reset_state(env)
    make_users(env, 200, PASSWORD)
    hash_cpu = cpu_per_hash()
    import requests

    with server(env, a.workers) as (url, proc):
        # Each legitimate user has signed in from home before (that is what makes the network familiar).
        for i in range(a.legit):
            for _ in range(10):
                r = requests.post(url + "/api/v1/login", json={"email": f"user{i}@bench.test", "password": PASSWORD},
                                  headers={"X-Forwarded-For": f"10.20.{i}.5"}, timeout=30)
                if r.status_code == 200:
                    break
                time.sleep(1)
        quiet: list = []
        legit_round(url, a.legit, a.duration, quiet)

        loud: list = []
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(FLOOD_LUA)
        flood_result = {}
        cpu0 = worker_cpu_seconds(proc.pid)

        def flood():
            flood_result.update(wrk(url, duration=a.duration, threads=1, connections=a.flood_connections,
                                    script=fh.name))

        t = threading.Thread(target=flood)
        t.start()
        time.sleep(1)
        legit_round(url, a.legit, a.duration - 3, loud)
        t.join()
        cpu1 = worker_cpu_seconds(proc.pid)
    capacity = (os.cpu_count() or 1) / hash_cpu  # hashes/s the box's cores can do at these parameters
    flood_rate = flood_result["rps"]
    refused = flood_result["requests"]  # nearly all are refused; the CPU figure below is thus an upper bound
    legit_cpu = sum(1 for ok, _ in loud if ok) * hash_cpu
    per_refused = max(0.0, (cpu1 - cpu0) - legit_cpu) / max(refused, 1)
    q_ok = [d for ok, d in quiet if ok]
    l_ok = [d for ok, d in loud if ok]
    res = {
        "argon2_cpu_s_per_hash": hash_cpu,
        "argon2_capacity_per_s": capacity,
        "flood_rps": flood_rate,
        "flood_over_capacity": flood_rate / capacity,
        "flood_requests": refused,
        "legit_attempts_quiet": len(quiet), "legit_success_quiet": len(q_ok) / max(len(quiet), 1),
        "legit_attempts_flood": len(loud), "legit_success_flood": len(l_ok) / max(len(loud), 1),
        "legit_p95_quiet_ms": p95(q_ok) * 1000, "legit_p95_flood_ms": p95(l_ok) * 1000,
        "p95_ratio": p95(l_ok) / p95(q_ok),
        "cpu_s_per_refused_attempt": per_refused,
        "refused_cost_over_hash": per_refused / hash_cpu,
    }
    print(f"argon2: {hash_cpu * 1000:.0f} ms CPU per hash → capacity {capacity:.1f}/s on {os.cpu_count()} cores "
          f"({a.workers} workers)")
    print(f"flood:  {flood_rate:.0f} req/s = {res['flood_over_capacity']:.0f}× capacity (bar ≥ 20×), "
          f"{refused} attempts")
    print(f"legit:  success {res['legit_success_flood']:.1%} under flood ({len(loud)} attempts; bar ≥ 99%), "
          f"{res['legit_success_quiet']:.1%} quiet")
    print(f"        p95 {res['legit_p95_flood_ms']:.0f} ms under flood vs {res['legit_p95_quiet_ms']:.0f} ms quiet "
          f"= {res['p95_ratio']:.2f}× (bar ≤ 2×)")
    print(f"refused attempt: {per_refused * 1000:.2f} ms CPU = {res['refused_cost_over_hash']:.4f} of a hash "
          f"(bar ≤ 0.05)")
    dump("p5_flood", res)


if __name__ == "__main__":
    main()
