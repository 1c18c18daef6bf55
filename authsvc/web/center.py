"""The account security center: readable devices, trusted devices, connected apps, notifications, export, delete.

Routes hang on the ``web`` blueprint (imported at the end of ``authsvc.web``). MFA and OAuth are reached through
narrow, optional interfaces — ``services().mfa`` (``overview``, ``is_fresh``, ``step_up_url``, ``revoke_device``) and
the OAuth provider (``app.extensions["authsvc.oauth"]``: consents are revoked on its ``/account/apps/revoke``) — so
the page works while either package is absent or still being built.
"""

from __future__ import annotations

import json
from functools import lru_cache

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from authsvc.accounts.privacy import PrivacyService
from authsvc.i18n import COOKIE, LANGUAGES, normalize, normalize_timezone, zone_names
from authsvc.i18n.reasons import country_name, reason_text
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required
from authsvc.web.http import clear_session_cookie, request_context


# --- helpers shared with the admin panel and the API ------------------------------------------------------------
def privacy() -> PrivacyService:
    """One PrivacyService per app, built from the app's services (no change to the Services container needed)."""
    ext = current_app.extensions
    if "authsvc.privacy" not in ext:
        from authsvc.extensions import RedisExtension

        svc = services()
        app = current_app._get_current_object()
        ext["authsvc.privacy"] = PrivacyService(db=svc.audit.db, redis_getter=lambda: RedisExtension.client_for(app),
                                                clock=svc.clock, audit=svc.audit, sessions=svc.sessions,
                                                hasher=svc.hasher, outbox=svc.outbox)
        from authsvc import jobs

        ext["authsvc.privacy"].erasure_listeners.append(jobs.erase_files)  # export files go with the account
    return ext["authsvc.privacy"]


def mfa_service():
    return getattr(services(), "mfa", None)


def oauth_service():
    """The OAuth provider (``authsvc.oauth.init_app`` keeps it in ``app.extensions``); None when not installed."""
    return getattr(services(), "oauth", None) or current_app.extensions.get("authsvc.oauth")


@lru_cache(maxsize=4096)
def describe_ua(ua: str | None) -> dict:
    """"Chrome 131 on Windows 10" plus a device kind (desktop / phone / tablet / bot) for an icon and a label."""
    if not ua:
        return {"text": "Unknown browser", "browser": "Unknown browser", "os": "", "kind": "unknown"}
    try:
        import ua_parser

        res = ua_parser.parse(ua)
    except Exception:  # noqa: BLE001 - a display helper must never fail a page
        return {"text": ua[:60], "browser": ua[:60], "os": "", "kind": "unknown"}
    agent, os_, device = res.user_agent, res.os, res.device
    browser = agent.family if agent else "Unknown browser"
    if agent and agent.major:
        browser += f" {agent.major}"
    system = ""
    if os_ and os_.family and os_.family != "Other":
        system = os_.family.replace("Mac OS X", "macOS")
        if os_.major:
            system += f" {os_.major}" + (f".{os_.minor}" if os_.minor and os_.family in ("iOS", "Mac OS X") else "")
    low = ua.lower()
    if any(w in low for w in ("bot", "crawler", "spider", "headless", "curl/", "python", "wget/")):
        kind = "bot"
    elif device and device.family in ("iPad",) or "tablet" in low:
        kind = "tablet"
    elif "mobile" in low or (os_ and os_.family in ("iOS", "Android")):
        kind = "phone"
    elif browser == "Other":
        kind = "unknown"
    else:
        kind = "desktop"
    if browser.startswith("Other"):
        browser = "Unknown browser"
    text = f"{browser} on {system}" if system else browser
    return {"text": text, "browser": browser, "os": system, "kind": kind}


def ua_words(browser: str, system: str) -> str:
    """"Chrome 131 on Windows 10" in the viewer's language (names of browsers and systems stay as they are)."""
    browser = _("Unknown browser") if browser in ("", "Unknown browser") else browser
    return _("%(browser)s on %(os)s", browser=browser, os=system) if system else browser


def ua_label(ua: str | None) -> str:
    """The ``|ua`` filter: describe_ua's text, translated when shown (describe_ua itself stays English: it is cached
    across requests of every language, and passkey names and audit data made from it are stored)."""
    found = describe_ua(ua)
    return ua_words(found["browser"], found["os"])


