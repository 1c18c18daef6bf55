"""End-user pages. Views parse the form, call one service, render the result — nothing else."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, make_response, redirect, render_template, request, url_for

from flask_babel import gettext as _
from flask_babel import ngettext

from authsvc.accounts import login as L
from authsvc.accounts.mailguard import BROWSER_COOKIE, new_browser_id
from authsvc.accounts.service import InvalidInput, PasswordNeeded, PolicyError
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required, safe_next, suspended_cookie_session
from authsvc.web.center import nothing_changed
from authsvc.web.forms import (ActionForm, ChangePasswordForm, LoginForm, NewPasswordForm, RegisterForm,
                               ResetRequestForm, SetupForm, VerifyForm)
from authsvc.web.http import clear_session_cookie, request_context, set_session_cookie

bp = Blueprint("web", __name__)


@bp.record_once
def _mfa(state):
    from authsvc.mfa.views import init_app  # MFA pages, device context and `authsvc mfa` ride along with the site

    init_app(state.app)


GENERIC_LOGIN_ERROR = "Incorrect e-mail or password."  # translated where shown (_(GENERIC_LOGIN_ERROR))


@bp.app_context_processor
def _inject():
    session, user = (g.get("authsvc_session"), g.get("authsvc_user"))
    return {"current_user": user, "current_session": session, "service_name": services().settings.service_name}


@bp.get("/")
def index():
    _, user = cookie_session()
    return redirect(url_for("web.account" if user else "web.login"))


# --- registration and verification ----------------------------------------------------------------------------------
def _browser_id() -> str:
    """This browser's random id for binding verification links (pre-hijack, authsvc/accounts/mailguard.py)."""
    value = request.cookies.get(BROWSER_COOKIE)
    return value if value and 32 <= len(value) <= 64 else new_browser_id()


def _with_browser_cookie(resp, browser: str):
    resp = make_response(resp)
    resp.set_cookie(BROWSER_COOKIE, browser, max_age=services().settings.verify_token_ttl, path="/", secure=True,
                    httponly=True, samesite="Lax")
    return resp


@bp.route("/register", methods=["GET", "POST"])
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        browser = _browser_id()
        try:
            services().accounts.register(form.email.data, form.password.data, request_context(), browser=browser)
        except (PolicyError, InvalidInput) as exc:
            form.password.errors = [exc.message] if isinstance(exc, PolicyError) else []
            if isinstance(exc, InvalidInput):
                form.email.errors = [_(exc.message)]
            return render_template("register.html", form=form), 400
        return _with_browser_cookie(render_template(
            "message.html", title=_("Check your e-mail"),
            message=_("If this address can be registered, a confirmation link is on its way. Open it in this browser "
                      "to finish creating your account.")), browser)
    return render_template("register.html", form=form), 400 if form.errors else 200


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str):
    # GET only shows a button: mail scanners that prefetch links must not use the token up.
    form = VerifyForm()
    invalid = ("message.html", {"title": _("Link not valid"),
                                "message": _("This confirmation link is invalid, expired or already used.")})
    browser = request.cookies.get(BROWSER_COOKIE)
    if request.method == "POST" and form.validate_on_submit():
        try:
            user = services().accounts.verify_email(token, request_context(), password=form.password.data or None,
                                                    browser=browser)
        except PasswordNeeded as exc:
            form.password.errors = [exc.message]
            return render_template("verify.html", form=form, needs_password=True), 400
        if user is None:
            return render_template(invalid[0], **invalid[1]), 400
        flash(_("Your e-mail address is confirmed. You can sign in now."), "success")
        return redirect(url_for("web.login"))
    if services().tokens.peek("verify", token) is None:
        return render_template(invalid[0], **invalid[1]), 400
    needs_password = services().accounts.verification_needs_password(token, browser)
    return render_template("verify.html", form=form, needs_password=needs_password), 400 if form.errors else 200


