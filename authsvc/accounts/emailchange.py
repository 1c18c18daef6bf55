"""E-mail address change, confirmed at the new address before it counts (issue 17, "unexpired e-mail change").

A request (signed in, fresh proof) mails a single-use link to the new address; nothing changes until it is opened
there. One pending change per account (a new request replaces the old); it expires after ``verify_token_ttl``; and
it is voided by anything that re-establishes who owns the account — a password reset, "this wasn't me", the
discarding of an unverified registration — so a link an attacker kept from before can never confirm later. At
confirmation the new address must still be free and the account's sessions cut-off unchanged.
"""

from __future__ import annotations

import hashlib
import json
import secrets

from flask_babel import gettext as _
from sqlalchemy import select

from authsvc.accounts.login import normalize_email
from authsvc.errors import ServiceError
from authsvc.i18n import N_
from authsvc.i18n.mail import mail_language
from authsvc.models import User


class EmailChangeRefused(ServiceError):
    code = "email_change_refused"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _index(uid: int) -> str:
    return f"emailchange:u:{uid}"


class EmailChangeService:
    def __init__(self, *, db, redis_getter, mailer, audit, settings, clock, sessions):
        self.db, self._redis, self.mailer, self.audit = db, redis_getter, mailer, audit
        self.settings, self.clock, self.sessions = settings, clock, sessions

    def request(self, user: User, new_email: str, ctx) -> str:
        """Mail the confirmation link to ``new_email``; returns it (for the CLI and tests)."""
        from authsvc.accounts.service import valid_email

        new = normalize_email(new_email)
        if not valid_email(new) or new == user.email:
            raise EmailChangeRefused(N_("Enter a different, valid e-mail address."), field="email")
        token = secrets.token_urlsafe(32)
        ttl = self.settings.verify_token_ttl
        pipe = self._redis().pipeline(transaction=False)
        pipe.set(f"emailchange:t:{{{_sha(token)}}}", json.dumps({
            "uid": user.id, "new": new, "va": user.sessions_valid_after.isoformat()}), ex=ttl)
        pipe.set(_index(user.id), _sha(token), ex=ttl)  # the newest request is the only one that can confirm
        pipe.execute()
        link = self.settings.base_url.rstrip("/") + "/email-change/" + token
        with mail_language(user, from_request=True):  # the account's language (it is the same owner), else the browser's
            self.mailer.send(new, _("Confirm your new e-mail address for %(service)s",
                                    service=self.settings.service_name),
                             _("Open this link to use this address for your account:") + f"\n\n{link}\n\n"
                             + _("If you did not ask for this, ignore this message: nothing changes.") + "\n")
        self.audit.record("account:email:change_requested", "info", actor_id=user.id, subject_id=user.id,
                          ip=ctx.ip, user_agent=ctx.user_agent)
        return link

    def cancel(self, user_id: int) -> None:
        self._redis().delete(_index(user_id))

    def confirm(self, token: str, ctx) -> User | None:
        if not isinstance(token, str) or not (16 <= len(token) <= 128):
            return None
        raw = self._redis().getdel(f"emailchange:t:{{{_sha(token)}}}")
        if raw is None:
            return None
        data = json.loads(raw)
        index = self._redis().get(_index(data["uid"]))
        user = self.db.session.get(User, data["uid"])
        taken = self.db.session.execute(select(User.id).where(User.email == data["new"])).first() is not None
        if (index is None or str(index) != _sha(token) or user is None or not user.is_active or taken
                or user.sessions_valid_after.isoformat() != data["va"]):
            self.audit.record("account:email:change", "failure", subject_id=data["uid"], ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="voided, replaced or address taken")
            return None
        self._redis().delete(_index(user.id))
        old = user.email
        user.email, user.email_verified_at = data["new"], self.clock.now()
        self.db.session.commit()
        self.audit.record("account:email:change", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        with mail_language(user):
            self.mailer.send(old, _("Your %(service)s e-mail address was changed", service=self.settings.service_name),
                             _("Your account now uses %(email)s. If this was not you, contact support.",
                               email=user.email) + "\n")
        return user
