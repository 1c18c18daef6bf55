"""Admin pages small vs large (issue 20): times the dashboard, the users list and search, and the audit log at two
database sizes in one run, and prints the large/small ratio of each. Bounded pages stay near 1×; a page doing work
proportional to a table grows with it (20× rows).

In-process (Flask test client, no HTTP server), PostgreSQL + Redis, tables filled with bulk SQL (the audit events
through the real chain writer, so the chain is valid). Median of --runs requests after one warm-up; the dashboard is
timed with its 30 s cache emptied before each request (the SQL cost) and warm.

    createdb -h 127.0.0.1 -U postgres bench_admin
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench_admin \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/admin_pages.py [--small 10000 --large 200000]

The database and the Redis db are emptied first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAGES = [("dashboard (SQL, cache emptied)", "/admin/", True), ("dashboard (cached)", "/admin/", False),
         ("users list", "/admin/users", False), ("users search by IP", "/admin/users?q=198.51.100.77", False),
         ("audit log", "/admin/audit", False), ("audit log, tag prefix admin:", "/admin/audit?tag=admin:", False),
         ("audit log, rare tag", "/admin/audit?tag=account:password:breached", False)]


def fill(app, start: int, n: int) -> None:
    from sqlalchemy import insert

    from authsvc.extensions import db
    from authsvc.models import LoginEvent, User, UserSession
    from authsvc.services import services

    with app.app_context():
        now = services().clock.now()
        for lo in range(start, start + n, 10_000):
            hi = min(start + n, lo + 10_000)
            users = [{"email": f"u{i}@bench.example", "created_at": now - dt.timedelta(minutes=i)} for i in range(lo, hi)]
            ids = list(db.session.execute(insert(User).returning(User.id), users).scalars())
            db.session.execute(insert(UserSession.__table__), [
                {"id": f"{i:064x}", "user_id": uid, "created_at": now - dt.timedelta(minutes=i),
                 "ip": f"198.51.{i // 250 % 250}.{i % 250}", "aal": 1, "methods": "pwd"}
                for i, uid in zip(range(lo, hi), ids)])
            db.session.execute(insert(LoginEvent.__table__), [
                {"user_id": uid, "occurred_at": now - dt.timedelta(seconds=(i * 37) % 172_800), "method": "password",
                 "outcome": ("success", "failed", "denied", "mfa_required")[i % 4], "ip": f"203.0.{i % 250}.{i % 7}",
                 "asn": f"AS{i % 50}", "score": (i % 13) - 4.0, "decision": ("allow", "deny", "step_up")[i % 3],
                 "session_id": f"{i:064x}"} for i, uid in zip(range(lo, hi), ids)])
            db.session.commit()
            services().audit.record_many([
                {"tag": ("account:login:failure", "account:login:success", "admin:read:users")[i % 3],
                 "outcome": "info", "subject_id": uid, "ip": f"203.0.{i % 250}.{i % 7}"}
                for i, uid in zip(range(lo, hi), ids)])


def measure(app, admin, runs: int) -> dict:
    from authsvc.extensions import get_redis

    out = {}
    with app.app_context():
        r = get_redis()
    for name, url, uncached in PAGES:
        assert admin.get(url).status_code == 200, url  # warm-up (and the chain tile's catch-up)
        times = []
        for _ in range(runs):
            if uncached:
                for key in r.scan_iter(match="admin:dashboard:*"):
                    r.delete(key)
            t0 = time.perf_counter()
            resp = admin.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200, (url, resp.status_code)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    url, redis_url = os.environ.get("BENCH_DATABASE_URL"), os.environ.get("BENCH_REDIS_URL")
    if not url or not url.startswith("postgresql") or not redis_url:
        sys.exit("set BENCH_DATABASE_URL (PostgreSQL) and BENCH_REDIS_URL")
    from sqlalchemy import create_engine, inspect, text

    from authsvc import create_app
    from authsvc.models import Base
    from tests.conftest import FAST_ARGON2
    from tests.functional.admin_helpers import admin_client

    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        if inspect(conn).has_table("alembic_version"):
            conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(dict(FAST_ARGON2, database_url=url, redis_url=redis_url, instance_path=folder,
                              secret_key="bench", TESTING=True))
        with app.app_context():
            from authsvc.cli import upgrade_database
            from authsvc.extensions import db, get_redis

            upgrade_database()
            get_redis().flushdb()
        admin = admin_client(app)
        results = {}
        for size, add in ((a.small, a.small), (a.large, a.large - a.small)):
            t0 = time.perf_counter()
            fill(app, size - add, add)
            with app.app_context():
                db.session.execute(text("ANALYZE"))
                db.session.commit()
            print(f"filled to {size:,} users / sessions / receipts / audit events in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            results[size] = measure(app, admin, a.runs)
    print(f"\n| page | {a.small:,} rows (ms) | {a.large:,} rows (ms) | ratio |\n|---|---|---|---|")
    for name, _, _ in PAGES:
        small, large = results[a.small][name], results[a.large][name]
        print(f"| {name} | {small:.1f} | {large:.1f} | {large / small:.2f} |")


if __name__ == "__main__":
    main()
