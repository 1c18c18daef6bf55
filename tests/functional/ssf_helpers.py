"""An independent SSF receiver for the tests: a small Flask app on a real socket that verifies every pushed SET with
joserfc against the transmitter's published JWKS (RFC 8935 recipient), dedupes by jti and records what it got."""

from __future__ import annotations

import threading
import time

from flask import Flask, request
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.functional.oauth_helpers import basic, get_code, register, signed_in

SET_TYP = "secevent+jwt"


class Receiver:
    def __init__(self, jwks: dict, issuer: str, audience: str, *, hang_first: float = 0.0, status: int = 202,
                 auth: str | None = None):
        self.keys = KeySet.import_key_set(jwks)
        self.issuer, self.audience = issuer, audience
        self.events: dict[str, dict] = {}  # jti → claims (deduped)
        self.arrivals: list[str] = []  # every jti as it came over the wire (duplicates included)
        self.errors: list[str] = []
        self.hang_first = hang_first
        self.status = status
        self.auth = auth
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)
        app = Flask("receiver")

        @app.post("/events")
        def events():
            if self.auth is not None and request.headers.get("Authorization") != self.auth:
                return {"err": "authentication_failed", "description": "bad credentials"}, 401
            if request.mimetype != "application/secevent+jwt":
                return {"err": "invalid_request", "description": "wrong content type"}, 400
            raw = request.get_data(as_text=True)
            try:
                tok = jwt.decode(raw, self.keys)
            except Exception as exc:  # noqa: BLE001 - report it to the test
                self.errors.append(f"bad signature: {exc}")
                return {"err": "invalid_key", "description": "signature"}, 400
            header, claims = tok.header, tok.claims
            problem = None
            if header.get("typ") != SET_TYP:
                problem = "typ"
            elif claims.get("iss") != self.issuer:
                problem = "iss"
            elif claims.get("aud") != self.audience:
                problem = "aud"
            elif "sub" in claims or "exp" in claims:
                problem = "sub/exp present"
            elif not isinstance(claims.get("events"), dict) or len(claims["events"]) != 1:
                problem = "events"
            if problem:
                self.errors.append(problem)
                return {"err": "invalid_request", "description": problem}, 400
            with self.lock:
                self.arrivals.append(claims["jti"])
                first = len(self.arrivals) == 1
            if first and self.hang_first:
                time.sleep(self.hang_first)
            with self.got:
                self.events.setdefault(claims["jti"], claims)  # RFC 8935: dedupe by jti
                self.got.notify_all()
            return "", self.status

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def types(self) -> list[str]:
        return [next(iter(c["events"])) for c in self.events.values()]

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self.got:
            while len(self.events) < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.got.wait(left)
        return True

    def stop(self):
        self.server.shutdown()


def receiver_client(app, client, email="alice@example.com"):
    """(client_id, secret, bearer token) of a confidential client alice consented to, that also uses the
    client_credentials grant to manage its SSF streams."""
    cid, secret = register(app, grant_types=["authorization_code", "refresh_token", "client_credentials"])
    signed_in(app, client, email=email)
    get_code(client, cid)  # alice approves the consent screen: she now "uses" this receiver
    tok = client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert tok.status_code == 200, tok.get_data(as_text=True)
    return cid, secret, tok.get_json()["access_token"]


def cc_token(client, cid, secret) -> str:
    tok = client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    assert tok.status_code == 200, tok.get_data(as_text=True)
    return tok.get_json()["access_token"]


def bearer(tok: str) -> dict:
    return {"Authorization": "Bearer " + tok}
