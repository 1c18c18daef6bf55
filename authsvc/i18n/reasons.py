"""Risk reasons of a sign-in receipt in the viewer's language, at display time.

The engine stores each reason as ``{"code", "text"}`` with a plain English text (language-neutral data for the
audit trail, the admin page and the export; older rows have nothing else). The owner's activity page shows it in the
viewer's language: the ``code`` picks a translated sentence and the details (countries, networks, counts, the hour)
are read back from the stored text by the pattern the engine writes (authsvc/risk/model.py, signals.py, config.py).
Countries become their names in the viewer's language, an hour becomes the viewer's local time.

Fallbacks, never an error: a known code whose text no longer matches its pattern (the engine's wording changed) gets
the code's sentence without details (in English: the stored text); an unknown code keeps its stored text.
"""
from __future__ import annotations

import datetime as dt
import re

from flask_babel import format_time, get_locale
from flask_babel import gettext as _

from authsvc.i18n import N_

# Device types as the engine writes them (risk/model.py _DEVICE_WORDS) → the same words, marked for translation.
_DEVICES = {"a phone": N_("a phone"), "a computer": N_("a computer"), "a tablet": N_("a tablet"),
            "an automated program or headless browser": N_("an automated program or headless browser"),
            "a device we could not recognise": N_("a device we could not recognise")}

_NUM = r"(?P<n>[0-9]+(?:\.[0-9]+)?)"
_PATTERNS: dict[str, tuple[re.Pattern | None, str, str]] = {
    # code: (pattern of the stored English text, sentence with details, sentence without)
    "no_history": (None, N_("no earlier sign-ins for this account"), ""),
    "breached_password": (None, N_("the password appears in data breaches"), ""),
    "unusual_context": (None, N_("this sign-in looks different from your usual ones"), ""),
    "new_country": (re.compile(r"new country: (?P<usual>[^→]+)→(?P<country>.+)"),
                    N_("new country: %(country)s (usually %(usual)s)"), N_("a country you have not signed in from")),
    "new_network": (re.compile(r"new network: (?P<network>.+?) \(usually (?P<usual>.+)\)"),
                    N_("new network: %(network)s (usually %(usual)s)"), N_("a network you have not signed in from")),
    "new_ip_range": (re.compile(r"new IP range: (?P<prefix>\S+)"), N_("new IP range: %(prefix)s"),
                     N_("an IP range you have not signed in from")),
    "new_ip": (re.compile(r"new IP address: (?P<ip>\S+)"), N_("new IP address: %(ip)s"),
               N_("an IP address you have not signed in from")),
    "new_device": (re.compile(r"device never seen \((?P<browser>.+) on (?P<os>.+)\)"),
                   N_("a device we have not seen before (%(device)s)"), N_("a device we have not seen before")),
    "new_device_type": (re.compile(r"new device type: (?P<now>.+?)(?: \(you usually sign in from (?P<usual>.+)\))?"),
                        N_("new kind of device: %(now)s"), N_("a kind of device you do not usually sign in from")),
    "unusual_hour": (re.compile(r"unusual time of day: (?P<hour>[0-9]{2}):00 UTC.*"),
                     N_("unusual time of day: %(time)s, an hour you rarely sign in at"),
                     N_("an hour you rarely sign in at")),
    "impossible_travel": (re.compile(r"impossible travel: (?P<a>[^→]+)→(?P<b>[^,]+?)(?:, (?P<km>[0-9]+) km)? in "
                                     r"(?P<amount>[0-9.]+) (?P<unit>min|h)"),
                          N_("impossible travel: %(a)s → %(b)s in %(time)s"), N_("impossible travel")),
    "account_failures": (re.compile(_NUM + r" recent failed logins on this account"),
                         N_("%(n)s recent failed sign-ins on this account"), N_("recent failed sign-ins on this account")),
    "ip_failures": (re.compile(_NUM + r" recent failed logins from this IP"),
                    N_("%(n)s recent failed sign-ins from this IP address"),
                    N_("recent failed sign-ins from this IP address")),
    "prefix_failures": (re.compile(_NUM + r" recent failed logins from this network"),
                        N_("%(n)s recent failed sign-ins from this network"),
                        N_("recent failed sign-ins from this network")),
    "asn_failures": (re.compile(_NUM + r" recent failed logins from this provider"),
                     N_("%(n)s recent failed sign-ins from this internet provider"),
                     N_("recent failed sign-ins from this internet provider")),
    "ip_many_accounts": (re.compile(_NUM + r" accounts tried from this IP"),
                         N_("%(n)s accounts tried from this IP address"),
                         N_("many accounts tried from this IP address")),
    "ip_many_accounts_day": (re.compile(_NUM + r" accounts failed from this IP today"),
                             N_("%(n)s accounts failed from this IP address today"),
                             N_("many accounts failed from this IP address today")),
    "ip_many_accounts_week": (re.compile(_NUM + r" accounts failed from this IP this week"),
                              N_("%(n)s accounts failed from this IP address this week"),
                              N_("many accounts failed from this IP address this week")),
    "ip_unknown_users": (re.compile(r"(?P<n>[0-9]+)% of recent attempts from this IP were for unknown accounts"),
                         N_("%(n)s%% of recent attempts from this IP address were for accounts that do not exist"),
                         N_("many recent attempts from this IP address were for accounts that do not exist")),
    "password_spray": (re.compile(r"this password failed on " + _NUM + r" other accounts"),
                       N_("this password failed on %(n)s other accounts"),
                       N_("this password failed on other accounts")),
}


