"""Operator panel: dashboard, users, attacks, OAuth clients, audit log, outbox.

Every view goes through ``admin_gate`` (admin role, aal2 when MFA is installed and ``admin_require_mfa``, a proof
within ``admin_fresh_seconds``; see gate.py). Every state change is a CSRF-protected POST and is written to the
audit log as ``admin:<object>:<action>`` with the operator as actor and the user as subject.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re

from babel import dates as babel_dates
from flask import (Blueprint, Response, abort, flash, has_request_context, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_babel import format_decimal, format_time, get_locale, ngettext, pgettext
from flask_babel import gettext as _
from flask_babel import gettext as _gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import false, func, select, true
from wtforms import (BooleanField, IntegerField, PasswordField, SelectField, SelectMultipleField, StringField,
                     TextAreaField, widgets)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from authsvc.admin import charts, rollup, stats
from authsvc.admin import confirmation as cf
from authsvc.admin import throttles as th
from authsvc.admin.gate import admin_gate, is_fresh, record_proof
from authsvc.admin.queries import USERS_PER_PAGE, users_newest_first
from authsvc.models import LoginEvent, SecurityEvent, User, UserSession
from authsvc.models.base import parse_id
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required, safe_next
from authsvc.web.forms import ActionForm
from authsvc.web.http import request_context

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _db():
    return services().audit.db


def _audit(tag: str, admin: User, subject: User | None = None, *, outcome: str = "success", reason=None,
           details=None):
    ctx = request_context()
    services().audit.record(tag, outcome, actor_id=admin.id, subject_id=subject.id if subject else None, ip=ctx.ip,
                            user_agent=ctx.user_agent, reason=reason, details=details)


def _oauth_clients():
    from authsvc.web.center import oauth_service

    provider = oauth_service()
    clients = getattr(provider, "clients", None)
    if clients is None and provider is not None and hasattr(provider, "rotate_secret"):
        clients = provider
    return clients


def _redis():
    return services().sessions.redis


def _redis_or_none():
    try:
        return _redis()
    except Exception:  # noqa: BLE001 - callers count from SQL without it
        return None


_LONGEST = 999_999_999 * 86400  # the longest timedelta; a longer value is shown as that (understated, never over)


def human_duration(seconds, locale=None) -> str:
    """2591996 → "29 days 23 hr", 754 → "12 min 34 sec": the two largest units, rounded down (never overstates), in
    ``locale`` (default: the viewer's language in a request, else English) — each unit by Babel's
    ``format_timedelta`` at that unit's granularity (so 29 days never becomes "4 weeks"), e.g. "29 Tg. 23 Std."."""
    try:
        left = min(max(int(seconds), 0), _LONGEST)
    except (TypeError, ValueError, OverflowError):
        return "—"
    if locale is None:
        locale = str(get_locale() or "en") if has_request_context() else "en"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, left = divmod(left, size)
        if n:
            parts.append((unit, n * size))
    if not parts:
        parts = [("second", 0)]
    return " ".join(babel_dates.format_timedelta(dt.timedelta(seconds=s), granularity=unit, threshold=10**9,
                                                 format="short", locale=locale) for unit, s in parts[:2])


bp.add_app_template_filter(human_duration, "duration")


def decimal1(value) -> str:
    """A rate with one decimal in the viewer's language: 7.5 → "7.5" (en), "7,5" (de)."""
    try:
        return format_decimal(float(value), "0.0")
    except (TypeError, ValueError):
        return "—"


bp.add_app_template_filter(decimal1, "decimal1")


@bp.app_context_processor
def _nav():
    return {"admin_sections": (("admin.dashboard", _l("Dashboard")), ("admin.users", _l("Users")),
                               ("admin.attacks", _l("Attacks")), ("admin.oauth_clients", _l("OAuth clients")),
                               ("federation_admin.providers", _l("Sign-in providers")),
                               ("admin.audit", _l("Audit log")), ("admin.outbox", _l("Outbox")))}


# --- re-authentication without the MFA package ---------------------------------------------------------------------
class ConfirmForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


@bp.route("/confirm", methods=["GET", "POST"])
@login_required
def confirm():
    """Fresh password proof for the panel when no MFA service exists (with MFA, /mfa/step-up does this)."""
    from authsvc.web.center import privacy

    session, user = cookie_session()
    if not user.is_admin:
        abort(403)
    next_url = safe_next(request.args.get("next") or url_for("admin.dashboard"))
    form = ConfirmForm()
    status = 200
    if form.validate_on_submit():
        if privacy().check_password(user, form.password.data):
            record_proof(session)
            _audit("admin:reauth:success", user, user)
            return redirect(next_url)
        _audit("admin:reauth:failure", user, user, outcome="failure", reason="bad_password")
        form.password.errors = [_("That password is not right.")]
        status = 401
    return render_template("admin/confirm.html", form=form, fresh=is_fresh(session)), status


PAGE_SIZE = 50  # rows per page of the OAuth client list and the outbox (keyset cursors)
CHAIN_STEP = 20_000  # audit rows one page load may hash (~0.3 s); a longer backlog is caught up over the next loads


# --- dashboard ---------------------------------------------------------------------------------------------------------
DASHBOARD_CACHE_SECONDS = 30


POPULATION_CACHE_SECONDS = 600


def _cached_numbers(key: str, compute, ttl: int = DASHBOARD_CACHE_SECONDS) -> dict:
    """SQL aggregates cached in Redis for ``ttl`` seconds: several operators, or one reloading, cost one set
    of queries per 30 s. A Redis failure only skips the cache. Cached or not, the shape is the same (JSON: lists)."""
    r = _redis()
    try:
        cached = r.get(key)
        if cached:
            return json.loads(cached)
    except Exception:  # noqa: BLE001 - the numbers are worth more than the cache
        r = None
    out = json.loads(json.dumps(compute()))
    if r is not None:
        try:
            r.set(key, json.dumps(out), ex=ttl)
        except Exception:  # noqa: BLE001
            pass
    return out


def _dashboard_numbers(db, now: dt.datetime) -> dict:
    """The dashboard's SQL aggregates, cached 30 s. The last 24 hours come from hourly pieces (rollup.py): an ended
    hour is counted once and kept, so a load with the 30 s cache empty counts only the hour in progress. The account
    totals, which read whole tables, are cached 10 minutes (users_total: the planner's estimate on a large
    PostgreSQL table). The key names the hour, so the charts' hour labels never come from the previous hour."""
    def population():
        total, exact = stats.users_total(db)
        return {"users_total": total, "users_exact": exact,
                "breached_total": stats.count_tag(db, "account:password:breached"),
                "adoption": stats.mfa_adoption(db) if getattr(services(), "mfa", None) is not None else None}

    def compute():
        out = rollup.day_numbers(db, _redis_or_none(), now)
        out.update(_cached_numbers("admin:population", population, POPULATION_CACHE_SECONDS))
        return out

    return _cached_numbers(f"admin:dashboard:{now:%Y%m%d%H}", compute)


def outcome_names() -> dict[str, str]:
    """The sign-in outcomes of the dashboard's charts in the viewer's language (a context: the account page's
    "allowed" is "allowed on <date>", another word in German)."""
    return {"success": pgettext("sign-in outcome", "allowed"), "mfa_required": pgettext("sign-in outcome", "stepped up"),
            "denied": pgettext("sign-in outcome", "denied"), "failed": pgettext("sign-in outcome", "failed")}


@bp.get("/")
@admin_gate
def dashboard(session, admin):
    db, now = _db(), services().clock.now()
    n = _dashboard_numbers(db, now)
    labels, series, s_labels, s_by = n["labels"], n["series"], n["s_labels"], n["s_by"]
    # Chart titles, descriptions and series names are translated here, on the server: the SVG carries no script.
    # The hour labels ("14:00", UTC hours) are shown in the viewer's time zone.
    labels = [format_time(start, "HH:mm") for start in rollup.hour_starts(now)][-len(labels):]
    names = outcome_names()
    outcomes = [(o, names[o], css) for o, _name, css in stats.OUTCOMES]
    per_hour = charts.stacked_bars(
        "logins-chart", _("Sign-ins per hour, last 24 hours"), _("Stacked bars by outcome: allowed, stepped up, "
                                                                 "denied, failed."),
        labels, [(name, css, series[o]) for o, name, css in outcomes])
    scores = charts.stacked_bars(
        "score-chart", _("Risk scores, last 24 hours"), _("Number of scored sign-ins per score range, by decision."),
        s_labels, [(names["success"], "bar-allowed", s_by.get("allow", [0] * len(s_labels))),
                   (names["mfa_required"], "bar-stepup", s_by.get("step_up", [0] * len(s_labels))),
                   (names["denied"], "bar-denied", s_by.get("deny", [0] * len(s_labels)))],
        width=420, height=200, label_every=1)
    marks = th.scan(_redis(), limit=2000)
    force = th.in_force(marks, services().settings)
    adoption = n["adoption"]
    meter = None
    if adoption:
        share = adoption[0] / adoption[1] if adoption[1] else 0.0
        meter = charts.meter("mfa-meter", _("Active users with a second factor"), share)
    svc = services()
    refusals = svc.refusals.recent_counts(24) if getattr(svc, "refusals", None) is not None else {}
    recent_refusals = list(db.session.execute(
        select(SecurityEvent).where(SecurityEvent.tag == "throttle:refused")
        .order_by(SecurityEvent.id.desc()).limit(10)).scalars())
    budget = getattr(svc.throttle, "budget", None)
    from authsvc.signals.outbox import backlog, failed_count

    return render_template(
        "admin/dashboard.html", outbox_backlog=backlog(db.session), outbox_failed=failed_count(db.session),
        refusals=refusals, refusals_total=sum(refusals.values()),
        recent_refusals=recent_refusals, scope_text=th.scope_texts(),
        budget=budget.snapshot() if budget is not None else None, per_hour=per_hour, labels=labels, series=series, outcomes=outcomes,
        scores=scores, s_labels=s_labels, s_by=s_by, marks_total=len(marks), in_force=force[:10],
        in_force_total=len(force), sources=n["sources"], breached=n["breached"],
        breached_total=n["breached_total"], adoption=adoption, meter=meter, users_total=n["users_total"], users_exact=n["users_exact"],
        # Incremental: hashes only the events appended since the last check (see verify_incremental; a new worker
        # resumes from the signed checkpoint in Redis), at most CHAIN_STEP rows per request, so a page load never
        # costs a pass over the whole log. The "verify whole chain" button and `authsvc audit verify` stay full.
        chain=services().audit.verify_incremental(max_rows=CHAIN_STEP))


# --- users ---------------------------------------------------------------------------------------------------------------
IP_SEARCH_ROWS = 5000  # receipts and sessions of one address read by the users search (each table)
_FULL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


@bp.get("/users")
@admin_gate
def users(session, admin):
    q = (request.args.get("q") or "").strip()[:254]
    db = _db()
    # Newest first, one page; ?before=<id> continues after that account (keyset paging, authsvc/admin/queries.py).
    query = users_newest_first(db, request.args.get("before"))
    how = None
    if q:
        try:
            ip = str(ipaddress.ip_address(q))
        except ValueError:
            ip = None
        if ip:
            how = _("IP address")
            # Bounded: at most IP_SEARCH_ROWS receipts and sessions of the address are read (a carrier's NAT address
            # can carry millions), then the accounts are fetched by primary key — never a hash join over every
            # account (0.58 s at 1 M users; docs/BENCHMARKS.md).
            ids = {uid for model in (LoginEvent, UserSession) for uid in db.session.execute(
                select(model.user_id).where(model.ip == ip).limit(IP_SEARCH_ROWS)).scalars()}
            query = query.where(User.id.in_(sorted(ids))) if ids else query.where(false())
        elif q.isascii() and q.isdigit():
            how = _("id")
            uid = parse_id(q)  # too large for an id: matches nothing (never an out-of-range error from the database)
            query = query.where(User.id == uid) if uid is not None else query.where(false())
        else:
            how = _("e-mail")
            # Three characters or more: anywhere in the address (PostgreSQL answers from the trigram index of
            # migration 0011_lead_users_search); fewer: the start of the address (the e-mail index), so that a one-
            # letter search never reads every account.
            if _FULL_ADDRESS.fullmatch(q):  # a whole address: the account with it (the unique index), at once
                how = _("exact e-mail")
                query = query.where(User.email == q.lower())
            else:
                literal = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = ("%" + literal + "%") if len(q) >= 3 else (literal + "%")
                query = query.where(User.email.like(pattern, escape="\\"))
    rows = list(db.session.execute(query).scalars())
    more, rows = len(rows) > USERS_PER_PAGE, rows[:USERS_PER_PAGE]
    last = {}
    if rows:
        # Last successful sign-in of each listed account: a correlated "newest success" per account walks the
        # (user_id, occurred_at) index backwards and stops at the first success, instead of reading every receipt
        # of the 100 accounts for a max() (557 ms cold at 200 k users / 2 M receipts → 25 ms; docs/BENCHMARKS.md).
        newest_ok = (select(LoginEvent.occurred_at)
                     .where(LoginEvent.user_id == User.id, LoginEvent.outcome == "success")
                     .order_by(LoginEvent.occurred_at.desc()).limit(1).correlate(User).scalar_subquery())
        last = {uid: at for uid, at in db.session.execute(
            select(User.id, newest_ok).where(User.id.in_([u.id for u in rows]))) if at is not None}
    return render_template("admin/users.html", users=rows, q=q, how=how, last=last, bulk_max=BULK_MAX,
                           more=more)


def _user_or_404(user_id: int) -> User:
    if parse_id(user_id) is None:
        abort(404)  # <int:…> takes any length of digits; the column does not
    user = _db().session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users/<int:user_id>")
@admin_gate
def user_detail(session, admin, user_id: int):
    user = _user_or_404(user_id)
    mfa = getattr(services(), "mfa", None)
    overview = mfa.overview(user) if mfa is not None else None
    from authsvc.web.center import consents_for
    from authsvc.web.paging import page_of

    sessions_page = page_of(services().sessions.list_for(user), "sessions_page")  # paged (issue 20)
    return render_template("admin/user.html", user=user, receipts=services().activity.recent(user, limit=50),
                           sessions=sessions_page.items, sessions_page=sessions_page, overview=overview,
                           mfa_enabled=mfa is not None,
                           consents=consents_for(user), form=ActionForm())


USER_ACTIONS = {
    "disable": "admin:user:disable", "enable": "admin:user:enable", "end-sessions": "admin:user:sessions_revoke",
    "reset-factors": "admin:user:factors_reset", "require-password-change": "admin:user:password_change_required",
    "unlock": "admin:user:unlock", "revoke-device": "admin:user:device_revoke",
}


ADMIN_PROTECTED = ("disable", "reset-factors")  # refused from the panel when the target is another administrator


USER_ACTION_TEXT = {  # (title, consequence) of each action's confirmation page
    "disable": (_l("Disable %(email)s"), _l("The account is disabled and every session it has ends at once. Nobody "
                                            "can sign in to it until an administrator enables it again.")),
    "enable": (_l("Enable %(email)s"), _l("The account can sign in again with its password and second factors.")),
    "end-sessions": (_l("End every session of %(email)s"),
                     _l("Every browser and app signed in to this account is signed out at once.")),
    "reset-factors": (_l("Reset the second factors of %(email)s"),
                      _l("Every authenticator app, passkey, security key, recovery code and remembered device of the "
                         "account is removed, and the user is told by e-mail.")),
    "require-password-change": (_l("Require a password change for %(email)s"),
                                _l("The user must choose a new password at the next sign-in.")),
    "unlock": (_l("Unlock %(email)s"), _l("The lockout and the failure counters of the account are cleared.")),
    "revoke-device": (_l("Forget a remembered device of %(email)s"),
                      _l("That device is asked for a second factor again at the next sign-in.")),
}


def _account_row(user: User) -> tuple[str, str]:
    return user.email, f"#{user.id}" + (" · " + _("administrator") if user.is_admin else "")


def _refuse_admin_target(admin: User, user: User, action: str, tag: str):
    """One stolen admin session must not be able to lock the other administrators out (issue 19): disabling an
    administrator or removing their factors is for someone with shell access to the server. None: allowed."""
    if action not in ADMIN_PROTECTED or not user.is_admin or user.id == admin.id:
        return None
    _audit(tag, admin, user, outcome="failure", reason="target_is_admin")
    command = {"disable": f"authsvc admin disable --email {user.email}",
               "reset-factors": f"authsvc mfa reset --email {user.email}"}[action]
    return render_template("message.html", title=_("Not from the panel"),
                           message=_("%(email)s is an administrator. Another administrator's account can only be "
                                     "disabled or have its second factors reset on the server, with '%(command)s'.",
                                     email=user.email, command=command)), 403


@bp.post("/users/<int:user_id>/<action>")
@admin_gate
def user_action(session, admin, user_id: int, action: str):
    """Every action on one account is confirmed with a reason first (see confirmation.py)."""
    if action not in USER_ACTIONS:
        abort(404)
    user = _user_or_404(user_id)
    db, tag, details, message = _db(), USER_ACTIONS[action], None, None
    back = url_for("admin.user_detail", user_id=user_id)
    refused = _refuse_admin_target(admin, user, action, tag)
    if refused is not None:
        return refused
    if action == "disable" and user.id == admin.id:
        flash(_("You cannot disable your own account."), "warning")
        return redirect(back)
    mfa = getattr(services(), "mfa", None)
    if action in ("reset-factors", "revoke-device") and mfa is None:
        flash(_("Two-step verification is not installed on this server."), "warning")
        return redirect(back)
    target = None
    if action == "revoke-device" and not cf.is_confirmation():
        target = parse_id(request.form.get("target") or "")
        if target is None:
            abort(400)

    def plan(payload):
        title, consequence = USER_ACTION_TEXT[action]
        return cf.Plan(str(title) % {"email": user.email}, str(consequence), back,
                            targets=[_account_row(user)], danger=action in ADMIN_PROTECTED)

    reason, payload, response = cf.confirmed(admin, f"user:{action}:{user.id}", {"target": target}, plan)
    if response is not None:
        return response
    target = payload["target"]
    if action == "disable":
        user.status = "disabled"
        db.session.commit()
        details = {"sessions_ended": services().sessions.revoke_all(user, "admin_disabled")}
        message = _("Account disabled; its sessions ended.")
    elif action == "enable":
        user.status = "active"
        db.session.commit()
        message = _("Account enabled.")
    elif action == "end-sessions":
        details = {"count": services().sessions.revoke_all(user, "admin_revoked")}
        message = ngettext("Ended %(num)d session.", "Ended %(num)d sessions.", details["count"])
    elif action == "reset-factors":
        details = mfa.reset_factors(user, admin, request_context())
        message = _("Every second factor and remembered device was removed; the user was told by e-mail.")
    elif action == "require-password-change":
        from authsvc.accounts.service import require_password_change

        require_password_change(user, "admin")
        db.session.commit()
        message = _("The user must choose a new password at the next sign-in.")
    elif action == "unlock":
        services().throttle.clear_account(user.email, pairs=True)
        message = _("Lockout and failure counters of this account were cleared.")
    elif action == "revoke-device":
        if not mfa.revoke_device(user, target, admin, request_context()):
            _audit(tag, admin, user, outcome="failure", reason="already_gone",
                   details={"device": target, "reason": reason})
            flash(_("That device was already forgotten."), "warning")
            return redirect(back)
        details = {"device": target}
        message = _("The device will be asked for a second factor again.")
    _audit(tag, admin, user, details=dict(details or {}, reason=reason))
    flash(message, "success")
    return redirect(back)


# --- bulk actions, create user, resend verification (issue 18) ---------------------------------------------------------
BULK_MAX = 100  # accounts one bulk request may name; more is a 400 before any lookup
BULK_ACTIONS = {"disable": "admin:user:disable", "end-sessions": "admin:user:sessions_revoke"}


def _bulk_ids(values: list[str]) -> list[int]:
    """Distinct, valid user ids from the checkboxes, or a 400: too many, not digits, out of range."""
    if not values or len(values) > BULK_MAX:
        abort(400)
    ids = []
    for raw in values:
        uid = parse_id(raw) if raw.isascii() and raw.isdigit() else None
        if uid is None:
            abort(400)
        if uid not in ids:
            ids.append(uid)
    return ids


@bp.post("/users/bulk")
@admin_gate
def users_bulk(session, admin):
    """Disable or end the sessions of up to BULK_MAX accounts, confirmed with one reason; each account is audited.
    Administrators (this one included) are left out, as from the single actions: never for the panel to lock out."""
    action = request.values.get("action") or ""  # the form's select, then the confirmation's URL (?action=)
    if action not in BULK_ACTIONS:
        abort(400)
    tag, db = BULK_ACTIONS[action], _db()
    if cf.is_confirmation():  # the ids come from the ticket, not from the form
        ids = []
    else:
        ids = _bulk_ids(request.form.getlist("ids"))
    found = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(ids))).scalars()} if ids else {}
    payload = {"ids": [uid for uid in ids if uid in found and not found[uid].is_admin]}
    if not cf.is_confirmation() and not payload["ids"]:
        flash(_("None of the selected accounts can be changed from here: administrators are left out."), "warning")
        return redirect(url_for("admin.users"))

    def plan(p):
        rows = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(p["ids"]))).scalars()}
        skipped = [(found[uid].email, _("administrator") if found[uid].is_admin else "") for uid in ids
                   if uid in found and found[uid].is_admin] + [(f"#{uid}", _("no such account")) for uid in ids
                                                              if uid not in found]
        title = (ngettext("Disable %(num)d account", "Disable %(num)d accounts", len(rows)) if action == "disable"
                 else ngettext("End every session of %(num)d account", "End every session of %(num)d accounts",
                               len(rows)))
        text = (_("Each account is disabled and its sessions end at once.") if action == "disable"
                else _("Every browser and app signed in to these accounts is signed out at once."))
        return cf.Plan(title, text, url_for("admin.users"), targets=[_account_row(rows[i]) for i in p["ids"]
                                                                         if i in rows], skipped=skipped,
                       post_to=url_for("admin.users_bulk", action=action))

    reason, payload, response = cf.confirmed(admin, f"bulk:{action}", payload, plan)
    if response is not None:
        return response
    done = 0
    for user in db.session.execute(select(User).where(User.id.in_(payload["ids"])).order_by(User.id)).scalars():
        if user.is_admin or user.id == admin.id:  # became an administrator since the confirmation page
            _audit(tag, admin, user, outcome="failure", reason="target_is_admin", details={"bulk": True})
            continue
        if action == "disable":
            user.status = "disabled"
            db.session.commit()
            details = {"sessions_ended": services().sessions.revoke_all(user, "admin_disabled")}
        else:
            details = {"count": services().sessions.revoke_all(user, "admin_revoked")}
        _audit(tag, admin, user, details=dict(details, reason=reason, bulk=True))
        done += 1
    flash(ngettext("Done for %(num)d account.", "Done for %(num)d accounts.", done), "success")
    return redirect(url_for("admin.users"))


