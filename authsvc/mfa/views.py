"""MFA pages and the WebAuthn JSON endpoints. Views parse input, call MfaService, render — nothing else.

Cookies:
  ``__Host-authsvc-pending``  the pending login (password done, second factor outstanding) — a random token naming
                              a short-lived Redis record; never Flask's cookie session.
  ``__Host-authsvc-device``   a trusted device (see mfa.devices).
"""

from __future__ import annotations

import dataclasses
from functools import wraps

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest

from flask_babel import gettext as _

from authsvc.errors import ServiceError
from authsvc.i18n import N_
from authsvc.mfa.devices import DEVICE_COOKIE
from authsvc.mfa.forms import ConfirmTotpForm, EmailCodeForm, PasskeyNameForm, PasswordConfirmForm, RecoveryForm, TotpForm
from authsvc.mfa.service import device_cookie_max_age
from authsvc.mfa.totp import provisioning_uri, qr_data_uri
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required, safe_next, suspended_cookie_session
from authsvc.web.forms import ActionForm
from authsvc.web.http import request_context, set_session_cookie

bp = Blueprint("mfa", __name__, url_prefix="/mfa")

PENDING_COOKIE = "__Host-authsvc-pending"
WRONG_CODE = N_("That code is not valid. Check the code and try again.")


class JsonError(ServiceError):
    def __init__(self, status: int, code: str, message: str, **data):
        super().__init__(message, **data)
        self.status, self.code = status, code


def mfa():
    return services().mfa


def _ctx():
    return request_context()


# --- cookies -------------------------------------------------------------------------------------------------------
def _set_cookie(resp, name, value, max_age):
    resp.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="Lax")


def _clear_cookie(resp, name):
    resp.delete_cookie(name, path="/", secure=True, httponly=True, samesite="Lax")


def _pending_token() -> str | None:
    return request.cookies.get(PENDING_COOKIE)


# --- the hook the password login calls ----------------------------------------------------------------------------
def begin_second_factor(result, next_url: str | None):
    """Password accepted, second factor outstanding: pending record + its cookie, then the challenge page."""
    token = mfa().begin_login(result.user, _ctx(), result.decision, next_url, result.generation)
    resp = redirect(url_for("mfa.challenge"))
    _set_cookie(resp, PENDING_COOKIE, token, mfa().settings.pending_ttl)
    return resp


def _finish_login(done, remember: bool, *, json: bool = False):
    target = safe_next(done.next)
    if done.user.must_change_password:  # the password page says the true reason (admin, breached, ...)
        target = url_for("web.change_password")
    resp = jsonify({"redirect": target}) if json else redirect(target)
    set_session_cookie(resp, done.issued.token, services().settings.session_absolute_timeout)
    _clear_cookie(resp, PENDING_COOKIE)
    if remember and mfa().settings.trusted_device_days > 0:
        token = mfa().trust_device(done.user, _ctx())
        _set_cookie(resp, DEVICE_COOKIE, token, device_cookie_max_age(mfa().settings.trusted_device_days))
    return resp


def _require_fresh(session, next_url: str, user=None):
    """None when the session may add or remove a factor (``MfaService.may_change_factors``: a recent proof, and the
    second factor itself when the account has one), else a redirect to prove it again."""
    if user is None:
        user = cookie_session()[1]
    if mfa().may_change_factors(session, user):
        return None
    flash(_("For your security, confirm it's you before changing sign-in methods."), "warning")
    return redirect(mfa().step_up_url(next_url))


