"""The release artefacts work on their own: build the sdist and, from it, the wheel (`python -m build`), install the
wheel with its dependencies into a fresh virtualenv in a temporary folder outside the checkout, and use it there as
an operator would — `authsvc db upgrade` on a fresh SQLite, `authsvc serve` with the embedded Redis on a free port,
register, confirm the e-mail from the outbox, log in, fetch a page, a static file and /healthz, stop it with SIGTERM
and find no redis-server of its instance folder left. Nothing here may come from the checkout.

Dependencies resolve through pip's own configuration (index, find-links) and its cache, as for any user."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from email import policy
from email.parser import BytesParser

import pytest
import requests

from tests.conftest import PASSWORD
from tests.packaging.procs import clean_env, free_port, redis_servers_of, start, stop_for_good, tail, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(cmd, *, timeout=600, **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _tree(folder: str) -> set[str]:
    """Files the package must carry from a top-level folder of the checkout (no bytecode)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, folder)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out.update(os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames
                   if not f.endswith(".pyc") and not f.startswith("."))
    return out


def _templates() -> set[str]:
    return _tree("authsvc/templates")


def test_the_wheel_installs_and_serves_outside_the_checkout(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("wheel-smoke"))
    assert not os.path.realpath(work).startswith(os.path.realpath(ROOT) + os.sep)
    dist, venv, cwd = (os.path.join(work, d) for d in ("dist", "venv", "cwd"))
    os.makedirs(cwd)
    env = clean_env()

    # 1. sdist, then the wheel built from that sdist (what `python -m build` publishes)
    _run([sys.executable, "-m", "build", "--outdir", dist, ROOT], env=env)
    (sdist,), (wheel,) = glob.glob(os.path.join(dist, "*.tar.gz")), glob.glob(os.path.join(dist, "*.whl"))
    shipped = _tree("migrations") | _tree("static")
    assert {"migrations/env.py", "static/js/webauthn.js", "static/css/app.css"} <= shipped
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert shipped | _templates() <= in_sdist, sorted((shipped | _templates()) - in_sdist)
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    assert {"authsvc/" + p for p in shipped} | _templates() | {"authsvc/wsgi.py"} <= in_wheel, \
        sorted(({"authsvc/" + p for p in shipped} | _templates()) - in_wheel)

    # 2. a fresh virtualenv with the wheel and its dependencies (no --no-deps: they must resolve)
    _run([sys.executable, "-m", "venv", venv], env=env)
    py, cli = os.path.join(venv, "bin", "python"), os.path.join(venv, "bin", "authsvc")
    _run([py, "-m", "pip", "install", "-q", wheel], env=env, timeout=800)
    where = _run([py, "-c", "import authsvc, authsvc.resources as r; print(authsvc.__file__); "
                            "print(r.resource_dir('migrations')); print(r.resource_dir('static'))"], env=env, cwd=cwd)
    site = os.path.join(venv, "lib")
    assert all(line.startswith(site) for line in where.split()), where

    # 3. migrate a fresh SQLite in Flask's default instance folder of an installed package: <venv>/var/...
    instance = os.path.join(venv, "var", "authsvc-instance")
    out = _run([cli, "db", "upgrade"], env=env, cwd=cwd)
    assert "database at heads" in out
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory(os.path.join(ROOT, "migrations")).get_heads())  # the checkout's, for comparison
    with sqlite3.connect(os.path.join(instance, "authsvc.db")) as conn:
        applied = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert applied == heads and {"users", "security_events"} <= tables, (applied, tables)

    # 4. serve with the embedded Redis, then a user's first steps
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = os.path.join(work, "serve.log")
    proc = start([cli, "serve", "--port", str(port), "--workers", "2"], env, cwd, log)
    try:
        wait_ready(proc, base, log)
        s = requests.Session()
        s.trust_env = False
        assert s.get(base + "/healthz").status_code == 200
        r = s.get(base + "/static/js/webauthn.js")
        assert r.status_code == 200 and "javascript" in r.headers["Content-Type"] and len(r.content) > 100
        r = s.get(base + "/static/css/app.css")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
        r = s.get(base + "/login")  # a template from the wheel, linking the static files
        assert r.status_code == 200 and "/static/css/app.css" in r.text

        email = "smoke@example.com"
        r = s.post(base + "/api/v1/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 202, r.text
        token = _verification_token(os.path.join(instance, "outbox"), email, port)
        r = s.post(base + "/api/v1/email/verify", json={"token": token, "password": PASSWORD})  # API: pre-hijack rule
        assert r.status_code == 204, r.text
        r = s.post(base + "/api/v1/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        who = s.get(base + "/api/v1/session", headers={"Authorization": "Bearer " + r.json()["session_token"]})
        assert who.status_code == 200 and who.json()["email"] == email

        # 5. stop it as a service manager would: no redis-server of its instance folder may be left
        assert len(redis_servers_of(instance)) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, tail(log)
        assert redis_servers_of(instance) == []
    finally:
        stop_for_good(proc, instance)
    shutil.rmtree(venv)  # ~200 MB; pytest keeps its last three temporary folders (a failure's venv stays for a look)


def _verification_token(outbox: str, to: str, port: int) -> str:
    for name in sorted(os.listdir(outbox), reverse=True):
        if not name.endswith(".eml") or name.startswith("."):
            continue
        with open(os.path.join(outbox, name), "rb") as fh:
            msg = BytesParser(policy=policy.default).parse(fh)
        if msg["To"] != to:
            continue
        # the link points at the port serve runs on (AUTHSVC_BASE_URL follows --port)
        m = re.search(rf"http://localhost:{port}/verify/([A-Za-z0-9_\-]+)", msg.get_body(preferencelist=("plain",)).get_content())
        if m:
            return m.group(1)
    raise AssertionError(f"no verification link for {to} in {outbox}: {os.listdir(outbox)}")