class CreateUserForm(FlaskForm):
    email = StringField(_l("E-mail"), validators=[DataRequired(), Length(max=254)],
                        render_kw={"autocomplete": "off", "type": "email"})


@bp.route("/users/new", methods=["GET", "POST"])
@admin_gate
def user_create(session, admin):
    """The operator names the address; the user chooses the password through a set-password link (which also
    confirms the address). The operator never knows the password. Audited as admin:user:create."""
    form = CreateUserForm()
    status = 200
    if form.validate_on_submit():
        from authsvc.errors import ServiceError

        try:
            user = services().accounts.create_invited(form.email.data, request_context())
        except ServiceError as exc:
            form.email.errors = [_(exc.message)]  # the services mark their messages with N_
            status = 400
        else:
            _audit("admin:user:create", admin, user)
            flash(_("Account created; a link to choose a password was sent to %(email)s.", email=user.email),
                  "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    elif request.method == "POST":
        status = 400
    return render_template("admin/user_new.html", form=form), status


RESEND_EVERY = 300  # seconds between two verification mails an operator can send to one account


@bp.post("/users/<int:user_id>/resend-verification")
@admin_gate
def user_resend(session, admin, user_id: int):
    user = _user_or_404(user_id)
    back = url_for("admin.user_detail", user_id=user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if user.email_verified_at is not None:
        flash(_("This address is already confirmed."), "warning")
        return redirect(back)
    if user.status == "disabled":
        # Its link would be refused: a mail that cannot work only tells the mailbox the account exists.
        _audit("admin:user:verification_resend", admin, user, outcome="failure", reason="disabled")
        flash(_("This account is disabled. Enable it first, then send the link."), "warning")
        return redirect(back), 409
    # One per account per RESEND_EVERY from the panel, on top of the per-address mail limit (mailguard).
    if not _redis().set(f"admin:resend:{{u{user.id}}}", "1", nx=True, ex=RESEND_EVERY):
        _audit("admin:user:verification_resend", admin, user, outcome="failure", reason="rate_limited")
        flash(_("A link was sent a few minutes ago. Wait before sending another."), "warning")
        return redirect(back), 429
    sent = services().accounts.resend_by_admin(user, request_context())
    _audit("admin:user:verification_resend", admin, user, outcome="success" if sent else "failure",
           reason=None if sent else "mail_limit")
    flash(_("A new link was sent to %(email)s.", email=user.email) if sent
          else _("The mail limit for this address is reached; try again later."), "success" if sent else "warning")
    return redirect(back)


def _emails(ids) -> dict[int, str]:
    """id → e-mail for the ids on one page (at most a few hundred: one indexed IN query)."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(_db().session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


ACCOUNT_LOOKUP = 2000  # accounts hashed per attacks page to name the account hashes of throttle marks
ACCOUNT_KINDS = ("a", "p", "pk")  # mark kinds whose entity starts with an account hash


def _account_labels(tags) -> dict[str, str]:
    """``{mark tag: "e-mail #id"}`` for marks filed under a real account. The hash is one-way, so the lookup goes the
    other way, bounded: the accounts with the newest failed or denied sign-ins of the last 7 days (at most
    ACCOUNT_LOOKUP, one query) are hashed with the throttle key and matched. Unknown addresses stay hashes."""
    throttle = services().throttle
    wanted = {}
    for tag in tags:
        kind, _sep, entity = tag.partition(":")
        if kind in ACCOUNT_KINDS and entity:
            wanted.setdefault(entity.split(":", 1)[0], []).append(tag)
    if not wanted or not hasattr(throttle, "account_hash"):
        return {}
    since = services().clock.now() - dt.timedelta(days=7)
    recent = (select(LoginEvent.user_id).where(LoginEvent.occurred_at >= since, LoginEvent.user_id.is_not(None),
                                               LoginEvent.outcome.in_(("failed", "denied", "mfa_required")))
              .order_by(LoginEvent.occurred_at.desc()).limit(10 * ACCOUNT_LOOKUP).subquery())
    out = {}
    for uid, email in _db().session.execute(select(User.id, User.email).where(User.id.in_(select(recent.c.user_id)))
                                            .limit(ACCOUNT_LOOKUP)):
        for tag in wanted.get(throttle.account_hash(email), ()):
            out[tag] = f"{email} #{uid}"
    return out


# --- attacks -----------------------------------------------------------------------------------------------------------
@bp.get("/attacks")
@admin_gate
def attacks(session, admin):
    settings = services().settings
    marks = th.scan(_redis(), limit=5000)
    force = th.in_force(marks, settings)
    sprays = [m for m in marks if m.kind in ("ip", "pfx") and m.suffix == "b"]
    sprayed_pw = [m for m in marks if m.kind == "pw" and m.suffix == "b"]
    pw_tries = sorted((m for m in marks if m.kind == "pw" and m.suffix == "u"), key=lambda m: -m.value)[:10]
    spreading = sorted((m for m in marks if m.kind in ("ip", "pfx") and m.suffix == "u"), key=lambda m: -m.value)[:10]
    counting = sorted((m for m in marks if m not in force and m.suffix != "known"), key=lambda m: -m.value)[:50]
    now = services().clock.now()
    return render_template("admin/attacks.html", in_force=force, sprays=sprays, sprayed_pw=sprayed_pw,
                           pw_tries=pw_tries, spreading=spreading, counting=counting,
                           accounts=_account_labels([m.tag for m in force + counting]),
                           # The failing sources of the last hour and day: SQL aggregates, cached like the dashboard's
                           # (issue 20: 0.23 s per load at 1 M users / 10 M receipts); the marks above stay live.
                           # The day's come from the dashboard's hourly pieces (rollup.py).
                           **_cached_numbers(f"admin:attacks:sources:{now:%Y%m%d%H%M}", lambda: {
                               "hour": stats.top_sources(_db(), now - dt.timedelta(hours=1)),
                               "day": rollup.day_numbers(_db(), _redis_or_none(), now)["sources"]}),
                           form=ActionForm(), settings=settings)


def _one_entity(tag: str) -> tuple[str, str]:
    """``kind:entity`` of one throttle entity, or a 400: never a pattern."""
    if not tag or len(tag) > 128 or th.parse_key(f"th:{{{tag}}}") is None or any(ch in tag for ch in "*?[]{}\\"):
        abort(400)
    kind, entity = tag.split(":", 1)
    return kind, entity


@bp.post("/attacks/unblock")
@admin_gate
def unblock(session, admin):
    tag = None
    if not cf.is_confirmation():  # the confirmation takes the entity from its ticket
        tag = request.form.get("target") or ""
        _one_entity(tag)

    def plan(payload):
        kind, entity = _one_entity(payload["tag"])
        kind_text = th.kind_text(kind)
        who = _account_labels([payload["tag"]]).get(payload["tag"])
        return cf.Plan(_("Unblock %(what)s", what=kind_text),
                       _("Every counter and block of this entity is cleared; remembered familiar places are kept."),
                       url_for("admin.attacks"), targets=[(who or entity, kind_text)], danger=False)

    reason, payload, response = cf.confirmed(admin, "throttle:unblock", {"tag": tag}, plan)
    if response is not None:
        return response
    kind, entity = _one_entity(payload["tag"])
    n = th.unblock(_redis(), payload["tag"])
    _audit("admin:throttle:unblock", admin,
           details={"kind": kind, "entity": entity[:64], "keys": n, "reason": reason})
    what = th.kind_text(kind)
    flash(ngettext("Unblocked %(what)s (%(num)d counter cleared).", "Unblocked %(what)s (%(num)d counters cleared).",
                   n, what=what) if n else _("Nothing to unblock: it had already expired."),
          "success" if n else "warning")
    return redirect(url_for("admin.attacks"))


# --- OAuth clients -------------------------------------------------------------------------------------------------
try:  # WTForms ≥ 3.3 wants SelectChoice objects; older versions take (value, label) tuples
    from wtforms import SelectChoice

    def _choices(pairs):
        return [SelectChoice(v, label) for v, label in pairs]
except ImportError:  # pragma: no cover
    def _choices(pairs):
        return list(pairs)


class MultiCheckbox(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ClientForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    client_type = SelectField(_l("Type"), choices=_choices([
        ("confidential", _l("Confidential (has a secret: server-side app)")),
        ("public", _l("Public (no secret: mobile, desktop or browser app)"))]))
    redirect_uris = TextAreaField(_l("Redirect URIs (one per line)"), validators=[Length(max=4000)])
    grant_types = MultiCheckbox(_l("Grants"), choices=_choices([
        ("authorization_code", _l("Authorization code (+PKCE)")), ("refresh_token", _l("Refresh token")),
        ("client_credentials", _l("Client credentials")),
        ("urn:ietf:params:oauth:grant-type:device_code", _l("Device code"))]))
    scopes = MultiCheckbox(_l("Scopes"), choices=_choices((s, s) for s in ("openid", "profile", "email",
                                                                            "offline_access")))
    token_format = SelectField(_l("Access tokens"), choices=_choices([("opaque", _l("Opaque (revocable at once)")),
                                                                     ("jwt", _l("JWT (RFC 9068, ≤ 15 min)"))]))
    access_token_ttl = IntegerField(_l("Access-token lifetime (seconds)"),
                                    validators=[Optional(), NumberRange(10, 86400)])
    quota_per_minute = IntegerField(_l("Quota (token requests per minute)"),
                                    validators=[DataRequired(), NumberRange(1, 1_000_000)])
    backchannel_logout_uri = StringField(_l("Back-channel logout URI"), validators=[Length(max=2000)])
    backchannel_logout_session_required = BooleanField(_l("The app needs the session id (sid) in logout tokens"))


def _uris(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


@bp.get("/oauth")
@admin_gate
def oauth_clients(session, admin):
    clients = _oauth_clients()
    if clients is None:
        return render_template("admin/oauth_off.html")
    after = request.args.get("after") or None
    if after is not None and (len(after) > 64 or not after.replace("-", "").replace("_", "").isalnum()):
        abort(400)
    if hasattr(clients, "page"):
        rows, more = clients.page(after, PAGE_SIZE)
    else:  # a provider without keyset paging: its list, bounded
        rows, more = clients.list()[:PAGE_SIZE], False
    return render_template("admin/oauth_list.html", clients=rows, loads=json.loads, form=ActionForm(),
                           next_after=rows[-1].id if more else None, paged=after is not None)


@bp.route("/oauth/new", methods=["GET", "POST"])
@bp.route("/oauth/<client_id>/edit", methods=["GET", "POST"])
@admin_gate
def oauth_edit(session, admin, client_id: str | None = None):
    clients = _oauth_clients()
    if clients is None:
        return render_template("admin/oauth_off.html")
    row = None
    if client_id is not None:
        row = next((c for c in clients.list() if c.id == client_id), None)
        if row is None:
            abort(404)
    form = ClientForm()
    if request.method == "GET":
        if row is not None:
            form.name.data, form.client_type.data = row.name, row.client_type
            form.redirect_uris.data = "\n".join(json.loads(row.redirect_uris))
            form.grant_types.data, form.scopes.data = row.grant_types.split(), row.scopes.split()
            form.token_format.data, form.access_token_ttl.data = row.token_format, row.access_token_ttl
            form.quota_per_minute.data = row.quota_per_minute
            form.backchannel_logout_uri.data = row.backchannel_logout_uri or ""
            form.backchannel_logout_session_required.data = bool(row.backchannel_logout_session_required)
        else:
            form.grant_types.data = ["authorization_code", "refresh_token"]
            form.scopes.data = ["openid", "profile", "email"]
            form.quota_per_minute.data = 600
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            from authsvc.oauth.clients import ClientError

            fields = {"name": form.name.data, "redirect_uris": _uris(form.redirect_uris.data),
                      "grant_types": form.grant_types.data, "scopes": form.scopes.data,
                      "token_format": form.token_format.data, "quota_per_minute": form.quota_per_minute.data,
                      "backchannel_logout_uri": (form.backchannel_logout_uri.data or "").strip() or None,
                      "backchannel_logout_session_required": bool(form.backchannel_logout_session_required.data)}
            if form.access_token_ttl.data:
                fields["access_token_ttl"] = form.access_token_ttl.data
            try:
                if row is None:
                    created, secret = clients.create(client_type=form.client_type.data, actor_id=admin.id, **fields)
                    _audit("admin:oauth:create", admin, details={"client_id": created.id})
                    return render_template("admin/oauth_secret.html", client=created, secret=secret, new=True)
                clients.update(row.id, actor_id=admin.id, **fields)
                _audit("admin:oauth:update", admin, details={"client_id": row.id, "fields": sorted(fields)})
                flash(_("Saved “%(name)s”.", name=fields["name"]), "success")
                return redirect(url_for("admin.oauth_clients"))
            except ClientError as exc:
                target = {"redirect_uri": form.redirect_uris, "grant_types": form.grant_types,
                          "scopes": form.scopes, "access_token_ttl": form.access_token_ttl,
                          "quota_per_minute": form.quota_per_minute, "token_format": form.token_format,
                          "client_type": form.client_type,
                          "backchannel_logout_uri": form.backchannel_logout_uri}.get(exc.field)
                if target is not None:
                    target.errors = list(target.errors) + [exc.shown()]
                else:
                    form.form_errors.append(exc.shown())
    return render_template("admin/oauth_form.html", form=form, client=row), status


def _client_or_404(clients, client_id: str):
    row = next((c for c in clients.list() if c.id == client_id), None) if clients is not None else None
    if row is None:
        abort(404)
    return row


@bp.post("/oauth/<client_id>/rotate")
@admin_gate
def oauth_rotate(session, admin, client_id: str):
    clients = _oauth_clients()
    row = _client_or_404(clients, client_id)
    from authsvc.oauth.clients import ClientError

    reason, _payload, response = cf.confirmed(admin, f"oauth:rotate:{client_id}", {}, lambda p: cf.Plan(
        _("Rotate the secret of %(name)s", name=row.name),
        _("A new secret is shown once; the current secret stops working at once, so the app fails until it is "
          "given the new one."), url_for("admin.oauth_clients"), targets=[(row.name, row.id)]))
    if response is not None:
        return response
    try:
        secret = clients.rotate_secret(client_id, actor_id=admin.id)
    except ClientError as exc:
        flash(exc.shown(), "warning")
        return redirect(url_for("admin.oauth_clients"))
    _audit("admin:oauth:rotate_secret", admin, details={"client_id": client_id, "reason": reason})
    return render_template("admin/oauth_secret.html", client=row, secret=secret, new=False)


@bp.post("/oauth/<client_id>/delete")
@admin_gate
def oauth_delete(session, admin, client_id: str):
    clients = _oauth_clients()
    row = _client_or_404(clients, client_id)
    from authsvc.oauth.clients import ClientError

    reason, _payload, response = cf.confirmed(admin, f"oauth:delete:{client_id}", {}, lambda p: cf.Plan(
        _("Delete %(name)s", name=row.name),
        _("The client, its tokens and the users' consents are deleted; the app can no longer sign anyone in."),
        url_for("admin.oauth_clients"), targets=[(row.name, row.id)]))
    if response is not None:
        return response
    try:
        clients.delete(client_id, actor_id=admin.id)
    except ClientError as exc:
        flash(exc.shown(), "warning")
        return redirect(url_for("admin.oauth_clients"))
    _audit("admin:oauth:delete", admin, details={"client_id": client_id, "reason": reason})
    flash(_("Client deleted; its tokens and consents are gone."), "success")
    return redirect(url_for("admin.oauth_clients"))


# --- audit log ---------------------------------------------------------------------------------------------------------
def _parse_time(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(raw.strip()[:19], fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _time_as_id(when: dt.datetime, op: str):
    """A date bound of the audit filter as an id bound (issue 20): one probe of ix_security_events_occurred_at finds
    the first event at or after ``when``; the page's query is then a range of the primary key it already walks
    (``ORDER BY id DESC``), not a filter on a second column over the whole log. Ids follow time: both are taken
    under the chain head's lock (authsvc.audit), so this is exact unless the wall clock stepped back."""
    first = services().audit.first_id_since(when)
    if op == "ge":
        return SecurityEvent.id >= first if first is not None else false()
    return SecurityEvent.id < first if first is not None else true()


def _plain(message: str, **variables) -> str:
    """gettext's signature without a translation: the English text, outside a request (a background job)."""
    return message % variables if variables else message


def _audit_filters(args=None) -> tuple[list, dict, list[str]]:
    """The audit page's filters from ``args`` (the query string by default; a background export's saved filters).
    The problems are in the viewer's language; a background job (no request) gets them in English."""
    _ = _gettext if has_request_context() else _plain
    names = {"actor": _("actor"), "subject": _("subject"), "since": _("since"), "until": _("until")}
    args, cond, problems = request.args if args is None else args, [], []
    f = {k: (args.get(k) or "").strip()[:64] for k in ("tag", "actor", "subject", "since", "until", "outcome")}
    if f["tag"]:
        # A tag prefix is resolved against the distinct tags (an index skip scan, see stats.audit_tags) into
        # ``tag IN (…)``: exact prefix semantics under any collation, and it uses ix_security_events_tag, which
        # LIKE 'admin:%' cannot under PostgreSQL's non-C collations (issue 20). A range (tag >= 'admin:' AND
        # tag < 'admin;') would too, but is wrong under collations that ignore punctuation (en_US).
        tags, complete = stats.audit_tags(_db())
        if complete:
            matching = [t for t in tags if t.startswith(f["tag"])]
            cond.append(SecurityEvent.tag.in_(matching) if matching else false())
        else:  # more distinct tags than the cap (never with the shipped code): the old, always-correct shape
            pattern = f["tag"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            cond.append(SecurityEvent.tag.like(pattern + "%", escape="\\"))
    for key, col in (("actor", SecurityEvent.actor_id), ("subject", SecurityEvent.subject_id)):
        if f[key]:
            if f[key].isascii() and f[key].isdigit():
                if parse_id(f[key]) is None:
                    problems.append(_("%(field)s: no user has id %(id)s", field=names[key],
                                      id=f[key][:24]))
                else:
                    cond.append(col == int(f[key]))
            elif "@" in f[key]:  # an e-mail address → that user's id
                uid = _db().session.execute(select(User.id).where(User.email == f[key].lower())).scalar()
                cond.append(col == (uid if uid is not None else -1))
            else:
                problems.append(_("%(field)s: enter a user id or an e-mail address", field=names[key]))
    for key, op in (("since", "ge"), ("until", "lt")):
        if f[key]:
            when = _parse_time(f[key])
            if when is None:
                problems.append(_("%(field)s: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)", field=names[key]))
            else:
                cond.append(_time_as_id(when, op))
    if f["outcome"] in ("success", "failure", "info"):
        cond.append(SecurityEvent.outcome == f["outcome"])
    return cond, f, problems


def _event_json(ev: SecurityEvent) -> dict:
    return {"id": ev.id, "at": ev.occurred_at.isoformat(), "tag": ev.tag, "outcome": ev.outcome,
            "actor_id": ev.actor_id, "subject_id": ev.subject_id, "ip": ev.ip, "user_agent": ev.user_agent,
            "reason": ev.reason, "details": json.loads(ev.details) if ev.details else None,
            "prev_hash": ev.prev_hash, "hash": ev.hash}


@bp.get("/audit")
@admin_gate
def audit(session, admin):
    cond, f, problems = _audit_filters()
    raw_before = request.args.get("before")
    before = parse_id(raw_before) if raw_before else None
    if raw_before and before is None:
        abort(400, _("before: an event id"))
    q = select(SecurityEvent).where(*cond).order_by(SecurityEvent.id.desc()).limit(101)
    if before:
        q = q.where(SecurityEvent.id < before)
    rows = list(_db().session.execute(q).scalars())
    more = len(rows) > 100
    rows = rows[:100]
    tags = stats.audit_tags(_db())[0]  # an index skip scan, not SELECT DISTINCT over the whole log
    details = {ev.id: json.loads(ev.details) if ev.details else None for ev in rows}
    emails = _emails([ev.actor_id for ev in rows] + [ev.subject_id for ev in rows])
    return render_template("admin/audit.html", events=rows, f=f, problems=problems, more=more, details=details,
                           emails=emails,
                           next_before=rows[-1].id if rows and more else None, tags=tags,
                           # incremental, as on the dashboard; the button below runs the full pass on demand
                           chain=services().audit.verify_incremental(max_rows=CHAIN_STEP), form=ActionForm(),
                           export_args={k: v for k, v in f.items() if v})


@bp.post("/audit/verify")
@admin_gate
def audit_verify(session, admin):
    """The full pass over the whole chain (what `authsvc audit verify` does), on an operator's request."""
    if not ActionForm().validate_on_submit():
        flash(_("The form expired. Reload the page and try again."), "warning")
        return redirect(url_for("admin.audit"))
    report = services().audit.verify()
    _audit("admin:audit:verify", admin, outcome="success" if report.ok else "failure",
           reason=None if report.ok else f"event {report.first_bad_id}: {report.problem}"[:255],
           details={"checked": report.checked})
    if report.ok:
        flash(_("Full check: all %(count)s events verified, none edited or deleted.", count=report.checked),
              "success")
    else:
        flash(_("Full check: the chain is BROKEN at event %(id)s: %(problem)s.", id=report.first_bad_id,
                problem=report.problem), "error")
    return redirect(url_for("admin.audit"))


@bp.get("/audit/export.jsonl")
@admin_gate
def audit_export(session, admin):
    """JSON Lines, streamed in keyset pages of 1,000 rows (flat memory however long the log is), ending with one
    trailer line ``{"complete": true, "rows": N, "last_id": …}`` (issue 20): a transfer cut off anywhere — the
    worker's timeout after the 200 header, a dropped connection — lacks it, so a partial file never looks complete.
    The export covers the rows up to the chain head as it was when the export began (this export's own audit row
    included), so N is exact even while new events are appended. A failure mid-way writes no trailer."""
    cond, f, problems = _audit_filters()
    if problems:
        abort(400, "; ".join(problems))
    if request.method == "HEAD":  # no body leaves: nothing to record (a link checker, `curl -I`)
        return Response(status=200, mimetype="application/x-ndjson")
    _audit("admin:audit:export", admin, details={k: v for k, v in f.items() if v} or None)
    lines = audit_export_lines(*audit_export_query(f))

    stamp = services().clock.now().strftime("%Y%m%dT%H%M")
    return Response(stream_with_context(lines), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.jsonl"'})


EXPORT_PAGE = 1000


def audit_export_query(filters: dict):
    """The export's query and its upper bound: the rows matching ``filters`` up to the chain head as it is now.
    Called after the export's own audit row is written (the tag filter resolves to tags, that one included)."""
    cond, _, problems = _audit_filters(filters)
    if problems:
        raise ValueError("; ".join(problems))
    upto = _db().session.execute(select(func.max(SecurityEvent.id))).scalar() or 0
    t = SecurityEvent.__table__
    return select(t).where(*cond, t.c.id <= upto).order_by(t.c.id), upto


def audit_export_lines(q, upto: int, stats: dict | None = None):
    """JSON Lines of ``q`` in keyset pages, then the trailer: the one producer behind the streamed export and the
    background job (authsvc.jobs). ``stats["rows"]`` gets the row count."""
    db, t = _db(), SecurityEvent.__table__
    stats = {} if stats is None else stats
    last, rows = 0, 0
    while True:  # keyset pages: constant memory however long the log is
        page = db.session.execute(q.where(t.c.id > last).limit(EXPORT_PAGE)).all()
        for ev in page:
            yield json.dumps(_event_json(ev), ensure_ascii=False) + "\n"
        rows += len(page)
        stats["rows"] = rows
        if len(page) < EXPORT_PAGE:
            break
        last = page[-1].id
        db.session.rollback()  # end the read transaction between pages: no snapshot held for the whole export
    yield json.dumps({"complete": True, "rows": rows, "last_id": upto}) + "\n"


# --- background jobs (issue 20): the audit export and the full chain check ----------------------------------------------
@bp.post("/audit/export-job")
@admin_gate
def audit_export_job(session, admin):
    """The audit export as a background job (authsvc.jobs): the filters come from the query string, as for the
    streamed export; the file is downloaded from /admin/jobs once it is complete."""
    from authsvc import jobs

    if not ActionForm().validate_on_submit():
        abort(400)
    cond, f, problems = _audit_filters()
    if problems:
        abort(400, "; ".join(problems))
    filters = {k: v for k, v in f.items() if v}
    try:
        job = jobs.request_job(admin.id, "audit_export", filters)
    except jobs.TooMany:
        abort(429)
    if (job.params or {}) != filters:  # another export of this operator still runs: this request started nothing
        _audit("admin:audit:export", admin, outcome="failure", reason="another_export_running",
               details=dict(filters, job=job.token[:8]))
        return redirect(url_for("admin.jobs_page"))
    _audit("admin:audit:export", admin, details=dict(filters, job=job.token[:8]))
    return redirect(url_for("admin.jobs_page"))


@bp.post("/audit/verify-job")
@admin_gate
def audit_verify_job(session, admin):
    """The full chain check as a background job, with progress on /admin/jobs (the CLI keeps the direct pass)."""
    from authsvc import jobs

    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        jobs.request_job(admin.id, "audit_verify")
    except jobs.TooMany:
        abort(429)
    return redirect(url_for("admin.jobs_page"))


@bp.get("/jobs")
@admin_gate
def jobs_page(session, admin):
    from authsvc import jobs

    return render_template("admin/jobs.html", export=jobs.latest(admin.id, "audit_export"),
                           verify=jobs.latest(admin.id, "audit_verify"), form=ActionForm())


@bp.get("/jobs/<token>/download")
@admin_gate
def job_download(session, admin, token):
    """One-time download of the operator's own finished audit export; any other token, an expired or a used link:
    404."""
    from authsvc import jobs

    if request.method == "HEAD":  # a link checker or preview must not use up the one-time link
        return jobs.head_response(jobs.peek_download(admin.id, token, "audit_export"))
    got = jobs.claim_download(admin.id, token, "audit_export")
    if got is None:
        abort(404)
    return jobs.send(got, "audit-export.jsonl.gz")


# --- outbox ------------------------------------------------------------------------------------------------------------
@bp.get("/outbox")
@admin_gate
def outbox(session, admin):
    box = services().outbox
    if box is None:
        abort(404)  # SMTP is configured: mail left the building, nothing is kept here
    # Keyset on (date, name), newest first: ?before=<message name>. The outbox is the no-SMTP development mailer;
    # it reads its folder, so the bound is on what one page shows.
    before = request.args.get("before") or None
    if before is not None and not OUTBOX_NAME.fullmatch(before):
        abort(400)
    messages = box.messages()
    if before is not None:
        anchor = next(((m.date, m.name) for m in messages if m.name == before), None)
        messages = [m for m in messages if anchor is None or (m.date, m.name) < anchor]
    shown = messages[:PAGE_SIZE]
    return render_template("admin/outbox.html", messages=shown, paged=before is not None,
                           next_before=shown[-1].name if len(messages) > PAGE_SIZE else None)


OUTBOX_NAME = re.compile(r"[0-9.]{1,32}-[0-9a-f]{8}\.eml")


__all__ = ["bp"]
