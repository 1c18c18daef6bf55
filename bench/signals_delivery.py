"""SSF push delivery: event latency (audited trigger → SET received) and fan-out throughput with many streams.

One process: the app (SQLite + the embedded Redis by default; BENCH_DATABASE_URL for PostgreSQL), the outbox worker
in a thread (``run_forever``, the same loop ``authsvc signals worker`` runs, poll interval 0.2 s), and a receiver
(a threaded HTTP server on 127.0.0.1 that reads each SET's jti and answers 202; the tests verify signatures, the bench
does not spend its CPU on it).

* latency: ``--events`` triggers one at a time on one stream (``audit.record("admin:user:disable")``, the trigger's
  own transaction included), time until the receiver has the SET; p50/p99.
* throughput: one trigger fanned out to ``--streams`` streams (one outbox row each, written in the audit transaction);
  time until every SET arrived, with worker concurrency 1 (the baseline) and 8, same run; deliveries/s, the ratio,
  and process CPU per delivery.

    .venv/bin/python bench/signals_delivery.py [--events 200] [--streams 1000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Sink:
    def __init__(self):
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                payload = body.split(b".")[1]
                jti = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))["jti"]
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with sink.cond:
                    sink.arrived.setdefault(jti, time.monotonic())
                    sink.cond.notify_all()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 300.0) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.arrived) < n:
                if not self.cond.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    return False
        return True


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--streams", type=int, default=1000)
    a = ap.parse_args()
    from authsvc import create_app, embedded_redis
    from tests.conftest import FAST_ARGON2

    with tempfile.TemporaryDirectory() as folder:
        cfg = dict(FAST_ARGON2, instance_path=folder, secret_key="bench", TESTING=True,
                   signals_allow_insecure_push=True, signals_max_streams_per_client=a.streams + 1)
        if os.environ.get("BENCH_DATABASE_URL"):
            cfg["database_url"] = os.environ["BENCH_DATABASE_URL"]
        app = create_app(cfg)
        try:
            run(app, a)
        finally:
            embedded_redis.stop(folder)


def run(app, a) -> None:
    from authsvc.accounts.login import RequestContext
    from authsvc.cli import upgrade_database
    from authsvc.extensions import db
    from authsvc.models import SsfStream, SsfSubject, User
    from authsvc.services import services
    from authsvc.signals import signals
    from authsvc.signals.ssf import EVENTS_SUPPORTED, PUSH

    sink = Sink()
    with app.app_context():
        upgrade_database()
        svc = services()
        svc.accounts.register("bench@example.com", "correct horse battery staple", RequestContext("127.0.0.1", "b"))
        user = db.session.execute(db.select(User)).scalar_one()
        uid, email = user.id, user.email
        row, _ = app.extensions["authsvc.oauth"].clients.create(name="bench receiver",
                                                               grant_types=("client_credentials",), scopes=())
        cid = row.id
        now = svc.clock.now()

        def add_streams(n, prefix):
            for i in range(n):
                sid = f"{prefix}{i:05d}"
                db.session.add(SsfStream(id=sid, client_id=cid, method=PUSH, endpoint_url=sink.url,
                                         events_requested=json.dumps(EVENTS_SUPPORTED), status="enabled",
                                         created_at=now, updated_at=now))
                db.session.add(SsfSubject(stream_id=sid, user_id=uid, created_at=now,
                                          subject=json.dumps({"format": "email", "email": email})))
            db.session.commit()

        worker = signals(app).worker
        stop = threading.Event()
        t = threading.Thread(target=worker.run_forever, args=(stop, 0.2), daemon=True)
        t.start()

        # --- latency: one stream, one event at a time ---------------------------------------------------------------
        add_streams(1, "lat")
        lat = []
        for i in range(a.events):
            before = len(sink.arrived)
            t0 = time.monotonic()
            svc.audit.record("admin:user:disable", "success", subject_id=uid)
            assert sink.wait(before + 1, 30), "event not delivered"
            jti_time = max(sink.arrived.values())
            lat.append((jti_time - t0) * 1000)
            time.sleep(0.01 + (i % 7) * 0.013)  # spread the triggers over the worker's poll phase
        stop.set()
        worker.wakeup.set()
        t.join(10)
        db.session.execute(db.delete(SsfStream))
        db.session.commit()

        # --- throughput: one trigger fanned out to N streams, concurrency 1 then 8 ----------------------------------
        add_streams(a.streams, "fan")
        results = {}
        for conc in (1, 8):
            worker.concurrency = conc
            worker._pool = None
            sink.arrived.clear()
            t0 = time.monotonic()
            svc.audit.record("admin:user:disable", "success", subject_id=uid)
            enqueue_ms = (time.monotonic() - t0) * 1000
            c0 = time.process_time()
            w0 = time.monotonic()
            while len(sink.arrived) < a.streams:
                r = worker.run_once()
                if r.claimed == 0 and len(sink.arrived) < a.streams:
                    time.sleep(0.01)
            wall = time.monotonic() - w0
            cpu = time.process_time() - c0
            results[conc] = (enqueue_ms, wall, cpu)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 CPUs shared)")
    print(f"latency, trigger → SET received, {a.events} events on 1 stream (worker poll 0.2 s): "
          f"p50 {statistics.median(lat):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms")
    for conc, (enq, wall, cpu) in results.items():
        print(f"fan-out to {a.streams} streams, concurrency {conc}: enqueue in the audit transaction {enq:.0f} ms; "
              f"all delivered in {wall:.2f} s = {a.streams / wall:.0f} SETs/s; process CPU {cpu / a.streams * 1000:.2f}"
              f" ms per SET")
    print(f"throughput ratio concurrency 8 / 1: {results[1][1] / results[8][1]:.2f}x")


if __name__ == "__main__":
    main()
