"""E-mail in the recipient's language (issue 18).

Which language a message is written in, first match wins:
1. the recipient account's saved language (security center → Language) — never the language of whoever caused the
   mail (an attacker's browser, an operator, a background worker);
2. mail to an address with no account yet (a duplicate registration, a new address being confirmed): the language of
   the request that caused it (``lang`` cookie → Accept-Language), when there is one;
3. English.

``with mail_language(user):`` wraps the building of subject and body *and* the ``mailer.send`` call, so the HTML
part (``notify/htmlmail.py``) is rendered in the same language with a matching ``<html lang>``. Outside a request
(outbox worker, CLI, SSF receiver) an app context is enough (Flask-Babel keeps the forced locale on ``g``); without an
app at all it does nothing (English, never a crash).

User-supplied values (a passkey or client name, a device string) are passed to ``_()`` as keyword arguments: they are
substituted once by ``%`` formatting and never read as a format string, and the HTML part escapes them.
"""
from __future__ import annotations

import contextlib
import contextvars

from flask import has_app_context, has_request_context, request

from authsvc.i18n import COOKIE, LANGUAGES, normalize

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("authsvc_mail_locale", default="en")  # for htmlmail


def recipient_locale(user=None, *, from_request: bool = False) -> str:
    """The language to write to ``user`` in; when there is no user (mail to a bare address) or they never chose one,
    and ``from_request``: the language of the current request's visitor (their cookie or browser), never a signed-in
    account's setting."""
    found = normalize(getattr(user, "locale", None)) if user is not None else None
    if found:
        return found
    if from_request and has_request_context():
        try:
            found = normalize(request.cookies.get(COOKIE))
            if not found:
                for value, _q in request.accept_languages:
                    found = normalize(value)
                    if found:
                        break
        except Exception:  # noqa: BLE001 - a malformed header never stops a mail; English then
            found = None
    return found or "en"


def current_mail_locale() -> str:
    return _CURRENT.get()


@contextlib.contextmanager
def mail_language(user=None, *, from_request: bool = False, locale: str | None = None):
    """Build and send a mail inside this block: ``_()`` answers in the recipient's language."""
    from flask_babel import force_locale

    code = normalize(locale) if locale else recipient_locale(user, from_request=from_request)
    code = code if code in LANGUAGES else "en"
    mark = _CURRENT.set(code)
    try:
        if not has_app_context():  # no app at all: nothing to translate with; English text, never a crash
            yield code
            return
        with force_locale(code):  # Flask-Babel keeps it on `g`: an app context (worker, CLI) is enough
            yield code
    finally:
        _CURRENT.reset(mark)
