"""Back-Channel Logout: how long from a sign-in ending at authsvc to the app holding a verified logout token, and what
telling the apps adds to the user's own sign-out.

One app process (embedded defaults: SQLite + private Redis, or BENCH_DATABASE_URL), the outbox worker running in a
thread as `authsvc signals worker` runs it (default poll interval), and a relying party on a real socket that
verifies each logout token against the JWKS (joserfc: signature, typ, aud, events) before it counts it. Per round a
user signs in, three apps get a grant from that session, and the session is revoked (SessionService.revoke, the
path every logout takes); latency = revoke call → the last of the three verified tokens received.

Same-run baseline: process CPU of the revoke call with no app to tell (the same user, sessions and grants, the
clients without a URI) vs with three apps to tell (three outbox rows in the same transaction).

    .venv/bin/python bench/bcl_latency.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _receiver(keyset_of, want_aud):
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per POST
    from flask import Flask, request
    from joserfc import jwt
    from werkzeug.serving import make_server

    got: dict[str, list[float]] = {}
    lock = threading.Lock()
    rp = Flask("bench-rp")

    @rp.post("/bcl")
    def bcl():
        t = time.monotonic()
        tok = jwt.decode(request.form["logout_token"], keyset_of(), algorithms=["RS256", "ES256"])
        c = tok.claims
        if tok.header.get("typ") != "logout+jwt" or c["aud"] not in want_aud or \
                "http://schemas.openid.net/event/backchannel-logout" not in c["events"] or "nonce" in c:
            return "", 400
        with lock:
            got.setdefault(c["sid"], []).append(t)
        return "", 200

    server = make_server("127.0.0.1", 0, rp, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/bcl", got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--apps", type=int, default=3)
    a = ap.parse_args()
    from authsvc import create_app
    from authsvc.accounts.login import RequestContext
    from tests.conftest import FAST_ARGON2

    with tempfile.TemporaryDirectory() as folder:
        cfg = dict(FAST_ARGON2, instance_path=folder, secret_key="bench", TESTING=True)
        if os.environ.get("BENCH_DATABASE_URL"):
            cfg["database_url"] = os.environ["BENCH_DATABASE_URL"]
        app = create_app(cfg)
        stop = threading.Event()
        with app.app_context():
            from authsvc.cli import upgrade_database
            from authsvc.extensions import db
            from authsvc.models import User
            from authsvc.oauth.tokens import new_grant_id
            from authsvc.services import services
            from authsvc.signals import signals

            upgrade_database()
            s = services()
            p = app.extensions["authsvc.oauth"]
            s.accounts.register("bench@example.com", "correct horse battery staple", RequestContext("127.0.0.1", "b"))
            user = db.session.execute(db.select(User)).scalar_one()
            want = set()  # the audiences the receiver accepts: the apps registered below
            server, uri, got = _receiver(lambda: p.keys.public_keyset(), want)
            told = [p.clients.create(name=f"rp{i}", redirect_uris=["https://rp.example/cb"],
                                     backchannel_logout_uri=uri)[0].id for i in range(a.apps)]
            silent = [p.clients.create(name=f"quiet{i}", redirect_uris=["https://rp.example/cb"])[0].id
                      for i in range(a.apps)]
            want.update(told)
            worker = signals(app).worker
            interval = signals(app).settings.signals_poll_interval

            def signed_in(clients):
                issued = s.sessions.issue(user, ip="198.51.100.7", user_agent="bench")
                for cid in clients:
                    p.tokens.create_grant(new_grant_id(), client_id=cid, user_id=user.id,
                                          session_id=issued.info.id, scope="openid", audiences=[p.issuer],
                                          auth_time=int(time.time()), acr=None, amr=["pwd"], refresh_hash=None,
                                          subject=user.sub)
                return issued.info

            # --- same-run baseline: CPU of the revoke call, nobody to tell vs a.apps apps to tell --------------------
            cpu = {"none": [], "apps": []}
            for _ in range(max(20, a.rounds // 2)):
                for name, clients in (("none", silent), ("apps", told)):
                    info = signed_in(clients)
                    t0 = time.process_time()
                    s.sessions.revoke(user, info.id, "logout")
                    cpu[name].append((time.process_time() - t0) * 1e3)
            # those notices are delivered before the latency rounds start
            thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"interval": interval},
                                      daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(len(v) for v in got.values()) < len(cpu["apps"]) * a.apps:
                time.sleep(0.05)
            got.clear()

            # --- latency: revoke → the last verified token of the round at the RP -----------------------------------
            lat = []
            for _ in range(a.rounds):
                info = signed_in(told)
                time.sleep(secrets.randbelow(100) / 1000)  # not in phase with the worker's poll
                t0 = time.monotonic()
                s.sessions.revoke(user, info.id, "logout")
                sid = info.login_id
                deadline = t0 + 30
                while time.monotonic() < deadline and len(got.get(sid, ())) < a.apps:
                    time.sleep(0.002)
                if len(got.get(sid, ())) < a.apps:
                    raise SystemExit(f"round lost: {len(got.get(sid, ()))}/{a.apps} tokens after 30 s")
                lat.append((max(got[sid]) - t0) * 1e3)
            stop.set()
            worker.wakeup.set()
            thread.join(10)
            server.shutdown()
        from authsvc import embedded_redis

        embedded_redis.stop(folder)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"worker poll interval {interval} s, {a.apps} apps per sign-in, {a.rounds} rounds, "
          f"db={'postgresql' if os.environ.get('BENCH_DATABASE_URL') else 'sqlite'}")
    print(f"revoke → last verified logout token at the RP: p50 {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms, "
          f"max {lat[-1]:.0f} ms")
    none, apps = statistics.median(cpu["none"]), statistics.median(cpu["apps"])
    print(f"revoke call CPU (median): nobody to tell {none:.2f} ms, {a.apps} apps to tell {apps:.2f} ms, "
          f"ratio {apps / none:.2f}")


if __name__ == "__main__":
    main()
