"""Shared steps for the OAuth tests: register clients through the real ClientService, drive /oauth2/authorize with a
signed-in Flask test client, redeem codes at /oauth2/token."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

from tests.conftest import create_user, csrf_token
from tests.functional.helpers import login

REDIRECT = "https://rp.example/cb"


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def register(app, **kw):
    """(client_id, secret) of a new client; confidential with code + refresh by default."""
    kw.setdefault("name", "Test RP")
    kw.setdefault("redirect_uris", [REDIRECT])
    with app.app_context():
        row, secret = app.extensions["authsvc.oauth"].clients.create(**kw)
        return row.id, secret


def signed_in(app, client, email="alice@example.com"):
    create_user(app, email=email)
    r = login(client, email=email)
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


def query(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(client, client_id, *, scope="openid email", redirect_uri=REDIRECT, challenge=None, consent=True,
              **extra):
    """Run /oauth2/authorize (approving the consent screen if shown); returns the final response."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
              "state": "st-" + secrets.token_hex(4), "code_challenge_method": "S256", **extra}
    if challenge is not None:
        params["code_challenge"] = challenge
    params = {k: v for k, v in params.items() if v is not None}
    r = client.get("/oauth2/authorize", query_string=params)
    if r.status_code == 200 and consent and b"decision" in r.data:
        r = client.post("/oauth2/authorize", query_string=params,
                        data={"csrf_token": csrf_token(r.get_data(as_text=True)), "decision": "allow"})
    return r


def get_code(client, client_id, **kw):
    verifier, challenge = pkce()
    r = authorize(client, client_id, challenge=challenge, **kw)
    assert r.status_code == 302, r.get_data(as_text=True)[:800]
    q = query(r.location)
    assert "code" in q, r.location
    return q["code"], verifier


def token(client, data, auth=None):
    headers = {}
    if auth:
        cred = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = "Basic " + cred
    return client.post("/oauth2/token", data=data, headers=headers)


def redeem(client, client_id, secret, code, verifier, redirect_uri=REDIRECT):
    return token(client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                          "redirect_uri": redirect_uri}, auth=(client_id, secret))


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def code_tokens(app, client, **reg):
    """(client_id, secret, token response) of a new client after the whole code flow as alice."""
    cid, secret = register(app, **reg)
    signed_in(app, client)
    code, verifier = get_code(client, cid)
    r = redeem(client, cid, secret, code, verifier)
    assert r.status_code == 200, r.json
    return cid, secret, r.json
