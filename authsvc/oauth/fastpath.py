"""The two hot OAuth endpoints as lean WSGI paths, without Flask's request machinery:

* POST /oauth2/introspect (RFC 7662) — resource servers call it on every request they serve (PERFORMANCE P2:
  ≥ 0.80 of a hello-world route). ``OAuthProvider.introspect_lean``: one Redis round trip (client, quota count and
  token records in one pipeline).
* POST /oauth2/token with ``grant_type=refresh_token`` — every app refreshes every few minutes (P3: ≥ 0.50).
  ``OAuthProvider.refresh_lean``: one Redis round trip for client + quota, the rotation (Lua + one autocommit SQL
  statement), one pipeline to store the new access token.

This layer only parses the form and writes the answer, like ``authsvc.api.fastpath`` does for the session check.
The decisions are the provider's, shared with the Flask views and Authlib's endpoints:

* the common case (a client that authenticates as registered, the usual parameters) is answered here, with the
  JSON, status and headers the Flask route sends;
* everything else (no or bad credentials, missing or extra parameters, other grant types, unusual content type or
  size, http to a non-loopback host, a client not cached yet) is handed to Flask untouched — body included — before
  any token is touched, and Authlib answers it;
* DPoP (RFC 9449): a refresh with a valid proof is answered here (the new access token bound to the key, one more
  Redis command for the ``jti``); a proof that fails any check or lacks a required nonce goes to Flask, which answers
  the error. Without a proof this path never hands out a token a binding forbids: a client registered as "DPoP
  required" goes to Flask, and the rotation refuses a DPoP-bound refresh family (``invalid_dpop_proof``) before
  touching it. Introspection of a DPoP-bound token stays here (its record carries ``jkt``; the answer has
  ``token_type: DPoP`` and ``cnf``);
* continuous risk (public clients' refresh families, see docs/ARCHITECTURE.md "Continuous session risk"): the
  rotation's SQL RETURNING carries the family's birth network, so scoring a refresh adds no round trip (a geo lookup
  in memory only when the prefix moved); introspection scores the token's family only when the resource server
  forwards ``authsvc_client_ip`` (the access token's record carries the birth);
* a store that does not answer → 503 ``temporarily_unavailable`` (never ``active: false``), over quota → 429, as the
  Flask error handlers of the ``oauth_api`` blueprint answer.
"""

from __future__ import annotations

import io
import logging
from urllib.parse import parse_qsl

from authlib.common.security import is_secure_transport

from authsvc import metrics
from authsvc.errors import STORE_ERRORS, Throttled
from authsvc.oauth.provider import INVALID_BASIC, malformed_basic
from authsvc.web.http import HSTS, SECURITY_HEADERS

log = logging.getLogger("authsvc.oauth")
INTROSPECT, TOKEN = "/oauth2/introspect", "/oauth2/token"
MAX_BODY = 8192  # a token, a hint, maybe client credentials: anything bigger goes to Flask (and its size limit)

# What the Flask route sends: Authlib's JSON headers plus authsvc.web.http._security_headers.
_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
            *SECURITY_HEADERS]
_STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED", 429: "429 TOO MANY REQUESTS", 503: "503 SERVICE UNAVAILABLE"}


def _form(environ, limit: int) -> tuple[dict, bytes] | None:
    """The urlencoded body as {name: first value} (what ``request.form.get`` returns), and the raw bytes."""
    ctype = environ.get("CONTENT_TYPE", "")
    if ctype.partition(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= limit:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)  # whoever answers next (Flask) reads the same body
    if len(body) != length:
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for k, v in pairs:
        form.setdefault(k, v)
    return form, body


class OAuthFastPath:
    def __init__(self, app, wsgi_app):
        self.app = app  # the Flask app (for its app context and the provider)
        self.wsgi_app = wsgi_app  # the next WSGI callable (Flask, or another fast path)
        limit = app.config.get("MAX_CONTENT_LENGTH")
        self.max_body = min(MAX_BODY, limit) if limit else MAX_BODY

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if (path != INTROSPECT and path != TOKEN) or environ.get("REQUEST_METHOD") != "POST" \
                or environ.get("HTTP_ORIGIN"):  # a browser (SPA): Flask answers, with its per-client CORS headers
            return self.wsgi_app(environ, start_response)
        scheme = environ.get("wsgi.url_scheme", "http")
        if malformed_basic(environ.get("HTTP_AUTHORIZATION")):
            # Answered here, as the blueprint's before_request does: Authlib's decoder would raise on it.
            data = self.app.json.dumps(INVALID_BASIC).encode()
            extra = [("WWW-Authenticate", 'Basic realm="authsvc"')] + ([HSTS] if scheme == "https" else [])
            start_response(_STATUS[401], _HEADERS + extra + [("Content-Length", str(len(data)))])
            return [data]
        parsed = _form(environ, self.max_body)
        if parsed is None:
            return self.wsgi_app(environ, start_response)
        form, _ = parsed
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        extra: list[tuple[str, str]] = []
        fallback = False
        try:
            with self.app.app_context():
                from authsvc.extensions import db

                try:
                    provider = self.app.extensions["authsvc.oauth"]
                    kwargs = {"authorization": environ.get("HTTP_AUTHORIZATION"), "form": form,
                              "secure": is_secure_transport(f"{scheme}://{host}/"),
                              "audit_ctx": lambda: self._audit_ctx(environ)}
                    if path == INTROSPECT:
                        answer = provider.introspect_lean(**kwargs)
                    else:
                        dpop = environ.get("HTTP_DPOP")
                        answer = provider.refresh_lean(**kwargs, dpop=dpop)
                        nonce = provider.dpop_nonce() if dpop is not None else None
                        if nonce:
                            extra.append(("DPoP-Nonce", nonce))  # RFC 9449 §8.2, as the Flask view sends it
                    if answer is None:
                        fallback = True
                    else:
                        status, payload = (200, answer) if path == INTROSPECT else answer
                        body = self.app.json.dumps(payload)
                except Throttled as exc:
                    status, extra = 429, [("Retry-After", str(exc.retry_after))]
                    body = self.app.json.dumps({"error": "too_many_requests",
                                                "error_description": "Request quota exceeded; retry later."})
                finally:
                    db.session.remove()
        except STORE_ERRORS as exc:
            # Fail closed, as the blueprint's handler does: a token we cannot check is neither active nor inactive.
            log.error("oauth: dependency unavailable: %s", type(exc).__name__)
            metrics.UNAVAILABLE.labels(metrics.dependency_of(exc)).inc()
            status, extra = 503, [("Retry-After", "5")]
            body = self.app.json.dumps({"error": "temporarily_unavailable",
                                        "error_description": "A backing store is unavailable."})
        if fallback:  # not the common case: Flask and Authlib answer it (nothing was charged)
            return self.wsgi_app(environ, start_response)
        data = body.encode()
        if scheme == "https":
            extra.append(HSTS)
        start_response(_STATUS[status], _HEADERS + extra + [("Content-Length", str(len(data)))])
        return [data]

    def _audit_ctx(self, environ) -> dict:
        """IP and user agent for an audit row written from here (rare: the first over-quota request of a window),
        derived exactly as for Flask requests."""
        from werkzeug.wrappers import Request

        from authsvc.web.http import client_ip

        req = Request(environ)
        return {"ip": client_ip(req, self.app.config["AUTHSVC"].trusted_proxies),
                "user_agent": (req.headers.get("User-Agent") or "")[:512] or None}
