"""CORS for single-page apps on the token, userinfo and revocation endpoints (and PAR), per client.

A browser origin gets ``Access-Control-Allow-Origin`` only if it is listed in the ``allowed_origins`` of the client
the request is about: for the token, revocation and PAR endpoints the client named by ``client_id`` (body or Basic),
for userinfo the client the access token was issued to. A preflight (OPTIONS) carries no client, so it is answered
for an origin that some client registered — it reveals nothing, and the real response is still judged per client.
Unregistered origins get no CORS header at all. No ``Access-Control-Allow-Credentials``: these endpoints never use
cookies. Discovery and JWKS stay public (``*``), as before.
"""

from __future__ import annotations

import json

from flask import g, request

ENDPOINTS = {"oauth_api.token": "POST", "oauth_api.userinfo": "GET, POST", "oauth_api.revoke": "POST",
             "oauth_api.par": "POST"}
ALLOW_HEADERS = "Authorization, DPoP, Content-Type"
EXPOSE_HEADERS = "DPoP-Nonce, WWW-Authenticate, Retry-After"
ORIGINS_KEY = "oauth:cors:origins"


def registered_origins(provider) -> set[str]:
    """Every origin any client registered (cached in Redis for a minute; writes to clients drop the cache)."""
    r = provider.tokens.redis
    raw = r.get(ORIGINS_KEY)
    if raw is None:
        from sqlalchemy import select

        from authsvc.models import OAuthClient

        rows = provider.db.session.execute(select(OAuthClient.allowed_origins)
                                           .where(OAuthClient.allowed_origins != "[]")).scalars()
        raw = json.dumps(sorted({o for row in rows for o in json.loads(row or "[]")}))
        r.set(ORIGINS_KEY, raw, ex=60)
    return set(json.loads(raw))


def _client_id() -> str | None:
    cid = g.get("authsvc_cors_client")
    if cid:
        return cid
    if request.endpoint == "oauth_api.userinfo":
        return None  # only the token says which client it is about
    from authlib.oauth2.rfc6749.util import extract_basic_authorization

    basic_id, _ = extract_basic_authorization(request.headers) if request.headers.get("Authorization", "").lower() \
        .startswith("basic ") else (None, None)
    return basic_id or request.form.get("client_id")


def apply(provider, resp):
    origin = request.headers.get("Origin")
    allowed_methods = ENDPOINTS.get(request.endpoint or "")
    if not origin or allowed_methods is None:
        return resp
    resp.vary.add("Origin")
    if request.method == "OPTIONS":
        try:
            known = origin in registered_origins(provider)
        except Exception:  # noqa: BLE001 - store down: no CORS headers (closed), never a 500 on a preflight
            known = False
        if known:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Methods"] = allowed_methods
            resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            resp.headers["Access-Control-Max-Age"] = "600"
        return resp
    try:
        cid = _client_id()
        client = provider.clients.get(cid) if cid else None
    except Exception:  # noqa: BLE001 - a header decision must not turn an answer into a 500; no header then
        return resp
    if client is not None and origin in client.allowed_origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return resp
