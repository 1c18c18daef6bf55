"""LoginService: the one pipeline every password login goes through.

    defense.precheck → hasher.verify (dummy for unknown; credential generation captured) → defense.record_failure
    → breach check → risk.score → second factor (if the decision or the account asks; a mailed code when the
    account has none) → sessions.issue (refused if the generation changed meanwhile) → audit → defense.record_success
    → risk.learn (proven logins only) → notify

Each stage is a small service chosen in ``authsvc.services``; stages that later issues build (risk engine,
MFA) are present as explicit null services so the order lives here and nowhere else.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy import bindparam, insert, select, update

from authsvc import metrics
from authsvc.errors import Throttled
from authsvc.models import LoginEvent, User
from authsvc.sessions import Generation, StaleCredentials


@dataclass(frozen=True)
class RequestContext:
    ip: str | None
    user_agent: str | None
    device_id: str | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class Decision:
    action: str  # allow | step_up | deny
    score: float = 0.0
    reasons: tuple[Reason, ...] = ()


class RiskScorer(Protocol):
    def score(self, user: User, ctx: RequestContext, *, breached: bool, velocity: dict | None = None,
              familiar: bool = False) -> Decision:
        """``familiar``: the throttle's verdict — the account fully signed in from this network before, or the
        request carries its trusted device."""
        ...

    def learn(self, user: User, ctx: RequestContext) -> None: ...


class NullRiskScorer:
    """No risk engine configured: every correct password is allowed, with no reasons."""

    def score(self, user: User, ctx: RequestContext, *, breached: bool, velocity: dict | None = None,
              familiar: bool = False) -> Decision:
        return Decision("allow")

    def learn(self, user: User, ctx: RequestContext) -> None:
        return None


class SecondFactor(Protocol):
    def required(self, user: User, decision: Decision, ctx: RequestContext | None = None, *,
                 defer: list | None = None) -> bool: ...


class NullSecondFactor:
    """No MFA methods exist yet, so none can be required."""

    def required(self, user: User, decision: Decision, ctx: RequestContext | None = None, *,
                 defer: list | None = None) -> bool:
        return False


# Outcomes. The three failure causes (unknown user, wrong password, disabled) share one outcome on purpose.
SUCCESS = "success"
INVALID = "invalid_credentials"
UNVERIFIED = "email_unverified"
MFA_REQUIRED = "mfa_required"
DENIED = "denied"


@dataclass
class LoginResult:
    outcome: str
    user: User | None = None
    token: str | None = None
    session: object | None = None
    decision: Decision | None = None
    must_change_password: bool = False
    reasons: list[Reason] = field(default_factory=list)
    generation: Generation | None = None  # what the password proved (for a pending second step to carry on)


class LoginService:
    def __init__(self, *, db, hasher, throttle, breach, risk, mfa, sessions, audit, clock, alerts=None,
                 require_verified_email=True):
        self.db, self.hasher, self.throttle, self.breach = db, hasher, throttle, breach
        self.risk, self.mfa, self.sessions, self.audit = risk, mfa, sessions, audit
        self.clock, self.alerts = clock, alerts
        self.require_verified_email = require_verified_email

    def login(self, email: str, password: str, ctx: RequestContext) -> LoginResult:
        """The password login pipeline (below), counted for the operators' metrics (authsvc.metrics)."""
        start = time.perf_counter()
        try:
            result = self._login(email, password, ctx)
        except Throttled as exc:
            exc.account_email = normalize_email(email)  # the 429 handler notes the refusal on that account (bounded)
            metrics.LOGINS.labels("throttled").inc()
            metrics.THROTTLED.labels(exc.scope).inc()
            raise
        metrics.LOGIN_SECONDS.observe(time.perf_counter() - start)
        metrics.LOGINS.labels(result.outcome).inc()
        if result.decision is not None:
            metrics.RISK.labels(result.decision.action).inc()
        return result

    def _login(self, email: str, password: str, ctx: RequestContext) -> LoginResult:
        email = normalize_email(email)
        # 1. Cheap refusals first: a throttled attempt never reaches argon2 (raises Throttled → 429). Nothing is
        #    written to SQL for it either, so a flood costs Redis round trips, not database writes.
        verdict = self.throttle.precheck(email, ctx, password)

        # 2. Same argon2 work whatever the account state: unknown and disabled accounts verify against the
        #    real or dummy hash too, so neither the answer nor its timing tells them apart.
        user = self.db.session.execute(_USER_BY_EMAIL, {"p_email": email}).scalar_one_or_none()
        # What this password proves is the hash as it is now, under this cut-off: the session is only issued if
        # both are still the same then (sessions.issue compares them under a lock), so a password change, reset
        # or "this wasn't me" that lands in between is never outrun.
        generation = Generation.of(user, user.password_hash) if user is not None else None
        result = self.hasher.verify(user.password_hash if user else None, password)
        ok = result.ok and user is not None and user.is_active

        # 3. Count the outcome (only failures are charged to the limiters).
        if not ok:
            counts = self.throttle.record_failure(email, ctx, user_exists=user is not None, password=password,
                                                  familiar=verdict.familiar)
            why = "unknown_user" if user is None else ("account_disabled" if not user.is_active else "bad_password")
            if user is not None:
                self._event(user, ctx, "failed", commit=False)  # committed with the audit event below
            self.audit.record("account:login:failure", "failure", subject_id=user.id if user else None,
                              ip=ctx.ip, user_agent=ctx.user_agent, reason=why,
                              details={"familiar": verdict.familiar,
                                       "account_failures": counts.get("account_consecutive")})
            return LoginResult(INVALID)
        # Not yet a success for the throttle: the streak is cleared and the place remembered as familiar only when
        # the whole login succeeds (complete()), never for a right password that is stopped later.

        if result.needs_rehash:  # parameters changed since this hash was made: upgrade it transparently
            new_hash = self.hasher.hash(password)
            res = self.db.session.execute(_REHASH, {"p_uid": user.id, "p_old": generation.password_hash,
                                                    "p_new": new_hash})
            self.db.session.commit()
            if res.rowcount != 1:  # the password changed meanwhile: what was proven is gone
                return LoginResult(INVALID)
            self.db.session.refresh(user)
            generation = Generation(generation.valid_after, new_hash)
            self.audit.record("account:password:rehash", "success", subject_id=user.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, details=self.hasher.parameters)

        if not user.email_verified_at and self.require_verified_email:
            # Only reachable with the right password, so it reveals nothing to a guesser.
            self._event(user, ctx, "unverified")
            self.audit.record("account:login:unverified", "failure", subject_id=user.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="email_unverified")
            return LoginResult(UNVERIFIED, user=user)

        # 4. Breached at login: the password is right but public, so the account is at risk.
        breached = self.breach.is_breached(password)
        if breached:
            metrics.BREACHED.inc()
        if breached and not user.must_change_password:
            user.must_change_password, user.must_change_reason = True, "breached"
            self.db.session.commit()
            self.audit.record("account:password:breached", "info", subject_id=user.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="password found in breach corpus at login")

        # 5. Risk decision with reasons.
        decision = self.risk.score(user, ctx, breached=breached, velocity=verdict.counts, familiar=verdict.familiar)
        if decision.action == "deny":
            self._proven_stop(email, user, ctx, denied=True)  # throttled per account × network; owner told
            self._event(user, ctx, "denied", decision)
            self.audit.record("account:login:denied", "failure", subject_id=user.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="; ".join(r.text for r in decision.reasons)[:255],
                              details={"score": decision.score})
            return LoginResult(DENIED, user=user, decision=decision, reasons=list(decision.reasons))

        # 6. Second factor when the decision or the account asks for one. What the MFA stage wants audited (a
        #    trusted device skipping it, a step-up no factor can meet) is written with this login's own events.
        notes: list[dict] = []
        if self.mfa.required(user, decision, ctx, defer=notes):  # ctx: a trusted device may skip it
            self._proven_stop(email, user, ctx, denied=False)
            self._event(user, ctx, "mfa_required", decision, commit=False)
            self.audit.record_many(notes + [dict(
                tag="account:login:mfa_required", outcome="info", subject_id=user.id, ip=ctx.ip,
                user_agent=ctx.user_agent, details={"score": decision.score,
                                                    "reasons": [r.code for r in decision.reasons]})])
            return LoginResult(MFA_REQUIRED, user=user, decision=decision, reasons=list(decision.reasons),
                               must_change_password=user.must_change_password, generation=generation)

        # 7. Session, audit, learning, notice.
        return self.complete(user, ctx, decision, aal=1, methods=("pwd",), notes=notes, generation=generation)

    def complete(self, user: User, ctx: RequestContext, decision: Decision, *, aal: int,
                 methods: tuple[str, ...], notes: list[dict] | None = None,
                 generation: Generation | None = None) -> LoginResult:
        """The last stage, shared by password logins and the second-factor step that finishes one. ``notes``: audit
        events of earlier stages, written in this stage's transaction. ``generation``: what the proof saw (see
        ``sessions.issue``); a login whose credentials were replaced meanwhile ends here as invalid."""
        new_place = self._is_new_place(user, ctx)

        def receipts(sid: str) -> None:
            # Session row, receipt and audit event: one transaction, one commit (measured: a PostgreSQL commit is
            # the largest cost of a login after argon2).
            self._event(user, ctx, "success", decision, session_id=sid, method="+".join(methods), commit=False)
            self.audit.record_many((notes or []) + [dict(
                tag="account:login:success", outcome="success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                user_agent=ctx.user_agent, details={"score": decision.score, "aal": aal,
                                                    "reasons": [r.code for r in decision.reasons]})], commit=False)

        try:
            issued = self.sessions.issue(user, ip=ctx.ip, user_agent=ctx.user_agent, aal=aal, methods=methods,
                                         before_commit=receipts, generation=generation)
        except StaleCredentials:
            self.audit.record_many((notes or []) + [dict(
                tag="account:login:stale", outcome="failure", subject_id=user.id, ip=ctx.ip,
                user_agent=ctx.user_agent, reason="credentials changed or sessions ended during this sign-in")])
            return LoginResult(INVALID)
        # The whole login succeeded: now (and only now) the throttle clears the streak and remembers this place,
        # and this browser's trusted-device id only if that device is the account's own.
        own = ctx if not ctx.device_id or self._owns_device(user, ctx.device_id) else replace(ctx, device_id=None)
        self.throttle.record_success(user.email, own)
        if self.proven(decision, methods):
            # Only a login that was fully proven teaches the engine what this owner looks like: one the engine
            # allowed, or one whose step-up was met by a second step. A step-up let through without one is not.
            self.risk.learn(user, ctx)
        if self.alerts is not None and (new_place or any(r.code in ("new_device", "new_country")
                                                         for r in decision.reasons)):
            self.alerts.new_sign_in(user, ctx, decision)
        return LoginResult(SUCCESS, user=user, token=issued.token, session=issued, decision=decision,
                           must_change_password=user.must_change_password, reasons=list(decision.reasons))

    def _proven_stop(self, email: str, user: User, ctx: RequestContext, *, denied: bool) -> None:
        """The right password that gets no session (risk deny, second factor): count it per account × network, so a
        flood of them is refused before hashing (the precheck) and writes no rows; tell the owner, once, that someone
        has their password (issue 19). Beyond the limit (parallel requests that all passed the precheck): 429."""
        seen = self.throttle.record_proven_stop(email, ctx, denied=denied)
        if seen.get("notify") and self.alerts is not None:
            self.alerts.password_used(user, ctx, denied=denied)
        if seen.get("over"):
            raise Throttled(seen.get("retry_after", 1), "account_password_stopped")

    @staticmethod
    def proven(decision: Decision, methods: tuple[str, ...]) -> bool:
        """Whether a finished login may be learned from: allowed by the engine, or its step-up met by a second
        step (any method beyond the password: a factor, a recovery code, an e-mailed code, a passkey)."""
        return decision.action == "allow" or any(m not in ("pwd", "device") for m in methods)

    def _owns_device(self, user: User, device_id: str) -> bool:
        devices = getattr(self.mfa, "devices", None)
        return bool(devices is not None and devices.is_trusted_id(user, device_id))

    # --- receipts -----------------------------------------------------------------------------------------------------
    def _event(self, user: User, ctx: RequestContext, outcome: str, decision: Decision | None = None, *,
               session_id: str | None = None, method: str = "password", commit: bool = True) -> None:
        self.db.session.execute(_INSERT_RECEIPT, dict(
            user_id=user.id, occurred_at=self.clock.now(), outcome=outcome, method=method,
            ip=ctx.ip, user_agent=(ctx.user_agent or "")[:512] or None, device_id=ctx.device_id,
            country=getattr(decision, "country", None), asn=getattr(decision, "asn", None),
            score=decision.score if decision else None, decision=decision.action if decision else None,
            reasons=json.dumps([{"code": r.code, "text": r.text} for r in decision.reasons]) if decision else None,
            session_id=session_id,
        ))
        if commit:
            self.db.session.commit()

    def _is_new_place(self, user: User, ctx: RequestContext) -> bool:
        """A first sign-in from this browser on this network (or this trusted device), among earlier successes.

        The risk engine's reasons (new_device / new_country) cover this when it is on; this check keeps the notice
        working without it. The very first login of an account is not "new" — there is nothing to compare with.
        """
        from authsvc.defense import prefix_of

        rows = self.db.session.execute(_RECENT_PLACES, {"p_uid": user.id}).all()
        if not rows:
            return False
        if ctx.device_id and any(r.device_id == ctx.device_id for r in rows):
            return False
        here = prefix_of(ctx.ip)
        return not any(prefix_of(r.ip) == here and r.user_agent == ctx.user_agent for r in rows)


# Statements every login runs, built once (building a select costs ~0.1 ms of CPU each time; measured). The receipt
# is a Core INSERT, not an ORM object: nothing reads it back in the request.
_USER_BY_EMAIL = select(User).where(User.email == bindparam("p_email"))
_INSERT_RECEIPT = insert(LoginEvent.__table__)
_REHASH = (update(User.__table__).where(User.id == bindparam("p_uid"), User.password_hash == bindparam("p_old"))
           .values(password_hash=bindparam("p_new")))
_RECENT_PLACES = (select(LoginEvent.ip, LoginEvent.user_agent, LoginEvent.device_id)
                  .where(LoginEvent.user_id == bindparam("p_uid"), LoginEvent.outcome == "success")
                  .order_by(LoginEvent.occurred_at.desc()).limit(200))


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()
