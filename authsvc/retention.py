"""Retention (issue 20): prune what is kept by age, in bounded batches, under the ``retention_*`` settings.

* receipts (``login_events``) older than ``retention_receipts_days``;
* session rows (``user_sessions``) whose session ended more than ``retention_sessions_days`` ago — counted from the
  latest possible end, creation + ``session_absolute_timeout``, so a live session is never touched;
* e-mail tokens (used, expired, decoys) and OAuth grant families expired more than ``retention_tokens_days`` ago;
* audit events older than ``retention_audit_days``: the chain then starts at a signed anchor
  (``AuditLog.prune_before``), so ``authsvc audit verify`` and the dashboard verify from the oldest kept row and a
  deletion nobody signed still fails them.

Each DELETE takes at most ``retention_batch`` rows and commits (no table-wide transaction). One run at a time across
hosts: a Redis lock (``retention:lock``); without Redis the run refuses (never prunes unlocked). Every run is audited
as ``system:retention:prune`` with its counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from authsvc.audit import ChainBroken
from authsvc.models import EmailToken, LoginEvent, SecurityEvent, UserSession
from authsvc.models.oauth import OAuthGrant

log = logging.getLogger(__name__)
LOCK_KEY = "retention:lock"


@dataclass(frozen=True)
class Policy:
    receipts_days: int = 180
    sessions_days: int = 90
    tokens_days: int = 7
    audit_days: int = 400
    batch: int = 5000

    @classmethod
    def from_settings(cls, s) -> "Policy":
        return cls(s.retention_receipts_days, s.retention_sessions_days, s.retention_tokens_days,
                   s.retention_audit_days, s.retention_batch)


@dataclass
class RunReport:
    counts: dict[str, int] = field(default_factory=dict)
    audit_first_id: int | None = None  # where the kept chain starts after the run
    skipped: str | None = None  # "locked": another run holds the lock


class AlreadyRunning(Exception):
    pass


class RetentionService:
    def __init__(self, *, db, audit, clock, redis_getter, policy: Policy, session_absolute_timeout: int):
        self.db = db
        self.audit = audit
        self.clock = clock
        self._redis = redis_getter
        self.policy = policy
        self.absolute = session_absolute_timeout

    def _cutoff(self, days: int, extra_seconds: int = 0) -> dt.datetime | None:
        return None if days <= 0 else self.clock.now() - dt.timedelta(days=days, seconds=extra_seconds)

    def _targets(self):
        """(name, table, primary key column, condition) for each pruned table; None when kept forever."""
        p = self.policy
        c = self._cutoff(p.receipts_days)
        yield "receipts", LoginEvent, LoginEvent.id, (LoginEvent.occurred_at < c) if c else None
        c = self._cutoff(p.sessions_days, self.absolute)
        yield "sessions", UserSession, UserSession.id, (UserSession.created_at < c) if c else None
        c = self._cutoff(p.tokens_days)
        yield "email_tokens", EmailToken, EmailToken.id, (EmailToken.expires_at < c) if c else None
        yield "oauth_grants", OAuthGrant, OAuthGrant.id, (OAuthGrant.expires_at < c) if c else None

    def _prune(self, table, pk, cond) -> int:
        session = self.db.session
        total = 0
        while True:
            ids = select(pk).where(cond).order_by(pk).limit(self.policy.batch).scalar_subquery()
            n = session.execute(delete(table).where(pk.in_(ids)).execution_options(synchronize_session=False)).rowcount
            session.commit()
            total += n
            if n < self.policy.batch:
                return total

    def audit_keep_from(self) -> int | None:
        """The oldest audit event to keep under the policy (None: keep all)."""
        c = self._cutoff(self.policy.audit_days)
        if c is None:
            return None
        first = self.audit.first_id_since(c)
        if first is None:  # everything is older: keep the head's row only
            first = self.db.session.execute(select(func.max(SecurityEvent.id))).scalar()
        return first

    def pending(self) -> dict[str, int]:
        """What a run would delete now (``--dry-run``; counts, so it reads the matching index ranges)."""
        session = self.db.session
        out = {}
        for name, table, pk, cond in self._targets():
            out[name] = 0 if cond is None else session.execute(select(func.count(pk)).where(cond)).scalar()
        keep = self.audit_keep_from()
        out["audit_events"] = 0 if keep is None else session.execute(
            select(func.count(SecurityEvent.id)).where(SecurityEvent.id < keep)).scalar()
        session.rollback()
        return out

    def run(self) -> RunReport:
        r = self._redis()
        token = secrets.token_hex(16)
        if not r.set(LOCK_KEY, token, nx=True, ex=6 * 3600):
            return RunReport(skipped="locked")
        try:
            report = RunReport()
            for name, table, pk, cond in self._targets():
                report.counts[name] = 0 if cond is None else self._prune(table, pk, cond)
            keep = self.audit_keep_from()
            try:
                report.counts["audit_events"] = 0 if keep is None else \
                    self.audit.prune_before(keep, batch=self.policy.batch)
            except ChainBroken as exc:
                self.db.session.rollback()
                self.audit.record("system:retention:prune", "failure", reason="chain_broken",
                                  details={**report.counts, "problem": str(exc)})
                raise
            from authsvc import jobs

            report.counts["export_files"] = jobs.sweep()  # expired export files, a dead worker's partial files
            report.audit_first_id = self.audit.start().first_id
            self.audit.record("system:retention:prune", "success",
                              details={**report.counts, "audit_first_id": report.audit_first_id})
            return report
        finally:
            if r.get(LOCK_KEY) == token:
                r.delete(LOCK_KEY)


def for_app(app) -> RetentionService:
    """The service for ``app`` (inside its app context), from its settings."""
    from authsvc.extensions import RedisExtension, db
    from authsvc.services import services

    settings = app.config["AUTHSVC"]
    svc = services()
    return RetentionService(db=db, audit=svc.audit, clock=svc.clock,
                            redis_getter=lambda: RedisExtension.client_for(app), policy=Policy.from_settings(settings),
                            session_absolute_timeout=settings.session_absolute_timeout)
