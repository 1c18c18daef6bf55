"""Device Bound Session Credentials (W3C WebAppSec DBSC) for authsvc's browser sessions.

* ``protocol``: the wire format (structured headers, proof JWT checks) — no Flask, no Redis.
* ``service``: the binding, challenges and short cookie in Redis, next to the session.
* this module: the Flask surface — the registration offer on every response that starts a session, the
  registration and refresh endpoints, and ``enforce`` for the session check in ``authsvc.web.auth``.

Browsers without DBSC ignore the header and keep today's sessions. A bound session is refused as a bearer token
(the API and the OAuth endpoints never see a browser's cookie legitimately).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, current_app, g, jsonify, request

from authsvc.dbsc.protocol import challenge_header, parse_sf_string, registration_header
from authsvc.i18n import N_
from authsvc.dbsc.service import MISSING, OK, REPLAY, DbscError, DbscService

log = logging.getLogger("authsvc.dbsc")
bp = Blueprint("dbsc", __name__, url_prefix="/dbsc")
REGISTER_PATH = "/dbsc/register"
REFRESH_PATH = "/dbsc/refresh"


def service() -> DbscService | None:
    return current_app.extensions.get("authsvc_dbsc")


def bound_cookie_name() -> str:
    return current_app.config["AUTHSVC"].session_cookie_name + "-bound"


def _settings():
    return current_app.config["AUTHSVC"]


def _ip():
    from authsvc.web.http import request_context

    return request_context().ip


def _services():
    from authsvc.services import services

    return services()


# --- enforcement (called by the session check) ------------------------------------------------------------------------
def enforce(found):
    """``found``: (SessionInfo, User) of a session whose Redis record carries a binding. Returns ``found`` when the
    request holds the live short cookie, None otherwise; a replayed short cookie ends the session."""
    info, user = found
    svc = service()
    if svc is None:  # DBSC switched off after sessions were bound: the binding cannot be checked, so refuse
        return None
    presented = request.cookies.get(bound_cookie_name())
    verdict = svc.judge(info.binding, presented)
    if verdict == MISSING and svc.was_issued(info.id, presented):
        verdict = REPLAY  # a short cookie this session had and replaced: a copy, replayed
    if verdict == OK:
        return found
    s = _services()
    if verdict == REPLAY:
        _end(user, info.id, "dbsc_cookie_replay")
    elif verdict == MISSING and svc.note_missing(info.id):
        # At most one row a minute per session: a replayed login cookie alone must not become a write amplifier.
        s.audit.record("session:dbsc:missing", "failure", subject_id=user.id, ip=_ip(),
                       user_agent=request.user_agent.string, reason="bound session used without its short cookie",
                       details={"session": info.id[:12]})
    return None


def _end(user, sid: str, reason: str) -> None:
    """End a session caught in a DBSC violation: revoke it (and what it minted, via the revocation listeners) and
    audit it as a takeover signal."""
    s = _services()
    s.sessions.revoke(user, sid, reason)  # the revocation listeners end what the session minted (OAuth grants)
    # A thief who copied the cookie jar holds the trusted-device cookie too: forget the marks, so the next sign-in
    # asks for the second factor again.
    forgotten = s.mfa.devices.revoke_all(user) if s.mfa is not None else 0
    s.audit.record("session:dbsc:violation", "failure", subject_id=user.id, ip=_ip(),
                   user_agent=request.user_agent.string, reason=reason, details={"session": sid[:12], "takeover_signal": True,
                                            "trusted_devices_forgotten": forgotten})
    log.warning("DBSC violation (%s): session %s of user %s ended", reason, sid[:12], user.id)
    alerts = getattr(s.login, "alerts", None)
    if alerts is not None:
        from authsvc.web.http import request_context

        alerts.session_theft(user, request_context(), _WHAT.get(reason, N_("a device-bound session was misused")))


_WHAT = {
    "dbsc_cookie_replay": N_("a copy of the session's short-lived cookie was sent after it had expired"),
    "dbsc_bad_signature": N_("a request to renew the session was signed by a key other than your device's"),
    "dbsc_wrong_key": N_("a request to renew the session was signed by a key other than your device's"),
    "dbsc_jwk_on_refresh": N_("a request to renew the session tried to present a new key"),
}


# --- the offer ----------------------------------------------------------------------------------------------------
def _new_session_token(resp) -> str | None:
    name = _settings().session_cookie_name + "="
    for header in resp.headers.getlist("Set-Cookie"):
        if header.startswith(name):
            value = header[len(name):].split(";", 1)[0].strip().strip('"')
            if value and "expires=thu, 01 jan 1970" not in header.lower():
                return value
    return None


def _offer(resp):
    """Offer to bind on the response that starts a session — and only there. The challenge then reaches only the
    browser that signed in; a page of an older, unbound session never offers one, or a thief holding a copy of its
    cookie (or of an API session token) could bind the session to the thief's key and lock the owner out (found by an
    outside attack: tests/functional/test_dbsc.py::test_a_copied_unbound_cookie_never_gets_a_registration_challenge)."""
    svc = service()
    if svc is None or resp.status_code >= 400:
        return resp
    from authsvc.sessions import token_hash

    token = _new_session_token(resp)
    if token is None:
        return resp
    try:
        if svc.is_bound(token_hash(token)):  # a re-issued session that carried its binding over: nothing to offer
            return resp
        challenge = svc.registration_challenge(token_hash(token))
    except Exception:  # noqa: BLE001 - the offer is optional; never fail the login for it
        log.exception("DBSC registration offer skipped")
        return resp
    resp.headers["Secure-Session-Registration"] = registration_header(REGISTER_PATH, challenge)
    return resp


# --- endpoints ------------------------------------------------------------------------------------------------------
def _instructions(dbsc_id: str) -> dict:
    return {
        "session_identifier": dbsc_id,
        "refresh_url": REFRESH_PATH,
        "scope": {"include_site": False, "scope_specification": [
            {"type": "exclude", "domain": "*", "path": "/static"},
            {"type": "exclude", "domain": "*", "path": "/.well-known"},
        ]},
        "credentials": [{"type": "cookie", "name": bound_cookie_name(),
                         "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}],
    }


def _set_bound_cookie(resp, bound) -> None:
    resp.set_cookie(bound_cookie_name(), bound.cookie, max_age=bound.max_age, path="/", secure=True, httponly=True,
                    samesite="Lax")


def _error(exc: DbscError):
    resp = jsonify(error=exc.code, message=str(exc))
    resp.status_code = exc.status
    return resp


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/register")
def register():
    from authsvc.web.auth import cookie_session_unbound

    svc = service()
    found = cookie_session_unbound()
    if found is None or found[0].suspended:  # a session waiting for a step-up binds no key (it may be the thief's)
        return _no_store(_error(DbscError(401, "no_session", "sign in first")))
    info, user = found
    proof = parse_sf_string(request.headers.get("Secure-Session-Response"))
    try:
        bound = svc.register(info.id, proof, context=(_ip(), request.headers.get("User-Agent")))
    except DbscError as exc:
        return _no_store(_error(exc))
    s = _services()
    s.audit.record("session:dbsc:bound", "success", actor_id=user.id, subject_id=user.id, ip=_ip(),
                   user_agent=request.user_agent.string, details={"session": info.id[:12]})
    resp = jsonify(_instructions(bound.dbsc_id))
    _set_bound_cookie(resp, bound)
    resp.headers["Secure-Session-Challenge"] = challenge_header(svc.refresh_challenge(info.id), bound.dbsc_id)
    return _no_store(resp)


@bp.post("/refresh")
def refresh():
    from authsvc.web.auth import cookie_session_unbound

    svc = service()
    dbsc_id = parse_sf_string(request.headers.get("Sec-Secure-Session-Id"))
    found = cookie_session_unbound()
    # The login cookie must be there, and its session must be the one bound under this DBSC identifier
    # (checked in svc.refresh against the binding stored in that session).
    if not dbsc_id or found is None:
        return _no_store(_error(DbscError(401, "no_session", "no live session for this identifier")))
    info, user = found
    sid = info.id
    proof = parse_sf_string(request.headers.get("Secure-Session-Response"))
    try:
        bound = svc.refresh(sid, dbsc_id, proof)
    except DbscError as exc:
        if exc.end_session:
            _end(user, sid, "dbsc_" + exc.code)
        resp = _error(exc)
        if exc.status == 403:
            resp.headers["Secure-Session-Challenge"] = challenge_header(svc.refresh_challenge(sid), dbsc_id)
        return _no_store(resp)
    resp = current_app.response_class(status=200)
    _set_bound_cookie(resp, bound)
    resp.headers["Secure-Session-Challenge"] = challenge_header(svc.refresh_challenge(sid), dbsc_id)
    return _no_store(resp)


def init_app(app: Flask) -> None:
    settings = app.config["AUTHSVC"]
    if not settings.dbsc_enabled:
        return
    from authsvc.extensions import RedisExtension, csrf

    app.extensions["authsvc_dbsc"] = DbscService(
        redis_getter=lambda: RedisExtension.client_for(app), clock=app.extensions["authsvc"].clock,
        cookie_ttl=settings.dbsc_cookie_ttl, absolute_timeout=settings.session_absolute_timeout)
    mfa = getattr(app.extensions["authsvc"], "mfa", None)
    if mfa is not None:  # a step-up re-issues the session under a new token: the device binding goes with it
        mfa.session_reissue_listeners.append(app.extensions["authsvc_dbsc"].carry_binding)
    csrf.exempt(bp)  # the browser itself posts here with a signed proof; no form, no ambient authority to ride
    app.register_blueprint(bp)
    app.after_request(_offer)


__all__ = ["init_app", "enforce", "bp", "OK", "MISSING", "REPLAY"]