def _account_action(*, fresh: bool = True, ids: tuple[str, ...] = (), confirm: dict | None = None):
    """A CSRF-protected POST from the account page (put it under ``@login_required``). In order:

    1. the ``ActionForm`` CSRF check (400 "form expired" when it fails, before anything else is looked at);
    2. each URL segment named in ``ids`` parsed by ``_int_id`` (404 for junk);
    3. with ``fresh``, a recent proof (else ``_require_fresh``'s flash and redirect to step-up, back to the account);
    4. with ``confirm`` (title/question/button texts), a form field ``confirm=yes``: without it the answer is a
       confirmation page whose button posts the same action again with it — one click never removes a factor.

    The view then gets ``(session, user, **kwargs)`` and does only its own action; ``_to_account`` ends most of them.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(**kwargs):
            session, user = cookie_session()
            if not ActionForm().validate_on_submit():
                raise BadRequest("form expired")
            for name in ids:
                kwargs[name] = _int_id(kwargs[name])
            if fresh:
                again = _require_fresh(session, url_for("web.account"), user)
                if again is not None:
                    return again
            if confirm is not None and request.form.get("confirm") != "yes":
                texts = {k: (v(user, **kwargs) if callable(v) else _(v)) for k, v in confirm.items()}
                return render_template("mfa/confirm.html", action=request.path, **texts)
            return view(session, user, **kwargs)

        return wrapper

    return decorate


def _to_account(message: str | None = None, category: str = "success"):
    """Back to the account page, flashing ``message`` if there is one."""
    if message:
        flash(_(message), category)  # callers pass N_-marked English; shown in the viewer's language
    return redirect(url_for("web.account"))


# --- the challenge: second factor of a password login -------------------------------------------------------------
@bp.route("/challenge", methods=["GET", "POST"])
def challenge():
    found = mfa().pending_user(_pending_token())
    if found is None:
        flash(_("Your sign-in expired. Please sign in again."), "warning")
        resp = redirect(url_for("web.login"))
        _clear_cookie(resp, PENDING_COOKIE)
        return resp
    data, user = found
    if data.get("email"):
        return _email_challenge(user)
    totp_form, recovery_form = TotpForm(), RecoveryForm()
    method = request.form.get("method")
    status = 200
    if request.method == "POST":
        recovery = method == "recovery"
        form = recovery_form if recovery else totp_form
        if form.validate_on_submit():
            ctx = _ctx()
            code_field = form.recovery_code if recovery else form.code
            ok = mfa().check_recovery(user, code_field.data, ctx, "login") if recovery \
                else mfa().check_totp(user, code_field.data, ctx, "login")
            if ok:
                done = mfa().complete_login(_pending_token(), "recovery" if recovery else "totp", ctx)
                if done is not None:
                    remember = form.recovery_remember.data if recovery else form.remember.data
                    return _finish_login(done, bool(remember))
                form.form_errors.append(_("This sign-in was already completed or expired. Please sign in again."))
            else:
                code_field.errors = [_(WRONG_CODE)]
        status = 401
    return render_template("mfa/challenge.html", mode="login", user=user, overview=mfa().overview(user),
                           totp_form=totp_form, recovery_form=recovery_form, password_form=None,
                           flow="login"), status


def _masked(email: str) -> str:
    local, _at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _email_challenge(user):
    """The second step of an account without a factor of its own: the code mailed to its verified address. The page
    says only that a check is needed — never the risk engine's reasons, which describe the owner's habits to
    whoever typed the password."""
    form = EmailCodeForm()
    status, notice = 200, None
    if request.method == "POST" and request.form.get("method") == "resend":
        if not ActionForm().validate_on_submit():
            raise BadRequest("form expired")
        if mfa().send_email_code(_pending_token(), user, _ctx()) == "sent":
            notice = _("We sent a new code. Only the newest code works.")
        else:
            form.form_errors.append(_("Too many codes were sent. Please wait a while and sign in again."))
            status = 429
    elif request.method == "POST":
        status = 401
        if form.validate_on_submit():
            ctx = _ctx()
            if mfa().check_email_code(_pending_token(), user, form.email_code.data, ctx):
                done = mfa().complete_login(_pending_token(), "email", ctx)
                if done is not None:
                    return _finish_login(done, False)
                form.form_errors.append(_("This sign-in was already completed or expired. Please sign in again."))
            else:
                form.email_code.errors = [_("That code is not valid, expired or was replaced by a newer one.")]
        else:
            status = 400
    return render_template("mfa/email_code.html", form=form, resend_form=ActionForm(), notice=notice,
                           address=_masked(user.email)), status


# --- step-up / re-authentication of a signed-in session ------------------------------------------------------------
@bp.route("/step-up", methods=["GET", "POST"])
@login_required
def step_up():
    session, user = cookie_session()
    next_url = safe_next(request.args.get("next"))
    overview = mfa().overview(user)
    has = mfa().has_factors(user)
    totp_form, recovery_form = TotpForm(), RecoveryForm()
    password_form = None if has else PasswordConfirmForm()
    status = 200
    if request.method == "POST":
        ctx = _ctx()
        method = request.form.get("method")
        issued = None
        if method == "password" and password_form is not None:
            if password_form.validate_on_submit():
                issued = mfa().reauthenticate_password(session, user, password_form.password.data, ctx,
                                                       services().hasher)
                if issued is None:
                    password_form.password.errors = [_("That password is not right.")]
        elif method in ("totp", "recovery") and has:
            form = recovery_form if method == "recovery" else totp_form
            if form.validate_on_submit():
                code_field = form.recovery_code if method == "recovery" else form.code
                ok = mfa().check_recovery(user, code_field.data, ctx, "step_up") if method == "recovery" \
                    else mfa().check_totp(user, code_field.data, ctx, "step_up")
                if ok:
                    issued = mfa().step_up(session, user, method, ctx)
                else:
                    code_field.errors = [_(WRONG_CODE)]
        if issued is not None:
            resp = redirect(next_url)
            set_session_cookie(resp, issued.token, services().settings.session_absolute_timeout)
            return resp
        status = 401
    return render_template("mfa/challenge.html", mode="step-up", user=user, overview=overview,
                           totp_form=totp_form, recovery_form=recovery_form, password_form=password_form,
                           flow="step-up", next_url=next_url), status


# --- in-session step-up: a session suspended for drift re-proves a factor and resumes ---------------------------
def _suspended_or_redirect(next_url: str):
    """(session, user) of a suspended session, or a redirect: to sign-in without a usable session (a stolen
    cookie of a device-bound session without its short cookie lands here too), back to ``next`` when the session
    is not (or no longer) suspended — a replayed or racing step-up changes nothing."""
    session, user = suspended_cookie_session()
    if user is None:
        return None, redirect(url_for("web.login"))
    if not session.suspended:
        return None, redirect(next_url)
    return (session, user), None


def _resume_failure(session, user, method: str):
    """Count a wrong proof; when it was the last one the session is over: cookie cleared, back to sign-in."""
    if mfa().resume_failed(session, user, method, _ctx()):
        from authsvc.web.http import clear_session_cookie

        resp = redirect(url_for("web.login"))
        clear_session_cookie(resp)
        return resp
    return None


@bp.route("/resume", methods=["GET", "POST"])
def resume():
    """The step-up page of a session suspended for drift (authsvc.sessions.StepUpRequired). It re-proves the
    strongest thing the account has — passkey / authenticator app / recovery code, else the password — and says
    nothing else: no address, no factor names, no place or reason (whoever holds a stolen cookie reads it too)."""
    next_url = safe_next(request.args.get("next"))
    if request.method == "POST" and not ActionForm().validate_on_submit():
        raise BadRequest("form expired")  # CSRF first, before the session is even looked at
    found, away = _suspended_or_redirect(next_url)
    if away is not None:
        return away
    session, user = found
    overview = mfa().overview(user)
    has = mfa().has_factors(user)
    totp_form, recovery_form = TotpForm(), RecoveryForm()
    password_form = None if has else PasswordConfirmForm()
    status = 200
    email_stage = password_form is not None and services().sessions.password_proven(session.id)
    email_form = EmailCodeForm() if email_stage else None
    if request.method == "POST":
        ctx = _ctx()
        method = request.form.get("method")
        ok = None
        if method == "password" and password_form is not None and not email_stage \
                and password_form.validate_on_submit():
            mfa().store.precheck(user.id)  # the re-authentication lockout (429 when locked)
            ok = services().hasher.verify(user.password_hash, password_form.password.data).ok
            if ok:
                mfa().store.clear_failures(user.id)
                if mfa().email_code is not None:
                    # The existing policy for an account without a factor when risk asks for more than the
                    # password (authsvc.mfa.email_code): the password, then a code mailed to the account's address.
                    services().sessions.mark_password_proven(session.id)
                    mfa().email_code.send("r" + session.id, user, ctx.ip)
                    mfa()._audit("mfa:email:send", "success", user, ctx, details={"purpose": "session_resume"})
                    return redirect(request.full_path.rstrip("?"))
            else:
                mfa().store.record_failure(user.id)
                password_form.password.errors = [_("That password is not right.")]
        elif method == "resend" and email_stage:
            mfa().email_code.send("r" + session.id, user, ctx.ip)  # bounded per user by the mail limiter
            return redirect(request.full_path.rstrip("?"))
        elif method == "email" and email_stage and email_form.validate_on_submit():
            from authsvc.mfa import email_code as ec

            mfa().store.precheck(user.id)
            ok = mfa().email_code.check("r" + session.id, email_form.email_code.data) == ec.OK
            if not ok:
                mfa().store.record_failure(user.id)
                email_form.email_code.errors = [_("That code is not valid, expired or was replaced by a newer one.")]
            mfa()._audit("mfa:email:verify", "success" if ok else "failure", user, ctx,
                         details={"purpose": "session_resume"})
            method = "email"
        elif method in ("totp", "recovery") and has:
            form = recovery_form if method == "recovery" else totp_form
            if form.validate_on_submit():
                code_field = form.recovery_code if method == "recovery" else form.code
                ok = mfa().check_recovery(user, code_field.data, ctx, "session_resume") if method == "recovery" \
                    else mfa().check_totp(user, code_field.data, ctx, "session_resume")
                if not ok:
                    code_field.errors = [_(WRONG_CODE)]
        if ok:
            mfa().resume_session(session, user, method, ctx)
            return redirect(next_url)  # resumed, or a racing step-up resumed it first: either way it stands
        if ok is False:
            ended = _resume_failure(session, user, method)
            if ended is not None:
                return ended
        status = 401 if ok is False else 400
    if email_stage:
        return render_template("mfa/email_code.html", form=email_form, resend_form=ActionForm(), notice=None,
                               address=_masked(user.email)), status
    return render_template("mfa/challenge.html", mode="resume", user=user, overview=overview,
                           totp_form=totp_form, recovery_form=recovery_form, password_form=password_form,
                           flow="resume", next_url=next_url, signout_form=ActionForm()), status


# --- passkey login (no username) -----------------------------------------------------------------------------------
@bp.get("/passkey")
def passkey_login():
    _session, user = cookie_session()
    if user is not None:
        return redirect(url_for("web.account"))
    return render_template("mfa/passkey_login.html", next_url=safe_next(request.args.get("next")))


# --- WebAuthn JSON endpoints (CSRF header X-CSRFToken, checked by Flask-WTF) --------------------------------------
def _json_body() -> dict:
    from authsvc.web.jsonbody import BadJson, load_json

    try:
        data = load_json(request.get_data(cache=False) or b"{}")  # depth, lone surrogates, NUL → 400 (issue #12)
    except BadJson:
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


@bp.post("/webauthn/authenticate/options")
def webauthn_auth_options():
    flow = _json_body().get("flow")
    if flow == "login":
        found = mfa().pending_user(_pending_token())
        if found is None:
            raise JsonError(401, "login_expired", _("Your sign-in expired. Please sign in again."))
        return _options_response(mfa().webauthn.authentication_options(
            mfa().store.binding(_pending_token()), found[1], require_uv=False))
    if flow == "step-up":
        session, user = cookie_session()
        if user is None:
            raise JsonError(401, "unauthorized", _("Please sign in."))
        return _options_response(mfa().webauthn.authentication_options("s" + session.id, user, require_uv=False))
    if flow == "resume":
        session, user = suspended_cookie_session()
        if user is None or not session.suspended:
            raise JsonError(401, "unauthorized", _("Please sign in."))
        return _options_response(mfa().webauthn.authentication_options("r" + session.id, user, require_uv=False))
    if flow == "passkey":
        token = mfa().begin_passkey()
        resp = _options_response(mfa().webauthn.authentication_options(
            mfa().store.binding(token), None, require_uv=True))  # passwordless → user verification required
        _set_cookie(resp, PENDING_COOKIE, token, mfa().settings.pending_ttl)
        return resp
    raise BadRequest("flow must be login, step-up, resume or passkey")


def _page_next(raw) -> str | None:
    """``next`` as a passkey button sends it back from its page's ?next=. Still only a candidate for safe_next();
    control characters are refused first, because this answer ends in location.assign(), whose URL parser drops
    tab and newline ("/\\t/evil.example" would become "//evil.example")."""
    return raw if isinstance(raw, str) and raw.isprintable() else None


def _options_response(options_json: str):
    """py_webauthn's ``options_to_json`` output, sent as is (the browser parses it with parse*OptionsFromJSON)."""
    return current_app.response_class(options_json, mimetype="application/json")


