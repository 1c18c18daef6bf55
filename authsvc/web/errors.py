"""One handler per failure kind; each gives one clear answer, HTML or JSON as the client asked. Never a trace."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify, render_template, request, url_for
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from authsvc.errors import DependencyUnavailable, ServiceError, Throttled
from authsvc.i18n import N_  # marks a string for the catalog; error.html translates it when it renders
from authsvc.sessions import StepUpRequired

log = logging.getLogger("authsvc")

MESSAGES = {
    400: N_("The request could not be understood."),
    401: N_("Please sign in."),
    403: N_("You are not allowed to do that."),
    404: N_("There is nothing here."),
    405: N_("That method is not allowed here."),
    413: N_("The request is too large."),
    415: N_("Send JSON with Content-Type: application/json."),
    429: N_("Too many attempts. Please wait before trying again."),
    503: N_("The service is temporarily unavailable. Please try again shortly."),
}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, code: str, message: str, headers: dict | None = None, **data):
    if wants_json():
        body = {"error": code, "message": message}
        body.update({k: v for k, v in data.items() if v is not None})
        resp = jsonify(body)
    else:
        resp = render_template("error.html", status=status, message=message, **data)
    resp = (resp, status, headers or {})
    return resp


STEP_UP_MESSAGE = "Confirm it's you to continue this session."  # JSON only, like the lean path's messages
# RFC 9470 §3: the resource server's challenge when the authentication behind a token no longer suffices.
STEP_UP_CHALLENGE = ('Bearer error="insufficient_user_authentication", '
                     'error_description="A step-up authentication is required for this session"')


def step_up_json():
    body = jsonify({"error": "insufficient_user_authentication", "message": STEP_UP_MESSAGE})
    return body, 401, {"WWW-Authenticate": STEP_UP_CHALLENGE, "Cache-Control": "no-store"}


def human_wait(seconds: int) -> str:
    """The wait as a person says it: "about 10 minutes" for 600 (minutes rounded up, never promising too early)."""
    from flask_babel import gettext, ngettext

    seconds = max(1, int(seconds))
    if seconds <= 10:
        return gettext("a few seconds")
    if seconds < 60:
        return gettext("less than a minute")
    if seconds < 3600:
        minutes = -(-seconds // 60)
        return gettext("about a minute") if minutes == 1 else ngettext("about %(num)d minute", "about %(num)d minutes",
                                                                        minutes)
    hours = round(seconds / 3600)
    return gettext("about an hour") if hours <= 1 else ngettext("about %(num)d hour", "about %(num)d hours", hours)


def _note_refusal(exc: Throttled) -> None:
    """Count the 429 and, bounded, audit it and show it in the account's activity (authsvc/defense/refusals.py).
    Never changes the answer: if a store is away, the refusal stands and only the note is lost."""
    from authsvc.services import services
    from authsvc.web.http import request_context

    try:
        refusals = getattr(services(), "refusals", None)
        if refusals is not None:
            refusals.record(exc, request_context(), path=request.path, email=getattr(exc, "account_email", None))
    except Exception as err:  # noqa: BLE001 - the refusal is the answer; its bookkeeping is best effort
        log.warning("429 not recorded: %s: %s", type(err).__name__, err)
        from authsvc.extensions import db

        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001
            pass


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        msg = MESSAGES.get(exc.code, exc.name)
        description = getattr(exc, "description", None)
        if exc.code == 400 and description and "CSRF" in description:
            msg = N_("Your form expired or was sent from another site. Reload the page and try again.")
            return error_response(400, "csrf_failed", msg)
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return error_response(exc.code, exc.name.lower().replace(" ", "_"), msg, headers)

    @app.errorhandler(Throttled)
    def throttled(exc: Throttled):
        _note_refusal(exc)
        headers = {"Retry-After": str(exc.retry_after)}
        if wants_json():
            return error_response(429, exc.code, exc.message, headers, retry_after=exc.retry_after)
        # People read a wait, not a number of seconds, and are shown the ways in that no limiter holds up: a passkey
        # (when the MFA package is installed) and the password reset.
        passkey = url_for("mfa.passkey_login") if "mfa.passkey_login" in app.view_functions else None
        return render_template("error.html", status=429, message=exc.message, retry_after=exc.retry_after,
                               wait=human_wait(exc.retry_after), passkey_url=passkey,
                               reset_url=url_for("web.reset_request")), 429, headers

    @app.errorhandler(StepUpRequired)
    def step_up_required(exc: StepUpRequired):
        # A session suspended for drift (authsvc.sessions). Pages go to the step-up page; bearer and JSON uses get
        # RFC 9470's challenge. Neither answer says why, where from, or which factor the account has.
        from flask import redirect

        from authsvc.extensions import db

        db.session.rollback()
        if wants_json() or request.headers.get("Authorization", "").lower().startswith("bearer "):
            return step_up_json()
        return redirect(url_for("mfa.resume", next=request.full_path.rstrip("?") if request.method == "GET" else None))

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        return error_response(exc.status, exc.code, exc.message, **exc.data)

    def unavailable(what: str, exc: Exception):
        # Fail closed and say so in the log (ASVS 16.5.2/16.5.3); the client gets no internals.
        log.error("dependency unavailable: %s: %s", what, type(exc).__name__)
        from authsvc import metrics
        from authsvc.extensions import db

        metrics.UNAVAILABLE.labels(what).inc()
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the connection may be gone; rollback is best effort
            pass
        return error_response(503, "unavailable", MESSAGES[503], {"Retry-After": "5"})

    @app.errorhandler(DependencyUnavailable)
    def dep(exc: DependencyUnavailable):
        return unavailable(exc.what, exc)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    @app.errorhandler(redis.exceptions.ClusterDownError)
    @app.errorhandler(redis.exceptions.ClusterError)
    def redis_down(exc):
        return unavailable("redis", exc)

    @app.errorhandler(OperationalError)
    def db_down(exc):
        return unavailable("database", exc)

    @app.errorhandler(DataError)
    def bad_value(exc: DataError):
        # A value the database refuses (a number out of range, a NUL character in text on PostgreSQL): the request's
        # fault, answered as such — the views validate ids and JSON first; this is the net under them (issue #12).
        log.warning("database refused a value: %s", type(exc.orig).__name__)
        from authsvc.extensions import db

        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - best effort, as in unavailable()
            pass
        return error_response(400, "bad_request", MESSAGES[400])

    @app.errorhandler(DBAPIError)
    def db_error(exc: DBAPIError):
        if exc.connection_invalidated:
            return unavailable("database", exc)
        log.exception("database error")
        return error_response(500, "internal_error", "Something went wrong on our side.")

    @app.errorhandler(Exception)
    def internal(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
