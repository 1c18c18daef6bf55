"""A per-request time limit for WSGI servers that have none (granian): gunicorn's worker timeout, as middleware.

A worker process whose request has been running longer than ``seconds`` — from the call into the app until the
response iterable is closed, streaming included, as gunicorn counts it — logs the request's method and path and
exits at once (``os._exit``); the server starts a fresh worker (granian ``--respawn-failed-workers``), the stuck
client's connection closes. A hung request can therefore hold a worker for at most ``seconds`` + the watchdog's tick
(1 s). The app bounds its own waits first (Redis 1 s socket timeout, SQLite busy timeout, PostgreSQL
``lock_timeout``: each a 503); this is the backstop for what escapes them (a runaway loop, a stuck C call).

A watchdog thread per worker process, started on the first request in that process (so a server that forks after
import gets one per worker). Any number of threads per process is handled; with granian's ``--blocking-threads 1``
there is one request at a time, so exiting ends only the stuck request (and the worker's idle keep-alive sockets).
Independent of Flask: wraps any WSGI callable.
"""
from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("authsvc.deadline")


class RequestDeadline:
    def __init__(self, app, seconds: float, *, tick: float = 1.0, exit=os._exit):
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.app = app
        self.seconds = float(seconds)
        self.tick = tick
        self._exit = exit
        self._running: dict[int, tuple[float, str]] = {}  # thread id -> (monotonic start, "METHOD /path")
        self._lock = threading.Lock()
        self._pid: int | None = None

    def __call__(self, environ, start_response):
        self._ensure_watchdog()
        me = threading.get_ident()
        what = f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')[:200]}"
        self._running[me] = (time.monotonic(), what)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._running.pop(me, None)
            raise
        return _Closing(result, lambda: self._running.pop(me, None))

    def overdue(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        return [what for start, what in list(self._running.values()) if now - start > self.seconds]

    def _ensure_watchdog(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._running.clear()  # inherited from a parent process: not ours
            threading.Thread(target=self._watch, name="authsvc-request-deadline", daemon=True).start()
            self._pid = os.getpid()

    def _watch(self) -> None:
        while True:
            time.sleep(self.tick)
            late = self.overdue()
            if late:
                log.error("request ran past the %s s request timeout (%s); this worker exits and is replaced",
                          int(self.seconds), ", ".join(late))
                for h in logging.getLogger().handlers + log.handlers:
                    try:
                        h.flush()
                    except Exception:  # noqa: BLE001
                        pass
                self._exit(70)
                return


class _Closing:
    """The app's response iterable, with ``done`` called once when the server closes it (PEP 3333)."""

    def __init__(self, inner, done):
        self._inner = inner
        self._done = done

    def __iter__(self):
        return iter(self._inner)

    def close(self):
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._done()