@bp.post("/webauthn/authenticate/verify")
def webauthn_auth_verify():
    body = _json_body()
    flow, credential, remember = body.get("flow"), body.get("credential"), bool(body.get("remember"))
    ctx = _ctx()
    if not isinstance(credential, dict):
        raise BadRequest("credential must be an object")
    if flow in ("login", "passkey"):
        token = _pending_token()
        found = mfa().pending_user(token) if flow == "login" else None
        if flow == "login" and found is None:
            raise JsonError(401, "login_expired", _("Your sign-in expired. Please sign in again."))
        if flow == "passkey" and not mfa().store.get_pending(token):
            raise JsonError(401, "login_expired", _("This passkey request expired. Please try again."))
        user = found[1] if found else None
        checked = mfa().check_webauthn(user, mfa().store.binding(token), credential, ctx, flow)
        if checked is None:
            raise JsonError(401, "webauthn_failed", _("The security key or passkey could not be verified."))
        row, uv = checked
        if flow == "passkey":
            from authsvc.models import User

            user = services().mfa.db.session.get(User, row.user_id)
            if not uv:
                raise JsonError(401, "webauthn_failed", _("The passkey did not verify you (PIN or biometric)."))
        done = mfa().complete_login(token, "webauthn", ctx, user_verified=uv and flow == "passkey", user=user)
        if done is None:
            raise JsonError(401, "login_expired", _("This sign-in was already completed or expired."))
        if flow == "passkey":  # the page's ?next= (login form or /mfa/passkey); _finish_login passes it to safe_next
            done = dataclasses.replace(done, next=_page_next(body.get("next")))
        return _finish_login(done, remember and flow == "login", json=True)
    if flow == "step-up":
        session, user = cookie_session()
        if user is None:
            raise JsonError(401, "unauthorized", _("Please sign in."))
        checked = mfa().check_webauthn(user, "s" + session.id, credential, ctx, "step_up")
        if checked is None:
            raise JsonError(401, "webauthn_failed", _("The security key or passkey could not be verified."))
        issued = mfa().step_up(session, user, "webauthn", ctx)
        resp = jsonify({"redirect": safe_next(body.get("next"))})
        set_session_cookie(resp, issued.token, services().settings.session_absolute_timeout)
        return resp
    if flow == "resume":
        session, user = suspended_cookie_session()
        if user is None or not session.suspended:
            raise JsonError(401, "unauthorized", _("Please sign in."))
        checked = mfa().check_webauthn(user, "r" + session.id, credential, ctx, "session_resume")
        if checked is None:
            if _resume_failure(session, user, "webauthn") is not None:
                raise JsonError(401, "session_ended", _("This session was ended. Please sign in again."))
            raise JsonError(401, "webauthn_failed", _("The security key or passkey could not be verified."))
        mfa().resume_session(session, user, "webauthn", ctx, user_verified=checked[1])
        return jsonify({"redirect": safe_next(body.get("next"))})
    raise BadRequest("flow must be login, step-up, resume or passkey")


