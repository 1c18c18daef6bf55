"""The session check as a lean WSGI path: GET /api/v1/session without Flask's request machinery.

Apps call this on every request they serve, so it is the hottest endpoint authsvc has. bench/p2_session.py showed
the Flask route at ~0.6 of a hello-world route on the same server; the work that matters is one Redis round trip
(``SessionService.check_light``), and everything around it here is a few dictionary look-ups. Behaviour is the
route's, byte for byte where it counts: same JSON shapes, same status codes, same security headers, 503 when a
store is down. Everything else still goes to Flask.
"""

from __future__ import annotations

import json
import logging

from authsvc import metrics
from authsvc.errors import STORE_ERRORS
from authsvc.sessions import StepUpRequired
from authsvc.web.errors import STEP_UP_CHALLENGE, STEP_UP_MESSAGE
from authsvc.web.http import HSTS, SECURITY_HEADERS

log = logging.getLogger("authsvc")
PATH = "/api/v1/session"
_UNAUTHORIZED = json.dumps({"error": "unauthorized",
                            "message": "Send a valid session token as 'Authorization: Bearer <token>'."}).encode()
_STEP_UP = json.dumps({"error": "insufficient_user_authentication", "message": STEP_UP_MESSAGE}).encode()
_UNAVAILABLE = json.dumps({"error": "unavailable",
                           "message": "The service is temporarily unavailable. Please try again shortly."}).encode()
_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *SECURITY_HEADERS]
_STATUS = {200: "200 OK", 401: "401 UNAUTHORIZED", 403: "403 FORBIDDEN", 503: "503 SERVICE UNAVAILABLE"}


class _EnvironView:
    """The two things ``client_ip`` reads, straight from the WSGI environ (a werkzeug Request costs more than the
    rest of the check: measured by bench/p2_session.py, which runs behind a trusted proxy setting)."""

    __slots__ = ("remote_addr", "headers")

    def __init__(self, environ):
        self.remote_addr = environ.get("REMOTE_ADDR")
        self.headers = {"X-Forwarded-For": environ.get("HTTP_X_FORWARDED_FOR", "")}


class SessionCheckFastPath:
    def __init__(self, app, wsgi_app):
        self.app = app  # the Flask app (for its app context and services)
        self.wsgi_app = wsgi_app  # the next WSGI callable (Flask)

    def _use(self, environ):
        """(client IP, user agent) for continuous session risk, by the same trusted-proxy rule as Flask's pages."""
        settings = self.app.config["AUTHSVC"]
        if not settings.session_drift_bearer:
            return None  # the operator's apps validate tokens from their backends: no end-user context here
        ua = (environ.get("HTTP_USER_AGENT") or "")[:512] or None
        if not settings.trusted_proxies:
            from authsvc.web.http import canonical_ip

            return canonical_ip(environ.get("REMOTE_ADDR")), ua
        from authsvc.web.http import client_ip

        return client_ip(_EnvironView(environ), settings.trusted_proxies), ua

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.wsgi_app(environ, start_response)
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        extra = []
        step_up = False
        try:
            with self.app.app_context():
                from authsvc.extensions import db

                try:
                    sessions = self.app.extensions["authsvc"].sessions
                    found = (sessions.check_light(token.strip(), self._use(environ))
                             if scheme.lower() == "bearer" else None)
                except StepUpRequired:
                    found, step_up = None, True  # suspended for drift: RFC 9470's challenge, as the route answers
                finally:
                    db.session.remove()
        except STORE_ERRORS as exc:
            # Fail closed, as the Flask error handlers do: never "valid", never "invalid" for a token we can't check.
            log.error("dependency unavailable: session check: %s", type(exc).__name__)
            metrics.UNAVAILABLE.labels(metrics.dependency_of(exc)).inc()
            status, body, extra = 503, _UNAVAILABLE, [("Retry-After", "5")]
        else:
            if step_up:
                status, body, extra = 401, _STEP_UP, [("WWW-Authenticate", STEP_UP_CHALLENGE)]
            elif found is None:
                status, body = 401, _UNAUTHORIZED
            elif found[0].must_change_password:
                from authsvc.api import PASSWORD_CHANGE_MESSAGE

                status = 403
                body = json.dumps({"error": "password_change_required", "message": PASSWORD_CHANGE_MESSAGE}).encode()
            else:
                info, email = found
                status = 200
                body = json.dumps({"user_id": info.user_id, "email": email, "session": {
                    "id": info.id, "created_at": info.created_at.isoformat(),
                    "last_seen_at": info.last_seen_at.isoformat(), "ip": info.ip, "user_agent": info.user_agent,
                    "aal": info.aal, "methods": list(info.methods), "current": True}}).encode()
        if environ.get("wsgi.url_scheme") == "https":
            extra.append(HSTS)
        start_response(_STATUS[status], _HEADERS + extra + [("Content-Length", str(len(body)))])
        return [body]
