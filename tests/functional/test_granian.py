"""`authsvc serve --server granian`: the same app behind a Rust HTTP server (the deployment option docs/BENCHMARKS.md
measures at ~1.9× gunicorn on the hot paths). Run for real as a subprocess on this test's database and Redis: the
lean WSGI paths, the trusted-proxy client IP (granian must hand us the TCP peer as REMOTE_ADDR), bad input, and
metrics added up across its worker processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import PASSWORD, create_user


def _env(app) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    for f in dataclasses.fields(app.config["AUTHSVC"]):
        value = getattr(app.config["AUTHSVC"], f.name)
        if value is None or f.name in ("trusted_proxies",):
            continue
        env["AUTHSVC_" + f.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
    env["AUTHSVC_TRUSTED_PROXIES"] = "127.0.0.1/32"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve sets its own, in the instance folder
    return env


@pytest.fixture
def granian_server(app):
    pytest.importorskip("granian")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = os.path.join(os.path.dirname(sys.executable), "authsvc")
    proc = subprocess.Popen([cli, "serve", "--server", "granian", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], env=_env(app), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:
            try:
                if requests.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("granian did not start: " + proc.stderr.read().decode(errors="replace")[-2000:])
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # serve starts an embedded redis-server only without a configured Redis; none may outlive the test
        from authsvc import embedded_redis

        unwanted = os.path.exists(embedded_redis.socket_path(app.instance_path))
        embedded_redis.stop(app.instance_path)
        assert not unwanted, "serve started an embedded Redis although one was configured"


def test_the_app_under_granian(app, granian_server):
    base = granian_server
    create_user(app)
    s = requests.Session()
    s.trust_env = False
    # login through the trusted proxy: the client's address is the X-Forwarded-For hop, so REMOTE_ADDR is the peer
    r = s.post(base + "/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD},
               headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200, r.text
    token = r.json()["session_token"]
    who = s.get(base + "/api/v1/session", headers={"Authorization": f"Bearer {token}"})  # the lean WSGI path
    assert who.status_code == 200 and who.json()["email"] == "alice@example.com"
    listed = s.get(base + "/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}).json()
    assert [x["ip"] for x in listed] == ["203.0.113.9"]
    assert who.headers["Content-Security-Policy"] and who.headers["Cache-Control"] == "no-store"
    assert s.get(base + "/api/v1/session", headers={"Authorization": "Bearer nope"}).status_code == 401
    # bad input: clear 4xx, never 500
    r = s.post(base + "/api/v1/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]
    r = s.post(base + "/oauth2/introspect", data={"token": "x"})  # no client credentials → Authlib: 401
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # wrong passwords from many addresses, then the metrics of both workers added up
    for i in range(6):
        s.post(base + "/api/v1/login", json={"email": "alice@example.com", "password": "wrong" * 4},
               headers={"X-Forwarded-For": f"198.51.100.{i}"})
    text = s.get(base + "/metrics").text  # from 127.0.0.1: allowed
    assert 'authsvc_logins_total{outcome="success"} 1.0' in text
    assert 'authsvc_logins_total{outcome="invalid_credentials"} 6.0' in text