def _fresh_json_session():
    """The JSON ceremonies' version of ``login_required`` + ``_require_fresh``: (session, user), or a JSON 401 / 403
    that names the step-up page. (Their CSRF check is Flask-WTF's X-CSRFToken header, before the view.)"""
    session, user = cookie_session()
    if user is None:
        raise JsonError(401, "unauthorized", _("Please sign in."))
    if not mfa().may_change_factors(session, user):
        raise JsonError(403, "reauth_required", _("Confirm it's you first."),
                        redirect=mfa().step_up_url(url_for("mfa.passkeys")))
    return session, user


@bp.post("/webauthn/register/options")
def webauthn_register_options():
    session, user = _fresh_json_session()
    return _options_response(mfa().webauthn.registration_options(user, "s" + session.id))


@bp.post("/webauthn/register/verify")
def webauthn_register_verify():
    session, user = _fresh_json_session()
    body = _json_body()
    credential, name = body.get("credential"), body.get("name")
    if not isinstance(credential, dict) or not isinstance(name, (str, type(None))):
        raise BadRequest("credential must be an object and name a string")
    if not (name or "").strip():  # the offer after sign-in asks no name: say where the passkey was made
        from authsvc.web.center import describe_ua

        name = "Passkey · " + describe_ua(request.headers.get("User-Agent", ""))["text"]
    row = mfa().register_webauthn(user, "s" + session.id, credential, name or "", _ctx(), aal=session.aal)
    if row is None:
        raise JsonError(400, "webauthn_failed", _("The security key or passkey could not be registered."))
    first_codes = None
    if not mfa().recovery.has_any(user):
        first_codes = mfa().regenerate_recovery(user, _ctx(), aal=session.aal)
    if first_codes:
        return jsonify({"redirect": url_for("mfa.recovery_show", k=_stash_codes(user, first_codes))})
    flash(_("“%(name)s” was added.", name=row.name), "success")
    return jsonify({"redirect": url_for("web.account")})


