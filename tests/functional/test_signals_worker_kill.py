"""A real `authsvc signals worker` process killed with SIGKILL while a receiver holds one of its pushes: after a
restart every event reaches the receiver, exactly once by jti (the receiver dedupes, RFC 8935), and only the delivery
that was in flight went over the wire twice."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import select

from authsvc.models import OutboxItem
from tests.conftest import _REDIS_TOPOLOGY
from tests.functional.ssf_helpers import Receiver, bearer, receiver_client
from tests.functional.test_signals_ssf import ALL, _add, _issuer, _jwks, _push_stream, _uid


def _worker(app, database_url, redis_url):
    env = dict(os.environ)
    if redis_url:  # None under Sentinel: the topology below names the Sentinels instead
        env["AUTHSVC_REDIS_URL"] = redis_url
    env.update({"AUTHSVC_DATABASE_URL": database_url,
                "AUTHSVC_INSTANCE_PATH": app.instance_path, "AUTHSVC_SECRET_KEY": "test-secret-key",
                "AUTHSVC_SIGNALS_ALLOW_INSECURE_PUSH": "1", "AUTHSVC_SIGNALS_PUSH_TIMEOUT": "2",
                "AUTHSVC_SIGNALS_LEASE_SECONDS": "5", "AUTHSVC_SIGNALS_POLL_INTERVAL": "0.1"})
    if _REDIS_TOPOLOGY.get("breach_corpus"):
        env["AUTHSVC_BREACH_CORPUS"] = _REDIS_TOPOLOGY["breach_corpus"]
    for key, value in _REDIS_TOPOLOGY.items():  # Cluster / Sentinel runs: the same topology as the test's app
        if key.startswith("redis_") and key != "redis_url" and value is not None:
            env["AUTHSVC_" + key.upper()] = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
    return subprocess.Popen([sys.executable, "-c", "from authsvc.cli import main; main()", "signals", "worker"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _until(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_worker_killed_mid_delivery_delivers_exactly_once_by_jti_after_restart(make_app, database_url, redis_url):
    from authsvc.extensions import db
    from authsvc.services import services

    app = make_app(signals_allow_insecure_push=True)
    client = app.test_client()
    cid, _, tok = receiver_client(app, client)
    rx = Receiver(_jwks(client), _issuer(client), cid, hang_first=20.0)  # holds the first push, never answers in time
    procs = []
    try:
        sid = _push_stream(client, tok, rx.url, events=ALL)["stream_id"]
        _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
        with app.app_context():
            for tag in ("admin:user:disable", "admin:user:enable", "account:password:change", "mfa:stepup:success",
                        "account:email:verified"):
                services().audit.record(tag, "success", subject_id=_uid(app))
            jtis = set(db.session.execute(select(OutboxItem.jti)).scalars())
        assert len(jtis) == 5
        procs.append(_worker(app, database_url, redis_url))
        assert _until(lambda: len(rx.arrivals) >= 1), procs[0].stderr.read1().decode() if procs[0].poll() else ""
        assert _until(lambda: len(rx.events) >= 4, 15)  # the other four answered, the first one still held

        def delivered():
            with app.app_context():
                db.session.expire_all()
                n = len(db.session.execute(select(OutboxItem.id).where(OutboxItem.delivered_at.is_not(None))).all())
                db.session.rollback()
                return n

        assert _until(lambda: delivered() == 4, 15)  # ... and their outcomes are committed
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        in_flight = rx.arrivals[0]
        with app.app_context():
            db.session.expire_all()
            held = db.session.execute(select(OutboxItem).where(OutboxItem.jti == in_flight)).scalar_one()
            assert held.delivered_at is None and held.claimed_by is not None  # claimed by the dead worker
            done = db.session.execute(select(OutboxItem.jti).where(OutboxItem.delivered_at.is_not(None))).scalars()
            assert set(done) == jtis - {in_flight}  # outcomes recorded as each push was answered
        procs.append(_worker(app, database_url, redis_url))  # after its lease (5 s) the row is offered again
        assert _until(lambda: rx.arrivals.count(in_flight) == 2, 30)
        with app.app_context():
            assert _until(lambda: (db.session.expire_all(), db.session.execute(
                select(OutboxItem.delivered_at).where(OutboxItem.jti == in_flight)).scalar_one())[1] is not None, 10)
        assert set(rx.events) == jtis  # every event, each once by jti
        wire = collections.Counter(rx.arrivals)
        assert wire[in_flight] == 2 and all(wire[j] == 1 for j in jtis - {in_flight})
        assert rx.errors == []
        procs[1].send_signal(signal.SIGTERM)  # a graceful stop: the loop ends, the process exits 0
        assert procs[1].wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        rx.stop()
