"""`./run` (= `authsvc serve` with the embedded defaults) stops the redis-server it started when it exits — by
SIGTERM (kill, systemd) or Ctrl-C (SIGINT to the terminal's whole process group) — but not while another
`authsvc serve` on the same instance folder still uses it. Real processes, real signals, checked with /proc."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import requests

from tests.packaging.procs import clean_env, free_port, processes_mentioning, redis_servers_of, start, stop_for_good, \
    wait_ready

pytestmark = pytest.mark.slow

CLI = os.path.join(os.path.dirname(sys.executable), "authsvc")


def test_serve_stops_the_embedded_redis_when_the_last_server_exits(tmp_path):
    pytest.importorskip("granian")
    instance = str(tmp_path / "instance")
    env = clean_env(AUTHSVC_INSTANCE_PATH=instance)  # no AUTHSVC_REDIS_URL, no database URL: the embedded defaults
    port_a, port_b = free_port(), free_port()
    log_a, log_b = str(tmp_path / "a.log"), str(tmp_path / "b.log")
    a = start([CLI, "serve", "--port", str(port_a), "--workers", "1"], env, str(tmp_path), log_a)
    b = None
    try:
        wait_ready(a, f"http://127.0.0.1:{port_a}", log_a)
        assert len(redis_servers_of(instance)) == 1
        # a second server on the same folder (here granian) shares the one redis-server
        b = start([CLI, "serve", "--server", "granian", "--port", str(port_b), "--workers", "1"], env, str(tmp_path),
                  log_b)
        wait_ready(b, f"http://127.0.0.1:{port_b}", log_b)
        assert len(redis_servers_of(instance)) == 1

        # A gets SIGTERM at its pid, as from kill or systemd: its HTTP server ends, the Redis stays for B
        a.send_signal(signal.SIGTERM)
        assert a.wait(30) == 0, open(log_a).read()[-3000:]
        assert not processes_mentioning(f"127.0.0.1:{port_a} "), "A's HTTP server outlived it"
        assert requests.get(f"http://127.0.0.1:{port_b}/readyz", timeout=5).status_code == 200
        assert len(redis_servers_of(instance)) == 1

        # B gets Ctrl-C (SIGINT to its whole process group, as a terminal sends it): the last holder stops Redis
        os.killpg(b.pid, signal.SIGINT)
        assert b.wait(30) == 0, open(log_b).read()[-3000:]
        assert redis_servers_of(instance) == []
        assert not os.path.exists(os.path.join(instance, "redis.sock"))
        assert not processes_mentioning(f"--port {port_b} "), "B's HTTP server outlived it"
        assert "stopped when this server exits" in open(log_a).read()
    finally:
        stop_for_good(a, instance)
        if b is not None:
            stop_for_good(b, instance)

