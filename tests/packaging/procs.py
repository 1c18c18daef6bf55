"""Running ``authsvc serve`` as a real program in these tests: a free port, waiting until it answers, and finding
the processes (embedded redis-server, HTTP server) that belong to one instance folder — by reading /proc, the way
an operator would look with ``ps``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import requests

from tests.conftest import FAST_ARGON2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    """The caller's environment without any authsvc setting or Python path of the checkout, plus fast hashing."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTHSVC_", "PYTHON", "VIRTUAL_ENV")) and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"AUTHSVC_" + k.upper(): str(v) for k, v in FAST_ARGON2.items()})
    env.update(extra)
    return env


def start(cmd: list[str], env: dict, cwd: str, log_path: str) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes into it until it ends
    try:
        # a session of its own, like a service manager or a terminal would give it; the test signals its pid
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def wait_ready(proc: subprocess.Popen, base: str, log_path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"authsvc serve did not become ready (exit {proc.poll()}):\n" + tail(log_path))
        time.sleep(0.2)


def tail(path: str, chars: int = 4000) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()[-chars:]
    except OSError:
        return "(no log)"


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{name}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # exited, not yet reaped by its parent
        except OSError:
            continue
        if text in cmdline:
            found.append((int(name), cmdline))
    return found


def redis_servers_of(instance: str) -> list[tuple[int, str]]:
    """The embedded redis-server of this instance folder (its title names the socket: ``unixsocket:<folder>/...``)."""
    sock = os.path.join(instance, "redis.sock")
    return [p for p in processes_mentioning(sock) if "redis-server" in p[1]]


def stop_for_good(proc: subprocess.Popen, instance: str) -> None:
    """Cleanup after a failed test: nothing of this instance may outlive the test."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(15)
                break
            except subprocess.TimeoutExpired:
                continue
    for pid, _ in redis_servers_of(instance):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in processes_of_instance(instance):  # e.g. a server in a process group of its own, orphaned
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def processes_of_instance(instance: str) -> list[int]:
    """Live processes started for this instance folder (AUTHSVC_INSTANCE_PATH in their environment)."""
    want = f"AUTHSVC_INSTANCE_PATH={instance}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if want in fh.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found
