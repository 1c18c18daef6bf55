"""P2 (token introspection) and P3 (refresh-token grant): req/s ÷ hello-world on the same server, p50/p99.

    .venv/bin/python bench/p3_oauth.py [--duration 15]

Tokens are obtained the way an app would (authorization code + PKCE through the real login and consent pages,
in-process against the same PostgreSQL and Redis), then wrk drives the gunicorn server:
* introspection: POST /oauth2/introspect with client authentication, one opaque access token;
* refresh: each wrk connection owns one refresh-token chain and swaps in the rotated token from every response
  (one connection per thread, so no chain is ever used twice — that would be reuse and revoke the family); 16
  chains by default, so the server is loaded like the other P2 runs (c16), not limited by 4 requests in flight.

The server runs with `authsvc serve`'s default of 2×CPU+1 sync workers; hello-world (GET /healthz) is measured on
that same server at the same connection counts.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import PG_URL, base_env, dump, ensure_database, make_users, reset_state, server, tmpdir, wrk  # noqa

PASSWORD = "bench password that is long enough"
REDIRECT = "https://rp.example/cb"

INTROSPECT_LUA = """
wrk.method = "POST"
wrk.body = "token=%s"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %s"
"""

REFRESH_LUA = """
local tokens = {%s}
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("rt", tokens[counter])
end
request = function()
  return wrk.format("POST", "/oauth2/token", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic %s"}, "grant_type=refresh_token&refresh_token=" .. rt)
end
response = function(status, headers, body)
  local t = body:match('"refresh_token"%%s*:%%s*"([^"]+)"')
  if t then rt = t end
end
"""


def obtain_tokens(env: dict, n: int) -> tuple[str, str, list[dict]]:
    """(client_id, secret, token responses) via the real authorize → login → consent → token flow."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("AUTHSVC_")})
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from authsvc import create_app
    from tests.functional import oauth_helpers as oh
    from tests.functional.helpers import login

    app = create_app({"TESTING": True})
    with app.app_context():
        row, secret = app.extensions["authsvc.oauth"].clients.create(
            name="bench", redirect_uris=[REDIRECT], quota_per_minute=10**9,
            grant_types=("authorization_code", "refresh_token", "client_credentials"))
        client_id = row.id
    c = app.test_client()
    assert login(c, email="user0@bench.test", password=PASSWORD).status_code == 302
    out = []
    for _ in range(n):
        code, verifier = oh.get_code(c, client_id, scope="openid email offline_access")
        r = oh.redeem(c, client_id, secret, code, verifier)
        assert r.status_code == 200, r.get_data(as_text=True)
        out.append(r.json)
    return client_id, secret, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    # The server as deployed: `authsvc serve` runs 2×CPU+1 sync workers (docs/OPERATIONS.md); hello-world is measured
    # on the same server, at the same connection count, so the ratio compares like with like.
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    ap.add_argument("--chains", type=int, default=16, help="refresh chains = wrk threads = connections")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections for introspection + hello-world")
    a = ap.parse_args()
    ensure_database(PG_URL)
    env = base_env(tmpdir(), argon2_time_cost=1, argon2_memory_cost=8192, argon2_parallelism=1,
                   throttle_unfamiliar_per_second=100000)
    reset_state(env)
    make_users(env, 1, PASSWORD)
    client_id, secret, toks = obtain_tokens(env, a.chains + 1)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    env["AUTHSVC_OAUTH_ISSUER"] = env.get("AUTHSVC_BASE_URL", "http://localhost:5000")
    results = {}
    with server(env, a.workers) as (url, _):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(INTROSPECT_LUA % (toks[0]["access_token"], basic))
        import requests

        probe = requests.post(url + "/oauth2/introspect", data={"token": toks[0]["access_token"]},
                              headers={"Authorization": "Basic " + basic}, timeout=10).json()
        assert probe.get("active") is True, probe
        wrk(url + "/healthz", duration=3)  # warm-up
        for conns in dict.fromkeys((a.connections, a.chains)):  # hello-world at each connection count used below
            results[f"hello_c{conns}"] = wrk(url + "/healthz", duration=a.duration, connections=conns,
                                             threads=min(conns, 2))
        results["introspect"] = wrk(url + "/oauth2/introspect", duration=a.duration, connections=a.connections,
                                    script=fh.name)
        chains = ",".join(f'"{t["refresh_token"]}"' for t in toks[1:])
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh2:
            fh2.write(REFRESH_LUA % (chains, basic))
        results["refresh"] = wrk(url + "/oauth2/token", duration=a.duration, connections=a.chains,
                                 threads=a.chains, script=fh2.name)
    for r in results.values():
        r.pop("raw", None)
    hi16, hic = results[f"hello_c{a.connections}"], results[f"hello_c{a.chains}"]
    intr, ref = results["introspect"], results["refresh"]
    results["introspect_ratio"] = intr["rps"] / hi16["rps"]
    results["refresh_ratio"] = ref["rps"] / hic["rps"]
    print(f"hello-world c{a.connections} {hi16['rps']:8.0f} req/s p50 {hi16['p50_ms']:.2f} ms p99 {hi16['p99_ms']:.2f} ms")
    print(f"introspection   {intr['rps']:8.0f} req/s p50 {intr['p50_ms']:.2f} ms p99 {intr['p99_ms']:.2f} ms "
          f"non-2xx {intr['non2xx']}  ratio {results['introspect_ratio']:.3f} (bar ≥ 0.80)")
    print(f"hello-world c{a.chains}  {hic['rps']:8.0f} req/s")
    print(f"refresh grant   {ref['rps']:8.0f} req/s p50 {ref['p50_ms']:.2f} ms p99 {ref['p99_ms']:.2f} ms "
          f"non-2xx {ref['non2xx']}  ratio {results['refresh_ratio']:.3f} (bar ≥ 0.50)")
    dump("p3_oauth", results)


if __name__ == "__main__":
    main()
