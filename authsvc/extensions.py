"""Extension objects, created unbound and attached to the app with ``init_app`` (the Flask pattern)."""

from __future__ import annotations

import threading

import redis
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from authsvc.models.base import Base

# expire_on_commit=False: a request's objects stay readable after each commit instead of being re-SELECTed
# (measured: 4 extra queries per login). Sessions are request-scoped, so nothing lives long enough to go stale.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
csrf = CSRFProtect()


class RedisExtension:
    """One connection pool per process, created on first use.

    Lazy on purpose: commands that never touch Redis (``authsvc breach info``) must not start or need a server, and
    gunicorn workers must not inherit a pool opened before ``fork``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["authsvc.redis"] = {"client": None, "lock": threading.Lock()}

    @staticmethod
    def client_for(app: Flask) -> redis.Redis:
        state = app.extensions["authsvc.redis"]
        client = state["client"]
        if client is not None:
            return client
        with state["lock"]:
            if state["client"] is None:
                state["client"] = _connect(app)
            return state["client"]


def _connect(app: Flask):
    """Standalone, Cluster or Sentinel. The code above this line never knows which: every multi-key script keeps its
    keys under one hash tag, so it runs on a Cluster unchanged."""
    settings = app.config["AUTHSVC"]
    opts = dict(socket_timeout=settings.redis_socket_timeout, socket_connect_timeout=settings.redis_socket_timeout,
                decode_responses=True)
    if settings.redis_mode == "cluster":
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(settings.redis_url, **opts)
    if settings.redis_mode == "sentinel":
        from redis.sentinel import Sentinel

        hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in settings.redis_sentinels]
        return Sentinel(hosts, sentinel_kwargs={"socket_timeout": settings.redis_socket_timeout}, **opts) \
            .master_for(settings.redis_sentinel_master, **opts)
    url = settings.redis_url
    if url is None:
        from authsvc import embedded_redis

        url = embedded_redis.ensure_running(app.instance_path)
    return redis.Redis.from_url(url, health_check_interval=15, **opts)


redis_ext = RedisExtension()


def get_redis() -> redis.Redis:
    from flask import current_app

    return RedisExtension.client_for(current_app)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    import sqlite3

    if isinstance(dbapi_conn, sqlite3.Connection):
        cur = dbapi_conn.cursor()
        # WAL lets readers run while one worker writes; foreign keys are off by default in SQLite.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def _install_sqlite_pragmas() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


_install_sqlite_pragmas()
