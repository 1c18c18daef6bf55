"""JSON API under /api/v1. Bearer session tokens, never cookies, so CSRF does not apply (and is exempted)."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, jsonify, request
from jsonschema import Draft202012Validator
from werkzeug.exceptions import UnsupportedMediaType

from authsvc.accounts import login as L
from authsvc.accounts.service import InvalidInput, PolicyError
from authsvc.api.openapi import SCHEMAS, spec
from authsvc.errors import ServiceError
from authsvc.services import services
from authsvc.web.auth import bearer_session
from authsvc.web.http import request_context
from authsvc.web.jsonbody import BadJson, load_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in SCHEMAS.items()}


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class PasswordChangeRequired(ServiceError):
    status = 403
    code = "password_change_required"


PASSWORD_CHANGE_MESSAGE = ("This account's password must be changed first (POST /api/v1/password/change); until then "
                           "only that, signing out and ending sessions are allowed.")
# What a user whose password must change may still do (as authsvc.web.auth.PASSWORD_CHANGE_ALLOWED for the pages).
PASSWORD_CHANGE_ALLOWED = {"api.change_password", "api.logout", "api.revoke_session", "api.revoke_others",
                           "api.revoke_all"}


class Unprocessable(ServiceError):
    status = 422
    code = "password_policy"


def body(schema: str) -> dict:
    """Parse and validate the JSON body against the published schema, or raise a clear 4xx."""
    if not request.is_json:
        raise UnsupportedMediaType()
    try:
        data = load_json(request.get_data(cache=True))
    except BadJson as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.") from None
    errors = sorted(_VALIDATORS[schema].iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.path) or "body"
        raise InvalidInput(f"{where}: {_explain(e)}", field=where)
    return data


def _explain(e) -> str:
    if e.validator == "maxLength":
        return f"is longer than {e.validator_value} characters"
    if e.validator == "minLength":
        return "must not be empty"
    if e.validator == "required":
        return e.message
    if e.validator == "additionalProperties":
        return "unexpected field(s)"
    if e.validator == "type":
        return f"must be a {e.validator_value}"
    return "is not valid"


def authenticated(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        session, user = bearer_session()
        if user is None:
            raise Unauthorized("Send a valid session token as 'Authorization: Bearer <token>'.")
        if user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ALLOWED:
            raise PasswordChangeRequired(PASSWORD_CHANGE_MESSAGE)
        return view(session, user, *args, **kwargs)

    return wrapper


def _session_json(info, current_id):
    return {"id": info.id, "created_at": info.created_at.isoformat(), "last_seen_at": info.last_seen_at.isoformat(),
            "ip": info.ip, "user_agent": info.user_agent, "aal": info.aal, "methods": list(info.methods),
            "current": info.id == current_id}


def _policy(fn, *a):
    try:
        return fn(*a)
    except PolicyError as exc:
        raise Unprocessable(exc.message, violations=[v.code for v in exc.violations]) from None


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec())


@bp.post("/register")
def register():
    data = body("Credentials")
    _policy(services().accounts.register, data["email"], data["password"], request_context())
    return {"status": "accepted", "message": "If this address can be registered, a confirmation link is on its way."}, 202


@bp.post("/email/verify")
def verify_email():
    data = body("EmailVerify")
    # No cookies in the API: confirming needs the password chosen at registration (pre-hijack, issue #19).
    if services().accounts.verify_email(data["token"], request_context(), password=data.get("password")) is None:
        raise InvalidInput("This confirmation link is invalid, expired or already used.", field="token")
    return "", 204


@bp.post("/login")
def login():
    data = body("Credentials")
    result = services().login.login(data["email"], data["password"], request_context())
    if result.outcome == L.SUCCESS:
        return {"session_token": result.token, "expires_in": services().settings.session_idle_timeout,
                "user_id": result.user.id, "must_change_password": result.must_change_password,
                "reasons": [r.text for r in result.reasons]}
    if result.outcome == L.UNVERIFIED:
        sent = services().accounts.send_verification(result.user, request_context())
        return {"error": "email_unverified",
                "message": "Confirm your e-mail address first; " + (
                    "a new link was sent." if sent else "use the link sent recently.")}, 403
    if result.outcome == L.MFA_REQUIRED:
        mfa = services().mfa
        if mfa.email_code is not None and not mfa.has_factors(result.user):
            # No factor of its own: the step every account has, a code mailed to the verified address. The answer
            # is generic on purpose — the risk engine's reasons are for the owner, after sign-in.
            token = mfa.begin_login(result.user, request_context(), result.decision, None, result.generation)
            return {"error": "email_code_required", "pending_token": token,
                    "message": "We e-mailed you a sign-in code. Send it with this pending_token to "
                               "/api/v1/login/email-code to finish signing in."}, 403
        # An account with a second factor gets no session here (never a half-authenticated one). Sign in through
        # the web pages, which ask for the factor.
        return {"error": "mfa_required",
                "message": "This account uses two-step verification; sign in through the web page."}, 403
    if result.outcome == L.DENIED:
        # No reasons here: they describe the owner's usual places and devices to whoever typed the password.
        return {"error": "denied", "message": "This sign-in was blocked to protect the account."}, 403
    return {"error": "invalid_credentials", "message": "Incorrect e-mail or password."}, 401


@bp.post("/login/email-code")
def login_email_code():
    data = body("EmailCode")
    mfa = services().mfa
    ctx = request_context()
    found = mfa.pending_user(data["pending_token"])
    if found is None or not found[0].get("email"):
        raise Unauthorized("This sign-in expired. Sign in again.")
    _, user = found
    if not mfa.check_email_code(data["pending_token"], user, data["code"], ctx):
        raise Unauthorized("That code is not valid, expired or was replaced by a newer one.")
    done = mfa.complete_login(data["pending_token"], "email", ctx)
    if done is None:
        raise Unauthorized("This sign-in was already completed or expired. Sign in again.")
    return {"session_token": done.issued.token, "expires_in": services().settings.session_idle_timeout,
            "user_id": user.id, "must_change_password": user.must_change_password, "reasons": []}


@bp.post("/logout")
@authenticated
def logout(session, user):
    services().sessions.revoke(user, session.id, "logout")
    ctx = request_context()
    services().audit.record("account:logout:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                            user_agent=ctx.user_agent)
    return "", 204


@bp.get("/session")
def whoami():
    # GET requests are answered by authsvc.api.fastpath before Flask sees them; this route is the reference it must
    # match (tests compare the two) and serves HEAD and any deployment that mounts the Flask app without it.
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    from authsvc.web.http import request_context

    ctx = request_context()
    use = (ctx.ip, ctx.user_agent) if services().settings.session_drift_bearer else None
    found = services().sessions.check_light(token.strip(), use) if scheme.lower() == "bearer" else None
    if found is None:
        raise Unauthorized("Send a valid session token as 'Authorization: Bearer <token>'.")
    session, email = found
    if session.must_change_password:
        raise PasswordChangeRequired(PASSWORD_CHANGE_MESSAGE)
    return {"user_id": session.user_id, "email": email, "session": _session_json(session, session.id)}


@bp.get("/sessions")
@authenticated
def list_sessions(session, user):
    return jsonify([_session_json(s, session.id) for s in services().sessions.list_for(user)])


@bp.delete("/sessions/<session_id>")
@authenticated
def revoke_session(session, user, session_id):
    ctx = request_context()
    if len(session_id) > 64 or not services().sessions.revoke(user, session_id, "user_revoked"):
        # not this user's session (or already gone): refused, and audited — guessing others' ids shows up here
        services().audit.record("account:session:revoke", "failure", actor_id=user.id, subject_id=user.id,
                                ip=ctx.ip, user_agent=ctx.user_agent, reason="not_found_or_not_yours",
                                details={"session": session_id[:12]})
        raise NotFound("No such session.")
    services().audit.record("account:session:revoke", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                            user_agent=ctx.user_agent, details={"session": session_id[:12]})
    return "", 204


@bp.post("/sessions/revoke-others")
@authenticated
def revoke_others(session, user):
    n = services().sessions.revoke_all(user, "user_revoked_all", except_sid=session.id)
    ctx = request_context()
    services().audit.record("account:session:revoke_others", "success", actor_id=user.id, subject_id=user.id,
                            ip=ctx.ip, user_agent=ctx.user_agent, details={"count": n})
    return {"revoked": n}


@bp.post("/sessions/revoke-all")
@authenticated
def revoke_all(session, user):
    n = services().sessions.revoke_all(user, "user_revoked_all")
    ctx = request_context()
    services().audit.record("account:session:revoke_all", "success", actor_id=user.id, subject_id=user.id,
                            ip=ctx.ip, user_agent=ctx.user_agent, details={"count": n})
    return "", 204


@bp.post("/password/change")
@authenticated
def change_password(session, user):
    data = body("PasswordChange")
    changed = _policy(services().accounts.change_password, user, data["current_password"], data["new_password"],
                      request_context())
    return {"session_token": changed.new_token, "expires_in": services().settings.session_idle_timeout,
            "user_id": user.id, "must_change_password": False}


@bp.post("/password/reset")
def reset_request():
    data = body("EmailOnly")
    services().accounts.request_reset(data["email"], request_context())
    return {"status": "accepted", "message": "If an account uses this address, a reset link is on its way."}, 202


@bp.post("/password/reset/confirm")
def reset_confirm():
    data = body("PasswordReset")
    user = _policy(services().accounts.reset_password, data["token"], data["new_password"], request_context())
    if user is None:
        raise InvalidInput("This reset link is invalid, expired or already used.", field="token")
    return "", 204


# --- my data: export and erasure (security center) ------------------------------------------------------------------
class Forbidden(ServiceError):
    status = 403
    code = "reauth_required"


def _require_fresh(session):
    mfa = getattr(services(), "mfa", None)
    if mfa is not None and not mfa.is_fresh(session):
        raise Forbidden("Sign in again (POST /api/v1/login) and retry with the new token: this needs a recent "
                        "sign-in.")


@bp.get("/me/export")
@authenticated
def export_me(session, user):
    from authsvc.web.center import _export_response

    _require_fresh(session)
    return _export_response(user)


@bp.delete("/me")
@authenticated
def delete_me(session, user):
    from authsvc.web.center import oauth_service, privacy

    data = body("PasswordOnly")
    if not privacy().check_password(user, data["password"]):
        from authsvc.web.center import _audit_delete_refused

        _audit_delete_refused(user)
        raise Unauthorized("The password is not right. After 5 wrong tries, wait 15 minutes.")
    privacy().erase(user, oauth=oauth_service())
    return "", 204
