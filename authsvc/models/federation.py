"""Federated sign-in (issue 17): upstream identity providers the operator trusts, and the identities linked to
accounts. An identity is keyed by ``(issuer, subject)`` — never by e-mail: the ``email`` column only records what
the provider said last time, for the owner and the administrator to see."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


class UpstreamProvider(Base):
    """One upstream OpenID provider (or GitHub's OAuth 2.0). ``client_secret`` is sealed with the MFA secret box
    (AES-GCM, context ``idp:<slug>``), never stored in the clear."""

    __tablename__ = "federation_providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)  # in the callback URL: /federation/<slug>/callback
    name: Mapped[str] = mapped_column(String(64))  # "Google" on the button
    kind: Mapped[str] = mapped_column(String(16), default="oidc")  # oidc | google | apple | microsoft | github
    # The issuer identities are keyed by. Microsoft multi-tenant: the template with "{tenantid}".
    issuer: Mapped[str] = mapped_column(String(255), unique=True)
    discovery_url: Mapped[str | None] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(Text)  # sealed
    scopes: Mapped[str] = mapped_column(String(255), default="openid email profile")
    # The operator trusts this provider's amr/acr to stand for a second factor here (default: no).
    trust_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FederatedIdentity(Base):
    __tablename__ = "federated_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_federated_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("federation_providers.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(255))  # the token's own iss (a tenant's, for Microsoft)
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))  # as last seen; informational only
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
