"""ORM models. Everything durable lives in SQL; everything with a TTL lives in Redis (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


def new_subject() -> str:
    """A user's OIDC ``sub``: 192 random bits, URL-safe (32 characters). Never derived from the row id."""
    return secrets.token_urlsafe(24)


class User(Base):
    __tablename__ = "users"
    # Ids are never handed out twice (issue #19): SQLite would otherwise reuse the highest rowid after a delete, and
    # the id names the account in the audit log, the admin panel and the API. PostgreSQL's sequence never goes back.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The subject identifier apps see (ID tokens, userinfo, introspection, JWT access tokens): random, stored, unique,
    # never reassigned (OIDC Core §2) and not the row id, so it says nothing about how many accounts exist.
    sub: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)  # stored normalised (lower-case)
    # OIDC Core §5.1 profile claims, released only with the ``profile`` scope; None = not provided (claim omitted).
    name: Mapped[str | None] = mapped_column(String(200))
    preferred_username: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the change is forced (accounts.service.FORCED_CHANGE_REASONS: admin | breached | compromise), so the page
    # tells the true reason; None with the flag set = an older row (a neutral message).
    must_change_reason: Mapped[str | None] = mapped_column(String(16))
    # Language and time zone of pages and e-mails (authsvc.i18n); NULL = follow the browser / UTC.
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Durable revocation cut-off: a session created before this instant is dead even if Redis still (or again)
    # holds it — e.g. after a failover or a restore that lost the deletion.
    sessions_valid_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # the admin users list

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class UserSession(Base):
    """The durable twin of a Redis session: what a user sees in "my sessions" history and what revocation records.

    ``id`` is the SHA-256 of the cookie token, never the token itself.
    """

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45), index=True)  # the admin users search by IP
    user_agent: Mapped[str | None] = mapped_column(String(512))
    aal: Mapped[int] = mapped_column(Integer, default=1)
    methods: Mapped[str] = mapped_column(String(64), default="pwd")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(64))
    # The login this session belongs to: random (128 bits), set at sign-in and carried over when the session's token
    # is replaced (step-up, reauthentication). It is the OIDC ``sid`` apps see in ID tokens and logout tokens
    # (Back-Channel Logout 1.0), so it stays the same for the whole login and says nothing about the cookie.
    login_id: Mapped[str | None] = mapped_column(String(32), index=True)


class EmailToken(Base):
    """Single-use tokens sent by e-mail (verification, password reset, admin setup). Only the hash is stored."""

    __tablename__ = "email_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify | reset | setup
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SecurityEvent(Base):
    """Append-only, hash-chained audit log (ASVS 16.3). Never updated or deleted by the application."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)  # source:subject:action, e.g. account:login:failure
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure | info
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject_id: Mapped[int | None] = mapped_column(Integer, index=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    reason: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)  # JSON; never secrets
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's tip. Updating it first serialises writers on SQLite and PostgreSQL alike."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


from authsvc.models.activity import LoginEvent  # noqa: E402,F401  (registers the table on Base.metadata)
from authsvc.models.mfa import RecoveryCode, TotpCredential, TrustedDevice, WebAuthnCredential  # noqa: E402,F401
from authsvc.models.oauth import OAuthClient, OAuthConsent, OAuthGrant, OAuthSigningKey  # noqa: E402,F401
from authsvc.models import admin as _admin  # noqa: E402,F401  (users.notify_new_sign_in, migration 0005_admin)
from authsvc.models import retention as _retention  # noqa: E402,F401  (audit_anchor, migration 0010_scale_retention)
from authsvc.models.signals import OutboxItem, SsfStream, SsfSubject  # noqa: E402,F401  (migration 0010_signals_outbox)
from authsvc.models.federation import FederatedIdentity, UpstreamProvider  # noqa: E402,F401  (migration 0010)
from authsvc.models.jobs import ExportJob  # noqa: E402,F401  (migration 0011_exportjobs_jobs)
