"""Who may open the operator panel: the admin role, a second factor (aal2) and a fresh proof.

Settings (TOML ``[authsvc]`` keys / ``AUTHSVC_*`` environment / ``create_app`` overrides):

* ``admin_require_mfa`` (default **true**): the session must be aal2 (``services().mfa`` present). An admin without
  a factor gets a page that sends them to set one up; the panel stays closed.
* ``admin_fresh_seconds`` (default 900): the last proof — password or factor — must be this recent. Every proof
  issues a new session (ASVS 7.2.4), so the session's creation time is the time of the last proof; without the MFA
  package, the panel's own password confirmation (``/admin/confirm``) records the proof in Redis
  (``admin:fresh:{<session hash>}``, the app-clock time, with a TTL as a backstop).

A stale session is redirected to re-authenticate (``/mfa/step-up?next=`` or ``/admin/confirm?next=``), a normal
user gets 403, an anonymous one the login page. Every refusal of a signed-in user is audited (``admin:access:denied``).
"""

from __future__ import annotations

import os
from functools import wraps

from flask import abort, current_app, redirect, render_template, request, url_for

from authsvc.services import services
from authsvc.web.auth import cookie_session
from authsvc.web.http import request_context

_TRUE = ("1", "true", "yes", "on")


def admin_setting(name: str, default):
    """``create_app({...})`` override → ``AUTHSVC_<NAME>`` environment → default."""
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get("AUTHSVC_" + name.upper())
    if value is None:
        return default
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
    return type(default)(value)


def require_mfa() -> bool:
    return admin_setting("admin_require_mfa", True)


def fresh_seconds() -> int:
    return admin_setting("admin_fresh_seconds", 900)


def mfa():
    return getattr(services(), "mfa", None)


def _fresh_key(sid: str) -> str:
    return f"admin:fresh:{{{sid}}}"


def last_proof(session) -> float:
    """App-clock timestamp of the last password/factor proof behind this session."""
    at = session.created_at.timestamp()
    raw = services().sessions.redis.get(_fresh_key(session.id))
    return max(at, float(raw)) if raw else at


def record_proof(session) -> None:
    services().sessions.redis.set(_fresh_key(session.id), repr(services().clock.timestamp()),
                                  ex=fresh_seconds() + 60)


def is_fresh(session) -> bool:
    return services().clock.timestamp() - last_proof(session) <= fresh_seconds()


def reauth_url(next_url: str) -> str:
    m = mfa()
    if m is not None:
        return m.step_up_url(next_url)
    return url_for("admin.confirm", next=next_url)


def _deny(user, reason: str):
    ctx = request_context()
    services().audit.record("admin:access:denied", "failure", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                            user_agent=ctx.user_agent, reason=reason, details={"path": request.path[:200]})


SELF_AUDITED = {"audit_export"}  # GET views that write their own audit event (admin:audit:export) on every call
READ_EVERY = 60  # seconds: at most one read event per admin per page (and per user shown) in this window


def audit_read(admin, view_args: dict) -> None:
    """Admin reads (dashboard, users, a user's page, the outbox with its live links, the audit log, attacks) are
    audited as ``admin:read:<page>`` — cheaply: a Redis ``SET NX`` with a one-minute life lets through one event per
    admin per page (per user for a user's page) per minute. Redis down → the error handlers answer 503."""
    page = (request.endpoint or "unknown").rpartition(".")[2][:40]
    if page in SELF_AUDITED:
        return
    subject = view_args.get("user_id")
    key = f"admin:read:{{a{admin.id}}}:{page}:{subject if subject is not None else ''}"
    if not services().sessions.redis.set(key, "1", nx=True, ex=READ_EVERY):
        return
    ctx = request_context()
    details = {k[:40]: v[:100] for k, v in list(request.args.items())[:10] if k != "csrf_token"} or None
    services().audit.record(f"admin:read:{page}", "info", actor_id=admin.id,
                            subject_id=subject if isinstance(subject, int) else None, ip=ctx.ip,
                            user_agent=ctx.user_agent, details=details)


def admin_gate(view):
    """Role → second factor → freshness. Use on every operator view."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        session, user = cookie_session()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path if request.method == "GET" else None))
        if not user.is_admin:
            _deny(user, "not_admin")
            abort(403)
        m = mfa()
        next_url = request.full_path if request.method == "GET" else url_for("admin.dashboard")
        if require_mfa() and m is not None and session.aal < 2:
            if not m.has_factors(user):
                _deny(user, "no_second_factor")
                return render_template("admin/need_mfa.html"), 403
            return redirect(m.step_up_url(next_url))
        if not is_fresh(session):
            return redirect(reauth_url(next_url))
        if request.method == "GET":
            audit_read(user, kwargs)
        return view(session, user, *args, **kwargs)

    return wrapper