# --- login / logout -----------------------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), 400 if form.errors else 200
    result = services().login.login(form.email.data, form.password.data, request_context())
    if result.outcome == L.SUCCESS:
        nxt = request.args.get("next")
        # A forced change: the password page itself says the true reason (admin, breached, compromise).
        target = (url_for("web.change_password", next=safe_next(nxt) if nxt else None) if result.must_change_password
                  else safe_next(nxt))
        resp = redirect(target)
        set_session_cookie(resp, result.token, services().settings.session_absolute_timeout)
        return resp
    if result.outcome == L.UNVERIFIED:
        browser = _browser_id()  # the password was right: a re-sent link confirms in this browser
        if services().accounts.send_verification(result.user, request_context(), browser=browser):
            form.form_errors.append(_("Please confirm your e-mail address first. We sent you a new link."))
        else:  # mail limit: no new mail (and the links already sent keep working)
            form.form_errors.append(_("Please confirm your e-mail address first, with the link we sent you recently "
                                      "(look in your spam folder too)."))
        return _with_browser_cookie(render_template("login.html", form=form), browser), 403
    if result.outcome == L.DENIED:
        return render_template("login.html", form=form, denied=True), 403
    if result.outcome == L.MFA_REQUIRED:  # no session yet: a pending-login cookie and the second-factor page
        from authsvc.mfa.views import begin_second_factor

        return begin_second_factor(result, request.args.get("next"))
    # invalid_credentials — one message for unknown user, wrong password and disabled account.
    form.form_errors.append(_("Incorrect e-mail or password."))
    return render_template("login.html", form=form), 401


@bp.post("/logout")
def logout():
    session, user = suspended_cookie_session()  # a session waiting for a step-up can always be signed out
    form = ActionForm()
    if not form.validate_on_submit():
        return render_template("message.html", title=_("Not signed out"),
                               message=_("Your form expired. Reload the page and try again.")), 400
    if user is not None:
        services().sessions.revoke(user, session.id, "logout")
        ctx = request_context()
        services().audit.record("account:logout:success", "success", actor_id=user.id, subject_id=user.id,
                                ip=ctx.ip, user_agent=ctx.user_agent)
    resp = redirect(url_for("web.login"))
    clear_session_cookie(resp)
    return resp


# --- account: sessions ----------------------------------------------------------------------------------------------
@bp.get("/account")
@login_required
def account():
    session, user = cookie_session()
    from authsvc.web.center import center_context  # devices, trusted devices, apps, notifications (security center)

    return render_template("account.html", user=user, form=ActionForm(), **center_context(user, session))


@bp.post("/account/sessions/revoke")
@login_required
def revoke_session():
    session, user = cookie_session()
    form = ActionForm()
    if not form.validate_on_submit() or not form.target.data:
        return nothing_changed()
    ctx = request_context()
    if services().sessions.revoke(user, form.target.data, "user_revoked"):
        services().audit.record("account:session:revoke", "success", actor_id=user.id, subject_id=user.id,
                                ip=ctx.ip, user_agent=ctx.user_agent, details={"session": form.target.data[:12]})
        flash(_("The session was signed out."), "success")
    else:  # not this user's session (or already gone): nothing touched, but the attempt is on record
        services().audit.record("account:session:revoke", "failure", actor_id=user.id, subject_id=user.id,
                                ip=ctx.ip, user_agent=ctx.user_agent, reason="not_found_or_not_yours",
                                details={"session": form.target.data[:12]})
    if form.target.data == session.id:
        resp = redirect(url_for("web.login"))
        clear_session_cookie(resp)
        return resp
    return redirect(url_for("web.account"))


@bp.post("/account/sessions/revoke-others")
@login_required
def revoke_others():
    return _revoke_many(keep_current=True)


@bp.post("/account/sessions/revoke-all")
@login_required
def revoke_all():
    return _revoke_many(keep_current=False)


def _revoke_many(keep_current: bool):
    session, user = cookie_session()
    form = ActionForm()
    if not form.validate_on_submit():
        return nothing_changed()
    ctx = request_context()
    n = services().sessions.revoke_all(user, "user_revoked_all", except_sid=session.id if keep_current else None)
    services().audit.record("account:session:revoke_all" if not keep_current else "account:session:revoke_others",
                            "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip, user_agent=ctx.user_agent,
                            details={"count": n})
    if keep_current:
        flash(ngettext("Signed out %(num)d other session.", "Signed out %(num)d other sessions.", n), "success")
        return redirect(url_for("web.account"))
    resp = redirect(url_for("web.login"))
    clear_session_cookie(resp)
    return resp


