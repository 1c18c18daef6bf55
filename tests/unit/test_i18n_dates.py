"""Times in the reader's language and zone (authsvc.i18n.format_for): e-mails are written for the recipient, not for
whoever caused them; a stored zone that is unknown or hostile falls back to UTC, never an error."""

import datetime as dt
from types import SimpleNamespace as User

import pytest

from authsvc.i18n import format_for, normalize_timezone

T = dt.datetime(2026, 1, 15, 13, 5)  # naive = UTC, as the database stores it


def test_time_in_the_users_language_and_zone_with_the_zone_named():
    assert format_for(T, User(locale="de", timezone="Europe/Berlin")) == "15.01.2026, 14:05:00 CET"
    assert format_for(T, User(locale="nb", timezone="America/Sao_Paulo")).startswith("15. jan. 2026, 10:05:00")


def test_aware_value_is_converted_not_relabelled():
    aware = T.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=5)))
    assert format_for(aware, User(locale="en", timezone="UTC")) == "Jan 15, 2026, 1:05:00\u202fPM UTC"


@pytest.mark.parametrize("zone", ["../../etc/passwd", "Nope/Nowhere", "", "\x00", "a" * 100, "Europe/Oslo\n", None, 5])
def test_unknown_or_hostile_zone_falls_back_to_utc(zone):
    assert normalize_timezone(zone if isinstance(zone, str) else None) is None
    assert format_for(T, User(locale="xx", timezone=zone if isinstance(zone, str) else None)).endswith("1:05:00\u202fPM UTC")


def test_no_user_and_no_value():
    assert format_for(T, None, date_only=True) == "Jan 15, 2026"
    assert format_for(None, None) == ""


@pytest.mark.parametrize("locale", ["de\r\nBcc: x@evil.test", "../de", "d" * 40, "\x00", "xx", "", None, 5, b"de", ["de"]])
def test_garbage_stored_locale_writes_english_never_an_error(locale):
    """A user's stored language that is garbage (or not even a string) → English, never an exception (e-mails are
    written outside a request, where an exception would lose the notice)."""
    assert format_for(T, User(locale=locale, timezone="UTC")) == "Jan 15, 2026, 1:05:00\u202fPM UTC"