def session_places(user, sids) -> dict:
    """Session id → country code from the login receipt that created the session (when the risk engine knew it)."""
    from authsvc.models import LoginEvent

    # Bounded (issue 20): only the receipts of the sessions shown, found by ix_login_events_session_id — never all
    # of a user's receipts (100 k of them made this page 322 ms). The user check is done here, not in SQL: with
    # "user_id = ?" in the WHERE clause SQLite's planner prefers ix_login_events_user_time and reads every receipt
    # of the user. In chunks, so a long session list is never one huge IN list.
    sids = list(sids)
    out = {}
    for i in range(0, len(sids), 500):
        rows = services().audit.db.session.execute(
            select(LoginEvent.session_id, LoginEvent.country, LoginEvent.user_id)
            .where(LoginEvent.session_id.in_(sids[i:i + 500]))).all()
        out.update({sid: country for sid, country, uid in rows if country and uid == user.id})
    return out


def consents_for(user) -> list[dict]:
    """The user's live OAuth consents with the client's name and when the app last used the account (its newest
    token issue or refresh among live grants; read from the OAuth tables)."""
    from sqlalchemy import func

    from authsvc.models import OAuthClient, OAuthConsent, OAuthGrant

    session = services().audit.db.session
    rows = session.execute(
        select(OAuthConsent, OAuthClient.name).join(OAuthClient, OAuthClient.id == OAuthConsent.client_id)
        .where(OAuthConsent.user_id == user.id, OAuthConsent.revoked_at.is_(None))
        .order_by(OAuthConsent.granted_at.desc())).all()
    last = dict(session.execute(
        select(OAuthGrant.client_id, func.max(func.coalesce(OAuthGrant.rotated_at, OAuthGrant.created_at)))
        .where(OAuthGrant.user_id == user.id, OAuthGrant.revoked_at.is_(None)).group_by(OAuthGrant.client_id)).all())
    return [{"client_id": c.client_id, "name": name, "scopes": c.scopes.split(), "granted_at": c.granted_at,
             "last_used": last.get(c.client_id)} for c, name in rows]


def center_context(user, session) -> dict:
    """Everything /account shows besides the session list."""
    from authsvc.web.paging import page_of

    sessions_page = page_of(services().sessions.list_for(user), "sessions_page")  # paged (issue 20)
    sessions = sessions_page.items
    # Trusted devices are listed by the MFA partial (mfa/_account.html); connected apps are revoked through the
    # OAuth package's own endpoint (oauth.revoke_app) when it is installed.
    apps_revoke = "oauth.revoke_app" if "oauth.revoke_app" in current_app.view_functions else None
    return {"sessions": sessions, "sessions_page": sessions_page,
            "places": session_places(user, [s.id for s in sessions]),
            "consents": consents_for(user), "apps_revoke": apps_revoke,
            "prefs_form": NotificationsForm(new_sign_in=bool(getattr(user, "notify_new_sign_in", True))),
            "timezones": zone_names(), "now": services().clock.now(),
            "region_form": RegionForm(language=normalize(user.locale) or "",
                                      timezone=normalize_timezone(user.timezone) or "")}


# --- forms ----------------------------------------------------------------------------------------------------------
class NotificationsForm(FlaskForm):
    new_sign_in = BooleanField(_l("E-mail me when my account is signed in to from a new browser or place"))


