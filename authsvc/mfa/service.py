"""MfaService: the second-factor stage of the login pipeline, step-up, enrolment and the admin reset.

Assurance levels recorded on sessions (``aal`` + ``methods``, AMR-like names):
  aal1  ``pwd`` (password only; also ``pwd,device`` on a trusted device, where the factor was remembered)
  aal2  ``pwd,otp`` / ``pwd,rc`` (recovery code) / ``pwd,hwk`` (security key) / ``hwk,uv`` (passkey with user
        verification — passkey login always requires UV, so it is aal2 by itself)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from urllib.parse import urlencode

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import bindparam, delete, exists, func, or_, select

from authsvc.accounts.login import Decision, Reason, RequestContext
from authsvc.errors import ServiceError, Throttled
from authsvc.i18n.mail import mail_language
from authsvc.mfa.webauthn import CredentialSuspended, SignCountRegression, WebAuthnError
from authsvc.models import RecoveryCode, TotpCredential, User, WebAuthnCredential
from authsvc.sessions import Generation, StaleCredentials, token_hash

AMR = {"totp": "otp", "recovery": "rc", "webauthn": "hwk", "email": "email"}
# Methods that are authenticators for AAL2. A code e-mailed to the account's address proves the mailbox and meets a
# risk step-up, but e-mail is not an out-of-band authenticator (NIST SP 800-63B 5.1.3.1): it stays aal1.
AAL2_METHODS = frozenset({"otp", "rc", "hwk"})
# A sign-in of an account with no learned history this soon after its address was confirmed is already proven by
# that mailbox (the verification link): no code is mailed, and nothing is learned from it either.
MAILBOX_FRESH_SECONDS = 86400


class TotpSuspended(ServiceError):
    status = 403
    code = "totp_suspended"

    def __init__(self):
        super().__init__("Your authenticator app is suspended after too many wrong codes. Use a recovery code or a "
                         "passkey, or reset your password by e-mail to switch it back on.")


@dataclass(frozen=True)
class FactorReview:
    """What a lockdown or a password reset did to the factors: for the notice e-mail and the audit record."""

    removed: list[str]  # human descriptions ("Passkey “Laptop”, added 2026-11-20")
    kept: list[str]
    since: dt.datetime | None  # the cut-off: factors created at or after it were removed


@dataclass(frozen=True)
class Completed:
    """A finished MFA proof: the new session, and where the pending record wanted to go."""

    user: User
    issued: object  # sessions.IssuedSession
    next: str | None
    method: str


_UID = bindparam("p_uid")
_HAS_FACTORS = select(or_(exists().where(TotpCredential.user_id == _UID),
                          exists().where(WebAuthnCredential.user_id == _UID)))  # built once: every login asks


def _fingerprint(password_hash: str | None) -> str | None:
    """A pending record names the password hash it proved by a digest, never the hash itself."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32] if password_hash else None


