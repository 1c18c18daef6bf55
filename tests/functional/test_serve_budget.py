"""Issue #12 item 3: `authsvc serve` with its default worker count, deployed argon2 parameters, on a BUSY box (CPU
burners running while it boots and while the user signs up): a brand-new user signs in on the first try.

Before the fix, each worker sized the stuffing budget from one *cold* hash timed while all workers booted at once;
on a loaded 2-CPU host that fell below 1/s, and every unfamiliar attempt — a new user's first login included — got 429.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.conftest import PASSWORD, outbox_link
from tests.functional.test_granian import _env


def _burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(n)]


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def test_default_serve_on_a_busy_box_signs_a_new_user_in_first_try(app):
    env = _env(app)
    for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM", "THROTTLE_UNFAMILIAR_PER_SECOND"):
        env.pop("AUTHSVC_" + name, None)  # the deployed defaults, and the automatic budget
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = os.path.join(os.path.dirname(sys.executable), "authsvc")
    burners = _burners(max(2, os.cpu_count() or 1))  # every CPU busy before the service even starts
    proc = None
    try:
        proc = subprocess.Popen([cli, "serve", "--host", "127.0.0.1", "--port", str(port)],  # default workers
                                env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        s = requests.Session()
        s.trust_env = False
        deadline = time.time() + 180
        while True:
            try:
                if s.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode(errors="replace")[-3000:]
            time.sleep(0.3)
        home = {"X-Forwarded-For": "198.51.100.77"}  # a network this account has never signed in from
        r = s.post(base + "/api/v1/register", json={"email": "newcomer@example.com", "password": PASSWORD},
                   headers=home, timeout=60)
        assert r.status_code == 202, r.text
        token = outbox_link(app, "newcomer@example.com", "verify").rsplit("/", 1)[1]
        assert s.post(base + "/api/v1/email/verify", json={"token": token, "password": PASSWORD}, headers=home,
                      timeout=60).status_code == 204
        r = s.post(base + "/api/v1/login", json={"email": "newcomer@example.com", "password": PASSWORD},
                   headers=home, timeout=60)
        assert r.status_code == 200, r.text  # the first try: no 429
        metrics = s.get(base + "/metrics", timeout=30).text
        rate = [line for line in metrics.splitlines() if line.startswith("authsvc_unfamiliar_budget_per_second ")]
        capacity = [line for line in metrics.splitlines() if line.startswith("authsvc_hashing_capacity_per_second ")]
        # the budget is the share of what this busy host measured (never more: the stop-25 flood fix), and > 0
        rate, capacity = float(rate[0].split()[1]), float(capacity[0].split()[1]) if capacity else 0.0
        if capacity > 0:
            assert 0 < rate <= app.config["AUTHSVC"].throttle_unfamiliar_share * capacity + 1e-6
        else:  # the scraped worker had no measurement yet: the floor
            assert rate == app.config["AUTHSVC"].throttle_unfamiliar_floor
        assert 'authsvc_logins_total{outcome="throttled"}' not in metrics
    finally:
        for b in burners:
            _stop(b, signal.SIGKILL)
        if proc is not None:
            _stop(proc)
        from authsvc import embedded_redis

        embedded_redis.stop(app.instance_path)
