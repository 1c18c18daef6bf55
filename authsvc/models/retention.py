"""Retention (issue 20, migration 0010_scale_retention): the audit chain's signed retention anchor, and the indexes the
bounded pruning batches use (``authsvc/retention.py``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models import EmailToken, UserSession
from authsvc.models.base import Base, UTCDateTime


class AuditAnchor(Base):
    """One row (id 1): where the kept audit chain starts after retention pruned the rows before it.

    ``first_id`` is the oldest kept event, ``prev_hash`` the hash of the pruned event before it (what that row's
    ``prev_hash`` must equal). ``mac`` is an HMAC-SHA-256 over both under a key derived from ``SECRET_KEY``, which
    lives outside the database: someone who deletes audit rows cannot write an anchor that passes the deletion off
    as retention (authsvc.audit.AnchorSigner)."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_id: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    pruned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    mac: Mapped[str] = mapped_column(String(64))


# Ended sessions are pruned by creation time (a session ends at the latest ``session_absolute_timeout`` after it
# starts), expired and used e-mail tokens (decoys included: born used and expired) by expiry.
Index("ix_user_sessions_created_at", UserSession.created_at)
Index("ix_email_tokens_expires_at", EmailToken.expires_at)
