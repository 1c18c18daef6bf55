"""Security notices to the account owner: a sign-in from somewhere new, with a one-click "this wasn't me"."""

from __future__ import annotations


class LoginAlerts:
    def __init__(self, *, mailer, tokens, settings):
        self.mailer, self.tokens, self.settings = mailer, tokens, settings

    def new_sign_in(self, user, ctx, decision) -> None:
        if not getattr(user, "notify_new_sign_in", True):  # the owner switched it off in the security center
            return
        token = self.tokens.issue("notme", user.id, 7 * 86400)
        link = self.settings.base_url.rstrip("/") + "/not-me/" + token
        why = "\n".join(f"  - {r.text}" for r in decision.reasons) or "  - a browser or network not seen before"
        self.mailer.send(
            user.email,
            f"New sign-in to your {self.settings.service_name} account",
            "Your account was just signed in to from a new place.\n\n"
            f"  Browser: {ctx.user_agent or 'unknown'}\n  IP address: {ctx.ip or 'unknown'}\n\n"
            f"Why we are telling you:\n{why}\n\n"
            "If this was you, there is nothing to do.\n\n"
            f"If it was NOT you, open this link: {link}\n"
            "It signs you out everywhere, forgets trusted devices and asks you to choose a new password.\n",
        )

    def password_used(self, user, ctx, *, denied: bool) -> None:
        """Someone typed this account's correct password and was stopped (risk deny, or repeatedly at the second
        factor). Sent whatever the new-sign-in preference (this is not a sign-in), at most once per
        proven_notice_interval (the throttle decides)."""
        token = self.tokens.issue("notme", user.id, 7 * 86400)
        link = self.settings.base_url.rstrip("/") + "/not-me/" + token
        what = ("the sign-in was blocked because it did not look like you" if denied
                else "it was stopped at your second sign-in step, more than once")
        self.mailer.send(
            user.email,
            f"Your {self.settings.service_name} password was used by someone who did not finish signing in",
            "Someone entered the correct password for your account, and " + what + ".\n\n"
            f"  IP address: {ctx.ip or 'unknown'}\n  Browser: {ctx.user_agent or 'unknown'}\n\n"
            "If this was not you, someone knows your password. Change it now, and do not use it anywhere else:\n"
            f"  {link}\n"
            "That link signs you out everywhere, forgets trusted devices and asks you to choose a new password.\n\n"
            "If it was you, there is nothing to do.\n",
        )
