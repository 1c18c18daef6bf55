"""Shared Signals durable state: the delivery outbox (authsvc.signals.outbox) and SSF streams (authsvc.signals.ssf)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


class OutboxItem(Base):
    """One delivery to make (a SET to push, a SET waiting to be polled, a logout token...).

    Written in the same SQL transaction as the audit event that causes it (``audit.on_record`` listeners), so an
    event is never recorded without its delivery or the other way round. ``next_attempt_at`` is set while the item is
    pending and NULL once it is delivered or given up (``failed_at``), so the worker's scan reads only pending rows.
    ``claimed_by``/``claimed_until``: a worker's lease on the row while it delivers; a worker killed mid-delivery
    leaves a lease that runs out, and the row is delivered again with the same ``jti`` (receivers dedupe by jti).
    """

    __tablename__ = "signals_outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # ssf_push | ssf_poll | bcl | ...
    target: Mapped[str] = mapped_column(String(128), index=True)  # stream id, client id...
    payload: Mapped[str] = mapped_column(Text)  # JSON, or the signed token itself
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SsfStream(Base):
    """An SSF event stream (SSF 1.0 §8.1), owned by the OAuth client (the Receiver) that created it."""

    __tablename__ = "ssf_streams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # stream_id: 128 random bits, URL-safe
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))  # urn:ietf:rfc:8935 (push) | urn:ietf:rfc:8936 (poll)
    endpoint_url: Mapped[str | None] = mapped_column(String(2048))  # push: the Receiver's; poll: None (ours)
    authorization_enc: Mapped[str | None] = mapped_column(Text)  # push: the Authorization header value, encrypted
    events_requested: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(8), default="enabled")  # enabled | paused | disabled
    status_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # last verification request


class SsfSubject(Base):
    """A subject a Receiver added to a stream (SSF 1.0 §8.1.3). ``subject`` is the Subject Identifier as the
    Receiver gave it (RFC 9493 JSON) and is what the SETs about this user carry. No foreign key to users: the row
    must outlive the account until its account-purged event is queued (then the listener deletes it)."""

    __tablename__ = "ssf_subjects"
    __table_args__ = (UniqueConstraint("stream_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[str] = mapped_column(ForeignKey("ssf_streams.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
