"""`authsvc serve` (so `./run`) starts the retention schedule — one `authsvc retention --loop` process beside the
HTTP server — and that process ends with the server; AUTHSVC_RETENTION_INTERVAL=0 starts none. Real processes,
checked with /proc."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.packaging.procs import clean_env, free_port, processes_mentioning, start, stop_for_good, wait_ready

pytestmark = pytest.mark.slow

CLI = os.path.join(os.path.dirname(sys.executable), "authsvc")


def _children_running_retention(parent: int) -> list[int]:
    out = []
    for pid, _ in processes_mentioning("retention --loop"):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == parent:
            out.append(pid)
    return out


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("interval", ["86400", "0"])
def test_serve_runs_retention_beside_the_server_and_it_ends_with_it(tmp_path, interval):
    instance = str(tmp_path / "instance")
    env = clean_env(AUTHSVC_INSTANCE_PATH=instance, AUTHSVC_RETENTION_INTERVAL=interval)
    port = free_port()
    log = str(tmp_path / "serve.log")
    proc = start([CLI, "serve", "--port", str(port), "--workers", "1"], env, str(tmp_path), log)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", log)
        kids = _children_running_retention(proc.pid)
        if interval == "0":
            assert kids == []
            assert "retention: every" not in open(log).read()
        else:
            assert len(kids) == 1, open(log).read()[-2000:]
            assert "retention: every 86400 s" in open(log).read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, open(log).read()[-3000:]
        assert all(_gone(pid) for pid in kids), "the retention process outlived the server"
    finally:
        stop_for_good(proc, instance)