def _stash_codes(user, codes) -> str:
    """Recovery codes made during a JSON ceremony are shown on the next page, once: a 60-s single-use Redis entry."""
    import json
    import secrets

    key = secrets.token_urlsafe(16)
    mfa().store.redis.set(f"mfa:codes:{{u{user.id}}}:{key}", json.dumps(codes), ex=60)
    return key


@bp.get("/recovery/show")
@login_required
def recovery_show():
    import json

    _session, user = cookie_session()
    raw = mfa().store.redis.getdel(f"mfa:codes:{{u{user.id}}}:{(request.args.get('k') or '')[:64]}")
    if not raw:
        return redirect(url_for("web.account"))
    return render_template("mfa/recovery_codes.html", codes=json.loads(raw))


# --- enrolment and management pages ---------------------------------------------------------------------------------
@bp.route("/totp", methods=["GET", "POST"])
@login_required
def totp_setup():
    session, user = cookie_session()
    again = _require_fresh(session, url_for("mfa.totp_setup"))
    if again is not None:
        return again
    form = ConfirmTotpForm()
    secret = mfa().totp.pending_secret(user) if request.method == "POST" else None
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        if secret is None:
            form.form_errors.append(_("The setup expired. Scan the new QR code below."))
        elif mfa().confirm_totp(user, form.code.data, _ctx(), aal=session.aal):
            if not mfa().recovery.has_any(user):
                codes = mfa().regenerate_recovery(user, _ctx(), aal=session.aal)
                return render_template("mfa/recovery_codes.html", codes=codes, first=True)
            flash(_("Your authenticator app is set up."), "success")
            return redirect(url_for("web.account"))
        else:
            form.code.errors = [_(WRONG_CODE)]
        status = 400
    elif request.method == "POST":
        status = 400
    if secret is None:
        secret = mfa().totp.begin(user)
    uri = provisioning_uri(secret, user.email, mfa().settings.totp_issuer)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return render_template("mfa/totp_setup.html", form=form, qr=qr_data_uri(uri), secret=grouped,
                           replacing=mfa().totp.enrolled(user)), status


