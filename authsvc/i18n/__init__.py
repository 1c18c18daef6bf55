"""Languages: Flask-Babel, catalogs in ``authsvc/translations/<locale>/LC_MESSAGES/messages.po``.

The ``.po`` files are the only form kept in the repository; they are compiled to ``.mo`` with Babel's own
compiler into the instance folder when the app starts (a few milliseconds), so there is no binary to forget to
rebuild and the wheel carries only text.

Which language a page speaks, first match wins:
1. the signed-in user's setting (security center → Language),
2. the ``lang`` cookie set by the language links at the foot of every page (for visitors who are not signed in),
3. the browser's ``Accept-Language`` (``de-CH`` → de, ``nb-NO``/``no`` → nb, ``pt``/``pt-BR`` → pt_BR),
4. English.
Anything unknown or malformed falls through to the next rule; it never fails a request.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import dates as babel_dates

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, request
from flask_babel import Babel, format_date, format_datetime, get_locale

# Locale code → name of the language in that language (shown in the pickers, never translated).
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "nb": "Norsk bokmål",
    "es": "Español",
    "pt_BR": "Português (Brasil)",
}
COOKIE = "lang"
_ALIASES = {"no": "nb", "nn": "nb", "pt": "pt_BR"}  # languages a browser may send that we answer with our nearest



def N_(message: str) -> str:
    """Marks a string for the catalog where it is defined (a table, a stored default); it is translated with ``_()``
    where it is shown, in the viewer's language."""
    return message


TRANSLATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "translations")


def normalize(value: str | None) -> str | None:
    """A locale code from a setting, cookie or header (BCP 47 ``pt-BR`` or ``pt_BR``) → one of LANGUAGES, or None.
    Parsed here by a strict pattern rather than by Babel, whose parser raises on unknown languages."""
    if not isinstance(value, str) or not value or len(value) > 35:  # a stored setting may be anything
        return None
    parts = value.strip().replace("-", "_").split("_")
    if not _LANG.fullmatch(parts[0]) or not all(_SUBTAG.fullmatch(p) for p in parts[1:]):
        return None
    language = parts[0].lower()
    territory = next((p.upper() for p in parts[1:] if _TERRITORY.fullmatch(p)), None)
    if territory and f"{language}_{territory}" in LANGUAGES:
        return f"{language}_{territory}"
    if language in LANGUAGES:
        return language
    return _ALIASES.get(language)


_LANG = re.compile(r"[A-Za-z]{2,3}")
_SUBTAG = re.compile(r"[A-Za-z0-9]{1,8}")
_TERRITORY = re.compile(r"[A-Za-z]{2}|[0-9]{3}")


def _from_accept_language() -> str | None:
    for value, _quality in request.accept_languages:  # werkzeug parses and sorts by q; garbage is skipped
        found = normalize(value)
        if found:
            return found
    return None


def select_locale() -> str:
    user = g.get("authsvc_user")
    return (normalize(getattr(user, "locale", None)) or normalize(request.cookies.get(COOKIE))
            or _from_accept_language() or "en")


def normalize_timezone(value: str | None) -> str | None:
    """An IANA zone name (``Europe/Oslo``) this machine knows, or None. Never raises.

    Only names both zone libraries know: ``ZoneInfo`` opens any file of the zoneinfo folder (``posixrules``,
    ``localtime``, ``Factory``, the ``posix/`` and ``right/`` copies), but Flask-Babel formats page times with pytz,
    which does not know those names — a stored one made every signed-in page of the account answer 500 (attack2)."""
    if not value or len(value) > 64 or not _ZONE.fullmatch(value) or value not in _known_zones():
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return value


_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


@functools.lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    """IANA zone names known to both ``zoneinfo`` and pytz (Flask-Babel's), without the legacy file copies."""
    import pytz

    return frozenset(z for z in available_timezones() & pytz.all_timezones_set
                     if not z.startswith(("posix/", "right/")) and z not in ("posixrules", "localtime", "Factory"))


@functools.lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """The IANA zones this machine knows, for the time zone field's suggestions."""
    return tuple(sorted(z for z in _known_zones() if normalize_timezone(z)))


