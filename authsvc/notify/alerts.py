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