@bp.post("/totp/remove")
@login_required
@_account_action(confirm={
    "title": N_("Remove the authenticator app?"),
    "question": N_("Codes from your authenticator app will no longer sign you in. If it is your only second step, "
                   "your password alone will be enough to sign in again."),
    "button": N_("Remove the authenticator app")})
def totp_remove(session, user):
    removed = mfa().remove_totp(user, _ctx())
    return _to_account(N_("The authenticator app was removed.") if removed else None)


@bp.post("/recovery")
@login_required
@_account_action(confirm={
    "title": N_("Make new recovery codes?"),
    "question": N_("You will get new recovery codes, and every code you have now stops working at once."),
    "button": N_("Make new recovery codes")})
def recovery_regenerate(session, user):
    if not mfa().has_factors(user):
        return _to_account(N_("Set up an authenticator app or a passkey first."), "warning")
    return render_template("mfa/recovery_codes.html", codes=mfa().regenerate_recovery(user, _ctx(), aal=session.aal))


@bp.get("/passkeys")
@login_required
def passkeys():
    session, user = cookie_session()
    again = _require_fresh(session, url_for("mfa.passkeys"))
    if again is not None:
        return again
    return render_template("mfa/passkeys.html", form=PasskeyNameForm(), credentials=mfa().webauthn.credentials(user))


