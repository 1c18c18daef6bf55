"""Which user is behind this request: the session cookie for pages, a bearer token for the API."""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, url_for

from authsvc.services import services


def _use_context():
    """(client IP, user agent) of this request: what continuous session risk compares with the session's birth."""
    from authsvc.web.http import request_context

    ctx = request_context()
    return ctx.ip, ctx.user_agent


def _load(token: str | None, *, via_cookie: bool = False):
    if "authsvc_session" not in g:
        scored = via_cookie or services().settings.session_drift_bearer
        found = services().sessions.check(token, _use_context() if scored else None) if token else None
        if found is not None and found[0].binding:
            # Device-bound (DBSC): the login cookie alone is not enough — the short cookie only the bound key can
            # renew must come with it, and a bound session is never accepted as a bearer token.
            from authsvc import dbsc

            found = dbsc.enforce(found) if via_cookie else None
        g.authsvc_session, g.authsvc_user = found if found else (None, None)
        g.authsvc_token = token if found else None
    return g.authsvc_session, g.authsvc_user


def cookie_session():
    return _load(request.cookies.get(current_app.config["AUTHSVC"].session_cookie_name), via_cookie=True)


def cookie_session_unbound():
    """The login cookie's session without the DBSC short-cookie rule: only for the DBSC endpoints, which prove
    possession of the key themselves. (SessionInfo, User) or None. A session suspended for a step-up is returned
    (``SessionInfo.suspended``): its owner's browser must keep its short cookie fresh to reach the step-up page."""
    token = request.cookies.get(current_app.config["AUTHSVC"].session_cookie_name)
    return services().sessions.check(token, _use_context(), allow_suspended=True) if token else None


def suspended_cookie_session():
    """The cookie's session even while it is suspended for a step-up (the step-up page, signing out): the DBSC
    rule still applies — a stolen login cookie of a device-bound session without the key's short cookie is nothing.
    (SessionInfo, User) or (None, None). Not cached in ``g``."""
    token = request.cookies.get(current_app.config["AUTHSVC"].session_cookie_name)
    found = services().sessions.check(token, _use_context(), allow_suspended=True) if token else None
    if found is not None and found[0].binding:
        from authsvc import dbsc

        found = dbsc.enforce(found)
    return found if found else (None, None)


def bearer_session():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return _load(token.strip() if scheme.lower() == "bearer" else None)


PASSWORD_CHANGE_ALLOWED = {"web.change_password", "web.logout", "web.revoke_session", "web.revoke_others",
                           "web.revoke_all"}


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        session, user = cookie_session()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path if request.method == "GET" else None))
        if user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ALLOWED:
            # A breached or reported-compromised password: nothing else until it is replaced (NIST: force a change
            # on evidence of compromise). Signing out and ending sessions stay possible.
            return redirect(url_for("web.change_password"))
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        session, user = cookie_session()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path))
        if not user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: no open redirect through ?next=.

    Control characters and spaces are refused too: browsers' URL parsers strip tabs and newlines, so "/\t/evil.example"
    reaches ``location.assign`` (the JSON step-up and passkey flows) as "//evil.example" — another host."""
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target)):
        return target
    return url_for("web.account")
