"""In-process CPU cost of continuous session risk on the API session check (SessionService.check_light).

Same app, same Redis, same session: N checks without a request context (no drift scoring) against N checks with one
(drift scoring: prefix, browser family, birth comparison — in the same Lua round trip). Prints µs per check of
process CPU time (time.process_time, so the other processes on a shared box do not count) and the ratio.

    .venv/bin/python bench/drift_cost.py [--n 5000] [--path wsgi]

``--path wsgi`` measures the whole lean WSGI session check (authsvc.api.fastpath: environ → response, behind a
trusted proxy setting as bench/p2_session.py runs) with ``session_drift_bearer`` on vs off, so the work drift scoring
adds around ``check_light`` — resolving the client address through the trusted proxies — is counted too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--path", choices=("check", "wsgi"), default="check")
    a = ap.parse_args()
    from authsvc import create_app
    from authsvc.accounts.login import RequestContext
    from tests.conftest import FAST_ARGON2

    with tempfile.TemporaryDirectory() as folder:
        cfg = dict(FAST_ARGON2, instance_path=folder, secret_key="bench", TESTING=True,
                   trusted_proxies=("127.0.0.1/32",))
        if os.environ.get("BENCH_DATABASE_URL"):
            cfg["database_url"] = os.environ["BENCH_DATABASE_URL"]
        app = create_app(cfg)
        with app.app_context():
            from authsvc.cli import upgrade_database
            from authsvc.services import services

            upgrade_database()
            s = services()
            s.accounts.register("bench@example.com", "correct horse battery staple", RequestContext("127.0.0.1", UA))
            user = s.accounts.db.session.execute(
                s.accounts.db.select(__import__("authsvc.models", fromlist=["User"]).User)).scalar_one()
            token = s.sessions.issue(user, ip="198.51.100.7", user_agent=UA).token
            sessions = s.sessions
            ctx = ("198.51.100.7", UA)
            assert sessions.check_light(token, ctx) is not None
        best = {"off": float("inf"), "on": float("inf")}
        if a.path == "wsgi":
            import dataclasses

            from authsvc.api.fastpath import SessionCheckFastPath

            fast = SessionCheckFastPath(app, app.wsgi_app)
            environ = {"PATH_INFO": "/api/v1/session", "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http",
                       "HTTP_AUTHORIZATION": "Bearer " + token, "HTTP_USER_AGENT": UA, "REMOTE_ADDR": "127.0.0.1",
                       "HTTP_X_FORWARDED_FOR": "198.51.100.7"}

            def start_response(status, headers):
                assert status.startswith("200"), status

            from authsvc.api import fastpath

            settings = {"on": app.config["AUTHSVC"], "on_uncached": app.config["AUTHSVC"],
                        "off": dataclasses.replace(app.config["AUTHSVC"], session_drift_bearer=False)}
            cached = fastpath._resolve_cached
            best["on_uncached"] = float("inf")
            for _ in range(a.rounds):
                for name in ("off", "on", "on_uncached"):
                    app.config["AUTHSVC"] = settings[name]
                    # on_uncached: the address resolved on every check, as before the memo (same run, for the ratio)
                    fastpath._resolve_cached = fastpath._resolve if name == "on_uncached" else cached
                    t0 = time.process_time()
                    for _ in range(a.n):
                        fast(environ, start_response)
                    best[name] = min(best[name], (time.process_time() - t0) / a.n * 1e6)
        else:
            with app.app_context():
                for _ in range(a.rounds):  # interleaved rounds; the best of each (least disturbed)
                    for name, c in (("off", None), ("on", ctx)):
                        t0 = time.process_time()
                        for _ in range(a.n):
                            sessions.check_light(token, c)
                        best[name] = min(best[name], (time.process_time() - t0) / a.n * 1e6)
        from authsvc import embedded_redis

        embedded_redis.stop(folder)  # the private redis-server the app started must not outlive the bench
    what = "lean WSGI check" if a.path == "wsgi" else "check_light"
    print(f"{what} without drift scoring: {best['off']:.1f} µs CPU per check")
    print(f"{what} with drift scoring:    {best['on']:.1f} µs CPU per check")
    if "on_uncached" in best:
        print(f"{what} with drift, address not memoised: {best['on_uncached']:.1f} µs CPU per check "
              f"(ratio {best['on_uncached'] / best['off']:.3f})")
    print(f"ratio with/without = {best['on'] / best['off']:.3f}  (same Redis round trip count: 1)")


if __name__ == "__main__":
    main()
