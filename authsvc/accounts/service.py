"""Account lifecycle: registration, e-mail verification, password change and reset, first administrator.

Messages never reveal whether another account exists: registering a taken address and asking a reset for an
unknown one both get the generic answer, and the real owner gets an e-mail instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authsvc.accounts.login import RequestContext, normalize_email
from authsvc.errors import ServiceError
from authsvc.models import User
from authsvc.passwords import PolicyViolation


class PolicyError(ServiceError):
    code = "password_policy"

    def __init__(self, violations: list[PolicyViolation]):
        super().__init__(" ".join(v.message for v in violations), violations=[v.code for v in violations])
        self.violations = violations


class InvalidInput(ServiceError):
    code = "invalid_input"


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
    return bool(local) and "." in domain and not any(c.isspace() for c in email) and len(local) <= 64


class AccountService:
    def __init__(self, *, db, hasher, policy, sessions, tokens, mailer, audit, settings, clock, throttle=None):
        self.db, self.hasher, self.policy, self.sessions = db, hasher, policy, sessions
        self.tokens, self.mailer, self.audit, self.settings, self.clock = tokens, mailer, audit, settings, clock
        self.throttle = throttle
        # Called with the user when the owner reports a compromise ("this wasn't me"): other parts forget what
        # they trust about the account (trusted devices, OAuth grants). Sessions are ended here directly.
        self.lockdown_listeners: list = []

    def _link(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def _check_password(self, password: str, email: str, user: User | None = None) -> None:
        problems = self.policy.check(password, email=email)
        if problems:
            raise PolicyError(problems)

    # --- registration ------------------------------------------------------------------------------------------------
    def register(self, email: str, password: str, ctx: RequestContext) -> None:
        email = normalize_email(email)
        if not valid_email(email):
            raise InvalidInput("Enter a valid e-mail address.", field="email")
        self._check_password(password, email)
        existing = self.db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if existing is not None:
            # Same answer as a new registration; the owner learns about the attempt by e-mail.
            self.hasher.burn(password)
            self.mailer.send(email, f"Someone tried to register at {self.settings.service_name}",
                             "Someone (maybe you) tried to create an account with this address, which already has "
                             f"one. If you forgot your password, reset it here: {self._link('/reset')}\n")
            self.audit.record("account:register:duplicate", "info", subject_id=existing.id, ip=ctx.ip,
                              user_agent=ctx.user_agent)
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
        self.send_verification(user)

    def send_verification(self, user: User) -> None:
        token = self.tokens.issue("verify", user.id, self.settings.verify_token_ttl)
        self.mailer.send(user.email, f"Confirm your e-mail for {self.settings.service_name}",
                         f"Open this link to confirm your address:\n\n{self._link('/verify/' + token)}\n\n"
                         "If you did not register, ignore this message.\n")

    def verify_email(self, token: str, ctx: RequestContext) -> User | None:
        row = self.tokens.consume("verify", token)
        if row is None:
            return None
        user = self.db.session.get(User, row.user_id)
        if user is None:
            return None
        user.email_verified_at = self.clock.now()
        self.db.session.commit()
        self.audit.record("account:email:verified", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        return user

    # --- password change ---------------------------------------------------------------------------------------------
    def change_password(self, user: User, current: str, new: str, ctx: RequestContext) -> PasswordChanged:
        if not self.hasher.verify(user.password_hash, current).ok:
            self.audit.record("account:password:change", "failure", actor_id=user.id, subject_id=user.id,
                              ip=ctx.ip, user_agent=ctx.user_agent, reason="current password wrong")
            raise InvalidInput("Your current password is not correct.", field="current_password")
        self._check_password(new, user.email, user)
        self._set_password(user, new)
        # Every session ends (durable cut-off); the caller gets a fresh one for the device that made the change.
        self.sessions.revoke_all(user, "password_changed")
        if self.throttle is not None:
            self.throttle.clear_account(user.email)  # familiar places are re-earned with the new password
        issued = self.sessions.issue(user, ip=ctx.ip, user_agent=ctx.user_agent)
        self.audit.record("account:password:change", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        self.mailer.send(user.email, f"Your {self.settings.service_name} password was changed",
                         "Your password was just changed and your other sessions were signed out. If this was not "
                         f"you, reset your password now: {self._link('/reset')}\n")
        return PasswordChanged(user, issued.token)

    def _set_password(self, user: User, new: str) -> None:
        user.password_hash = self.hasher.hash(new)
        user.password_changed_at = self.clock.now()
        user.must_change_password = False
        self.db.session.commit()

    # --- reset by e-mail ---------------------------------------------------------------------------------------------
    def request_reset(self, email: str, ctx: RequestContext) -> None:
        email = normalize_email(email)
        user = self.db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is None or not user.is_active:
            self.audit.record("account:reset:request", "failure", subject_id=user.id if user else None, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="unknown or disabled account")
            return  # same answer either way
        self.tokens.invalidate("reset", user.id)  # only the newest link works
        token = self.tokens.issue("reset", user.id, self.settings.reset_token_ttl)
        minutes = self.settings.reset_token_ttl // 60
        self.mailer.send(user.email, f"Reset your {self.settings.service_name} password",
                         f"Open this link within {minutes} minutes to choose a new password:\n\n"
                         f"{self._link('/reset/' + token)}\n\nIf you did not ask for this, ignore this message; "
                         "your password stays as it is.\n")
        self.audit.record("account:reset:request", "success", subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)

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
        if not user.email_verified_at:
            user.email_verified_at = self.clock.now()  # the link proved control of the mailbox
            self.db.session.commit()
        # Reset never logs the user in: when MFA exists, the next login still asks for it (ASVS 6.4.3).
        self.sessions.revoke_all(user, "password_reset")
        if self.throttle is not None:
            self.throttle.clear_account(user.email)  # the mailbox was the stronger proof NIST asks for
        self.audit.record("account:reset:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent)
        self.mailer.send(user.email, f"Your {self.settings.service_name} password was reset",
                         "Your password was reset and every session was signed out.\n")
        return user

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
        user.must_change_password = True
        self.db.session.commit()
        ended = self.sessions.revoke_all(user, "reported_compromise")
        for listener in self.lockdown_listeners:
            listener(user)
        self.audit.record("account:compromise:reported", "success", actor_id=user.id, subject_id=user.id,
                          ip=ctx.ip, user_agent=ctx.user_agent, details={"sessions_ended": ended})
        self.request_reset(user.email, ctx)
        return user

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
            raise InvalidInput("Enter a valid e-mail address.", field="email")
        self._check_password(password, email)
        if setup_token is not None and self.tokens.consume("setup", setup_token) is None:
            raise InvalidInput("This setup link is invalid or was already used.", field="token")
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
