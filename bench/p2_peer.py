"""P2 — token introspection against the certified Node peer (panva oidc-provider 9.x) and a hello-world route.

    .venv/bin/python bench/p2_peer.py [--duration 15] [--workers N] [--peer-token access|client_credentials] [--dpop]

``--dpop`` (issue 14): both sides introspect a DPoP-bound access token (RFC 9449) — authsvc's minted through the code
flow with a DPoP proof at the token endpoint, the peer's minted bound to the same key thumbprint (features.dPoP) —
and both answers must carry ``token_type: DPoP`` and ``cnf.jkt``.

One run, one box, three loads with wrk -t2 -c16 (PERFORMANCE.md, P2):
1. the peer: oidc-provider 9.x in ONE Node process (bench/peer/server.mjs: default in-memory adapter, one
   client_secret_basic client, introspection + client-credentials enabled, plain HTTP on 127.0.0.1),
   POST /token/introspection of one opaque access token it minted itself. By default that token is bound to an
   account and a grant (what an authorization-code flow leaves behind, the kind authsvc's token is; the peer then
   also checks the grant); ``--peer-token client_credentials`` introspects a token from POST /token
   grant_type=client_credentials instead. The peer is stopped before authsvc starts.
2. authsvc's gunicorn (harness.server, ``--workers`` sync workers, default 2×CPU+1): GET /healthz (hello-world);
3. same server: POST /oauth2/introspect of an opaque access token minted through the real authorize → login →
   consent → token flow (bench/p3_oauth.obtain_tokens), client authentication with HTTP Basic.

Prints raw req/s, p50, p99 for the three and the ratios authsvc/hello-world and authsvc/peer; also the CPU that the
server processes (gunicorn workers / the Node process; Redis separately) spent per request during each load, which
is less sensitive to a noisy box than req/s. Both servers must answer active:true before they are loaded and after,
and every response under load must be 2xx (else the run is reported INVALID, exit status 1).
Installs the peer (npm ci into bench/peer/node_modules) on first use. Results: bench/results/p2_peer.json.
State: database authsvc_bench_peer and Redis db 14 (BENCH_DATABASE_URL / BENCH_REDIS_URL override), dropped and
flushed at the start, so that a concurrent run of the other benchmarks (authsvc_bench, db 12) is not disturbed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Its own database and Redis db unless told otherwise: reset_state drops the schema and flushes Redis, and the other
# benchmarks (authsvc_bench, Redis db 12; p6 uses db 13) may be running on the same box at the same time.
os.environ.setdefault("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/authsvc_bench_peer")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

from bench.harness import (PG_URL, ROOT, base_env, dump, ensure_database, free_port, make_users, reset_state,  # noqa
                           server, tmpdir, worker_cpu_seconds, wrk)
from bench.p3_oauth import INTROSPECT_LUA, PASSWORD, obtain_tokens  # noqa

PEER_DIR = os.path.join(ROOT, "bench", "peer")
NODE = os.environ.get("BENCH_NODE", shutil.which("node") or "/usr/bin/node")
THREADS, CONNECTIONS = 2, 16


def ensure_peer_installed() -> str:
    """npm ci (or npm install without a lock file) into bench/peer/node_modules; returns oidc-provider's version."""
    pkg = os.path.join(PEER_DIR, "node_modules", "oidc-provider", "package.json")
    if not os.path.exists(pkg):
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("npm is required to install the Node peer (bench/peer)")
        verb = "ci" if os.path.exists(os.path.join(PEER_DIR, "package-lock.json")) else "install"
        print(f"installing the peer: npm {verb} in bench/peer …", flush=True)
        subprocess.run([npm, verb, "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True,
                       timeout=300, stdout=subprocess.DEVNULL)
    with open(pkg) as fh:
        return json.load(fh)["version"]


def proc_cpu_seconds(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def redis_cpu_seconds(env: dict) -> float:
    """redis-server's own CPU (INFO cpu): part of what an authsvc introspection costs, as its store."""
    import redis

    info = redis.Redis.from_url(env["AUTHSVC_REDIS_URL"]).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def socket_errors(raw: str) -> str | None:
    m = re.search(r"Socket errors: (.*)", raw)
    return m.group(1).strip() if m else None


def lua_script(work: str, name: str, token: str, basic: str) -> str:
    path = os.path.join(work, name)
    with open(path, "w") as fh:
        fh.write(INTROSPECT_LUA % (token, basic))
    return path


def introspect(url: str, token: str, basic: str) -> dict:
    import requests

    r = requests.post(url, data={"token": token}, headers={"Authorization": "Basic " + basic}, timeout=10)
    r.raise_for_status()
    return r.json()


def is_jwt(token: str) -> bool:
    return token.count(".") == 2


class Peer:
    """oidc-provider in one Node process; started and stopped (SIGTERM, then SIGKILL) by this object."""

    def __init__(self, work: str, dpop_jkt: str | None = None):
        self.port = free_port()
        self.out_path = os.path.join(work, "peer.out")
        self.err_path = os.path.join(work, "peer.err")
        self.proc: subprocess.Popen | None = None
        self.dpop_jkt = dpop_jkt

    def __enter__(self) -> dict:
        env = dict(os.environ, NODE_ENV="production")
        if self.dpop_jkt:
            env["PEER_DPOP_JKT"] = self.dpop_jkt
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([NODE, os.path.join(PEER_DIR, "server.mjs"), str(self.port)], cwd=PEER_DIR,
                                         env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.time() + 30
        while True:
            with open(self.out_path) as fh:
                first = fh.readline()
            if first.endswith("\n"):
                info = json.loads(first)
                break
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                with open(self.err_path) as fh:
                    raise RuntimeError("the Node peer did not start:\n" + fh.read()[-2000:])
            time.sleep(0.1)
        info["url"] = info["issuer"]
        info["pid"] = self.proc.pid
        return info

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def __exit__(self, *exc) -> None:
        self.stop()


def check_dpop(probe: dict, jkt: str | None, who: str) -> None:
    if jkt:
        assert probe.get("token_type") == "DPoP" and probe.get("cnf", {}).get("jkt") == jkt, f"{who}: {probe}"


def obtain_dpop_token(env: dict) -> tuple[str, str, str, str]:
    """(client_id, secret, access token, jkt): the code flow with a DPoP proof at the token endpoint."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("AUTHSVC_")})
    from authsvc import create_app
    from tests.dpop_client import DPoPKey
    from tests.functional import oauth_helpers as oh
    from tests.functional.helpers import login

    key = DPoPKey.generate("ES256")
    app = create_app({"TESTING": True})
    with app.app_context():
        row, secret = app.extensions["authsvc.oauth"].clients.create(
            name="bench", redirect_uris=[oh.REDIRECT], quota_per_minute=10**9)
        client_id, issuer = row.id, app.extensions["authsvc.oauth"].issuer
    c = app.test_client()
    assert login(c, email="user0@bench.test", password=PASSWORD).status_code == 302
    code, verifier = oh.get_code(c, client_id, scope="openid email offline_access")
    r = c.post("/oauth2/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                      "redirect_uri": oh.REDIRECT},
               headers={**oh.basic(client_id, secret), "DPoP": key.proof("POST", issuer + "/oauth2/token")})
    assert r.status_code == 200 and r.json["token_type"] == "DPoP", r.get_data(as_text=True)
    return client_id, secret, r.json["access_token"], key.jkt


def measure_peer(work: str, duration: int, token_kind: str, dpop_jkt: str | None = None) -> dict:
    import requests

    with Peer(work, dpop_jkt) as info:
        url, basic = info["url"], base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
        if token_kind == "client_credentials":
            r = requests.post(url + "/token", data={"grant_type": "client_credentials", "scope": "api:read"},
                              headers={"Authorization": "Basic " + basic}, timeout=10)
            r.raise_for_status()
            token = r.json()["access_token"]
        else:
            token = info["access_token"]
        assert not is_jwt(token), f"peer token is not opaque: {token[:40]}…"
        endpoint = url + "/token/introspection"
        probe = introspect(endpoint, token, basic)
        assert probe.get("active") is True, probe
        check_dpop(probe, dpop_jkt, "peer")
        assert introspect(endpoint, "not-a-token", basic).get("active") is False
        script = lua_script(work, "peer.lua", token, basic)
        wrk(endpoint, duration=3, threads=THREADS, connections=CONNECTIONS, script=script)  # warm-up (V8 JIT)
        cpu0 = proc_cpu_seconds(info["pid"])
        res = wrk(endpoint, duration=duration, threads=THREADS, connections=CONNECTIONS, script=script)
        res["server_cpu_s"] = proc_cpu_seconds(info["pid"]) - cpu0
        after = introspect(endpoint, token, basic)
        assert after.get("active") is True, f"peer token no longer active after the load: {after}"
    res["token_kind"] = token_kind
    res["probe"] = probe
    return res


def measure_authsvc(work: str, env: dict, workers: int, duration: int, token: str, basic: str,
                    dpop_jkt: str | None = None) -> tuple[dict, dict]:
    with server(env, workers) as (url, proc):
        endpoint = url + "/oauth2/introspect"
        probe = introspect(endpoint, token, basic)
        assert probe.get("active") is True, probe
        check_dpop(probe, dpop_jkt, "authsvc")
        assert introspect(endpoint, "not-a-token", basic).get("active") is False
        script = lua_script(work, "authsvc.lua", token, basic)
        wrk(url + "/healthz", duration=3, threads=THREADS, connections=CONNECTIONS)  # warm-up
        wrk(endpoint, duration=2, threads=THREADS, connections=CONNECTIONS, script=script)  # warm-up
        cpu0 = worker_cpu_seconds(proc.pid)
        hello = wrk(url + "/healthz", duration=duration, threads=THREADS, connections=CONNECTIONS)
        hello["server_cpu_s"] = worker_cpu_seconds(proc.pid) - cpu0
        cpu0, rcpu0 = worker_cpu_seconds(proc.pid), redis_cpu_seconds(env)
        intr = wrk(endpoint, duration=duration, threads=THREADS, connections=CONNECTIONS, script=script)
        intr["server_cpu_s"] = worker_cpu_seconds(proc.pid) - cpu0
        intr["redis_cpu_s"] = redis_cpu_seconds(env) - rcpu0
        after = introspect(endpoint, token, basic)
        assert after.get("active") is True, f"authsvc token no longer active after the load: {after}"
    intr["probe"] = probe
    return hello, intr


def cpu_ms_per_request(r: dict) -> float | None:
    """Server processes' CPU per request during the load (gunicorn workers, or the one Node process)."""
    return 1000 * r["server_cpu_s"] / r["requests"] if r.get("server_cpu_s") and r["requests"] else None


def line(label: str, r: dict) -> str:
    cpu = cpu_ms_per_request(r)
    per = f"  CPU {cpu:.3f} ms/req" if cpu else ""
    if cpu and r.get("redis_cpu_s") is not None:
        per += f" (+ Redis {1000 * r['redis_cpu_s'] / r['requests']:.3f})"
    return (f"{label:<44} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"non-2xx {r['non2xx']}{per}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=15, help="seconds per measured load (plus short warm-ups)")
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1, help="authsvc gunicorn workers")
    ap.add_argument("--peer-token", choices=("access", "client_credentials"), default="access",
                    help="which opaque token the peer introspects (default: account- and grant-bound access token)")
    ap.add_argument("--dpop", action="store_true", help="introspect DPoP-bound access tokens on both sides")
    a = ap.parse_args()
    # A plain SIGTERM would skip the finally/with blocks that stop the servers: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required (apt install wrk)")
    version = ensure_peer_installed()
    load_at_start = os.getloadavg()[0]  # the box is shared: say how busy it was
    node_version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    work = tmpdir()

    # authsvc's state and token first (in-process, before any load), so both loads run back to back.
    ensure_database(PG_URL)
    env = base_env(work, argon2_time_cost=1, argon2_memory_cost=8192, argon2_parallelism=1,
                   throttle_unfamiliar_per_second=100000)
    reset_state(env)
    make_users(env, 1, PASSWORD)
    jkt = None
    if a.dpop:
        client_id, secret, token, jkt = obtain_dpop_token(env)
    else:
        client_id, secret, toks = obtain_tokens(env, 1)
        token = toks[0]["access_token"]
    assert not is_jwt(token), "authsvc access token is not opaque"
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    env["AUTHSVC_OAUTH_ISSUER"] = env.get("AUTHSVC_BASE_URL", "http://localhost:5000")

    peer = measure_peer(work, a.duration, a.peer_token, jkt)
    hello, intr = measure_authsvc(work, env, a.workers, a.duration, token, basic, jkt)

    results = {"loadavg_1m_at_start": load_at_start, "duration_s": a.duration, "dpop": a.dpop, "wrk": f"-t{THREADS} -c{CONNECTIONS}",
               "workers": a.workers,
               "peer_software": f"oidc-provider {version}", "node": node_version, "peer_processes": 1,
               "peer_introspect": peer, "hello": hello, "introspect": intr}
    problems = []
    for name in ("peer_introspect", "hello", "introspect"):
        r = results[name]
        r["socket_errors"] = socket_errors(r.pop("raw"))
        if r["non2xx"]:
            problems.append(f"{name}: {r['non2xx']} non-2xx responses")
        if r["socket_errors"]:
            problems.append(f"{name}: socket errors {r['socket_errors']}")
    results["ratio_introspect_hello"] = intr["rps"] / hello["rps"]
    results["ratio_introspect_peer"] = intr["rps"] / peer["rps"]
    cpu_peer, cpu_authsvc = cpu_ms_per_request(peer), cpu_ms_per_request(intr)
    if cpu_peer and cpu_authsvc:
        results["cpu_per_request_authsvc_over_peer"] = cpu_authsvc / cpu_peer

    print(f"\nwrk -t{THREADS} -c{CONNECTIONS}, {a.duration} s per load, one run; "
          f"authsvc: {os.environ.get('BENCH_SERVER') or 'gunicorn'} {a.workers} workers; "
          f"peer: oidc-provider {version} on Node {node_version}, "
          f"1 process, {a.peer_token} token{' (DPoP-bound)' if a.dpop else ''}; "
          f"1-min load average at start {load_at_start:.2f}")
    print(line("peer  POST /token/introspection (oidc-provider)", peer))
    print(line("authsvc GET /healthz (hello-world)", hello))
    print(line("authsvc POST /oauth2/introspect", intr))
    print(f"ratio authsvc introspection / hello-world = {results['ratio_introspect_hello']:.3f}  (bar ≥ 0.80)")
    print(f"ratio authsvc introspection / peer        = {results['ratio_introspect_peer']:.3f}  (aim ≥ 1.0)")
    if "cpu_per_request_authsvc_over_peer" in results:
        print(f"CPU per introspection authsvc workers / peer process = "
              f"{results['cpu_per_request_authsvc_over_peer']:.2f}  (Redis's share not included)")
    print(f"authsvc introspection p99 {intr['p99_ms']:.2f} ms  (bar ≤ 5 ms)")
    dump("p2_peer_dpop" if a.dpop else "p2_peer", results)
    shutil.rmtree(work, ignore_errors=True)
    if problems:
        raise SystemExit("INVALID RUN: " + "; ".join(problems))


if __name__ == "__main__":
    main()