class MfaService:
    def __init__(self, *, db, settings, store, totp, recovery, webauthn, devices, sessions, audit, mailer, clock,
                 email_code=None):
        self.email_code = email_code  # mfa.email_code.EmailCodeService: the step every account has
        self.db, self.settings, self.store = db, settings, store
        self.totp, self.recovery, self.webauthn, self.devices = totp, recovery, webauthn, devices
        self.sessions, self.audit, self.mailer, self.clock = sessions, audit, mailer, clock
        self.login = None  # the LoginService (set in services.py): MFA-completed logins finish through it
        # Called as (old session id, new session id) when a step-up re-issues a session under a new token, before
        # the old one is revoked: what is bound to the session moves with it (authsvc.dbsc: the device key).
        self.session_reissue_listeners: list = []

    # --- what the user has ----------------------------------------------------------------------------------------
    def has_factors(self, user: User) -> bool:
        """Whether the account has a TOTP app or a WebAuthn credential: one round trip (two EXISTS in one SELECT,
        built once), because every login asks."""
        return bool(self.db.session.execute(_HAS_FACTORS, {"p_uid": user.id}).scalar())

    def overview(self, user: User) -> dict:
        return {"totp": self.totp.credential(user), "webauthn": self.webauthn.credentials(user),
                "recovery_remaining": self.recovery.remaining(user), "recovery_set": self.recovery.has_any(user),
                "devices": self.devices.list_for(user)}

    # --- the pipeline stage (SecondFactor protocol) -------------------------------------------------------------------
    def required(self, user: User, decision: Decision, ctx: RequestContext | None = None, *,
                 defer: list | None = None) -> bool:
        """Whether this login needs a second factor. With ``defer``, the audit events this decision produces are
        appended there (``AuditLog.record`` keyword dicts) for the caller to write with its own, in one commit."""
        has = self.has_factors(user)
        if decision.action == "step_up":
            if not has:
                if self._mailbox_just_proven(user, decision):
                    # First sign-in minutes after the verification link proved the mailbox: that is the second
                    # step. Not learned from (LoginService.proven) — the engine learns from proven logins only.
                    self._audit("mfa:stepup:mailbox_fresh", "info", user, ctx, defer=defer,
                                reason="first sign-in right after the address was confirmed")
                    return False
                if self.email_code is None:  # nothing to offer (not wired): refuse rather than skip the step-up
                    self._audit("mfa:stepup:unavailable", "info", user, ctx, defer=defer,
                                reason="; ".join(r.text for r in decision.reasons)[:255] or "risk step_up")
                    return True
                # The account has no factor: the step every account has is a code mailed to its verified address.
                self._audit("mfa:stepup:email", "info", user, ctx, defer=defer,
                            reason="; ".join(r.code for r in decision.reasons)[:255] or "risk step_up")
                return True
            return True  # an explicit step-up is never satisfied by a remembered device
        if not has:
            return False
        if ctx is not None and self.devices.is_trusted_id(user, ctx.device_id):
            self.devices.touch(int(ctx.device_id))
            self._audit("mfa:device:trusted", "info", user, ctx, details={"device": int(ctx.device_id)}, defer=defer)
            return False
        return True

    def begin_login(self, user: User, ctx: RequestContext, decision: Decision | None, next_url: str | None,
                    generation: Generation | None = None, methods: tuple[str, ...] = ("pwd",)) -> str:
        """The pending login between password and second factor: a Redis record behind a random cookie token.

        ``generation`` (what the password proved) travels with it: the second step finishes only if no password
        change, reset, lockdown or "sign out everywhere" happened since (checked atomically at session issue)."""
        d = decision or Decision("allow")
        gen = generation or Generation.of(user, user.password_hash)
        by_email = self.email_code is not None and not self.has_factors(user)
        token = self.store.create_pending({
            "uid": user.id, "methods": list(methods), "next": next_url, "created": self.clock.timestamp(),
            "email": by_email,  # no factor of its own: the second step is a code mailed to the verified address
            "gen": {"va": gen.valid_after.isoformat() if gen.valid_after else None,
                    "pw": _fingerprint(gen.password_hash)},
            "decision": {"action": d.action, "score": d.score,
                         "reasons": [[r.code, r.text] for r in d.reasons]}})
        if by_email:
            self.send_email_code(token, user, ctx)
        return token

    def _mailbox_just_proven(self, user: User, decision: Decision) -> bool:
        """No history is the engine's only concern, and the address was confirmed within MAILBOX_FRESH_SECONDS."""
        if not user.email_verified_at or any(r.code != "no_history" for r in decision.reasons):
            return False
        return 0 <= (self.clock.now() - user.email_verified_at).total_seconds() <= MAILBOX_FRESH_SECONDS

    def send_email_code(self, token: str, user: User, ctx: RequestContext) -> str:
        """(Re)send the code of an e-mail second step; "sent" or "too_many" (mfa.email_code)."""
        outcome = self.email_code.send(self.store.binding(token), user, ctx.ip)
        self._audit("mfa:email:send", "success" if outcome == "sent" else "failure", user, ctx,
                    reason=None if outcome == "sent" else "too many codes")
        return outcome

    def check_email_code(self, token: str, user: User, code: str, ctx: RequestContext) -> bool:
        """Check an e-mailed code against this pending login's, under the same per-user failure limit as TOTP."""
        from authsvc.mfa import email_code as ec

        self.store.precheck(user.id)
        result = self.email_code.check(self.store.binding(token), code)
        if result != ec.OK:
            self.store.record_failure(user.id)
        self._audit("mfa:email:verify", "success" if result == ec.OK else "failure", user, ctx,
                    reason=None if result == ec.OK else ("wrong code" if result == ec.WRONG else "no live code"))
        return result == ec.OK

    def pending_user(self, token: str | None) -> tuple[dict, User] | None:
        data = self.store.get_pending(token)
        if not data or data.get("uid") is None:
            return None
        user = self.db.session.get(User, data["uid"])
        if user is None or not user.is_active or \
                self.clock.timestamp() - data["created"] > self.settings.pending_ttl:
            return None
        return data, user

    # --- proving a factor ---------------------------------------------------------------------------------------------
    def check_totp(self, user: User, code: str, ctx: RequestContext, purpose: str) -> bool:
        row = self.totp.credential(user)
        if row is not None and row.suspended_at is not None:
            self._audit("mfa:totp:verify", "failure", user, ctx, reason="suspended", details={"purpose": purpose})
            raise TotpSuspended()
        try:
            ok = self.totp.verify(user, code)
        except Throttled:
            self._audit("mfa:totp:verify", "failure", user, ctx, reason="throttled", details={"purpose": purpose})
            raise
        self._audit("mfa:totp:verify", "success" if ok else "failure", user, ctx,
                    reason=None if ok else "wrong or reused code", details={"purpose": purpose})
        if ok:
            self.store.clear_misses(user.id)
        elif row is not None:
            self._count_miss(user, ctx)
        return ok

    def _count_miss(self, user: User, ctx: RequestContext) -> None:
        """Consecutive wrong TOTP codes across throttle windows (the window alone allows 5 per 5 min forever): the
        owner is told at ``totp_notify_failures``; at ``totp_lock_failures`` TOTP is suspended (NIST SP 800-63B
        §5.2.2 caps consecutive failures at 100) until a recovery code is used or the password is reset."""
        n = self.store.count_miss(user.id)
        cfg = self.settings
        if n == cfg.totp_notify_failures and n < cfg.totp_lock_failures:
            self._audit("mfa:totp:guessing", "info", user, ctx, details={"consecutive_failures": n})
            self._notify(user, lambda: (
                _("Wrong codes for your authenticator app"),
                _("Someone entered %(n)s wrong authenticator codes in a row for your %(service)s account (last from "
                  "IP %(ip)s). Whoever it is got past your password.", n=n, service=self._service(), ip=self._ip(ctx))
                + "\n\n" + _("If this was not you, reset your password now. After %(limit)s wrong codes in a row we "
                              "switch the authenticator app off until you use a recovery code or reset your password.",
                              limit=cfg.totp_lock_failures)))
        if n >= cfg.totp_lock_failures and self.totp.suspend(user):
            self._audit("mfa:totp:suspend", "success", user, ctx, reason="too many consecutive wrong codes",
                        details={"consecutive_failures": n})
            self._notify(user, lambda: (
                _("Your authenticator app was switched off"),
                _("After %(n)s wrong authenticator codes in a row, codes from your authenticator app no longer sign "
                  "in to your %(service)s account. Someone who knows your password has been guessing them.",
                  n=n, service=self._service())
                + "\n\n" + _("Reset your password now (that switches the app back on), or sign in with a recovery "
                              "code or a passkey.")))

    def check_recovery(self, user: User, code: str, ctx: RequestContext, purpose: str) -> bool:
        try:
            ok = self.recovery.use(user, code)
        except Throttled:
            self._audit("mfa:recovery:use", "failure", user, ctx, reason="throttled", details={"purpose": purpose})
            raise
        self._audit("mfa:recovery:use", "success" if ok else "failure", user, ctx,
                    reason=None if ok else "wrong or used code", details={"purpose": purpose})
        if ok:
            self.store.clear_misses(user.id)
            if self.totp.unsuspend(user):
                self._audit("mfa:totp:unsuspend", "success", user, ctx, reason="recovery code used")
            left = self.recovery.remaining(user)
            self._notify(user, lambda: (
                _("A recovery code was used"),
                _("A recovery code was just used to sign in to your %(service)s account (from IP %(ip)s).",
                  service=self._service(), ip=self._ip(ctx)) + " "
                + ngettext("%(num)d unused code remains.", "%(num)d unused codes remain.", left)
                + "\n\n" + _("If this was not you, reset your password now and contact support.")))
        return ok

    def check_webauthn(self, user: User | None, binding: str, credential: dict, ctx: RequestContext,
                       purpose: str):
        """Returns (credential row, user_verified) or None; every outcome is audited."""
        try:
            row, uv = self.webauthn.authenticate(binding, credential, user=user)
        except SignCountRegression as exc:
            owner = self.db.session.get(User, exc.credential.user_id)
            self._audit("mfa:webauthn:signcount", "failure", owner, ctx,
                        reason="sign count did not increase (possible cloned authenticator)",
                        details={"credential": exc.credential.id, "stored": exc.stored, "received": exc.received})
            if owner is not None:
                self._notify(owner, lambda: (
                    _("A security key or passkey may have been copied"),
                    _("The security key or passkey “%(name)s” of your %(service)s account just answered with a "
                      "signature counter lower than before, which is what a copy of the key does (from IP %(ip)s). "
                      "We no longer accept it.", name=exc.credential.name, service=self._service(), ip=self._ip(ctx))
                    + "\n\n" + _("If you still have it, remove it on your account page and add it again; then reset "
                                  "your password.")))
            return None
        except CredentialSuspended as exc:
            self._audit("mfa:webauthn:verify", "failure", self.db.session.get(User, exc.credential.user_id), ctx,
                        reason=exc.reason[:255], details={"purpose": purpose, "credential": exc.credential.id})
            return None
        except WebAuthnError as exc:
            self._audit("mfa:webauthn:verify", "failure", user, ctx, reason=exc.reason[:255],
                        details={"purpose": purpose})
            return None
        owner = user or self.db.session.get(User, row.user_id)
        self._audit("mfa:webauthn:verify", "success", owner, ctx,
                    details={"purpose": purpose, "credential": row.id, "uv": uv})
        return row, uv

    # --- finishing ---------------------------------------------------------------------------------------------------
    def complete_login(self, token: str, method: str, ctx: RequestContext, *, user_verified: bool = False,
                       user: User | None = None) -> Completed | None:
        """Consume the pending record (GETDEL: one winner) and finish through the pipeline's last stage
        (``LoginService.complete``: new session token, receipts, risk learning, new-sign-in notice)."""
        data = self.store.consume_pending(token)
        if not data:
            return None
        if user is None:
            user = self.db.session.get(User, data["uid"])
        elif data.get("uid") not in (None, user.id):
            return None
        if user is None or not user.is_active:
            return None
        if data.get("uid") is None:
            # Passkey login skipped the password pipeline; the risk engine still gets its say (no password, so no
            # breach signal). A deny stops it here; step_up is already met by a user-verified passkey.
            decision = self.login.risk.score(user, ctx, breached=False)
            if decision.action == "deny":
                self._audit("account:login:denied", "failure", user, ctx, details={"score": decision.score},
                            reason="; ".join(r.text for r in decision.reasons)[:255] or "risk deny (passkey)")
                return None
        generation = None
        if data.get("uid") is not None:
            d = data.get("decision") or {}
            decision = Decision(d.get("action", "allow"), d.get("score", 0.0),
                                tuple(Reason(c, t) for c, t in d.get("reasons", [])))
            gen = data.get("gen") or {}
            if not gen.get("va") or gen.get("pw") != _fingerprint(user.password_hash):
                # The password this login proved is no longer the account's (changed, reset, locked down).
                self._audit("account:login:stale", "failure", user, ctx,
                            reason="credentials changed or sessions ended during this sign-in")
                return None
            # The hash just read is the one proven; sessions.issue re-checks both under the user row's lock.
            generation = Generation(dt.datetime.fromisoformat(gen["va"]), user.password_hash)
        methods = tuple(data.get("methods") or ()) + (AMR[method],) + (("uv",) if user_verified else ())
        if method == "email" and not data.get("email"):
            return None  # an e-mailed code finishes only a login that was offered one (no factor of its own)
        aal = 2 if (AAL2_METHODS.intersection(methods) or user_verified) else 1
        result = self.login.complete(user, ctx, decision, aal=aal, methods=methods, generation=generation)
        if result.session is None:
            return None
        return Completed(user, result.session, data.get("next"), method)

    def begin_passkey(self) -> str:
        """An anonymous pending record: what a username-less passkey challenge is bound to."""
        return self.store.create_pending({"uid": None, "methods": [], "next": None,
                                          "created": self.clock.timestamp(), "risk": "allow"})

    def step_up(self, session, user: User, method: str, ctx: RequestContext, *, user_verified: bool = False):
        """Re-issue the session at aal2 with a NEW token and revoke the old one (ASVS 7.2.4)."""
        methods = tuple(dict.fromkeys(tuple(m for m in session.methods if m) + (AMR[method],)))
        issued = self.sessions.issue(user, ip=ctx.ip, user_agent=ctx.user_agent, aal=2, methods=methods,
                                     login_id=getattr(session, "login_id", None))  # the same login: the same sid
        self._replace_session(user, session, issued, "step_up")
        self._audit("mfa:stepup:success", "success", user, ctx, details={"method": method, "aal": 2})
        return issued

    def _replace_session(self, user: User, old, issued, reason: str) -> None:
        """A session re-issued under a new token: what is bound to the old one moves first (the DBSC binding, through
        ``session_reissue_listeners``), then the old one is revoked."""
        for carry in self.session_reissue_listeners:
            carry(old.id, token_hash(issued.token))
        self.sessions.revoke(user, old.id, reason)

    # --- in-session step-up of a session suspended for drift (authsvc.risk.drift "reauth") -----------------------
    def resume_session(self, session, user: User, method: str, ctx: RequestContext, *,
                       user_verified: bool = False) -> bool:
        """The owner of a suspended session re-proved ``method``: the session resumes in place (same token, so what
        it minted and its DBSC binding stay), re-based on this network and browser, with aal/amr/auth_time
        refreshed. False when there was nothing to resume (a racing step-up won, or the session ended meanwhile)."""
        methods = tuple(dict.fromkeys(tuple(m for m in session.methods if m)
                                      + ((AMR[method],) if method in AMR else ("pwd",))
                                      + (("uv",) if user_verified else ())))
        aal = 2 if (AAL2_METHODS.intersection(methods) or user_verified) else session.aal
        resumed = self.sessions.resume(user, session.id, ip=ctx.ip, user_agent=ctx.user_agent, aal=aal,
                                       methods=methods)
        self._audit("session:drift:stepup:ok" if resumed else "session:drift:stepup:fail",
                    "success" if resumed else "failure", user, ctx,
                    reason=None if resumed else "nothing to resume (already resumed or ended)",
                    details={"method": method, "aal": aal, "session": session.id[:12]})
        return resumed

    def resume_failed(self, session, user: User, method: str, ctx: RequestContext) -> bool:
        """A wrong proof for a suspended session: audited, counted; True when that was the last allowed and the
        session was ended and contained (what it minted, remembered devices; the owner is told)."""
        n, ended = self.sessions.step_up_failed(user, session.id)
        self._audit("session:drift:stepup:fail", "failure", user, ctx, reason="wrong proof",
                    details={"method": method, "failures": n, "session": session.id[:12]})
        if ended:
            from authsvc.risk.drift import END, Drift, DriftReason

            self.devices.revoke_all(user)  # a thief who copied the cookie jar holds the device cookie too
            drift = Drift(END, (DriftReason("stepup_failed", f"the session moved and then {n} wrong answers were "
                                                             "given when we asked to confirm it was you"),))
            if self.sessions.drift_listener is not None:
                self.sessions.drift_listener(user.id, session.id, drift, ctx.ip, ctx.user_agent)
        return ended

    def reauthenticate_password(self, session, user: User, password: str, ctx: RequestContext, hasher):
        """Fresh proof for an account without factors: the password again, then a new token at the same level."""
        self.store.precheck(user.id)
        generation = Generation.of(user, user.password_hash)  # what this password proves, checked at issue
        if not hasher.verify(user.password_hash, password).ok:
            self.store.record_failure(user.id)
            self._audit("account:reauth:failure", "failure", user, ctx, reason="bad_password")
            return None
        self.store.clear_failures(user.id)
        try:
            issued = self.sessions.issue(user, ip=ctx.ip, user_agent=ctx.user_agent, aal=session.aal,
                                         methods=tuple(session.methods) or ("pwd",), generation=generation,
                                         login_id=getattr(session, "login_id", None))
        except StaleCredentials:  # the password changed (or every session ended) while this one was checked
            self._audit("account:reauth:failure", "failure", user, ctx, reason="credentials changed meanwhile")
            return None
        self._replace_session(user, session, issued, "reauthenticated")
        self._audit("account:reauth:success", "success", user, ctx)
        return issued

    # --- freshness and step-up, for views and for the OAuth engineer ---------------------------------------------------
    def is_fresh(self, session) -> bool:
        """A password or factor was proven within ``fresh_auth_seconds``: every proof issues a new session, so the
        session's creation time is the time of the last proof."""
        age = (self.clock.now() - session.created_at).total_seconds()
        return age <= self.settings.fresh_auth_seconds

    def may_change_factors(self, session, user: User) -> bool:
        """Adding, replacing or removing a factor (or making new recovery codes) needs a recent proof — and, when
        the account has a second factor, a session that proved one (aal2). A password alone (a remembered device,
        a session re-issued by a password change) is what an attacker with the password has."""
        if session is None or not self.is_fresh(session):
            return False
        return session.aal >= 2 or not self.has_factors(user)

    def needs_step_up(self, session, *, min_aal: int = 2, max_age: int | None = None) -> bool:
        """For OAuth ``acr_values``/``max_age`` and sensitive actions: True → send the user to ``step_up_url``."""
        if session is None or session.aal < min_aal:
            return True
        return max_age is not None and (self.clock.now() - session.created_at).total_seconds() > max_age

    @staticmethod
    def step_up_url(next_url: str) -> str:
        return "/mfa/step-up?" + urlencode({"next": next_url})

    # --- trusted devices ----------------------------------------------------------------------------------------------
    def is_trusted_device(self, user: User, request) -> bool:
        from authsvc.mfa.devices import DEVICE_COOKIE

        row = self.devices.lookup(request.cookies.get(DEVICE_COOKIE))
        return row is not None and row.user_id == user.id

    def trust_device(self, user: User, ctx: RequestContext) -> str:
        row, token = self.devices.create(user, ctx.user_agent)
        self._audit("mfa:device:remember", "success", user, ctx, details={"device": row.id, "name": row.name})
        return token

    def revoke_device(self, user: User, device_id: int, actor: User | None, ctx: RequestContext) -> bool:
        """Revoke one trusted device; the admin panel calls this with the admin as ``actor``."""
        ok = self.devices.revoke(user, device_id)
        if ok:
            self._audit("mfa:device:revoke", "success", user, ctx, actor=actor, details={"device": device_id})
        return ok

    # --- enrolment and removal (views check freshness first) -------------------------------------------------------
    def confirm_totp(self, user: User, code: str, ctx: RequestContext, *, aal: int = 1) -> bool:
        ok = self.totp.confirm(user, code, aal=aal)
        self._audit("mfa:totp:enrol", "success" if ok else "failure", user, ctx,
                    reason=None if ok else "wrong code")
        if ok:
            self._notify(user, lambda: (
                _("Authenticator app added"),
                _("An authenticator app was added to your %(service)s account (from IP %(ip)s).",
                  service=self._service(), ip=self._ip(ctx))
                + "\n\n" + _("If this was not you, reset your password now.") + self._unconfirmed_advice(aal)))
        return ok

    def remove_totp(self, user: User, ctx: RequestContext) -> bool:
        ok = self.totp.remove(user)
        if ok:
            self._audit("mfa:totp:remove", "success", user, ctx)
            self._notify(user, lambda: (
                _("Authenticator app removed"),
                _("The authenticator app was removed from your %(service)s account (from IP %(ip)s).",
                  service=self._service(), ip=self._ip(ctx))
                + "\n\n" + _("If this was not you, reset your password now.")))
            self._after_factor_removed(user, ctx)
        return ok

    def regenerate_recovery(self, user: User, ctx: RequestContext, *, aal: int = 1) -> list[str]:
        codes = self.recovery.generate(user, aal=aal)
        self._audit("mfa:recovery:generate", "success", user, ctx, details={"count": len(codes)})
        self._notify(user, lambda: (
            _("New recovery codes"),
            _("New recovery codes were created for your %(service)s account; the old ones no longer work (from IP "
              "%(ip)s).", service=self._service(), ip=self._ip(ctx))
            + "\n\n" + _("If this was not you, reset your password now.")))
        return codes

    def register_webauthn(self, user: User, binding: str, credential: dict, name: str, ctx: RequestContext, *,
                          aal: int = 1):
        try:
            row = self.webauthn.register(user, binding, credential, name, aal=aal)
        except WebAuthnError as exc:
            self._audit("mfa:webauthn:register", "failure", user, ctx, reason=exc.reason[:255])
            return None
        self._audit("mfa:webauthn:register", "success", user, ctx, details={"credential": row.id, "name": row.name})
        self._notify(user, lambda: (
            _("Security key or passkey added"),
            _("The security key or passkey “%(name)s” was added to your %(service)s account (from IP %(ip)s).",
              name=row.name, service=self._service(), ip=self._ip(ctx))
            + "\n\n" + _("If this was not you, reset your password now.") + self._unconfirmed_advice(aal)))
        return row

    def rename_webauthn(self, user: User, cred_id: int, name: str, ctx: RequestContext) -> bool:
        done = self.webauthn.rename(user, cred_id, name)
        if done is None:
            return False
        old, row = done
        if old != row.name:
            self._audit("mfa:webauthn:rename", "success", user, ctx,
                        details={"credential": cred_id, "from": old, "to": row.name})
        return True

    def remove_webauthn(self, user: User, cred_id: int, ctx: RequestContext) -> bool:
        row = self.webauthn.remove(user, cred_id)
        if row is None:
            return False
        self._audit("mfa:webauthn:remove", "success", user, ctx, details={"credential": cred_id, "name": row.name})
        self._notify(user, lambda: (
            _("Security key or passkey removed"),
            _("The security key or passkey “%(name)s” was removed from your %(service)s account (from IP %(ip)s).",
              name=row.name, service=self._service(), ip=self._ip(ctx))
            + "\n\n" + _("If this was not you, reset your password now.")))
        self._after_factor_removed(user, ctx)
        return True

    def _after_factor_removed(self, user: User, ctx: RequestContext) -> None:
        if not self.has_factors(user):
            # No factor left: recovery codes and remembered devices would only be confusing leftovers.
            self.recovery.remove_all(user)
            self.devices.revoke_all(user)

    # --- "this wasn't me" and password reset: factors an attacker with the password may have planted -------------
    def unconfirmed_since(self, user: User) -> dt.datetime | None:
        """The creation time of the oldest *unconfirmed* factor, or None.

        Unconfirmed = enrolled by a session that proved only the password (``enrolled_aal`` 1, or NULL for rows from
        before it was recorded), less than ``unconfirmed_days`` ago. Only an account without a second factor can
        enrol one that way (``may_change_factors``), so every factor created since then descends from it: the
        whole chain goes. Older ones count as confirmed: the owner was e-mailed when each was added and had those
        days to react — and a reset (which whoever holds the mailbox can do) must not strip an established factor."""
        horizon = self.clock.now() - dt.timedelta(days=self.settings.unconfirmed_days)
        times = []
        for model in (TotpCredential, WebAuthnCredential, RecoveryCode):
            times.append(self.db.session.execute(select(func.min(model.created_at)).where(
                model.user_id == user.id, model.created_at >= horizon,
                or_(model.enrolled_aal.is_(None), model.enrolled_aal < 2))).scalar())
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def remove_factors_since(self, user: User, since: dt.datetime, ctx: RequestContext | None, *,
                             reason: str) -> FactorReview:
        """Remove every factor created at or after ``since`` (and the recovery codes too once no factor is left).
        Audited as ``mfa:factors:removed``; the caller tells the owner (``FactorReview``)."""
        removed: list[str] = []
        totp = self.totp.credential(user)
        if totp is not None and totp.created_at >= since:
            removed.append(f"Authenticator app, added {totp.created_at:%Y-%m-%d %H:%M} UTC")
            self.db.session.delete(totp)
        for row in self.webauthn.credentials(user):
            if row.created_at >= since:
                removed.append(f"Passkey or security key “{row.name}”, added {row.created_at:%Y-%m-%d %H:%M} UTC")
                self.db.session.delete(row)
        codes = self.db.session.execute(delete(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.created_at >= since)).rowcount
        if codes:
            removed.append("Recovery codes created since then")
        self.db.session.commit()
        if not self.has_factors(user):
            self.recovery.remove_all(user)
        kept = self.describe_factors(user)
        if removed:
            self._audit("mfa:factors:removed", "success", user, ctx, reason=reason,
                        details={"since": since.isoformat(), "removed": removed})
        return FactorReview(removed, kept, since)

    def describe_factors(self, user: User) -> list[str]:
        out = []
        totp = self.totp.credential(user)
        if totp is not None:
            out.append(f"Authenticator app, added {totp.created_at:%Y-%m-%d}")
        out += [f"Passkey or security key “{r.name}”, added {r.created_at:%Y-%m-%d}"
                for r in self.webauthn.credentials(user)]
        left = self.recovery.remaining(user)
        if left:
            out.append(f"{left} unused recovery code{'s' if left != 1 else ''}")
        return out

    def on_lockdown(self, user: User, reported_at: dt.datetime, ctx: RequestContext | None = None) -> FactorReview:
        """The owner reported a sign-in ("this wasn't me"): every factor created since that sign-in — or since the
        oldest unconfirmed factor, if earlier — goes, and every remembered device. (A passkey signs in by itself:
        switching the password off alone would leave the attacker in.)"""
        unconfirmed = self.unconfirmed_since(user)
        since = min(reported_at, unconfirmed) if unconfirmed is not None else reported_at
        review = self.remove_factors_since(user, since, ctx, reason="reported compromise")
        self.devices.revoke_all(user)
        self.store.clear_failures(user.id)
        self.store.clear_misses(user.id)
        return review

    def on_password_reset(self, user: User, ctx: RequestContext | None = None) -> FactorReview:
        """A password reset by e-mail: unconfirmed factors (see ``unconfirmed_since``) go, remembered devices are
        forgotten, and a TOTP suspended after too many wrong codes is switched back on."""
        since = self.unconfirmed_since(user)
        review = self.remove_factors_since(user, since, ctx, reason="password reset") if since is not None \
            else FactorReview([], self.describe_factors(user), None)
        self.devices.revoke_all(user)
        if self.totp.unsuspend(user):
            self._audit("mfa:totp:unsuspend", "success", user, ctx, reason="password reset")
        self.store.clear_misses(user.id)
        return review

    # --- admin --------------------------------------------------------------------------------------------------------
    def reset_factors(self, user: User, actor: User | None, ctx: RequestContext | None = None) -> dict:
        """Remove every factor and trusted device of ``user`` (lost phone, support call). Audited; user notified."""
        ctx = ctx or RequestContext(ip=None, user_agent=None)
        removed = {"totp": int(self.totp.remove(user)), "webauthn": 0, "recovery": self.recovery.remaining(user),
                   "devices": self.devices.revoke_all(user)}
        for row in self.webauthn.credentials(user):
            self.webauthn.remove(user, row.id)
            removed["webauthn"] += 1
        self.recovery.remove_all(user)
        self.store.clear_failures(user.id)
        self.store.clear_misses(user.id)
        self._audit("mfa:factors:reset", "success", user, ctx, actor=actor, details=removed)
        self._notify(user, lambda: (
            _("Your sign-in factors were reset"),
            _("An administrator removed every second factor (authenticator app, security keys, passkeys, recovery "
              "codes, remembered devices) from your %(service)s account. You can sign in with your password and set "
              "up a new factor.", service=self._service())
            + "\n\n" + _("If you did not ask for this, contact support.")))
        return removed

    def clear_clone_flag(self, user: User, cred_id: int, actor: User | None, ctx: RequestContext | None = None) -> bool:
        """An administrator vouches for a credential flagged as a possible clone (``authsvc mfa unflag``)."""
        row = self.db.session.get(WebAuthnCredential, cred_id)
        if row is None or row.user_id != user.id or row.flagged_at is None:
            return False
        row.flagged_at = None
        self.db.session.commit()
        self._audit("mfa:webauthn:unflag", "success", user, ctx or RequestContext(ip=None, user_agent=None),
                    actor=actor, details={"credential": cred_id, "name": row.name})
        return True

    # --- plumbing -------------------------------------------------------------------------------------------------------
    def _unconfirmed_advice(self, aal: int) -> str:
        if aal >= 2 or self.settings.unconfirmed_days <= 0:
            return ""
        days = self.settings.unconfirmed_days
        return " " + ngettext("Only your password vouched for it, so a password reset in the next %(num)d day "
                              "removes it again.",
                              "Only your password vouched for it, so a password reset in the next %(num)d days "
                              "removes it again.", days)

    def _service(self) -> str:
        return self.settings.totp_issuer

    def _audit(self, tag, outcome, user, ctx, *, actor=None, reason=None, details=None, defer=None):
        event = dict(tag=tag, outcome=outcome, actor_id=(actor.id if actor else (user.id if user else None)),
                     subject_id=user.id if user else None, ip=ctx.ip if ctx else None,
                     user_agent=ctx.user_agent if ctx else None, reason=reason, details=details)
        if defer is not None:
            defer.append(event)
        else:
            self.audit.record(**event)

    @staticmethod
    def _ip(ctx) -> str:
        return (ctx.ip if ctx is not None else None) or _("unknown")

    def _notify(self, user: User, build) -> None:
        """``build()`` → (subject, body), called in the owner's language (their setting, not the requester's)."""
        with mail_language(user):
            subject, body = build()
            self.mailer.send(user.email, subject, body)


def device_cookie_max_age(days: int) -> int:
    return int(dt.timedelta(days=days).total_seconds())
