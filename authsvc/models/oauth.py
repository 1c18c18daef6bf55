"""OAuth 2.0 / OIDC durable state. Hot, short-lived state (codes, access tokens, device codes) lives in Redis.

Nothing here holds a usable secret: client secrets and refresh tokens are stored as SHA-256 of 256-bit random values,
and signing keys are stored encrypted (AES-256-GCM, see ``authsvc.oauth.keys``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client_id
    name: Mapped[str] = mapped_column(String(120))
    client_type: Mapped[str] = mapped_column(String(16))  # public | confidential
    secret_hash: Mapped[str | None] = mapped_column(String(64))  # SHA-256 hex of a 256-bit secret; None for public
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, matched exactly
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    grant_types: Mapped[str] = mapped_column(String(255))  # space-separated
    scopes: Mapped[str] = mapped_column(String(512))  # space-separated allow-list
    audiences: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of resources it may get tokens for
    resource: Mapped[str | None] = mapped_column(String(255))  # set for resource servers: their own audience
    token_format: Mapped[str] = mapped_column(String(8), default="opaque")  # opaque | jwt (RFC 9068)
    access_token_ttl: Mapped[int] = mapped_column(Integer, default=600)
    quota_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    # RFC 9449 §5.2 client metadata: every token request of this client must carry a DPoP proof.
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # RFC 9126 §6: authorization requests of this client are accepted only through a pushed request (request_uri).
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(Boolean, default=False,
                                                                        server_default=false())
    # JSON list of exact browser origins ("https://app.example") a single-page app calls the token, userinfo and
    # revocation endpoints from; CORS headers are sent for these origins only.
    allowed_origins: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # None = the type's default (client_secret_basic/post, or none for public clients); "private_key_jwt" = RFC 7523
    # assertions signed with a key of ``jwks`` (JSON, public keys only) or of the set published at ``jwks_uri``.
    token_endpoint_auth_method: Mapped[str | None] = mapped_column(String(32))
    jwks: Mapped[str | None] = mapped_column(Text)
    jwks_uri: Mapped[str | None] = mapped_column(String(512))
    # OpenID Connect Back-Channel Logout 1.0 §2.2: where a logout token is POSTed when a login session this client
    # got tokens from ends (None: the client is not told), and whether it needs the ``sid`` claim in it.
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False,
                                                                      server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    secret_rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OAuthConsent(Base):
    """What a user allowed a client to do. Revoking it also revokes the client's tokens for that user."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    scopes: Mapped[str] = mapped_column(String(512))
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OAuthGrant(Base):
    """One authorization (code or device grant, or a client-credentials issue): the refresh-token family.

    ``current_hash`` is the SHA-256 of the only refresh token of the family that may still be used; rotation swaps
    it with a compare-and-set, so presenting any older token of the family is a replay and revokes the family.
    ``session_id`` ties the grant to the login session it came from: ending that session revokes it.
    """

    __tablename__ = "oauth_grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # family id (128 random bits, hex)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(512))
    audiences: Mapped[str] = mapped_column(Text, default="[]")
    auth_time: Mapped[int | None] = mapped_column(Integer)
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[str | None] = mapped_column(String(64))
    current_hash: Mapped[str | None] = mapped_column(String(64))
    # RFC 9449 §5: the DPoP key (RFC 7638 thumbprint) a public client's refresh tokens are bound to; None = unbound.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # Continuous risk (authsvc.risk.drift.pack_birth): the network a public client's family was born on; None for
    # confidential clients (their refreshes come from the RP's server, whose address says nothing about the user).
    birth: Mapped[str | None] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # last refresh (set by the rotation's UPDATE)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # absolute end of the family
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(64))


class OAuthSigningKey(Base):
    """ID-token / JWT-access-token signing keys. ``state``: next → current → retired (published until expired)."""

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8), index=True)  # next | current | retired
    public_jwk: Mapped[str] = mapped_column(Text)
    private_jwk_enc: Mapped[str] = mapped_column(Text)  # base64(nonce ‖ AES-256-GCM(private JWK JSON)), aad = kid
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