def country_name(code: str | None) -> str:
    """``DE`` → "Germany" / "Deutschland" / … in the viewer's language; anything else as it is."""
    if not code:
        return ""
    code = code.strip()
    locale = get_locale()
    return (locale.territories.get(code.upper()) if locale is not None and len(code) == 2 else None) or code


def reason_text(reason: dict, at: dt.datetime | None = None) -> str:
    """One stored reason (``{"code", "text"}``) in the viewer's language; ``at`` = when the sign-in happened (for the
    local hour)."""
    code, text = str(reason.get("code") or ""), str(reason.get("text") or "")
    entry = _PATTERNS.get(code)
    if entry is None:
        return text or code
    pattern, detailed, plain = entry
    if pattern is None:
        return _(detailed)
    m = pattern.fullmatch(text.strip())
    details = _details(code, m.groupdict(), at) if m else None
    if details is not None:
        return _(detailed, **details)
    # A wording this version does not know: English readers get it as stored (nothing lost), others the code's
    # sentence without details.
    return text if text and str(get_locale() or "en") == "en" else _(plain)


def _details(code: str, found: dict, at: dt.datetime | None) -> dict | None:
    if code == "new_country":
        return {"country": country_name(found["country"]), "usual": country_name(found["usual"])}
    if code == "impossible_travel":
        amount = float(found["amount"])
        minutes = amount if found["unit"] == "min" else amount * 60
        span = (_("%(n)s min", n=str(round(minutes))) if minutes < 120
                else _("%(n)s h", n=_decimal(minutes / 60)))
        return {"a": country_name(found["a"]), "b": country_name(found["b"]), "time": span}
    if code == "new_device_type":
        now = _DEVICES.get(found["now"])
        return None if now is None else {"now": _(now)}
    if code == "new_device":
        from authsvc.web.center import ua_words

        return {"device": ua_words(found["browser"], found["os"])}
    if code == "unusual_hour":
        hour = int(found["hour"])
        if hour > 23:
            return None
        day = (at or dt.datetime.now(dt.UTC)).replace(tzinfo=at.tzinfo if at and at.tzinfo else dt.UTC)
        return {"time": format_time(day.replace(hour=hour, minute=0, second=0, microsecond=0), "short")}
    if "n" in found:
        return {"n": _decimal(float(found["n"]))}
    return found


def _decimal(value: float) -> str:
    from babel.numbers import format_decimal

    return format_decimal(round(value, 1), format="#,##0.#", locale=get_locale() or "en")
