"""Account lifecycle: registration, e-mail verification, password change and reset, first administrator.

Messages never reveal whether another account exists: registering a taken address and asking a reset for an
unknown one both get the generic answer, and the real owner gets an e-mail instead.
"""

from __future__ import annotations

import unicodedata

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authsvc.accounts.login import RequestContext, normalize_email
from authsvc.errors import ServiceError
from authsvc.i18n import N_
from authsvc.i18n.mail import mail_language
from authsvc.models import User
from authsvc.passwords import PolicyViolation


class PolicyError(ServiceError):
    code = "password_policy"

    def __init__(self, violations: list[PolicyViolation]):
        super().__init__(" ".join(v.message for v in violations), violations=[v.code for v in violations])
        self.violations = violations


class InvalidInput(ServiceError):
    code = "invalid_input"


class PasswordNeeded(InvalidInput):
    """A verification link opened outside the browser that registered: the registration password is asked for."""

    code = "password_required"


# Why a password change is forced → what the user is told (the true reason, never "breached" when it was not).
# English here (marked for the catalog); the password page translates them when it shows them.
FORCED_CHANGE_REASONS = {
    "admin": N_("An administrator asked you to choose a new password."),
    "breached": N_("Your password appears in a list of breached passwords, so attackers try it first. Please choose "
                   "a new one now."),
    "compromise": N_("You reported a sign-in that was not yours, so your old password no longer works. Choose a new "
                     "one."),
    # authsvc.signals.receiver: a RISC signal from a trusted upstream (credential-compromise, account-disabled)
    "upstream": N_("A service we work with warned us your account may be at risk, so your old password no longer "
                   "works. Choose a new one."),
}
FORCED_CHANGE_DEFAULT = N_("Your current password must be replaced.")


def forced_change_message(user) -> str | None:
    """What to tell a user whose password change is forced (None if it is not)."""
    if not getattr(user, "must_change_password", False):
        return None
    return FORCED_CHANGE_REASONS.get(getattr(user, "must_change_reason", None) or "", FORCED_CHANGE_DEFAULT)


def require_password_change(user, reason: str) -> None:
    """Flag the account (the caller commits). ``reason`` is a key of FORCED_CHANGE_REASONS."""
    user.must_change_password = True
    user.must_change_reason = reason


@dataclass
class PasswordChanged:
    user: User
    new_token: str | None


def valid_email(email: str) -> bool:
    # Deliberately loose (RFC 5321 syntax is wider than any regex people get right); the verification link is the
    # real check. We only refuse what can never be an address.
    if not email or len(email) > 254 or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    return bool(local) and "." in domain and len(local) <= 64 and not any(
        c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in email)


