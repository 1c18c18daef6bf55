"""Registered OAuth clients: the ``ClientService`` (CLI today, the admin panel later) and the Authlib client adapter.

Client secrets are 256 random bits and stored as SHA-256, not argon2: a slow hash protects *guessable* secrets, and
these have full entropy (2^256 candidates), so stretching buys nothing while costing ~30–150 ms of CPU on every token,
introspection and revocation request — a throughput loss (PERFORMANCE P2/P3) and a CPU lever for anyone who can send
requests with a known client_id. Comparison is constant-time. Secrets are shown once, at creation or rotation.

Clients are read on every token/introspection request, so each is cached in Redis as JSON (``oauth:client:{id}``)
and the cache entry is deleted on every change: no SQL on the hot path, no stale secret after a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select

from authsvc.i18n import N_
from authsvc.models import OAuthClient, OAuthConsent, OAuthGrant

GRANT_TYPES = {"authorization_code", "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:device_code"}
REFUSED_GRANTS = {"implicit", "password", "token"}  # RFC 9700 §2.1.2, §2.4
SCOPES = ("openid", "profile", "email", "offline_access")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_LOOPBACK_HOSTS = ("127.0.0.1", "::1")


class ClientError(ValueError):
    """A client registration is invalid; ``field`` names the offending setting. ``message`` is English (the CLI, the
    API, logs); ``shown()`` is the same text in the viewer's language for the admin panel: the message is a template
    marked N_ and its values are substituted after translation, once (a hostile URI is never format-interpreted)."""

    def __init__(self, field_name: str, message: str, **params):
        self.template, self.params = message, params
        self.message = message % params if params else message
        super().__init__(f"{field_name}: {self.message}")
        self.field = field_name

    def shown(self) -> str:
        from flask import has_request_context
        from flask_babel import gettext

        if not has_request_context():
            return self.message
        return gettext(self.template, **self.params) if self.params else gettext(self.template)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Characters no redirect URI may hold: browsers strip TAB/CR/LF and read "\\" as "/" in http(s) URLs, so what the
# browser visits would differ from what was compared here; '"', '<', '>', '`', space and controls have no business
# in a redirect URI either (and Authlib refuses to echo some of them in error descriptions).
_FORBIDDEN_CHARS = frozenset('\\"<>`{}|^ ') | frozenset(chr(c) for c in range(0x20)) | {chr(0x7F)}


def _loopback(uri: str) -> tuple[str, str] | None:
    """(host, rest) of an ``http://127.0.0.1[:port]/…`` or ``http://[::1][:port]/…`` URI, else None.

    Parsed with ``urlsplit().hostname`` / ``.port``, never by splitting the netloc by hand: the whole netloc must be
    exactly the loopback literal plus an optional valid port, so userinfo (``127.0.0.1:8000@evil.example``), an
    encoded ``@`` (``%40``), a longer host (``127.0.0.1.evil.example``) or a bad port is simply not loopback.
    ``rest`` is the path and query, compared exactly; the port is what RFC 8252 §7.3 lets vary."""
    if not uri.startswith("http://") or not is_clean_uri(uri):
        return None
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # port out of range or not a number
        return None
    if host not in _LOOPBACK_HOSTS:
        return None
    literal = f"[{host}]" if ":" in host else host
    if parts.netloc != (literal if port is None else f"{literal}:{port}") or (port is not None and port == 0):
        return None
    return host, parts.path + ("?" + parts.query if parts.query else "")


def is_clean_uri(uri: str) -> bool:
    """No userinfo anywhere, no fragment, no character a browser would rewrite or that has no place in a URI."""
    if not uri or len(uri) > 2000 or any(ch in _FORBIDDEN_CHARS for ch in uri) or "#" in uri:
        return False
    if not uri.isascii():
        return False
    parts = urlsplit(uri)
    return "@" not in parts.netloc and "%40" not in parts.netloc.lower()


def _is_loopback_http(uri: str) -> bool:
    return _loopback(uri) is not None


def validate_redirect_uri(uri: str) -> None:
    if not isinstance(uri, str) or not uri:
        raise ClientError("redirect_uri", N_("must be a non-empty string"))
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ClientError("redirect_uri", N_("%(uri)s must not contain a fragment"), uri=repr(uri))
    if not is_clean_uri(uri):
        raise ClientError("redirect_uri", N_("%(uri)s must not contain user info ('@'), spaces, control characters, "
                                             "backslashes, quotes or non-ASCII characters"), uri=repr(uri))
    if uri.startswith("https://"):
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ClientError("redirect_uri", N_("%(uri)s has an invalid port"), uri=repr(uri)) from None
        if host and port != 0:
            return
    if _is_loopback_http(uri):
        return  # native apps (RFC 8252 §7.3); the port may vary at request time
    if parts.scheme and "." in parts.scheme and parts.scheme == parts.scheme.lower() \
            and uri.startswith(parts.scheme + ":") and not parts.netloc:
        return  # private-use scheme of a native app, reverse-DNS (RFC 8252 §7.1): "com.example.app:/cb"
    raise ClientError("redirect_uri", N_("%(uri)s must be https, an http loopback IP (127.0.0.1 / [::1]) "
                                         "or a reverse-DNS private-use scheme"), uri=repr(uri))


def validate_origin(origin: str) -> None:
    """A browser origin as the Origin header sends it: scheme://host[:port], https (or http on loopback), nothing
    else — no path, no wildcard, no userinfo. CORS answers only exact matches of these strings."""
    if not isinstance(origin, str) or not origin or len(origin) > 255 or not origin.isascii():
        raise ClientError("allowed_origins", "each origin must be a non-empty ASCII string")
    parts = urlsplit(origin)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ClientError("allowed_origins", f"{origin!r} has an invalid port") from None
    rebuilt = f"{parts.scheme}://{parts.netloc}"
    loopback = host in _LOOPBACK_HOSTS or host == "localhost"
    if (origin != rebuilt or not host or "*" in origin or "@" in parts.netloc or port == 0
            or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
            or origin != origin.lower()):
        raise ClientError("allowed_origins", f"{origin!r} must be an exact lower-case origin: https://host[:port] "
                                             "(http only for loopback), no path, no wildcard")


def validate_backchannel_logout_uri(uri, client_type: str) -> None:
    """OpenID Connect Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment (a query is kept as is);
    https, or — as the spec lets an OP allow for confidential clients — http to a loopback IP literal only (an app
    on the same host; nothing travels over a network in clear). No userinfo, nothing a parser could read two ways
    (the same ``is_clean_uri`` as redirect URIs). The URI is set by an administrator, never by the client itself."""
    if not isinstance(uri, str) or not uri:
        raise ClientError("backchannel_logout_uri", N_("must be a non-empty string"))
    if "#" in uri:
        raise ClientError("backchannel_logout_uri", N_("must not contain a fragment"))
    if not is_clean_uri(uri):
        raise ClientError("backchannel_logout_uri", N_("must not contain user info ('@'), spaces, control "
                                                       "characters, backslashes, quotes or non-ASCII characters"))
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ClientError("backchannel_logout_uri", N_("has an invalid port")) from None
    if parts.scheme == "https" and uri.startswith("https://") and host and port != 0:
        return
    if parts.scheme == "http" and _loopback(uri) is not None:
        if client_type != "confidential":
            raise ClientError("backchannel_logout_uri", N_("http is allowed for confidential clients only (§2.2)"))
        return
    raise ClientError("backchannel_logout_uri", N_("must be an absolute https URL (http only to 127.0.0.1 or [::1])"))


@dataclass
class Client:
    """What Authlib needs to know about a client (``ClientMixin`` duck type), built from the cached JSON."""

    client_id: str
    name: str
    client_type: str
    secret_hash: str | None
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    audiences: list[str]  # empty → this server's own APIs (the issuer: userinfo)
    resource: str | None
    token_format: str
    access_token_ttl: int
    quota_per_minute: int
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: token requests without a DPoP proof are refused
    require_par: bool = False  # RFC 9126 §6: authorization requests only through a pushed request
    allowed_origins: list[str] = field(default_factory=list)  # CORS for SPAs (token, userinfo, revoke)
    token_endpoint_auth_method: str | None = None  # "private_key_jwt", else the type's default methods
    jwks: dict | None = None
    jwks_uri: str | None = None
    backchannel_logout_uri: str | None = None  # Back-Channel Logout 1.0 §2.2
    backchannel_logout_session_required: bool = False
    client_metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.client_metadata = {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    # Authlib ClientMixin
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # Only unambiguous: with several registered URIs the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        # Scopes this server does not know are ignored (RFC 6749 §3.3 lets the server ignore part of the request;
        # OIDC Core §3.1.2.1: unknown scope values SHOULD be ignored). Known ones the client may not have still fail.
        requested = [s for s in scope.split() if s in SCOPES]
        if any(s not in self.scopes for s in requested):
            return None  # → invalid_scope: say so rather than silently dropping what was asked for
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri):
        if not isinstance(redirect_uri, str) or not is_clean_uri(redirect_uri):
            return False  # userinfo, '\\', whitespace…: refused even if a (legacy) registration holds the same string
        if redirect_uri in self.redirect_uris:  # exact string comparison (RFC 9700 §4.1.3)
            return True
        # RFC 8252 §7.3: native apps on the loopback interface get an ephemeral port; everything else must match.
        wanted = _loopback(redirect_uri)
        if wanted is not None:
            return any(_loopback(u) == wanted for u in self.redirect_uris)
        return False

    def check_client_secret(self, client_secret):
        if not self.secret_hash or not client_secret:
            return False
        return hmac.compare_digest(_hash_secret(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        if self.token_endpoint_auth_method == "private_key_jwt":
            return method == "private_key_jwt"  # never a secret, never "none"
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types

    @property
    def id_token_signed_response_alg(self):
        return None


def _to_dict(row: OAuthClient) -> dict:
    return {"client_id": row.id, "name": row.name, "client_type": row.client_type, "secret_hash": row.secret_hash,
            "redirect_uris": json.loads(row.redirect_uris),
            "post_logout_redirect_uris": json.loads(row.post_logout_redirect_uris),
            "grant_types": row.grant_types.split(), "scopes": row.scopes.split(),
            "audiences": json.loads(row.audiences), "resource": row.resource, "token_format": row.token_format,
            "access_token_ttl": row.access_token_ttl, "quota_per_minute": row.quota_per_minute,
            "dpop_bound_access_tokens": bool(row.dpop_bound_access_tokens),
            "require_par": bool(row.require_pushed_authorization_requests),
            "allowed_origins": json.loads(row.allowed_origins or "[]"),
            "token_endpoint_auth_method": row.token_endpoint_auth_method,
            "jwks": json.loads(row.jwks) if row.jwks else None, "jwks_uri": row.jwks_uri,
            "backchannel_logout_uri": row.backchannel_logout_uri,
            "backchannel_logout_session_required": bool(row.backchannel_logout_session_required)}


class ClientService:
    def __init__(self, *, db, redis_getter, clock, audit, tokens, default_ttl: int):
        self.db = db
        self._redis = redis_getter
        self.clock = clock
        self.audit = audit
        self.tokens = tokens
        self.default_ttl = default_ttl
        self._parsed: dict[str, Client] = {}

    @staticmethod
    def _ckey(client_id: str) -> str:
        return f"oauth:client:{{{client_id}}}"

    cache_key = _ckey

    def from_cache(self, raw: str) -> Client:
        """The ``Client`` for a cached JSON value. Parsed objects are memoised per process *by the JSON text itself*,
        so any change (secret rotation, new redirect URI) is a different key: never stale, only cheaper."""
        client = self._parsed.get(raw)
        if client is None:
            client = Client(**json.loads(raw))
            if len(self._parsed) >= 512:
                self._parsed.clear()
            self._parsed[raw] = client
        return client

    # --- read (hot path) -------------------------------------------------------------------------------------------
    def get(self, client_id: str | None) -> Client | None:
        if not client_id or len(client_id) > 64:
            return None
        r = self._redis()
        raw = r.get(self._ckey(client_id))
        if raw is None:
            row = self.db.session.get(OAuthClient, client_id)
            if row is None:
                return None
            raw = json.dumps(_to_dict(row))
            r.set(self._ckey(client_id), raw, ex=3600)
        return self.from_cache(raw)

    def list(self) -> list[OAuthClient]:
        return list(self.db.session.execute(select(OAuthClient).order_by(OAuthClient.created_at)).scalars())

    def page(self, after: str | None = None, limit: int = 50) -> tuple[list[OAuthClient], bool]:
        """The admin list, keyset-paged on (created_at, id) after the client ``after``: (rows, more)."""
        q = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)
        anchor = self.db.session.get(OAuthClient, after) if after else None
        if anchor is not None:
            q = q.where(or_(OAuthClient.created_at > anchor.created_at,
                            and_(OAuthClient.created_at == anchor.created_at, OAuthClient.id > anchor.id)))
        rows = list(self.db.session.execute(q.limit(limit + 1)).scalars())
        return rows[:limit], len(rows) > limit

    # --- write -----------------------------------------------------------------------------------------------------
    def _validate(self, row: OAuthClient) -> None:
        grants = row.grant_types.split()
        bad = [g for g in grants if g in REFUSED_GRANTS]
        if bad:
            raise ClientError("grant_types", f"{', '.join(bad)} is not allowed (RFC 9700: no implicit or password grant)")
        unknown = [g for g in grants if g not in GRANT_TYPES]
        if unknown or not grants:
            raise ClientError("grant_types", f"unknown grant type(s) {unknown}; choose from {sorted(GRANT_TYPES)}")
        if row.client_type not in ("public", "confidential"):
            raise ClientError("client_type", "must be public or confidential")
        if "client_credentials" in grants and row.client_type != "confidential":
            raise ClientError("grant_types", N_("client_credentials needs a confidential client"))
        uris = json.loads(row.redirect_uris)
        if "authorization_code" in grants and not uris:
            raise ClientError("redirect_uri", N_("authorization_code needs at least one redirect URI"))
        for u in uris + json.loads(row.post_logout_redirect_uris):
            validate_redirect_uri(u)
        unknown_scopes = [s for s in row.scopes.split() if s not in SCOPES]
        if unknown_scopes:
            raise ClientError("scopes", f"unknown scope(s) {unknown_scopes}; choose from {list(SCOPES)}")
        if row.token_format not in ("opaque", "jwt"):
            raise ClientError("token_format", "must be opaque or jwt")
        if not 10 <= row.access_token_ttl <= 86400:
            raise ClientError("access_token_ttl", N_("must be between 10 and 86400 seconds"))
        if row.token_format == "jwt" and row.access_token_ttl > 900:
            raise ClientError("access_token_ttl", N_("JWT access tokens cannot be revoked at resource servers that "
                                                     "verify them offline: keep them ≤ 900 seconds"))
        if row.quota_per_minute < 1:
            raise ClientError("quota_per_minute", N_("must be ≥ 1"))
        for origin in json.loads(row.allowed_origins or "[]"):
            validate_origin(origin)
        if row.token_endpoint_auth_method not in (None, "private_key_jwt"):
            raise ClientError("token_endpoint_auth_method", "must be private_key_jwt or unset (the type's default)")
        if row.token_endpoint_auth_method == "private_key_jwt":
            from authsvc.oauth.client_auth import parse_public_jwks, validate_jwks_uri

            if row.client_type != "confidential" or bool(row.jwks) == bool(row.jwks_uri):
                raise ClientError("jwks", "private_key_jwt needs a confidential client and exactly one of jwks, "
                                          "jwks_uri")
            try:
                parse_public_jwks(row.jwks) if row.jwks else validate_jwks_uri(row.jwks_uri)
            except ValueError as exc:
                raise ClientError("jwks", str(exc)) from None
            except Exception:  # noqa: BLE001 - joserfc's own errors for keys it cannot import
                raise ClientError("jwks", "the JWKS holds a key that cannot be imported") from None
        if row.backchannel_logout_uri is not None:
            validate_backchannel_logout_uri(row.backchannel_logout_uri, row.client_type)

    def create(self, *, name: str, client_type: str = "confidential", redirect_uris=(), grant_types=("authorization_code", "refresh_token"),
               scopes=("openid", "profile", "email", "offline_access"), post_logout_redirect_uris=(),
               audiences=(), resource: str | None = None, token_format: str = "opaque",
               access_token_ttl: int | None = None, quota_per_minute: int = 600,
               dpop_bound_access_tokens: bool = False, require_par: bool = False, allowed_origins=(),
               token_endpoint_auth_method: str | None = None, jwks: dict | None = None, jwks_uri: str | None = None,
               backchannel_logout_uri: str | None = None, backchannel_logout_session_required: bool = False,
               actor_id: int | None = None) -> tuple[OAuthClient, str | None]:
        """Register a client; returns it and its secret (None for public and private_key_jwt clients). The secret is
        not kept."""
        secret = (secrets.token_urlsafe(32) if client_type == "confidential"
                  and token_endpoint_auth_method != "private_key_jwt" else None)
        row = OAuthClient(
            id=secrets.token_urlsafe(18), name=name.strip()[:120] or "unnamed", client_type=client_type,
            secret_hash=_hash_secret(secret) if secret else None, redirect_uris=json.dumps(list(redirect_uris)),
            post_logout_redirect_uris=json.dumps(list(post_logout_redirect_uris)),
            grant_types=" ".join(dict.fromkeys(grant_types)), scopes=" ".join(dict.fromkeys(scopes)),
            audiences=json.dumps(list(audiences)), resource=resource,
            token_format=token_format, access_token_ttl=access_token_ttl or self.default_ttl,
            quota_per_minute=quota_per_minute, dpop_bound_access_tokens=bool(dpop_bound_access_tokens),
            require_pushed_authorization_requests=bool(require_par), allowed_origins=json.dumps(list(allowed_origins)),
            token_endpoint_auth_method=token_endpoint_auth_method, jwks=json.dumps(jwks) if jwks else None,
            jwks_uri=jwks_uri, backchannel_logout_uri=backchannel_logout_uri or None,
            backchannel_logout_session_required=bool(backchannel_logout_session_required),
            created_at=self.clock.now())
        self._validate(row)
        self.db.session.add(row)
        self.db.session.commit()
        self._redis().delete("oauth:cors:origins")
        self.audit.record("oauth:client:create", "success", actor_id=actor_id,
                          details={"client_id": row.id, "type": client_type, "grants": row.grant_types})
        return row, secret

    def update(self, client_id: str, *, actor_id: int | None = None, **changes) -> OAuthClient:
        row = self._row(client_id)
        for key, value in changes.items():
            if key == "require_par":
                key, value = "require_pushed_authorization_requests", bool(value)
            elif key in ("redirect_uris", "post_logout_redirect_uris", "audiences", "allowed_origins"):
                value = json.dumps(list(value))
            elif key in ("grant_types", "scopes"):
                value = " ".join(dict.fromkeys(value))
            elif key in ("dpop_bound_access_tokens", "backchannel_logout_session_required"):
                value = bool(value)
            elif key == "jwks":
                value = json.dumps(value) if value else None
                self._redis().delete(f"oauth:jwks:{{{client_id}}}")
            elif key == "jwks_uri":
                self._redis().delete(f"oauth:jwks:{{{client_id}}}")
            elif key == "backchannel_logout_uri":
                value = value or None  # "" clears it
            elif key not in ("name", "resource", "token_format", "access_token_ttl", "quota_per_minute"):
                raise ClientError(key, "cannot be changed")
            setattr(row, key, value)
        self._validate(row)
        self.db.session.commit()
        self._redis().delete(self._ckey(client_id))
        self._redis().delete("oauth:cors:origins")
        self.audit.record("oauth:client:update", "success", actor_id=actor_id,
                          details={"client_id": client_id, "fields": sorted(changes)})
        return row

    def rotate_secret(self, client_id: str, *, actor_id: int | None = None) -> str:
        row = self._row(client_id)
        if row.client_type != "confidential":
            raise ClientError("client_type", "public clients have no secret")
        secret = secrets.token_urlsafe(32)
        row.secret_hash, row.secret_rotated_at = _hash_secret(secret), self.clock.now()
        self.db.session.commit()
        self._redis().delete(self._ckey(client_id))
        self.audit.record("oauth:client:rotate-secret", "success", actor_id=actor_id, details={"client_id": client_id})
        return secret

    def delete(self, client_id: str, *, actor_id: int | None = None) -> None:
        row = self._row(client_id)
        # Tokens die with the client: revoke in Redis before the rows that index them cascade away.
        self.tokens.revoke_grants_where(OAuthGrant.client_id == client_id, reason="client_deleted")
        self.db.session.execute(OAuthConsent.__table__.delete().where(OAuthConsent.client_id == client_id))
        self.db.session.execute(OAuthGrant.__table__.delete().where(OAuthGrant.client_id == client_id))
        self.db.session.delete(row)
        self.db.session.commit()
        self._redis().delete(self._ckey(client_id))
        self._redis().delete("oauth:cors:origins")
        self.audit.record("oauth:client:delete", "success", actor_id=actor_id, details={"client_id": client_id})

    def _row(self, client_id: str) -> OAuthClient:
        row = self.db.session.get(OAuthClient, client_id)
        if row is None:
            raise ClientError("client_id", f"no client {client_id!r}")
        return row