class RegionForm(FlaskForm):
    """Language and time zone of the account's pages and e-mails. Both optional: empty = follow the browser's
    language / show times in UTC. Only exact known values are stored (i18n.normalize, i18n.normalize_timezone)."""

    language = SelectField(_l("Language"), choices=[], validate_choice=False, validators=[Length(max=35)])
    timezone = StringField(_l("Time zone"), validators=[Length(max=64)],
                           render_kw={"autocomplete": "off", "spellcheck": "false", "list": "timezones",
                                      "placeholder": "Europe/Oslo"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.language.choices = [("", _("Same as the browser"))] + list(LANGUAGES.items())


class DeleteAccountForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    confirm = BooleanField(_l("I understand that this deletes my account and cannot be undone"),
                           validators=[DataRequired(message=_l("Tick the box to confirm."))])


def nothing_changed():
    """A state-changing form of the signed-in pages that did not validate (CSRF token missing or expired, bad
    field): one clear 400 in the viewer's language, nothing touched."""
    return render_template("message.html", title=_("Nothing changed"), message=_("Reload the page and try again.")), 400


def _fresh_or_redirect(session, next_url: str):
    mfa = mfa_service()
    if mfa is None or mfa.is_fresh(session):
        return None
    flash(_("For your security, confirm it's you first."), "warning")
    return redirect(mfa.step_up_url(next_url))


def _audit_delete_refused(user) -> None:
    """A wrong password (or the 5-per-15-minutes budget spent) at account deletion: audited, never the password."""
    ctx = request_context()
    services().audit.record("account:delete:failure", "failure", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                            user_agent=ctx.user_agent, reason="bad_password")


def _export_response(user):
    """The data export as a stream (issue 20): written while it is read, in keyset pages, so memory stays flat for a
    user with 100 k receipts, and ending with a ``"complete"`` key (item counts) written last, so a download cut off
    anywhere never looks complete. ``account:data:export`` is audited when the last byte was produced: ``success``
    then, ``failure`` with reason ``interrupted`` (the client went away or the worker stopped it mid-way: part of the
    data did leave) or the exception's name. Errors before the first byte are still an HTTP error."""
    from flask import Response, stream_with_context

    counts: dict = {}
    uid = user.id
    try:
        chunks = privacy().export_stream(user, mfa=mfa_service(), oauth_consents=consents_for(user), counts=counts)
    except Exception as exc:
        _audit_export_failed(user, exc)
        raise
    ctx = request_context()

    def body():
        outcome, reason = "failure", "interrupted"
        try:
            yield from chunks
            outcome, reason = "success", None
        except Exception as exc:  # after the 200 header: no trailer is written, the client sees a cut-off file
            reason = type(exc).__name__
            raise
        finally:
            try:
                services().audit.db.session.rollback()
                services().audit.record("account:data:export", outcome, actor_id=uid, subject_id=uid, ip=ctx.ip,
                                        user_agent=ctx.user_agent, reason=reason,
                                        details=None if outcome != "success" else {"rows": dict(counts)})
            except Exception:  # noqa: BLE001 - never mask the original error with the audit's
                current_app.logger.exception("could not audit the data export")

    stamp = services().clock.now().strftime("%Y%m%d")
    return Response(stream_with_context(body()), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="authsvc-data-{stamp}.json"'})


def _audit_export_failed(user, exc: Exception) -> None:
    """An export that broke on the server is audited as a failure (never as a success), then the error goes on."""
    services().audit.db.session.rollback()
    ctx = request_context()
    services().audit.record("account:data:export", "failure", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                            user_agent=ctx.user_agent, reason=type(exc).__name__)


def _alerts_off_notice(user, ctx) -> None:
    name = services().settings.service_name
    base = services().settings.base_url.rstrip("/")
    from authsvc.i18n.mail import mail_language

    with mail_language(user):
        services().mailer.send(
            user.email, _("Sign-in alerts for your %(service)s account were turned off", service=name),
            _("Sign-in alerts for your %(service)s account were turned off just now (from %(ip)s, %(device)s).",
              service=name, ip=ctx.ip or _("an unknown address"), device=describe_ua(ctx.user_agent)["text"])
            + "\n\n" + _("You will no longer get an e-mail when your account is used from a new device or place.")
            + "\n\n" + _("If this was not you, someone else may have access to your account: change your password "
                          "at %(reset)s, review your devices at %(account)s, and turn the alerts back on there.",
                          reset=base + "/reset", account=base + "/account") + "\n")


def init_routes(bp) -> None:
    bp.add_app_template_filter(ua_label, "ua")
    bp.add_app_template_filter(country_name, "country")
    bp.add_app_template_filter(reason_text, "reason")
    bp.add_app_template_filter(lambda ua: describe_ua(ua)["kind"], "ua_kind")

    @bp.post("/account/notifications")
    @login_required
    def notifications():
        session, user = cookie_session()
        form = NotificationsForm()
        if not form.validate_on_submit():
            return nothing_changed()
        turning_off = bool(user.notify_new_sign_in) and not form.new_sign_in.data
        if turning_off:
            # Alerts are what tells an owner that someone else signed in: whoever holds a session must not silence
            # them quietly (issue 19). A fresh proof first (the step-up page), and the owner is told by e-mail.
            again = _fresh_or_redirect(session, url_for("web.account") + "#notifications-h")
            if again is not None:
                return again
        user.notify_new_sign_in = bool(form.new_sign_in.data)
        services().audit.db.session.commit()
        ctx = request_context()
        services().audit.record("account:preferences:update", "success", actor_id=user.id, subject_id=user.id,
                                ip=ctx.ip, user_agent=ctx.user_agent,
                                details={"notify_new_sign_in": user.notify_new_sign_in})
        if turning_off:
            _alerts_off_notice(user, ctx)
        flash(_("Sign-in alerts are on.") if user.notify_new_sign_in else _("Sign-in alerts are off."), "success")
        return redirect(url_for("web.account") + "#notifications-h")

    @bp.post("/account/region")
    @login_required
    def region():
        """Language and time zone (issue 18). Anything not exactly a known language or zone is refused whole (400,
        nothing stored): the values end up in every page and e-mail of the account."""
        session, user = cookie_session()
        form = RegionForm()
        if not form.validate_on_submit():
            return nothing_changed()
        language = (form.language.data or "").strip() or None
        zone_in = (form.timezone.data or "").strip()
        zone = normalize_timezone(zone_in) if zone_in else None
        if (language and language not in LANGUAGES) or (zone_in and zone is None):
            return render_template("message.html", title=_("Nothing changed"),
                                   message=_("Pick a language from the list and a time zone such as Europe/Oslo, "
                                             "then try again.")), 400
        changed = {k: v for k, v in (("locale", language), ("timezone", zone)) if getattr(user, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(user, key, value)
            services().audit.db.session.commit()
            ctx = request_context()
            services().audit.record("account:preferences:update", "success", actor_id=user.id, subject_id=user.id,
                                    ip=ctx.ip, user_agent=ctx.user_agent, details=changed)
        resp = redirect(url_for("web.account") + "#region-h")
        if language:  # this browser follows at once, like the footer's language links
            resp.set_cookie(COOKIE, language, max_age=365 * 86400, path="/", secure=True, httponly=True,
                            samesite="Lax")
            with force_locale(language):  # the page after the redirect speaks the new language
                flash(_("Language and time zone saved."), "success")
        else:  # "same as the browser": a language cookie would otherwise still win over Accept-Language
            resp.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
            flash(_("Language and time zone saved."), "success")
        return resp

    @bp.get("/account/export")
    @login_required
    def export_data():
        session, user = cookie_session()
        again = _fresh_or_redirect(session, url_for("web.export_page"))
        if again is not None:
            return again
        return _export_response(user)

    @bp.get("/account/data")
    @login_required
    def export_page():
        from authsvc import jobs
        from authsvc.web.forms import ActionForm

        session, user = cookie_session()
        return render_template("account_data.html", user=user, job=jobs.latest(user.id, "data_export"),
                               form=ActionForm())

    @bp.post("/account/data/export-job")
    @login_required
    def export_job():
        """The data export as a background job (authsvc.jobs, issue 20): asking again while it runs returns it."""
        from flask_babel import gettext as _

        from authsvc import jobs
        from authsvc.web.forms import ActionForm

        session, user = cookie_session()
        if not ActionForm().validate_on_submit():
            return render_template("message.html", title=_("Nothing changed"),
                                   message=_("Reload the page and try again.")), 400
        again = _fresh_or_redirect(session, url_for("web.export_page"))
        if again is not None:
            return again
        try:
            jobs.request_job(user.id, "data_export")
        except jobs.TooMany:
            return render_template("message.html", title=_("Not now"),
                                   message=_("You asked for your data several times today. Try again tomorrow.")), 429
        return redirect(url_for("web.export_page"))

    @bp.get("/account/data/export-job/<token>")
    @login_required
    def export_job_download(token):
        """One-time download of the user's own finished export file; anything else is 404 (another user's token,
        an expired or a used link). A fresh sign-in proof is needed, as for the streamed download."""
        from authsvc import jobs

        session, user = cookie_session()
        again = _fresh_or_redirect(session, url_for("web.export_page"))
        if again is not None:
            return again
        if request.method == "HEAD":  # a link checker or preview must not use up the one-time link
            return jobs.head_response(jobs.peek_download(user.id, token, "data_export"))
        got = jobs.claim_download(user.id, token, "data_export")
        if got is None:
            abort(404)
        stamp = got[1].created_at.strftime("%Y%m%d")
        return jobs.send(got, f"authsvc-data-{stamp}.json.gz")

    @bp.route("/account/delete", methods=["GET", "POST"])
    @login_required
    def delete_account():
        session, user = cookie_session()
        form = DeleteAccountForm()
        status = 200
        if request.method == "POST":
            status = 400
            if form.validate_on_submit():
                if privacy().check_password(user, form.password.data):
                    ctx = request_context()
                    privacy().erase(user, ip=ctx.ip, oauth=oauth_service())
                    resp = redirect(url_for("web.account_deleted"))
                    clear_session_cookie(resp)
                    return resp
                _audit_delete_refused(user)
                form.password.errors = [_("That password is not right. After 5 wrong tries, wait 15 minutes.")]
                status = 401
        return render_template("account_delete.html", form=form, user=user), status

    @bp.get("/account/deleted")
    def account_deleted():
        return render_template("message.html", title=_("Your account is deleted"),
                               message=_("Your account and the personal data linked to it were erased. You have been "
                                         "signed out everywhere. Thank you for having used us."))