def _passkey_name(user, cred_id):
    row = next((c for c in mfa().webauthn.credentials(user) if c.id == cred_id), None)
    return _("Remove “%(name)s”?", name=row.name) if row is not None else _("Remove this security key or passkey?")


@bp.post("/webauthn/<cred_id>/remove")
@login_required
@_account_action(ids=("cred_id",), confirm={
    "title": _passkey_name,
    "question": N_("It will no longer sign you in. You can add it again later."),
    "button": N_("Remove it")})
def webauthn_remove(session, user, cred_id: int):
    removed = mfa().remove_webauthn(user, cred_id, _ctx())
    return _to_account(N_("The security key or passkey was removed.") if removed else None)


@bp.route("/webauthn/<cred_id>/rename", methods=["GET", "POST"])
@login_required
def webauthn_rename(cred_id: str):
    """Rename a passkey (only the user's own; another's id is a 404, like an unknown one). No fresh proof: a name
    changes nothing about what signs in, and the change is audited."""
    session, user = cookie_session()
    cid = _int_id(cred_id)
    row = next((c for c in mfa().webauthn.credentials(user) if c.id == cid), None)
    if row is None:
        abort(404)
    form = PasskeyNameForm()
    if request.method == "GET":
        form.name.data = row.name
    elif form.validate_on_submit():
        mfa().rename_webauthn(user, cid, form.name.data or "", _ctx())
        return _to_account(N_("The passkey was renamed."))
    return render_template("mfa/passkey_rename.html", form=form, credential=row), 400 if form.errors else 200


@bp.post("/passkey-offer/dismiss")
@login_required
def passkey_offer_dismiss():
    """"Not now" on the passkey offer: not asked again in this browser for 90 days."""
    resp = redirect(url_for("web.account"))
    resp.set_cookie(PASSKEY_OFFER_COOKIE, "no", max_age=90 * 86400, path="/", secure=True, httponly=True,
                    samesite="Lax")
    return resp


@bp.post("/devices/<device_id>/revoke")
@login_required
@_account_action(fresh=False, ids=("device_id",))  # as before, no fresh proof is asked to revoke a device
def device_revoke(session, user, device_id: int):
    revoked = mfa().revoke_device(user, device_id, user, _ctx())
    return _to_account(N_("That device will be asked for a second factor again.") if revoked else None)


def _int_id(raw: str) -> int:
    # A plain <id> segment (not <int:…>) so that the CSRF check answers first for any value; then a 404 for junk.
    from authsvc.models.base import parse_id

    value = parse_id(raw)  # ASCII digits within the INTEGER column's range (PostgreSQL: 32 bits), else 404
    if value is None:
        abort(404)
    return value


# --- app wiring -------------------------------------------------------------------------------------------------------
def _device_context():
    """Put the trusted device's id into RequestContext.device_id (for the risk engine and the pipeline)."""
    if request.path.startswith("/static/"):
        return
    token = request.cookies.get(DEVICE_COOKIE)
    if not token:
        return
    row = mfa().devices.lookup(token)
    if row is not None:
        g.authsvc_ctx = dataclasses.replace(request_context(), device_id=str(row.id))


PASSKEY_OFFER_COOKIE = "passkey_offer"


def _passkey_offer(session, overview) -> bool:
    """Offer a passkey right after a password sign-in to an account that has none, in a browser that has not said
    "not now" (the page's script also hides the offer where the browser cannot make one)."""
    return (session is not None and "pwd" in (session.methods or ()) and not overview["webauthn"]
            and request.cookies.get(PASSKEY_OFFER_COOKIE) != "no")


def _signal_data(user, overview) -> dict:
    """What the WebAuthn Signal API needs to tell the user's passkey provider which passkeys still work here."""
    handle = mfa().webauthn.user_handle_of(user)
    return {"rp_id": mfa().webauthn.rp_id, "user_id": handle or "",
            "ids": " ".join(c.credential_id for c in overview["webauthn"])}


def _template_helpers():
    return {"mfa_overview": lambda user: mfa().overview(user), "passkey_offer": _passkey_offer,
            "passkey_signal": _signal_data}


def init_app(app) -> None:
    from authsvc.mfa.cli import mfa_group

    app.register_blueprint(bp)
    app.before_request(_device_context)
    app.context_processor(_template_helpers)
    app.cli.add_command(mfa_group)
