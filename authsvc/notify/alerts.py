"""Security notices to the account owner: a sign-in from somewhere new, with a one-click "this wasn't me".

Each notice is written in the owner's language and time zone (authsvc.i18n.mail.mail_language: the account's
setting, never the language of whoever caused it); user-supplied values (an app's name, a browser string) are
``_()`` keyword arguments, substituted once and never read as a format string."""

from __future__ import annotations

import re

from flask_babel import gettext as _

from authsvc.i18n import N_
from authsvc.i18n.mail import mail_language

# "What happened" of a session or app ended by drift (authsvc/risk/drift.py DriftReason): the engine's English text
# is read back by its pattern and written again in the owner's language (like authsvc/i18n/reasons.py does for the
# activity page); a text that no longer matches its pattern is shown as the engine wrote it.
_DRIFT = {
    "browser_changed": (re.compile(r"the session was signed in with (?P<was>.+) and then used from (?P<now>.+)"),
                        N_("the session was signed in with %(was)s and then used from %(now)s")),
    "two_networks": (None, N_("the session was used from two networks at the same time")),
    "new_network_soon": (re.compile(r"the session moved to another provider's network (?P<minutes>[0-9]+) min "
                                    r"after sign-in"),
                         N_("the session moved to another provider's network %(minutes)s min after sign-in")),
    "new_country": (re.compile(r"the session was signed in from (?P<was>\S+) and then used from (?P<now>\S+)"),
                    N_("the session was signed in from %(was)s and then used from %(now)s")),
}


def _what_text(what, locale: str) -> str | None:
    """``what`` as the owner reads it: a list of drift reasons (each translated), or a string — an N_-marked
    sentence is translated, anything else is kept as given (never read as a format string)."""
    if what is None or isinstance(what, str):
        return _(what) if what else what
    from babel import Locale

    out = []
    for r in what:
        code, text = getattr(r, "code", ""), getattr(r, "text", str(r))
        pattern, sentence = _DRIFT.get(code, (None, None))
        if sentence is None:
            out.append(text)
        elif pattern is None:
            out.append(_(sentence))
        elif (m := pattern.fullmatch(text.strip())) is not None:
            found = m.groupdict()
            if code == "new_country":
                names = Locale.parse(locale).territories
                found = {k: names.get(v, v) for k, v in found.items()}
            out.append(_(sentence, **found))
        else:
            out.append(text)
    return "; ".join(out)


