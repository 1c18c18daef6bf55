"""MFA factors and trusted devices. Secrets are never stored in the clear: TOTP seeds are AES-GCM encrypted with a
versioned key, recovery codes and device tokens are stored as hashes, WebAuthn keeps only public keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


class TotpCredential(Base):
    """One authenticator app per user. ``secret`` is ``<key version>:<base64 nonce‖ciphertext>`` (see mfa.crypto)."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(255))
    key_version: Mapped[str] = mapped_column(String(16), index=True)  # lets an operator count rows still on old keys
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The assurance level of the session that enrolled it: 1 = only a password vouched for it (see
    # MfaService.unconfirmed_since); NULL = enrolled before this was recorded.
    enrolled_aal: Mapped[int | None] = mapped_column(Integer)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # too many consecutive wrong codes


class RecoveryCode(Base):
    """Single-use recovery codes: SHA-256(per-user salt ‖ code). 80 random bits per code make a fast hash enough."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(32))  # hex; one salt per generated set
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enrolled_aal: Mapped[int | None] = mapped_column(Integer)  # as TotpCredential.enrolled_aal


class WebAuthnCredential(Base):
    """A security key or passkey. ``credential_id`` is base64url (what the browser sends back as ``id``)."""

    __tablename__ = "mfa_webauthn"
    __table_args__ = {"sqlite_autoincrement": True}  # ids name credentials in URLs and audit rows: never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # ≤ 1023 bytes raw per the spec
    user_handle: Mapped[str] = mapped_column(String(128), index=True)  # base64url, random per user (not the id)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE key
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[str | None] = mapped_column(String(128))
    aaguid: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    flagged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # sign-count regression seen (possible clone)
    enrolled_aal: Mapped[int | None] = mapped_column(Integer)  # as TotpCredential.enrolled_aal


class TrustedDevice(Base):
    """"Remember this device": the browser keeps a random token in ``__Host-authsvc-device``; we keep its SHA-256."""

    __tablename__ = "mfa_trusted_devices"
    __table_args__ = {"sqlite_autoincrement": True}  # ids name devices in forms and audit rows: never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