class AccountService:
    def __init__(self, *, db, hasher, policy, sessions, tokens, mailer, audit, settings, clock, throttle=None,
                 mail_guard=None):
        self.db, self.hasher, self.policy, self.sessions = db, hasher, policy, sessions
        self.tokens, self.mailer, self.audit, self.settings, self.clock = tokens, mailer, audit, settings, clock
        self.throttle = throttle
        # Mail limits and verification links bound to the registering browser (authsvc/accounts/mailguard.py).
        self.mail_guard = mail_guard
        # Called with the user when the owner reports a compromise ("this wasn't me"): other parts forget what
        # they trust about the account (trusted devices, OAuth grants). Sessions are ended here directly.
        self.lockdown_listeners: list = []
        # The MfaService (set in services.py): lockdown and reset remove factors an attacker may have planted.
        self.factors = None
        # EmailChangeService (accounts/emailchange.py, set in services.py): reset and lockdown void a pending change.
        self.email_changes = None
        # The login pipeline's RiskScorer (set in services.py): a confirmed address seeds the account's risk history.
        self.risk = None

    def _link(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def _mail_allowed(self, kind: str, email: str, ctx: RequestContext | None) -> bool:
        """One more ``kind`` mail to ``email`` on a request from ``ctx.ip``? Counted by the submitted address
        whether or not an account exists; Redis down raises (503), never an unlimited send."""
        if self.mail_guard is None:
            return True
        return self.mail_guard.allow(kind, email, ctx.ip if ctx is not None else None)

    def _check_password(self, password: str, email: str, user: User | None = None) -> None:
        problems = self.policy.check(password, email=email)
        if not problems and user is not None and user.password_hash \
                and self.hasher.verify(user.password_hash, password).ok:
            # A change (forced or not) or a reset to the very password the account has now changes nothing: the
            # admin's "require a change", a breach or a reset would leave the same secret in place.
            problems = [PolicyViolation("reused", "Choose a password different from your current one.")]
        if problems:
            raise PolicyError(problems)

    # --- registration ------------------------------------------------------------------------------------------------
    def register(self, email: str, password: str, ctx: RequestContext, *, browser: str | None = None) -> None:
        """``browser``: the registering browser's random id (cookie); its link confirms there with one click, anywhere
        else only with the password (pre-hijack, issue #19). The API passes none: confirm with the password."""
        email = normalize_email(email)
        if not valid_email(email):
            raise InvalidInput(N_("Enter a valid e-mail address."), field="email")
        self._check_password(password, email)
        mail_ok = self._mail_allowed("register", email, ctx)  # before the lookup: same work either way
        existing = self.db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if existing is not None:
            # Same answer as a new registration; the owner learns about the attempt by e-mail.
            self.hasher.burn(password)
            if mail_ok:
                with mail_language(existing, from_request=True):
                    self.mailer.send(email, _("Someone tried to register at %(service)s",
                                              service=self.settings.service_name),
                                     _("Someone (maybe you) tried to create an account with this address, which "
                                       "already has one. If you forgot your password, reset it here: %(link)s",
                                       link=self._link('/reset')) + "\n")
            self.audit.record("account:register:duplicate", "info", subject_id=existing.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason=None if mail_ok else "mail limit")
            return
        user = User(email=email, password_hash=self.hasher.hash(password), password_changed_at=self.clock.now(),
                    sessions_valid_after=self.clock.now())
        self.db.session.add(user)
        try:
            self.db.session.commit()
        except IntegrityError:  # a concurrent registration of the same address won
            self.db.session.rollback()
            return
        self.audit.record("account:register:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        if mail_ok:
            self.send_verification(user, ctx, browser=browser, limited=False)

    def send_verification(self, user: User, ctx: RequestContext | None = None, *, browser: str | None = None,
                          limited: bool = True) -> bool:
        """Mail a confirmation link (bound to ``browser`` when given). False when the mail limit suppressed it."""
        if limited and not self._mail_allowed("verify", user.email, ctx):
            return False
        email = user.email
        token = self.tokens.issue("verify", user.id, self.settings.verify_token_ttl)
        if self.mail_guard is not None:
            self.mail_guard.bind(token, browser)
        with mail_language(user, from_request=True):  # a new account has no setting yet: the browser's language
            self.mailer.send(email, _("Confirm your e-mail for %(service)s", service=self.settings.service_name),
                             _("Open this link to confirm your address:") + f"\n\n{self._link('/verify/' + token)}\n\n"
                             + _("If you did not create an account, do not confirm: ignore this message, or choose a "
                                 "password of your own at %(link)s to take the address back.",
                                 link=self._link('/reset')) + "\n")
        return True

    # --- accounts an operator creates (issue 18) ---------------------------------------------------------------------
    def create_invited(self, email: str, ctx: RequestContext) -> User:
        """An account with no password; its owner gets a set-password link (the reset flow, which also confirms the
        address), so the operator never knows the password. Refused: an invalid or already registered address."""
        email = normalize_email(email)
        # Stricter than sign-up: an operator-typed (or pasted) address has no invisible characters (bidi overrides,
        # zero-width spaces) that would make it read as someone else's in the panel and the audit log.
        if not valid_email(email) or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in email):
            raise InvalidInput(N_("Enter a valid e-mail address."), field="email")
        if self.db.session.execute(select(User.id).where(User.email == email)).scalar() is not None:
            raise InvalidInput(N_("An account with this address already exists."), field="email")
        user = User(email=email, password_hash=None, sessions_valid_after=self.clock.now())
        self.db.session.add(user)
        try:
            self.db.session.commit()
        except IntegrityError:  # created concurrently
            self.db.session.rollback()
            raise InvalidInput(N_("An account with this address already exists."), field="email") from None
        self._mail_invitation(user)
        return user

    def _mail_invitation(self, user: User) -> None:
        # A set-password link lives as long as a verification link (it is one: it proves the mailbox); only the
        # newest works (replace).
        token = self.tokens.replace("reset", user.id, self.settings.verify_token_ttl)
        with mail_language(user):  # not the operator's language: theirs is unknown, so English
            self.mailer.send(user.email, _("Your %(service)s account", service=self.settings.service_name),
                             _("An administrator created an account for this address. Open this link to choose your "
                               "password (it also confirms the address):")
                             + f"\n\n{self._link('/reset/' + token)}\n\n"
                             + _("If you did not expect this, ignore this message.") + "\n")

    def resend_by_admin(self, user: User, ctx: RequestContext) -> bool:
        """The operator's "resend": the verification link, or the set-password link for an account that has no
        password yet. Counted against the address's mail limit; False when it suppressed the mail."""
        if not self._mail_allowed("verify", user.email, ctx):
            return False
        if user.password_hash is None:
            self._mail_invitation(user)
            return True
        return self.send_verification(user, ctx, limited=False)

    def verification_needs_password(self, token: str, browser: str | None) -> bool:
        """True unless the link is opened in the browser that registered (or re-sent it after a password login)."""
        return self.mail_guard is not None and not self.mail_guard.is_bound_to(token, browser)

    def verify_email(self, token: str, ctx: RequestContext, *, password: str | None = None,
                     browser: str | None = None) -> User | None:
        """Confirm the address. Outside the registering browser the registration password is needed
        (``PasswordNeeded``), so the owner of a mailbox cannot confirm an attacker's pre-registered account.
        None: the link is invalid, used, expired, or was used up by too many wrong passwords."""
        row = self.tokens.peek("verify", token)
        if row is None:
            return None
        user = self.db.session.get(User, row.user_id)
        if user is None:
            return None
        if self.verification_needs_password(token, browser):
            if not password:
                raise PasswordNeeded("Enter the password you chose when you created the account.", field="password")
            if not (user.password_hash and self.hasher.verify(user.password_hash, password).ok):
                failures = self.mail_guard.password_failure(token)
                self.audit.record("account:email:verified", "failure", subject_id=user.id, ip=ctx.ip,
                                  user_agent=ctx.user_agent, reason="wrong registration password")
                if failures >= self._verify_password_attempts():
                    self.tokens.consume("verify", token)
                    return None
                raise PasswordNeeded("That is not the password this account was created with.", field="password")
        if self.tokens.consume("verify", token) is None:
            return None
        user.email_verified_at = self.clock.now()
        self.db.session.commit()
        self.audit.record("account:email:verified", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        self._seed_risk_history(user, ctx)
        if self.throttle is not None:
            # The same proof makes the confirming network one of the account's familiar places for the throttles
            # (its own budget, exempt from a spray block on the network): without it a sprayer next door (the same
            # /24) kept a new owner from a first sign-in for 30 min (stop 26, found by an outside attacker). No device
            # id: a trusted-device cookie in this browser belongs to some other account.
            self.throttle.record_success(user.email, RequestContext(ctx.ip, ctx.user_agent))
        return user

    def _seed_risk_history(self, user: User, ctx: RequestContext) -> None:
        """The confirming request opened the mailed link in the registering browser, or gave the registration
        password: it proved the mailbox and the password, as a login met by a mailed code does. Its network and
        browser become the account's first risk-history entry, so the first sign-in from the same place is compared
        with it instead of scoring "no history" (docs/RISK.md §6 v3); one from elsewhere still differs from it.
        Only the account's own history: the scorer keeps new accounts out of the global statistics (issue #19)."""
        if self.risk is not None:
            self.risk.learn(user, ctx)

    @staticmethod
    def _verify_password_attempts() -> int:
        from authsvc.accounts.mailguard import MAX_VERIFY_PASSWORD_FAILURES

        return MAX_VERIFY_PASSWORD_FAILURES

    # --- password change ---------------------------------------------------------------------------------------------
    def change_password(self, user: User, current: str, new: str, ctx: RequestContext) -> PasswordChanged:
        if not self.hasher.verify(user.password_hash, current).ok:
            self.audit.record("account:password:change", "failure", actor_id=user.id, subject_id=user.id,
                              ip=ctx.ip, user_agent=ctx.user_agent, reason="current password wrong")
            raise InvalidInput(N_("Your current password is not correct."), field="current_password")
        self._check_password(new, user.email, user)
        self._set_password(user, new)
        # Every session ends (durable cut-off); the caller gets a fresh one for the device that made the change.
        self.sessions.revoke_all(user, "password_changed")
        if self.throttle is not None:
            self.throttle.clear_account(user.email)  # familiar places are re-earned with the new password
        issued = self.sessions.issue(user, ip=ctx.ip, user_agent=ctx.user_agent)
        self.audit.record("account:password:change", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        with mail_language(user):
            self.mailer.send(user.email, _("Your %(service)s password was changed", service=self.settings.service_name),
                             _("Your password was just changed and your other sessions were signed out. If this was "
                               "not you, reset your password now: %(link)s", link=self._link('/reset')) + "\n")
        return PasswordChanged(user, issued.token)

    def _set_password(self, user: User, new: str) -> None:
        user.password_hash = self.hasher.hash(new)
        user.password_changed_at = self.clock.now()
        user.must_change_password = False
        user.must_change_reason = None
        self.db.session.commit()

    # --- reset by e-mail ---------------------------------------------------------------------------------------------
    def request_reset(self, email: str, ctx: RequestContext, *, limited: bool = True) -> None:
        """Mail a reset link. Same answer and the same work for real, unknown and disabled addresses (issue #12
        item 7): one Redis count, the same token statements in one transaction, the message rendered, one audit
        row — only the delivery is skipped for no account. ``limited=False`` only for the owner's own lockdown."""
        email = normalize_email(email)
        if not valid_email(email):  # never an account (nothing to hide) and never a mail header
            self.audit.record("account:reset:request", "failure", ip=ctx.ip, user_agent=ctx.user_agent,
                              reason="not an e-mail address")
            return
        user = self.db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        uid = user.id if user is not None else None
        real = user is not None and user.is_active
        if limited and not self._mail_allowed("reset", email, ctx):
            # Suppressed: nothing else changes — the newest link already mailed stays valid.
            self.audit.record("account:reset:request", "failure", subject_id=uid, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="mail limit")
            return
        token = self.tokens.replace("reset", uid if real else None, self.settings.reset_token_ttl)
        minutes = self.settings.reset_token_ttl // 60
        # The owner's language; an address with no account (or an owner who never chose): the requester's browser.
        with mail_language(user if real else None, from_request=True):
            subject = _("Reset your %(service)s password", service=self.settings.service_name)
            body = (_("Open this link within %(minutes)s minutes to choose a new password:", minutes=minutes)
                    + f"\n\n{self._link('/reset/' + token)}\n\n"
                    + _("If you did not ask for this, ignore this message; your password stays as it is.") + "\n")
            if real:
                self.mailer.send(email, subject, body)
            else:
                from authsvc import notify

                notify.render(getattr(self.mailer, "sender", ""), email, subject, body,
                              getattr(self.mailer, "renderer", None))  # rendered (text and HTML) and dropped
        self.audit.record("account:reset:request", "success" if real else "failure", subject_id=uid, ip=ctx.ip,
                          user_agent=ctx.user_agent, reason=None if real else "unknown or disabled account")

    def reset_password(self, token: str, new: str, ctx: RequestContext) -> User | None:
        row = self.tokens.peek("reset", token)
        if row is None:
            return None
        user = self.db.session.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        self._check_password(new, user.email, user)  # before consuming: a refused password keeps the link usable
        if self.tokens.consume("reset", token) is None:
            return None
        self._set_password(user, new)
        if self.email_changes is not None:
            self.email_changes.cancel(user.id)  # a change requested before the owner took the account back is void
        if not user.email_verified_at:
            user.email_verified_at = self.clock.now()  # the link proved control of the mailbox
            self.db.session.commit()
        # Reset never logs the user in: when MFA exists, the next login still asks for it (ASVS 6.4.3).
        self.sessions.revoke_all(user, "password_reset")
        if self.throttle is not None:
            self.throttle.clear_account(user.email)  # the mailbox was the stronger proof NIST asks for
        # Factors only the old password vouched for (an attacker may have planted them) go; see MfaService.
        review = self.factors.on_password_reset(user, ctx) if self.factors is not None else None
        self.audit.record("account:reset:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent,
                          details={"factors_removed": review.removed} if review and review.removed else None)
        with mail_language(user):
            self.mailer.send(user.email, _("Your %(service)s password was reset", service=self.settings.service_name),
                             _("Your password was reset and every session was signed out. Browsers that were "
                               "remembered for two-step verification will ask for it again.") + "\n"
                             + self._factor_notice(review))
        return user

    def _factor_notice(self, review) -> str:
        """The part of a reset or lockdown e-mail that says which sign-in methods were removed and which remain."""
        if review is None:
            return ""
        text = ""
        if review.removed:
            text += ("\n" + _("We also removed these sign-in methods. They were added recently with nothing but "
                              "your password as proof, so whoever had your password may have added them:") + "\n"
                     + "".join(f"  - {r}\n" for r in review.removed)
                     + _("If you added them yourself, add them again on your account page: %(link)s",
                         link=self._link('/account')) + "\n")
        if review.kept:
            text += ("\n" + _("These sign-in methods remain on your account. If you do not recognise one, remove it "
                              "on your account page (%(link)s):", link=self._link('/account')) + "\n"
                     + "".join(f"  - {k}\n" for k in review.kept))
        text += "\n" + _("Review your recent sign-ins: %(link)s", link=self._link('/account/activity')) + "\n"
        return text

    # --- "this wasn't me" ------------------------------------------------------------------------------------------
    def report_not_me(self, token: str, ctx: RequestContext) -> User | None:
        """The owner says a sign-in was not theirs: end everything, forget trust, require a new password."""
        row = self.tokens.consume("notme", token)
        if row is None:
            return None
        user = self.db.session.get(User, row.user_id)
        if user is None:
            return None
        # No password works any more until the owner resets it by e-mail: the attacker knows the current one.
        user.password_hash = None
        require_password_change(user, "compromise")
        self.db.session.commit()
        ended = self.sessions.revoke_all(user, "reported_compromise")
        if self.email_changes is not None:
            self.email_changes.cancel(user.id)
        for listener in self.lockdown_listeners:
            listener(user)
        # Factors added since the reported sign-in (the link was minted with it) go: a passkey signs in by itself.
        review = self.factors.on_lockdown(user, row.created_at, ctx) if self.factors is not None else None
        details = {"sessions_ended": ended}
        if review is not None:
            details["factors_removed"] = review.removed
        self.audit.record("account:compromise:reported", "success", actor_id=user.id, subject_id=user.id,
                          ip=ctx.ip, user_agent=ctx.user_agent, details=details)
        self._lockdown_mail(user, ended, review)
        return user

    def _lockdown_mail(self, user: User, ended: int, review) -> None:
        """What happened and what to do next, with the link to choose a new password (not the reset-request text:
        "ignore this message, your password stays" is false after a lockdown)."""
        self.tokens.invalidate("reset", user.id)  # only the newest link works
        token = self.tokens.issue("reset", user.id, self.settings.reset_token_ttl)
        minutes = max(1, self.settings.reset_token_ttl // 60)
        with mail_language(user):
            self.mailer.send(
                user.email, _("Your %(service)s account is locked down", service=self.settings.service_name),
                _("You told us a sign-in to your account was not you. We have:") + "\n"
                + "  - " + ngettext("signed you out everywhere (%(num)d session ended);",
                                    "signed you out everywhere (%(num)d sessions ended);", ended) + "\n"
                + "  - " + _("switched off your password: nobody can sign in with it any more;") + "\n"
                + "  - " + _("forgotten every browser remembered for two-step verification.") + "\n"
                + self._factor_notice(review)
                + "\n" + _("What to do now:") + "\n  1. "
                + _("Choose a new password with this link (valid for %(minutes)s minutes; after that, ask for a new "
                    "one at %(link)s):", minutes=minutes, link=self._link('/reset'))
                + f"\n     {self._link('/reset/' + token)}\n  2. "
                + _("Sign in and check your sign-in methods; add again any you removed or lost.") + "\n  3. "
                + _("Use this password nowhere else, and check that your e-mail account is safe too: whoever signed "
                    "in may have read this mailbox.") + "\n")

    # --- first administrator (no default credentials, ASVS 6.3.2) -----------------------------------------------------
    def admin_exists(self) -> bool:
        return self.db.session.execute(select(User.id).where(User.is_admin.is_(True)).limit(1)).first() is not None

    def setup_link(self) -> str | None:
        """A one-time link to create the first administrator, or None if one exists."""
        if self.admin_exists():
            return None
        token = self.tokens.issue("setup", None, self.settings.setup_token_ttl)
        return self._link("/setup/" + token)

    def create_admin(self, email: str, password: str, ctx: RequestContext, *, setup_token: str | None = None) -> User:
        email = normalize_email(email)
        if not valid_email(email):
            raise InvalidInput(N_("Enter a valid e-mail address."), field="email")
        self._check_password(password, email)
        if setup_token is not None and self.tokens.consume("setup", setup_token) is None:
            raise InvalidInput(N_("This setup link is invalid or was already used."), field="token")
        user = self.db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is None:
            user = User(email=email, sessions_valid_after=self.clock.now())
            self.db.session.add(user)
        user.password_hash = self.hasher.hash(password)
        user.password_changed_at = self.clock.now()
        user.is_admin = True
        user.email_verified_at = user.email_verified_at or self.clock.now()
        self.db.session.commit()
        self.audit.record("admin:user:create", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent, reason="setup link" if setup_token else "cli")
        return user