class LoginAlerts:
    def __init__(self, *, mailer, tokens, settings, geo=None, clock=None):
        self.mailer, self.tokens, self.settings, self.geo, self.clock = mailer, tokens, settings, geo, clock

    def _facts(self, user, ctx, what: str | None = None) -> str:
        """When, where and on what device, as every notice states it (the HTML part shows these as a table).
        Called inside mail_language(user): labels, the date and the country name come out in the owner's language,
        the time in the owner's zone."""
        import datetime as dt

        from authsvc.i18n import format_for, normalize
        from authsvc.web.center import describe_ua

        now = self.clock.now() if self.clock is not None else dt.datetime.now(dt.timezone.utc)
        place = None
        if self.geo is not None and ctx.ip:
            try:
                code = self.geo.lookup(ctx.ip).country
            except Exception:  # noqa: BLE001 - a notice is never lost for want of a place name
                code = None
            if code:
                from babel import Locale

                place = Locale.parse(normalize(getattr(user, "locale", None)) or "en").territories.get(code, code)
        device = describe_ua(ctx.user_agent)["text"] if ctx.user_agent else _("unknown browser")
        if ctx.user_agent and device.startswith("Unknown"):
            # the raw string is all there is
            device = _('unrecognised browser "%(agent)s"', agent=ctx.user_agent[:120])
        ip = ctx.ip or _("unknown")
        what = _what_text(what, normalize(getattr(user, "locale", None)) or "en")
        lines = ["  " + _("What happened: %(what)s", what=what)] if what else []
        lines += ["  " + _("When: %(when)s", when=format_for(now, user, "long")),
                  "  " + (_("Where: %(place)s, IP address %(ip)s", place=place, ip=ip) if place
                         else _("Where: IP address %(ip)s", ip=ip)),
                  "  " + _("Device: %(device)s", device=device)]
        return "\n".join(lines) + "\n\n"

    def _not_me_link(self, user) -> str:
        """The one-click "this wasn't me" link every notice carries (single use, a week)."""
        token = self.tokens.issue("notme", user.id, 7 * 86400)
        return self.settings.base_url.rstrip("/") + "/not-me/" + token

    def _not_you_footer(self, link: str) -> str:
        return (_("If you think someone knows your password too, open this link: %(link)s", link=link) + "\n"
                + _("It signs you out everywhere, forgets trusted devices and asks you to choose a new password.")
                + "\n")

    def new_sign_in(self, user, ctx, decision) -> None:
        if not getattr(user, "notify_new_sign_in", True):  # the owner switched it off in the security center
            return
        link = self._not_me_link(user)
        with mail_language(user):
            from authsvc.i18n.reasons import reason_text

            why = "\n".join("  - " + reason_text({"code": r.code, "text": r.text}) for r in decision.reasons) \
                or "  - " + _("a browser or network not seen before")
            self.mailer.send(
                user.email,
                _("New sign-in to your %(service)s account", service=self.settings.service_name),
                _("Your account was just signed in to from a new place.") + "\n\n"
                + self._facts(user, ctx)
                + _("Why we are telling you:") + f"\n{why}\n\n"
                + _("If this was you, there is nothing to do.") + "\n\n"
                + _("If it was NOT you, open this link: %(link)s", link=link) + "\n"
                + _("It signs you out everywhere, forgets trusted devices and asks you to choose a new password.")
                + "\n",
            )

    def password_used(self, user, ctx, *, denied: bool) -> None:
        """Someone typed this account's correct password and was stopped (risk deny, or repeatedly at the second
        factor). Sent whatever the new-sign-in preference (this is not a sign-in), at most once per
        proven_notice_interval (the throttle decides)."""
        link = self._not_me_link(user)
        with mail_language(user):
            what = (_("Someone entered the correct password for your account, and the sign-in was blocked because "
                      "it did not look like you.") if denied
                    else _("Someone entered the correct password for your account, and it was stopped at your "
                           "second sign-in step, more than once."))
            self.mailer.send(
                user.email,
                _("Your %(service)s password was used by someone who did not finish signing in",
                  service=self.settings.service_name),
                what + "\n\n"
                + self._facts(user, ctx)
                + _("If this was not you, someone knows your password. Change it now, and do not use it anywhere "
                    "else:") + f"\n  {link}\n"
                + _("That link signs you out everywhere, forgets trusted devices and asks you to choose a new "
                    "password.") + "\n\n"
                + _("If it was you, there is nothing to do.") + "\n",
            )

    def app_signed_out(self, user, ctx, what: str, app: str) -> None:
        """An app's sign-in (a public client's refresh-token family) was ended because a token of it was used from
        another network than the one it was issued to (authsvc.risk.drift). Told like ``session_theft``: the person
        who sees the refusal is whoever holds the token, who may not be the owner."""
        link = self._not_me_link(user)
        with mail_language(user):
            self.mailer.send(
                user.email,
                _("We signed %(app)s out of your %(service)s account", app=app, service=self.settings.service_name),
                _("%(app)s stayed signed in to your account with a token, and that token was used from a place it "
                  "was not given to, so we ended that sign-in.", app=app) + "\n\n"
                + self._facts(user, ctx, what)
                + _("If this was you (for example you are travelling), sign in to the app again; nothing else is "
                    "needed.") + "\n\n"
                + _("If it was not you, someone may have copied the app's sign-in from your device (malware, or a "
                    "fake sign-in page). The copy no longer works. Sign in again on your own device, check your "
                    "devices and recent activity in the security center, and run a malware scan.") + "\n\n"
                + self._not_you_footer(link),
            )

    def session_moved(self, user, ctx, what: str) -> None:
        """A session was sent back to sign-in because it was used from another country, or from another provider
        minutes after a sign-in on a cloud network (authsvc.risk.drift "reauth"). Often the owner travelling; told
        anyway, because whoever saw the sign-in page may not be the owner."""
        link = self._not_me_link(user)
        with mail_language(user):
            self.mailer.send(
                user.email,
                _("Please sign in to your %(service)s account again", service=self.settings.service_name),
                _("One of your sessions was used from a place it did not start in, so we asked for a new sign-in.")
                + "\n\n" + self._facts(user, ctx, what)
                + _("If this was you (for example you are travelling), just sign in again.") + "\n\n"
                + _("If it was not you, someone may have copied your sign-in from your device (malware, or a fake "
                    "sign-in page). The copy no longer works. Check your devices and recent activity in the "
                    "security center.") + "\n\n"
                + self._not_you_footer(link),
            )

    def session_theft(self, user, ctx, what: str) -> None:
        """A session was ended because it was used in a way only a copy could be (DBSC: a replayed short cookie or a
        proof from a key that is not the device's; drift: another browser, two networks at once). Sent whatever the
        new-sign-in setting: this is not a sign-in."""
        link = self._not_me_link(user)
        with mail_language(user):
            self.mailer.send(
                user.email,
                _("We ended a sign-in to your %(service)s account", service=self.settings.service_name),
                _("One of your sessions was used in a way only a copy of it could be, so we ended it.") + "\n\n"
                + self._facts(user, ctx, what)
                + _("This usually means a copy of your sign-in cookie was taken from your computer (for example by "
                    "malware or a fake sign-in page) and someone tried to use it. The copy no longer works, and apps "
                    "that signed in through that session were signed out too.") + "\n\n"
                + _("What to do now:") + "\n  - " + _("sign in again on your own device;") + "\n  - "
                + _("check your devices and recent activity in the security center;") + "\n  - "
                + _("run a malware scan on the computer you used.") + "\n\n"
                + self._not_you_footer(link),
            )