def select_timezone() -> str | None:
    user = g.get("authsvc_user")
    return normalize_timezone(getattr(user, "timezone", None))  # None → UTC (Flask-Babel's default)


def format_for(value, user=None, fmt: str = "medium", *, date_only: bool = False) -> str:
    """``value`` (a naive-UTC or aware datetime) in ``user``'s language and time zone, outside a request too — an
    e-mail to a user is written in *their* language and zone, not in those of whoever caused it. No user: English,
    UTC. The zone's name is added to times (``14:05 CET``) so a reader never has to guess."""
    if value is None:
        return ""
    locale = normalize(getattr(user, "locale", None)) or "en"
    zone = ZoneInfo(normalize_timezone(getattr(user, "timezone", None)) or "UTC")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    if date_only:
        return babel_dates.format_date(value.astimezone(zone), fmt, locale=locale)
    return babel_dates.format_datetime(value, fmt, tzinfo=zone, locale=locale) + " " + value.astimezone(zone).tzname()


# Compiled catalogues of this process, by (path, mtime, size) of the .po: compiling the four takes ~0.2 s, and a
# process that builds several apps (the test suite builds one per test) compiles each catalogue once.
_COMPILED: dict[tuple[str, int, int], bytes] = {}


def _compiled(po: str, locale: str) -> bytes:
    st = os.stat(po)
    key = (po, st.st_mtime_ns, st.st_size)
    data = _COMPILED.get(key)
    if data is None:
        with open(po, "rb") as f:
            catalog = read_po(f, locale=locale)
        buf = io.BytesIO()
        write_mo(buf, catalog, use_fuzzy=False)
        data = _COMPILED[key] = buf.getvalue()
    return data


def compile_catalogs(target: str) -> str:
    """Compile every ``messages.po`` into ``target`` (same layout); return ``target``."""
    for locale in LANGUAGES:
        po = os.path.join(TRANSLATIONS, locale, "LC_MESSAGES", "messages.po")
        if not os.path.isfile(po):
            continue
        out_dir = os.path.join(target, locale, "LC_MESSAGES")
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(out_dir, f"messages.mo.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(_compiled(po, locale))
        os.replace(tmp, os.path.join(out_dir, "messages.mo"))  # atomic: other workers never read half a file
    return target


def init_app(app: Flask) -> None:
    compiled = compile_catalogs(os.path.join(app.instance_path, "translations"))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = compiled
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks: whitespace folded, as the catalog has it

    @app.context_processor
    def _languages():
        return {"languages": LANGUAGES, "current_locale": str(get_locale() or "en")}

    # Pages: the viewer's language and zone (Flask-Babel's selectors above). `<time datetime=…>` keeps the ISO form.
    app.jinja_env.filters["datetime"] = lambda value, fmt="medium": format_datetime(value, fmt) if value else ""
    app.jinja_env.filters["date"] = lambda value, fmt="medium": format_date(value, fmt) if value else ""

    @app.after_request
    def _vary(resp):
        if resp.mimetype == "text/html":
            resp.vary.add("Accept-Language")
            resp.vary.add("Cookie")
        return resp


def register_routes(app: Flask) -> None:
    from flask import Blueprint, abort, redirect

    from authsvc.web.auth import safe_next

    bp = Blueprint("i18n", __name__)

    @bp.get("/language/<code>")
    def choose(code: str):
        """The language links at the foot of every page: remember the choice in a cookie, go back."""
        locale = normalize(code)
        if locale is None:
            abort(404)
        resp = redirect(safe_next(request.args.get("next")))
        _remember_for_account(locale)
        resp.set_cookie(COOKIE, locale, max_age=365 * 86400, path="/", secure=True, httponly=True, samesite="Lax")
        return resp

    app.register_blueprint(bp)


def _remember_for_account(locale: str) -> None:
    """Signed in: the choice follows the account to every device and into its e-mails. Only the display language
    changes, so a plain link (a GET) may do it."""
    from authsvc.extensions import db
    from authsvc.web.auth import cookie_session

    try:
        _session, user = cookie_session()
        if user is not None and user.locale != locale:
            user.locale = locale
            db.session.commit()
    except Exception:  # noqa: BLE001 - a store that is away must not stop a language change (the cookie still works)
        db.session.rollback()