# --- password change and reset ------------------------------------------------------------------------------------
@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    session, user = cookie_session()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            changed = services().accounts.change_password(user, form.current_password.data, form.new_password.data,
                                                          request_context())
        except InvalidInput as exc:
            form.current_password.errors = [_(exc.message)]
        except PolicyError as exc:
            form.new_password.errors = [exc.message]
        else:
            flash(_("Your password was changed. Your other sessions were signed out."), "success")
            resp = redirect(safe_next(request.args.get("next")))  # e.g. back into an OAuth authorization
            set_session_cookie(resp, changed.new_token, services().settings.session_absolute_timeout)
            return resp
    from authsvc.accounts.service import forced_change_message

    return render_template("password_change.html", form=form, user=user, forced=forced_change_message(user)), \
        400 if form.errors else 200


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    form = ResetRequestForm()
    if form.validate_on_submit():
        services().accounts.request_reset(form.email.data, request_context())
        return render_template("message.html", title=_("Check your e-mail"),
                               message=_("If an account uses this address, we sent it a link to choose a new "
                                         "password. The link works once, for 30 minutes."))
    return render_template("reset_request.html", form=form), 400 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_confirm(token: str):
    invalid = ("message.html", {"title": _("Link not valid"),
                                "message": _("This reset link is invalid, expired or already used. Ask for a new one.")})
    if services().tokens.peek("reset", token) is None:
        return render_template(invalid[0], **invalid[1]), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = services().accounts.reset_password(token, form.new_password.data, request_context())
        except PolicyError as exc:
            form.new_password.errors = [exc.message]
        else:
            if user is None:
                return render_template(invalid[0], **invalid[1]), 400
            flash(_("Your password was changed and every session was signed out. Sign in with the new one."), "success")
            return redirect(url_for("web.login"))
    return render_template("reset_confirm.html", form=form), 400 if form.errors else 200


# --- recent activity with risk receipts ---------------------------------------------------------------------------
@bp.get("/account/activity")
@login_required
def activity():
    session, user = cookie_session()
    return render_template("activity.html", events=services().activity.recent(user, limit=50))


# --- "this wasn't me" -----------------------------------------------------------------------------------------------
@bp.route("/not-me/<token>", methods=["GET", "POST"])
def not_me(token: str):
    form = ActionForm()
    invalid = {"title": _("Link not valid"), "message": _("This link is invalid, expired or already used. If you "
                                                           "think someone else is using your account, reset your "
                                                           "password now.")}
    if request.method == "POST" and form.validate_on_submit():
        user = services().accounts.report_not_me(token, request_context())
        if user is None:
            return render_template("message.html", **invalid), 400
        resp = redirect(url_for("web.not_me_done"))
        clear_session_cookie(resp)
        return resp
    if services().tokens.peek("notme", token) is None:
        return render_template("message.html", **invalid), 400
    return render_template("not_me.html", form=form)


@bp.get("/not-me/done")
def not_me_done():
    return render_template("message.html", title=_("Your account is locked down"),
                           message=_("We signed you out everywhere, switched off your old password and removed the "
                                     "sign-in methods added since that sign-in. We sent you an e-mail with what we "
                                     "did and a link to choose a new password."))


# --- first administrator ------------------------------------------------------------------------------------------
@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str):
    if services().tokens.peek("setup", token) is None or services().accounts.admin_exists():
        return render_template("message.html", title=_("Link not valid"),
                               message=_("This setup link is invalid, expired or already used.")), 400
    form = SetupForm()
    if form.validate_on_submit():
        try:
            services().accounts.create_admin(form.email.data, form.password.data, request_context(),
                                             setup_token=token)
        except PolicyError as exc:
            form.password.errors = [exc.message]
        except InvalidInput as exc:
            form.email.errors = [_(exc.message)]
        else:
            flash(_("Administrator created. Sign in to continue."), "success")
            return redirect(url_for("web.login"))
    return render_template("setup.html", form=form), 400 if form.errors else 200


# --- health -------------------------------------------------------------------------------------------------------
@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/metrics")
def metrics():
    """Prometheus exposition (authsvc.metrics). Peer address in ``metrics_allow`` or the metrics bearer token;
    anyone else gets 404 — the endpoint is not advertised."""
    from authsvc import metrics as m
    from authsvc.web.http import metrics_client

    settings = current_app.config["AUTHSVC"]
    # Behind a reverse proxy the socket peer is the proxy (often loopback): decide by the client it forwarded.
    if not m.allowed(metrics_client(request, settings.trusted_proxies), request.headers.get("Authorization"),
                     settings.metrics_allow, settings.metrics_token):
        abort(404)
    m.refresh_budget()
    m.refresh_outbox()
    body, ctype = m.render()
    return body, 200, {"Content-Type": ctype, "Cache-Control": "no-store"}


@bp.get("/readyz")
def readyz():
    from sqlalchemy import text

    from authsvc.extensions import db, get_redis

    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the reason is logged by the handler below
        db.session.rollback()
        checks["database"] = "unavailable"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ok else "unavailable", "checks": checks}, 200 if ok else 503


from authsvc.web.center import init_routes as _center_routes  # noqa: E402  (security center: export, delete, apps)

_center_routes(bp)
