"""Shared benchmark plumbing: a real gunicorn server on PostgreSQL + Redis, wrk as the load generator.

Benchmarks print raw figures *and* the ratio against a baseline measured in the same run on the same box, because
absolute numbers on a shared 2-core machine drift; ratios do not (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/authsvc_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# The server: gunicorn sync workers as `authsvc serve` runs them by default (extra gunicorn flags in BENCH_GUNICORN,
# e.g. "--worker-class gthread --threads 4"); BENCH_SERVER=granian as `authsvc serve --server granian` runs it.
GUNICORN_EXTRA = os.environ.get("BENCH_GUNICORN", "").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_database(url: str) -> None:
    """Create the bench database on the PostgreSQL server if missing (never the tests' database)."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def reset_state(env: dict) -> None:
    """Fresh schema and empty Redis database for a run."""
    import redis
    from sqlalchemy import create_engine, inspect, text

    from authsvc.models import Base

    engine = create_engine(env["AUTHSVC_DATABASE_URL"])
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        if inspect(conn).has_table("alembic_version"):
            conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    redis.Redis.from_url(env["AUTHSVC_REDIS_URL"]).flushdb()
    subprocess.run([os.path.join(os.path.dirname(PY), "authsvc"), "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def base_env(instance: str, **settings) -> dict:
    env = dict(os.environ)
    env.update({
        "AUTHSVC_INSTANCE_PATH": instance,
        "AUTHSVC_DATABASE_URL": PG_URL,
        "AUTHSVC_REDIS_URL": REDIS_URL,
        "AUTHSVC_SECRET_KEY": "bench-secret",
        "AUTHSVC_TRUSTED_PROXIES": "127.0.0.1/32",  # the load generator speaks for many clients via X-Forwarded-For
        "AUTHSVC_LOG_LEVEL": "WARNING",
    })
    for k, v in settings.items():
        env["AUTHSVC_" + k.upper()] = str(v)
    return env


@contextmanager
def server(env: dict, workers: int):
    port = free_port()
    if os.environ.get("BENCH_SERVER") == "granian":  # as `authsvc serve --server granian` runs it
        cmd = [os.path.join(os.path.dirname(PY), "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port",
               str(port), "--workers", str(workers), "--blocking-threads", "1", "--log-level", "warning",
               "--backlog", "2048", "wsgi:app"]
    else:
        cmd = [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level",
               "warning", "--backlog", "2048", *GUNICORN_EXTRA, "wsgi:app"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("server did not become ready")
        time.sleep(0.2)
    try:
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def worker_cpu_seconds(master_pid: int) -> float:
    """utime+stime of the gunicorn master's children (the workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, *, duration: int = 10, threads: int = 2, connections: int = 16, script: str | None = None,
        env: dict | None = None) -> dict:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required (apt install wrk)")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env, check=True).stdout
    return parse_wrk(out)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses = {}
    for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M):  # printed by our Lua scripts' done()
        statuses[code] = int(n)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "requests": total,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "statuses": statuses, "raw": out}


def make_users(env: dict, n: int, password: str, prefix: str = "user") -> None:
    """Verified users created through the real service (policy + argon2 at the configured parameters)."""
    code = f"""
import os
from authsvc import create_app
from authsvc.extensions import db
from authsvc.models import User
from authsvc.services import services
app = create_app()
with app.app_context():
    s = services()
    h = s.hasher.hash({password!r})
    now = s.clock.now()
    db.session.add_all([User(email=f"{prefix}{{i}}@bench.test", password_hash=h, email_verified_at=now,
                             sessions_valid_after=now) for i in range({n})])
    db.session.commit()
"""
    subprocess.run([PY, "-c", code], env=env, check=True, cwd=ROOT)


def tmpdir() -> str:
    return tempfile.mkdtemp(prefix="authsvc-bench-")


def dump(name: str, result: dict) -> None:
    path = os.path.join(ROOT, "bench", "results", f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, default=str)
    print(f"\nresults written to {os.path.relpath(path, ROOT)}")
