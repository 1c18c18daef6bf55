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


def test_refresh_race_50_parallel_one_winner_family_revoked(app, client, live_server):
    """50 clients present the same refresh token at once over real HTTP (the threaded werkzeug server of
    ``live_server``): at most one rotation succeeds, every other request is refused as invalid_grant, and the reuse
    revokes the whole family — including whatever the winner was given. The 4-thread in-process version is
    test_oauth_flows.py::test_refresh_race_exactly_one_wins_and_family_revoked."""
    import threading

    import requests

    from authsvc.extensions import db
    from authsvc.models import OAuthGrant, SecurityEvent
    from tests.functional.oauth_helpers import basic, code_tokens

    cid, secret, first = code_tokens(app, client)
    base = f"http://127.0.0.1:{live_server.port}"  # the socket the server listens on (no ::1 attempt for localhost)
    auth = basic(cid, secret)

    n = 50
    barrier = threading.Barrier(n, timeout=15)
    results: list = [None] * n
    errors: list = []

    def go(i):
        try:
            with requests.Session() as s:
                s.trust_env = False  # no proxy from the environment between us and the server
                # Connect first (keep-alive: the threaded server speaks HTTP/1.1), so the barrier releases 50
                # requests rather than 50 TCP handshakes.
                assert s.get(base + "/healthz", timeout=10).status_code < 500
                barrier.wait()
                resp = s.post(base + "/oauth2/token", headers=auth, timeout=20,
                              data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
                try:
                    body = resp.json()
                except ValueError:
                    body = resp.text[:300]
                results[i] = (resp.status_code, body)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's index
            errors.append((i, repr(exc)))
            barrier.abort()

    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 25
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a request did not finish within the bound"
    assert not errors, errors
    assert all(res is not None for res in results), results  # all 50 answered

    statuses = [s for s, _ in results]
    wins = [b for s, b in results if s == 200]
    assert not [res for res in results if res[0] >= 500], results
    assert len(wins) <= 1, statuses
    refused = [(s, b) for s, b in results if s != 200]
    assert all(s == 400 and isinstance(b, dict) and b.get("error") == "invalid_grant" for s, b in refused), refused

    with app.app_context():
        grant = db.session.execute(db.select(OAuthGrant)).scalar_one()
        # generation 0 is legitimate too: a loser's revocation may reach SQL before the winner's compare-and-set.
        # A 200, though, only leaves after the rotation committed.
        assert grant.generation <= 1 and grant.revoke_reason == "refresh_reuse" and grant.revoked_at is not None
        assert grant.generation == 1 or not wins
        gid, generation = grant.id, grant.generation
        reuse = db.session.execute(db.select(SecurityEvent)
                                   .where(SecurityEvent.tag == "oauth:refresh:reuse")).scalars().all()
    # Exactly one reuse event: the rotation script flags the grant revoked on the first mismatch and checks that
    # flag before comparing, so only the first loser sees "reuse" (and records it); the other 48 find the family
    # already revoked and are refused without another audit row (a replay flood must not flood the audit log).
    assert len(reuse) == 1, [(e.reason, e.details) for e in reuse]
    assert "theft" in reuse[0].reason and gid[:8] in (reuse[0].details or "")
    assert first["refresh_token"] not in (reuse[0].details or "")

    with requests.Session() as s:
        s.trust_env = False

        def introspect(tok):
            resp = s.post(base + "/oauth2/introspect", data={"token": tok}, headers=auth, timeout=10)
            assert resp.status_code == 200, resp.text[:300]
            return resp.json()

        def refresh(tok):
            return s.post(base + "/oauth2/token", headers=auth, timeout=10,
                          data={"grant_type": "refresh_token", "refresh_token": tok})

        # The family is dead: the access token issued before the race, and the winner's tokens, if any.
        assert introspect(first["access_token"]) == {"active": False}
        for b in wins:
            assert introspect(b["access_token"]) == {"active": False}
            resp = refresh(b["refresh_token"])
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text[:300]
        resp = refresh(first["refresh_token"])
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text[:300]
    print(f"race_50: {len(wins)} winner(s), generation {generation}, statuses {sorted(set(statuses))}")


def test_rotated_refresh_token_stays_spent_after_redis_restores_an_older_snapshot(make_app, private_redis):
    """Why the refresh rotation writes SQL synchronously (docs/BENCHMARKS.md P3): real files again. The AOF from
    before a rotation is put back, so Redis's copy of the family says the *old* refresh token is the live one; the
    SQL compare-and-set refuses it, the presentation counts as reuse, and the family is revoked."""
    from authsvc.extensions import db
    from authsvc.models import OAuthGrant
    from tests.functional.oauth_helpers import code_tokens, token

    app = make_app(redis_url=private_redis.url)
    client = app.test_client()
    cid, secret, first = code_tokens(app, client)
    aof = os.path.join(private_redis.folder, "appendonly.aof")
    private_redis.stop()
    shutil.copy(aof, aof + ".old")  # the "older snapshot": the first refresh token is the family's live one
    private_redis.start()
    refresh = {"grant_type": "refresh_token"}
    second = token(client, {**refresh, "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert second.status_code == 200
    private_redis.stop()
    shutil.copy(aof + ".old", aof)  # restore: the rotation is lost in Redis
    private_redis.start()
    with app.app_context():
        from authsvc.extensions import get_redis
        from authsvc.oauth.tokens import grant_id_of, sha256

        twin = get_redis().hgetall(f"oauth:grant:{{{grant_id_of(first['refresh_token'])}}}")
        assert twin["cur"] == sha256(first["refresh_token"])  # Redis really believes the old token is live
    replay = token(client, {**refresh, "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    with app.app_context():
        grant = db.session.execute(db.select(OAuthGrant)).scalar_one()
        assert grant.generation == 1 and grant.revoke_reason == "refresh_reuse"
    # the family is gone: the legitimate successor is refused as well
    r = token(client, {**refresh, "refresh_token": second.json["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400


def test_refresh_during_a_database_outage_answers_503_and_the_token_still_works_after(app, make_app, private_pg):
    """PostgreSQL stops between the rotation's Redis swap and its SQL compare-and-set: the client gets 503 (nothing
    handed out), and its retry with the same refresh token after the database is back succeeds — the outage does not
    turn into a "replay" that revokes the family."""
    from authsvc.cli import upgrade_database
    from tests.functional.oauth_helpers import code_tokens, token

    app = make_app(database_url=private_pg.url)  # noqa: F811 - the app under test uses the private server
    with app.app_context():
        upgrade_database()
    client = app.test_client()
    cid, secret, first = code_tokens(app, client)
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}

    private_pg.stop()
    r = token(client, refresh, auth=(cid, secret))
    assert r.status_code == 503 and r.json["error"] == "temporarily_unavailable" and "access_token" not in r.json
    private_pg.start()
    deadline = time.time() + 20
    while (r := token(client, refresh, auth=(cid, secret))).status_code == 503:  # the pool reconnects by itself
        assert time.time() < deadline, "did not recover"
        time.sleep(0.2)
    assert r.status_code == 200, r.json
    second = r.json
    assert token(client, {**refresh, "refresh_token": second["refresh_token"]}, auth=(cid, secret)).status_code == 200
