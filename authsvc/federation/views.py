"""Federated sign-in pages: start, callback (query or form_post), link confirmation, link/unlink from the account."""

from __future__ import annotations

import secrets

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest, NotFound

from authsvc.accounts import login as L
from authsvc.i18n import N_
from authsvc.models.base import parse_id
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required, safe_next
from authsvc.web.forms import ActionForm
from authsvc.web.http import request_context, set_session_cookie

bp = Blueprint("federation", __name__)
FED_COOKIE = "__Host-authsvc-fed"  # this browser's random id: state and pending links are bound to it


def fed():
    return current_app.extensions["authsvc_federation"]


def _browser() -> str | None:
    value = request.cookies.get(FED_COOKIE)
    return value if value and 32 <= len(value) <= 64 else None


def _with_browser(resp, browser: str, provider):
    # Apple answers with a cross-site POST (form_post): a Lax cookie would not come with it.
    same_site = "None" if provider is not None and provider.kind == "apple" else "Lax"
    resp.set_cookie(FED_COOKIE, browser, max_age=3600, path="/", secure=True, httponly=True, samesite=same_site)
    return resp


def _provider_or_404(slug: str):
    provider = fed().provider(slug)
    if provider is None or not provider.enabled:
        raise NotFound()
    return provider


def _form_ok() -> None:
    if not ActionForm().validate_on_submit():
        raise BadRequest("form expired")


@bp.get("/federation/<slug>/start")
def start(slug: str):
    """A link, not a form: a form's redirect to the provider would be checked against our CSP form-action. Starting
    changes nothing but a state record bound to this browser, so a forged start gains an attacker nothing."""
    provider = _provider_or_404(slug)
    browser = _browser() or secrets.token_urlsafe(32)
    nxt = request.args.get("next")
    url = fed().begin(provider, browser=browser, next_url=safe_next(nxt) if nxt else None)
    return _with_browser(redirect(url), browser, provider)


@bp.route("/federation/<slug>/callback", methods=["GET", "POST"])
def callback(slug: str):
    provider = _provider_or_404(slug)
    params = request.form if request.method == "POST" else request.args
    params = {k: params.get(k) for k in ("state", "code", "iss", "error", "user") if params.get(k) is not None}
    session, user = cookie_session()
    ctx = request_context()
    outcome = fed().callback(provider, params, browser=_browser(), ctx=ctx, current_user=user,
                             current_session=session)
    if outcome.kind == "link_needed":
        return redirect(url_for("federation.link", token=outcome.link_token))
    if outcome.kind == "linked":
        flash(_("%(provider)s is now linked to your account.", provider=provider.name), "success")
        return redirect(url_for("web.account"))
    result = outcome.result
    if result.outcome == L.SUCCESS:
        target = url_for("web.change_password") if result.must_change_password else safe_next(outcome.next)
        resp = redirect(target)
        set_session_cookie(resp, result.token, services().settings.session_absolute_timeout)
        return resp
    if result.outcome == L.MFA_REQUIRED:
        from authsvc.mfa.views import PENDING_COOKIE, _set_cookie

        token = services().mfa.begin_login(result.user, ctx, result.decision, outcome.next, result.generation,
                                           methods=("fed",))
        resp = redirect(url_for("mfa.challenge"))
        _set_cookie(resp, PENDING_COOKIE, token, services().mfa.settings.pending_ttl)
        return resp
    if result.outcome == L.DENIED:
        return render_template("message.html", title=N_("Sign-in blocked"),
                               message=N_("We blocked this sign-in to protect the account.")), 403
    return render_template("message.html", title=N_("Sign-in failed"),
                           message=N_("This sign-in could not be completed.")), 401


