"""Fault tolerance with real servers the tests own: a private PostgreSQL stopped and restarted mid-traffic.

(Redis stop/restart with AOF is in test_faults.py; Cluster/Sentinel runs are selected by AUTHSVC_TEST_REDIS_MODE.)
"""

import glob
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import PASSWORD, create_user, in_ci


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if in_ci():
            pytest.fail("PostgreSQL server binaries are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg")
    return os.path.dirname(found[-1])


class PrivatePostgres:
    """initdb + pg_ctl in a temp folder on a free port; run as the postgres user when we are root."""

    def __init__(self, folder, port):
        self.bin = _pg_bin()
        self.folder, self.port = folder, port
        self.data = os.path.join(folder, "data")
        os.makedirs(folder, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool, *args):
        cmd = [os.path.join(self.bin, tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder)

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
                  "-w", "-l", os.path.join(self.folder, "log"), "start")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    @property
    def url(self):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def private_pg():
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Not under pytest's tmp_path: that tree is private to root, and the server runs as the postgres user.
    folder = tempfile.mkdtemp(prefix="authsvc-pg-")
    pg = PrivatePostgres(folder, port)
    pg.start()
    yield pg
    try:
        pg.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


def test_postgres_stopped_and_restarted_mid_traffic(app, make_app, private_pg):
    # (`app` first: the per-test reset runs on the suite database, not on the fresh private server)
    from authsvc.cli import upgrade_database

    app = make_app(database_url=private_pg.url)  # noqa: F811 - the app under test uses the private server
    with app.app_context():
        upgrade_database()
    create_user(app)
    browser = app.test_client()
    api = app.test_client()
    token = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).json["session_token"]
    from tests.functional.helpers import login

    assert login(browser).status_code == 302
    auth = {"Authorization": f"Bearer {token}"}

    private_pg.stop()
    r = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 503 and r.json["error"] == "unavailable"
    assert browser.get("/account").status_code == 503  # never "logged in", never "anonymous"
    app.extensions["authsvc"].sessions._backstop.clear()
    assert api.get("/api/v1/session", headers=auth).status_code == 503
    assert app.test_client().get("/readyz").status_code == 503

    private_pg.start()
    deadline = time.time() + 20
    while app.test_client().get("/readyz").status_code != 200:  # the pool reconnects by itself (pre-ping)
        assert time.time() < deadline, "did not recover"
        time.sleep(0.2)
    assert browser.get("/account").status_code == 200
    assert api.get("/api/v1/session", headers=auth).status_code == 200
    assert api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).status_code == 200


def test_revoked_session_stays_revoked_after_redis_restores_an_older_snapshot(make_app, private_redis):
    """Real files: the AOF from before the revocation is put back; Redis again holds the session; SQL refuses it."""
    app = make_app(redis_url=private_redis.url)
    create_user(app)
    api = app.test_client()
    token = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).json["session_token"]
    auth = {"Authorization": f"Bearer {token}"}
    aof = os.path.join(private_redis.folder, "appendonly.aof")
    private_redis.stop()  # SHUTDOWN writes the AOF out
    shutil.copy(aof, aof + ".old")  # the "older snapshot": it has the session
    private_redis.start()
    assert api.get("/api/v1/session", headers=auth).status_code == 200
    assert api.post("/api/v1/logout", headers=auth).status_code == 204
    private_redis.stop()
    shutil.copy(aof + ".old", aof)  # restore: the deletion is lost
    private_redis.start()
    from authsvc.sessions import _skey, token_hash

    with app.app_context():
        from authsvc.extensions import get_redis

        assert get_redis().exists(_skey(token_hash(token))) == 1  # Redis really has it back
    assert api.get("/api/v1/session", headers=auth).status_code == 401  # SQL says revoked
