"""Confirmation with a reason for every destructive operator action (issue 18).

A destructive view is POSTed twice. The first POST (CSRF-checked, nothing changes) renders ``admin/confirm_action.html``:
what will happen, to whom (e-mail and id), and a required reason. It also issues a one-time **confirmation ticket**:
a random id stored in Redis (``admin:confirm:{a<admin id>}:<ticket>``, ``TICKET_SECONDS`` to live) holding the
action and its targets as the first POST resolved them. The second POST carries the ticket and the reason; the ticket
is taken with GETDEL, so it works once, only for the administrator it was issued to, and only for the action it was
issued for — the targets acted on are the stored ones, never ids re-sent by the browser. Replayed, expired or
issued for another action → 409.

The reason is stripped, 3 to ``REASON_MAX`` characters, with no control or format characters (Unicode Cc/Cf/Cs/Co/Cn:
no bidi overrides or zero-width tricks in the audit log); a bad reason re-renders the page with the same ticket (400).
It is written to the audit event's ``details["reason"]``. Redis down → the error handlers answer 503.
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from dataclasses import dataclass, field

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import Length

from authsvc.services import services
from authsvc.web.errors import error_response

TICKET_SECONDS = 600
REASON_MIN, REASON_MAX = 3, 500
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn")


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason (written to the audit log)"), validators=[Length(max=4 * REASON_MAX)],
                           render_kw={"maxlength": REASON_MAX, "required": True, "rows": 3})
    ticket = HiddenField(validators=[Length(max=64)])
    target = HiddenField(validators=[Length(max=128)])


def clean_reason(raw: str | None) -> tuple[str | None, str | None]:
    """(reason, None) or (None, what is wrong with it)."""
    text = (raw or "").strip()
    if len(text) < REASON_MIN:
        return None, _("Give a reason of at least %(n)s characters.", n=REASON_MIN)
    if len(text) > REASON_MAX:
        return None, _("Keep the reason under %(n)s characters.", n=REASON_MAX + 1)
    if any(unicodedata.category(ch) in _BAD_CATEGORIES and ch not in "\n\t" for ch in text):
        return None, _("The reason contains invisible or control characters.")
    return " ".join(text.split()), None


@dataclass
class Plan:
    """What a confirmation page shows: a title, the consequence in words, and the accounts or things affected."""

    title: str
    consequence: str
    back: str  # where "Cancel" leads
    targets: list[tuple[str, str]] = field(default_factory=list)  # (label, id) rows, e.g. (e-mail, "#42")
    skipped: list[tuple[str, str]] = field(default_factory=list)  # shown as "left out", with why in the label
    danger: bool = True
    post_to: str | None = None  # the confirmation's URL, when it is not this request's path


def is_confirmation() -> bool:
    """The second POST (it carries a ticket): the view takes its targets from the ticket, not from the form."""
    return bool(request.form.get("ticket"))


def _key(admin_id: int, ticket: str) -> str:
    return f"admin:confirm:{{a{admin_id}}}:{ticket}"


def issue(admin, action: str, payload: dict) -> str:
    ticket = secrets.token_urlsafe(24)
    services().sessions.redis.set(_key(admin.id, ticket), json.dumps({"action": action, "payload": payload}),
                                  ex=TICKET_SECONDS)
    return ticket


def _peek(admin, ticket: str, action: str) -> dict | None:
    raw = services().sessions.redis.get(_key(admin.id, ticket))
    if not raw:
        return None
    stored = json.loads(raw)
    return stored["payload"] if stored.get("action") == action else None


def _take(admin, ticket: str, action: str) -> dict | None:
    raw = services().sessions.redis.getdel(_key(admin.id, ticket))
    if not raw:
        return None
    stored = json.loads(raw)
    return stored["payload"] if stored.get("action") == action else None


def _render(plan: Plan, form: ReasonForm, ticket: str, status: int):
    form.ticket.data = ticket
    return render_template("admin/confirm_action.html", plan=plan, form=form), status


def confirmed(admin, action: str, payload: dict, plan_for):
    """The two-step flow for one destructive ``action`` (a string naming it and its object, e.g. ``user:disable:42``).

    ``payload``: what the first POST resolved (ids, a target); ``plan_for(payload)`` builds the page. Returns
    ``(reason, payload, None)`` once confirmed — act on *that* payload — or ``(None, None, response)`` to return."""
    form = ReasonForm()
    if not form.validate_on_submit() and (not form.is_submitted() or "csrf_token" in form.errors
                                          or "ticket" in form.errors or "target" in form.errors):
        return None, None, error_response(400, "csrf_failed", _("Your form expired or was sent from another site. "
                                                                "Reload the page and try again."))
    ticket = (form.ticket.data or "").strip()
    if not ticket:  # first step: show what will happen; nothing changes yet
        return None, None, _render(plan_for(payload), ReasonForm(formdata=None), issue(admin, action, payload), 200)
    used = error_response(409, "confirmation_used", _("This confirmation was already used or has expired. "
                                                      "Start again from the page you came from."))
    if not ticket.replace("-", "").replace("_", "").isalnum():
        return None, None, used
    reason, problem = clean_reason(form.reason.data)
    if problem:
        stored = _peek(admin, ticket, action)
        if stored is None:
            return None, None, used
        form.reason.errors = [problem]
        return None, None, _render(plan_for(stored), form, ticket, 400)
    stored = _take(admin, ticket, action)
    if stored is None:
        return None, None, used
    return reason, stored, None