@bp.route("/federation/link/<token>", methods=["GET", "POST"])
def link(token: str):
    data = fed().pending_link(token, _browser())
    if data is None:
        return render_template("message.html", title=N_("Link not valid"),
                               message=N_("This link request is invalid or expired. Sign in with the provider "
                                       "again.")), 400
    session, user = cookie_session()
    from authsvc.extensions import db
    from authsvc.models import UpstreamProvider

    provider = db.session.get(UpstreamProvider, data["pid"])
    ready = user is not None and user.id == data["uid"] and fed().may_link(session, user) \
        and session.created_at.timestamp() >= data["created"]
    if request.method == "POST":
        _form_ok()
        if user is None:
            return redirect(url_for("web.login", next=request.path))
        fed().confirm_link(token, _browser(), session, user, request_context())
        flash(f"{provider.name if provider else 'The provider'} is now linked to your account.", "success")
        return redirect(url_for("web.account"))
    return render_template("federation/link.html", form=ActionForm(), provider=provider, email=data["email"],
                           ready=ready, other_user=user is not None and user.id != data["uid"],
                           login_url=url_for("web.login", next=request.path))


@bp.get("/account/federation/<slug>/link")
@login_required
def link_start(slug: str):
    """A link (see ``start``); the callback links only into the account that started it, with a fresh proof."""
    provider = _provider_or_404(slug)
    session, user = cookie_session()
    if user.email_verified_at is None:
        return render_template("message.html", title=N_("Confirm your address first"),
                               message=N_("Confirm your e-mail address before linking a sign-in method.")), 403
    if not fed().may_link(session, user):
        flash(_("For your security, confirm it's you before changing sign-in methods."), "warning")
        return redirect(services().mfa.step_up_url(url_for("web.account")))
    browser = _browser() or secrets.token_urlsafe(32)
    url = fed().begin(provider, browser=browser, intent="link", user_id=user.id, next_url=url_for("web.account"))
    return _with_browser(redirect(url), browser, provider)


@bp.post("/account/federation/unlink/<ident>")
@login_required
def unlink(ident: str):
    _form_ok()
    ident_id = parse_id(ident)
    if ident_id is None:
        raise NotFound()
    session, user = cookie_session()
    if not services().mfa.may_change_factors(session, user):
        flash(_("For your security, confirm it's you before changing sign-in methods."), "warning")
        return redirect(services().mfa.step_up_url(url_for("web.account")))
    if not fed().unlink(user, ident_id, request_context()):
        raise NotFound()
    flash(_("The sign-in method was removed."), "success")
    return redirect(url_for("web.account"))


def providers_for_page():
    """Enabled providers for the sign-in page (empty when none, or when the table is not there yet)."""
    from authsvc.errors import STORE_ERRORS

    try:
        return fed().providers()
    except STORE_ERRORS:  # the password form still works without this list; the session is rolled back
        from authsvc.extensions import db

        db.session.rollback()
        return []


# --- e-mail change, confirmed at the new address (accounts/emailchange.py) ---------------------------------------------
@bp.route("/account/email", methods=["GET", "POST"])
@login_required
def email_change_request():
    from authsvc.accounts.emailchange import EmailChangeRefused

    session, user = cookie_session()
    if not services().mfa.may_change_factors(session, user):
        flash(_("For your security, confirm it's you before changing your e-mail address."), "warning")
        return redirect(services().mfa.step_up_url(url_for("federation.email_change_request")))
    form = ActionForm()
    error = None
    if request.method == "POST":
        _form_ok()
        try:
            services().accounts.email_changes.request(user, request.form.get("email", "")[:320], request_context())
        except EmailChangeRefused as exc:
            error = _(exc.message)  # N_-marked in accounts/emailchange.py
        else:
            return render_template("message.html", title=N_("Check your new mailbox"),
                                   message=N_("We sent a link to the new address. Your address changes only when "
                                           "you open it; it expires, and a new request replaces it."))
    return render_template("federation/email_change.html", form=form, error=error, user=user), 400 if error else 200


@bp.route("/email-change/<token>", methods=["GET", "POST"])
def email_change_confirm(token: str):
    if request.method == "GET":  # a button, not a GET side effect: mail scanners prefetch links
        return render_template("federation/email_change_confirm.html", form=ActionForm())
    _form_ok()
    user = services().accounts.email_changes.confirm(token, request_context())
    if user is None:
        return render_template("message.html", title=N_("Link not valid"),
                               message=N_("This link is invalid, expired, replaced by a newer request, or the "
                                       "address is no longer available.")), 400
    flash(_("Your e-mail address was changed."), "success")
    return redirect(url_for("web.index"))
