"""The OAuth 2.0 / OIDC provider: Authlib does the protocol; this module supplies storage hooks and policy.

Grants: authorization code (+ PKCE S256 for every client, + OpenID Connect), refresh token (rotating), client
credentials, device code. Endpoints: revocation (RFC 7009), introspection (RFC 7662), RP-initiated logout, device
authorization (RFC 8628), and RFC 9207 ``iss`` on every authorization response. No implicit, no password grant:
they are simply never registered, so Authlib answers ``unsupported_response_type`` / ``unsupported_grant_type``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass

from authlib.common.security import is_secure_transport
from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oauth2.rfc8628 import AuthorizationPendingError, ExpiredTokenError, SlowDownError
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
import redis
from flask import current_app, g as flask_g, has_request_context, request as flask_request
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from authsvc import metrics
from authsvc.errors import Throttled
from sqlalchemy import select

from authsvc.models import OAuthClient, OAuthGrant, User, UserSession
from authsvc.oauth.clients import DEVICE_GRANT, SCOPES, Client
from authsvc.oauth.dpop import (DEFAULT_ALGS as DPOP_ALGS, DPoPProof, DPoPProofValidator, InvalidDPoPProofError,
                                NonceSource, RedisReplayCache)
from authsvc.oauth.keys import ALLOWED_ALGS
from authsvc.oauth.tokens import ConsumeResult, grant_id_of, new_grant_id, sha256
from authsvc.risk.drift import ALLOW, END, assess_token_use, is_hosting, network_of, pack_birth

log = logging.getLogger("authsvc.oauth")

ACR_AAL1, ACR_AAL2 = "urn:authsvc:aal1", "urn:authsvc:aal2"
PROFILE_CLAIMS = ("name", "preferred_username")  # the OIDC Core §5.4 profile claims the user model holds


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, unknown or not allowed for this client."""

    error = "invalid_target"
    status_code = 400


def malformed_basic(authorization: str | None) -> bool:
    """True if ``authorization`` is an HTTP Basic header that does not decode to ``id:secret`` in UTF-8 (RFC 7617).

    Authlib decodes it with ``errors='strict'`` and lets a non-UTF-8 credential raise (→ 500), and silently ignores
    bad base64 (→ the request falls through to other authentication methods). Both are refused up front as
    ``invalid_client`` (401) by every endpoint that authenticates clients, lean paths included."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return True
    client_id, sep, _ = text.partition(":")
    return not sep or not client_id or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


INVALID_BASIC = {"error": "invalid_client",
                 "error_description": "The HTTP Basic client credentials are malformed (base64 of UTF-8 'id:secret')."}
AMR = {"pwd": "pwd", "totp": "otp", "otp": "otp", "webauthn": "hwk", "recovery": "otp"}


def token_proof() -> DPoPProof | None:
    """The verified DPoP proof of the current token request (set by the token view before Authlib runs), or None."""
    return flask_g.get("authsvc_dpop_proof") if has_request_context() else None


@dataclass
class EndUser:
    """The resource owner as the authorization endpoint knows them: the user plus the login session."""

    user: User
    session: object  # authsvc.sessions.SessionInfo

    @property
    def id(self):
        return self.user.id


def acr_for(aal: int) -> str:
    return ACR_AAL2 if aal >= 2 else ACR_AAL1


def amr_for(methods) -> list[str]:
    out = list(dict.fromkeys(AMR.get(m, m) for m in methods if m))
    if len(out) > 1:
        out.append("mfa")
    return out


class AuthCode:
    def __init__(self, data: dict, gid: str):
        self.data = data
        self.gid = gid

    def get_redirect_uri(self):
        return self.data["redirect_uri"]

    def get_scope(self):
        return self.data["scope"]

    def get_nonce(self):
        return self.data.get("nonce")

    def get_auth_time(self):
        return self.data.get("auth_time")

    def get_acr(self):
        return self.data.get("acr")

    def get_amr(self):
        return self.data.get("amr")


class TokenRef:
    """An access or refresh token found in storage, as Authlib's revocation/introspection endpoints see it."""

    def __init__(self, kind: str, rec: dict, raw: str):
        self.kind = kind
        self.rec = rec
        self.raw = raw

    def check_client(self, client):
        return self.rec.get("cid") == client.get_client_id()

    def get_scope(self):
        return self.rec.get("scope", "")

    def is_expired(self):
        exp = self.rec.get("exp")
        return bool(exp) and float(exp) <= current_app.extensions["authsvc.oauth"].clock.timestamp()

    def is_revoked(self):
        return False  # revoked tokens are deleted / flagged, so they are never found


# --- grants ------------------------------------------------------------------------------------------------------------
class S256CodeChallenge(CodeChallenge):
    """PKCE for every client (public and confidential), S256 only (RFC 9700 §2.1.1, ASVS 10.4.6).

    Authlib's ``required=True`` only forces public clients at the token endpoint and accepts ``plain``; here a missing
    challenge, a missing method (which RFC 7636 reads as ``plain``) and ``plain`` are refused at the authorization
    endpoint, and a missing verifier is refused at the token endpoint whatever the client type.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256 ('plain' is not accepted).")
        return super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        return super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.data.get("challenge")

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.data.get("method")


AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
SECRET_OR_KEY = ["client_secret_basic", "client_secret_post", "private_key_jwt"]  # confidential clients only


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @property
    def provider(self) -> "OAuthProvider":
        return self.server.provider

    def save_authorization_code(self, code, request):
        end_user: EndUser = request.user
        data = request.payload.data
        self.provider.tokens.save_code(code, {
            "cid": request.client.get_client_id(), "uid": end_user.user.id, "sid": end_user.session.id,
            "redirect_uri": request.payload.redirect_uri, "scope": request.scope or "",
            "nonce": data.get("nonce"), "auth_time": int(end_user.session.created_at.timestamp()),
            "acr": acr_for(end_user.session.aal), "amr": amr_for(end_user.session.methods),
            "challenge": data.get("code_challenge"), "method": data.get("code_challenge_method"),
            "aud": self.provider.requested_audiences(request.client, data.getlist("resource")),
            "jkt": data.get("dpop_jkt") or None,  # RFC 9449 §10 (format checked by the authorize view)
            "osid": getattr(end_user.session, "login_id", None),  # the login's OIDC sid (Back-Channel Logout)
        })

    def query_authorization_code(self, code, client):
        gid = new_grant_id()
        outcome, value = self.provider.tokens.consume_code(code, gid)
        if outcome == ConsumeResult.REUSED:
            self.provider.on_code_reuse(value, client)
            return None
        if outcome != ConsumeResult.OK or value["cid"] != client.get_client_id():
            return None
        if value.get("jkt"):  # RFC 9449 §10: the code is bound to the key named by dpop_jkt at authorize
            proof = token_proof()
            if proof is None:
                raise InvalidDPoPProofError("This authorization code is bound to a DPoP key (dpop_jkt): "
                                            "send a DPoP proof of that key.")
            if proof.jkt != value["jkt"]:
                self.provider.record("oauth:dpop:key-mismatch", "failure", user_id=int(value["uid"]),
                                     reason="code redeemed with another DPoP key than dpop_jkt",
                                     client_id=client.get_client_id())
                raise InvalidGrantError("The DPoP proof key does not match the dpop_jkt of the authorization.")
        asked = [r for r in self.request.payload.datalist.get("resource", []) if r]
        if asked and any(r not in value["aud"] for r in asked):
            # RFC 8707 §2.2: the token request may only name resources the authorization covered.
            raise InvalidTargetError("'resource' names an audience this authorization does not cover.")
        if not self.provider.session_live(value["uid"], value.get("sid")):
            # Logged out, "sign out everywhere" or "this wasn't me" since the code was issued: it dies with it.
            self.provider.record("oauth:code:session-ended", "failure", user_id=int(value["uid"]),
                                 reason="the login session that approved the code has ended",
                                 client_id=client.get_client_id())
            return None
        return AuthCode(value, gid)

    def delete_authorization_code(self, authorization_code):
        pass  # consumed atomically by query_authorization_code

    def authenticate_user(self, authorization_code):
        user = self.provider.active_user(authorization_code.data["uid"])
        return None if user is None or user.must_change_password else user  # None → invalid_grant


class GrantUser:
    """The resource owner of a refresh grant. The rotation's own UPDATE … RETURNING already proved the user active,
    so the refresh loads no User row; anything that wants more than ``id`` gets the row, loaded on first use."""

    def __init__(self, provider: "OAuthProvider", user_id: int):
        self.id = user_id
        self._provider = provider
        self._row = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._row is None:
            self._row = self._provider.db.session.get(User, self.id)
        return getattr(self._row, name)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        provider = self.server.provider
        provider.check_refresh_scope(refresh_token, self.request.client.get_client_id(), self.request.payload.scope,
                                     [r for r in self.request.payload.datalist.get("resource", []) if r])
        new = f"{grant_id_of(refresh_token) or ''}.{secrets.token_urlsafe(32)}"
        proof = token_proof()
        result = provider.tokens.rotate_refresh(refresh_token, self.request.client.get_client_id(), new,
                                                dpop_jkt=proof.jkt if proof else None)
        provider.check_dpop_rotation(result.outcome, refresh_token)
        if result.outcome == "reuse":
            provider.on_refresh_reuse(result.grant)
            raise InvalidGrantError(provider.REUSED)
        if result.outcome != "ok":
            return None
        if provider.token_drifted(result.grant, provider._ctx, client=self.request.client):
            raise InvalidGrantError(provider.DRIFTED)
        self.request.new_refresh_token = new
        self.request.rotation = result
        return TokenRef("refresh", result.grant, refresh_token)

    def authenticate_user(self, refresh_token):
        uid = refresh_token.rec["uid"]
        if not uid or not self.request.rotation.user_active:
            return None
        return GrantUser(self.server.provider, int(uid))

    def revoke_old_credential(self, refresh_token):
        pass  # the rotation already replaced it


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_OR_KEY


@dataclass
class DeviceCredential:
    key: str
    data: dict

    def get_client_id(self):
        return self.data["cid"]

    def get_scope(self):
        return self.data.get("scope", "")

    def get_user_code(self):
        return self.data["user_code"]

    def is_expired(self):
        return float(self.data["exp"]) <= current_app.extensions["authsvc.oauth"].clock.timestamp()


class DeviceGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_device_credential(self, device_code):
        return self.server.provider.device.get(device_code)

    def validate_device_credential(self, credential):
        if credential.is_expired():
            raise ExpiredTokenError()
        status, data = self.server.provider.device.claim(credential)
        if status == "approved":
            self.request.device = data
            user = self.server.provider.active_user(data["uid"])
            if user is None or user.must_change_password:
                raise AccessDeniedError()
            if not self.server.provider.session_live(data["uid"], data.get("sid")):
                self.server.provider.record("oauth:device:session-ended", "failure", user_id=user.id,
                                            reason="the login session that approved the device has ended",
                                            client_id=credential.get_client_id())
                raise AccessDeniedError("The sign-in that approved this device has ended.")
            self.server.provider.score_device_redemption(user, data, credential.get_client_id())
            return user
        if status == "denied":
            raise AccessDeniedError()
        if status == "used":
            raise InvalidGrantError("This device code was already used.")
        if self.should_slow_down(credential):
            raise SlowDownError()
        raise AuthorizationPendingError()

    def query_user_grant(self, user_code):  # pragma: no cover - validate_device_credential is overridden
        raise NotImplementedError

    def should_slow_down(self, credential):
        return self.server.provider.device.too_fast(credential)


class DeviceAuthorization(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    USER_CODE_TYPE = "string"  # 8 letters from a 20-letter alphabet, no vowels (RFC 8628 §6.1)

    def create_endpoint_response(self, request):
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_GRANT):
            from authlib.oauth2.rfc6749 import UnauthorizedClientError

            raise UnauthorizedClientError("The client may not use the device grant.")
        if client.get_allowed_scope(request.payload.scope) is None:
            from authlib.oauth2.rfc6749 import InvalidScopeError

            raise InvalidScopeError()
        self.EXPIRES_IN = self.server.provider.settings.device_code_ttl
        self.INTERVAL = self.server.provider.settings.device_interval
        return super().create_endpoint_response(request)

    def get_verification_uri(self):
        return self.server.provider.issuer + "/device"

    def save_device_credential(self, client_id, scope, data):
        client = self.server.provider.clients.get(client_id)
        allowed = client.get_allowed_scope(scope) if client is not None else ""  # unknown scopes dropped
        self.server.provider.device.save(client_id, allowed or "", data, requester=self.server.provider._ctx())


class OIDCCode(OpenIDCode):
    def __init__(self, provider: "OAuthProvider"):
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce, request):
        return False  # the nonce protects the RP; it checks it against its own session

    def resolve_client_private_key(self, client):
        return self.provider.keys.signing_key()[0]

    def get_client_algorithm(self, client):
        return self.provider.keys.signing_key()[2]

    def get_encode_header(self, client):
        _, kid, alg = self.provider.keys.signing_key()
        return {"alg": alg, "kid": kid, "typ": "JWT"}

    def get_client_claims(self, client):
        now = int(self.provider.clock.timestamp())
        return {"iss": self.provider.issuer, "aud": [client.get_client_id()], "iat": now,
                "exp": now + self.provider.settings.id_token_ttl}

    def generate_user_info(self, user, scope):
        return self.provider.user_claims(user, scope)

    def get_authorization_code_claims(self, authorization_code):
        claims = super().get_authorization_code_claims(authorization_code)
        # The login's sid (user_sessions.login_id): the same in every ID token of this sign-in and in the logout
        # tokens that end it (Back-Channel Logout 1.0 §2.1); random, never the session's cookie hash.
        osid = authorization_code.data.get("osid")
        if osid:
            claims["sid"] = osid
        return claims


# --- endpoints ----------------------------------------------------------------------------------------------------------
class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return self.server.provider.find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        self.server.provider.revoke(token, request.client)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = SECRET_OR_KEY

    def query_token(self, token_string, token_type_hint):
        return self.server.provider.find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return self.server.provider.may_introspect(token, client)

    def introspect_token(self, token):
        provider = self.server.provider
        if provider.forwarded_drift(token, flask_request.form):
            return {"active": False}
        return provider.introspection_payload(token)


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return self.server.provider.keys.public_keyset()

    def get_algorithms(self):
        return list(ALLOWED_ALGS)

    def resolve_client_from_id_token_claims(self, id_token_claims):
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:  # our ID tokens carry aud as a one-element list
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def end_session(self, end_session_request):
        pass  # the view ends the cookie session itself (it owns the response that clears the cookie)


class Server(AuthorizationServer):
    def __init__(self, provider: "OAuthProvider"):
        super().__init__()
        self.provider = provider
        self.scopes_supported = list(SCOPES)

    def query_client(self, client_id):
        return self.provider.clients.get(client_id)

    def validate_requested_scope(self, scope):
        """Unknown scope values are ignored, not refused (OIDC Core §3.1.2.1, RFC 6749 §3.3): ``Client.
        get_allowed_scope`` drops them; a known scope the client is not registered for is still invalid_scope."""
        return None

    def save_token(self, token, request):
        return self.provider.save_token(token, request)

    def authenticate_client(self, request, methods, endpoint="token"):
        client = super().authenticate_client(request, methods, endpoint)
        # Charged only once the client proved who it is: strangers cannot burn a client's quota with its id.
        self.provider.charge(self.provider.client_quota(client), client.quota_per_minute,
                             client_id=client.get_client_id(), what=endpoint)
        if endpoint == "token" and client.dpop_bound_access_tokens and token_proof() is None:
            # RFC 9449 §5.2 (dpop_bound_access_tokens): this client never gets a bearer token.
            raise InvalidDPoPProofError("This client must send a DPoP proof with every token request.")
        return client


class Issuer(IssuerParameter):
    def __init__(self, provider):
        self.provider = provider

    def get_issuer(self):
        return self.provider.issuer


# --- the service -------------------------------------------------------------------------------------------------------
class OAuthProvider:
    def __init__(self, *, app, db, clock, audit, settings, keys, tokens, clients, device):
        self.app = app
        self.db = db
        self.clock = clock
        self.audit = audit
        self.settings = settings
        self.keys = keys
        self.tokens = tokens
        self.clients = clients
        self.device = device
        self.server = Server(self)
        self.server.register_token_generator("default", self.generate_token)
        self.server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), OIDCCode(self)])
        self.server.register_grant(RefreshTokenGrant)
        self.server.register_grant(ClientCredentialsGrant)
        self.server.register_grant(DeviceGrant)
        self.server.register_endpoint(Revocation)
        self.server.register_endpoint(Introspection)
        self.server.register_endpoint(DeviceAuthorization)
        self.server.register_endpoint(EndSession)
        from authsvc.oauth.client_auth import METHOD as PKJWT, PrivateKeyJWT

        self.private_key_jwt = PrivateKeyJWT(self)  # RFC 7523 / OIDC Core §9 (authsvc.oauth.client_auth)
        self.server.register_client_auth_method(PKJWT, self.private_key_jwt)
        # Continuous risk for public clients' refresh families (authsvc.risk.drift), wired by authsvc.oauth.init_app
        # when session drift scoring is on: ``geo_of(ip)`` → GeoInfo or None, ``alerts`` = LoginAlerts.
        self.token_drift = False
        self.geo_of = None
        self.alerts = None
        from authsvc.oauth.par import PARStore

        self.par = PARStore(lambda: self.tokens.redis, ttl=settings.par_ttl)  # RFC 9126 pushed requests
        self.issuer_ext = Issuer(self)
        self.server.register_extension(self.issuer_ext)
        # DPoP (RFC 9449): nonces are an HMAC of the time slot under a key derived from the app secret, so every
        # worker issues and accepts the same ones; jti single use in Redis.
        nonce_key = hmac.new(str(app.config["SECRET_KEY"]).encode(), b"authsvc/oauth/dpop-nonce",
                             hashlib.sha256).digest()
        self.dpop = DPoPProofValidator(
            algorithms=DPOP_ALGS, replay=RedisReplayCache(lambda: self.tokens.redis),
            nonces=NonceSource(nonce_key, period=settings.dpop_nonce_period, clock=clock.timestamp),
            max_age=settings.dpop_proof_max_age, clock=clock.timestamp)

    @property
    def issuer(self) -> str:
        # Read per call so an operator (or a test bound to an ephemeral port) can set OAUTH_ISSUER after start.
        return (self.app.config.get("OAUTH_ISSUER") or self.settings.issuer
                or self.app.config["AUTHSVC"].base_url).rstrip("/")

    # --- audit / quota ---------------------------------------------------------------------------------------------
    def _ctx(self):
        from flask import has_request_context

        if not has_request_context():
            return {}
        from authsvc.web.http import request_context

        ctx = request_context()
        return {"ip": ctx.ip, "user_agent": ctx.user_agent}

    def record(self, tag: str, outcome: str, *, user_id=None, reason=None, audit_ctx=None, **details):
        """Append an audit event. ``audit_ctx`` (a callable returning {"ip", "user_agent"}) stands in for the Flask
        request context on paths that run without one (the WSGI fast path)."""
        ctx = audit_ctx() if audit_ctx is not None else self._ctx()
        self.audit.record(tag, outcome, actor_id=user_id, subject_id=user_id, reason=reason,
                          details={k: v for k, v in details.items() if v is not None}, **ctx)

    def charge(self, name: str, limit: int, *, client_id: str, what: str, audit_ctx=None) -> None:
        n, reset = self.tokens.charge(name, limit)
        self.over_quota(n, reset, limit, name=name, client_id=client_id, what=what, audit_ctx=audit_ctx)

    def over_quota(self, n: int, reset: int, limit: int, *, name: str, client_id: str, what: str,
                   audit_ctx=None) -> None:
        """Raise ``Throttled`` if the count ``n`` is over ``limit``; audit the first refusal of a window, not every
        one (a flood must not flood SQL)."""
        if n > limit:
            if n == limit + 1:
                self.record("oauth:quota:exceeded", "failure", reason=what, client_id=client_id,
                            scope=name.split(":", 1)[0], audit_ctx=audit_ctx)
            raise Throttled(reset, scope="oauth")

    @staticmethod
    def quota_name(client_id: str, secret_hash: str | None) -> str:
        """The name of a client's per-minute quota counter (shared by the token, introspection and userinfo
        endpoints): ``c:<id>`` for a public client, ``c:<id>:<secret hash prefix>`` for a confidential one. Naming
        the counter after the secret means only requests that present the right secret count against it. That is
        what lets the lean paths count a request in the same Redis round trip as the client look-up, before the
        secret is checked: they name the counter after the hash of the secret *presented*, which equals the real
        counter's name only if the secret is right (a wrong one counts in a throw-away counter that expires with
        its window). ``client_quota`` is the name for a client that has authenticated."""
        return f"c:{client_id}" if secret_hash is None else f"c:{client_id}:{secret_hash[:16]}"

    def client_quota(self, client: Client) -> str:
        return self.quota_name(client.client_id, None if client.is_public else client.secret_hash)

    def _lean_lookup(self, client_id: str, secret: str | None):
        """Start a lean path's one round trip: a pipeline that reads the client record and counts this request
        against the quota named after the presented credentials. Returns (pipeline, quota name, seconds until the
        window resets); the caller adds its own reads. Replies 0 and 2 are the client JSON and the count."""
        qname = self.quota_name(client_id, None if secret is None else sha256(secret))
        qkey, reset = self.tokens.quota_key(qname)
        pipe = self.tokens.redis.pipeline(transaction=False)
        pipe.get(self.clients.cache_key(client_id))
        self.tokens.queue_charge(pipe, qkey)
        return pipe, qname, reset

    # --- DPoP (RFC 9449) ---------------------------------------------------------------------------------------------
    def dpop_proof(self, path: str, *, access_token: str | None = None) -> DPoPProof | None:
        """The current request's DPoP proof for ``path`` on this issuer, verified (RFC 9449 §4.3), or None if the
        request has no DPoP header. Raises ``InvalidDPoPProofError`` / ``UseDPoPNonceError``. ``htu`` is checked
        against the issuer's URL (the public one), not the URL the WSGI server saw behind a proxy."""
        values = flask_request.headers.getlist("DPoP")
        if not values:
            return None
        return self.dpop.validate(values, method=flask_request.method, uri=self.issuer + path,
                                  access_token=access_token, require_nonce=bool(self.settings.dpop_require_nonce))

    def dpop_nonce(self) -> str | None:
        """The ``DPoP-Nonce`` to send with responses to DPoP requests, when nonces are required."""
        return self.dpop.nonces.current() if self.settings.dpop_require_nonce else None

    def check_dpop_rotation(self, outcome: str, refresh_token: str, audit_ctx=None) -> None:
        """Turn a refused rotation of a DPoP-bound refresh family into its error (nothing was rotated)."""
        if outcome == "unbound":
            raise InvalidDPoPProofError("This refresh token is bound to a DPoP key: send a DPoP proof of it.")
        if outcome == "wrongkey":
            self.record("oauth:dpop:key-mismatch", "failure", reason="refresh with another DPoP key than the bound one",
                        grant=(grant_id_of(refresh_token) or "")[:8], audit_ctx=audit_ctx)
            raise InvalidGrantError("The DPoP proof key is not the key this refresh token is bound to.")

    # --- device-code phishing ----------------------------------------------------------------------------------------
    def place_of(self, ip: str | None) -> dict:
        """Where an address is, as far as the offline data says: {"ip", "network", "country", "asn", "org",
        "hosting"} (unknown parts None). Used for the device confirmation page and the redemption check."""
        out = {"ip": ip, "network": network_of(ip) if ip else None, "country": None, "asn": None, "org": None,
               "hosting": False}
        geo = self.geo_of(ip) if ip and self.geo_of is not None else None
        if geo is not None:
            out.update(country=geo.country, asn=geo.asn, org=geo.org, hosting=is_hosting(geo.asn, geo.org))
        return out

    @staticmethod
    def places_differ(a: dict, b: dict) -> bool:
        """Another country (both known), or — countries unknown — another network."""
        if a.get("country") and b.get("country"):
            return a["country"] != b["country"]
        return bool(a.get("network") and b.get("network") and a["network"] != b["network"])

    def score_device_redemption(self, user: User, data: dict, client_id: str) -> None:
        """Device-code phishing (Storm-2372): the device that redeems an approved code is scored like a login of
        the user from that device's address (the login risk engine). ``deny`` refuses; ``step_up`` — which a device
        cannot answer — refuses when the redeeming device is somewhere else than the person who approved it (another
        country or network) or on a hosting network. Refusals are audited and the owner is told."""
        from authsvc.accounts.login import RequestContext
        from authsvc.services import services

        ctx = self._ctx()
        ip, ua = ctx.get("ip"), ctx.get("user_agent")
        try:
            decision = services().login.risk.score(user, RequestContext(ip, ua), breached=False)
        except Exception:  # noqa: BLE001 - a risk store that cannot answer means "cannot check": refuse, not pass
            log.exception("oauth: device redemption could not be scored")
            raise AccessDeniedError("This sign-in cannot be checked right now; start again.") from None
        here, approver = self.place_of(ip), self.place_of(data.get("aip") or None)
        refuse = decision.action == "deny" or (decision.action == "step_up" and (
            self.places_differ(here, approver) or here["hosting"]))
        if not refuse:
            return
        texts = "; ".join(r.text for r in decision.reasons) or decision.action
        self.record("oauth:device:risk-denied", "failure", user_id=user.id, client_id=client_id,
                    reason=texts[:255], action=decision.action, score=decision.score,
                    reasons=[r.code for r in decision.reasons], device_country=here["country"],
                    approver_country=approver["country"])
        if self.alerts is not None:
            self.alerts.app_signed_out(user, RequestContext(ip, ua), f"device sign-in refused: {texts}",
                                       (self.clients.get(client_id).name if self.clients.get(client_id) else None)
                                       or "A device")
        raise AccessDeniedError("This device sign-in looks risky and was refused.")

    # --- users -----------------------------------------------------------------------------------------------------
    def session_live(self, user_id, sid: str | None) -> bool:
        """Whether login session ``sid`` of ``user_id`` still stands in SQL (the durable truth): not revoked, not
        older than the user's ``sessions_valid_after`` ("sign out everywhere", "this wasn't me"), user active.
        A code or device approval minted by a session is only redeemable while this holds."""
        if not user_id or not sid:
            return False
        row = self.db.session.execute(
            select(UserSession.revoked_at, UserSession.created_at, User.sessions_valid_after, User.status)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id == sid, UserSession.user_id == int(user_id))).first()
        return (row is not None and row.revoked_at is None and row.created_at >= row.sessions_valid_after
                and row.status == "active")

    def active_user(self, user_id) -> User | None:
        if not user_id:
            return None
        user = self.db.session.get(User, int(user_id))
        return user if user is not None and user.is_active else None

    def subject_of(self, user_id) -> str | None:
        """The ``sub`` of a user id, from SQL: only for Redis records written before records carried it."""
        return self.db.session.execute(select(User.sub).where(User.id == int(user_id))).scalar()

    def user_claims(self, user: User, scope: str) -> dict:
        scopes = (scope or "").split()
        claims = {"sub": user.sub}  # opaque, stored, never reassigned (OIDC Core §2); not the row id
        if "email" in scopes:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified_at is not None
        if "profile" in scopes:  # OIDC Core §5.4: only the profile claims the account has (absent ones are omitted)
            for name in PROFILE_CLAIMS:
                value = getattr(user, name, None)
                if value:
                    claims[name] = value
        return claims

    def requested_audiences(self, client: Client, resources) -> list[str]:
        allowed = client.audiences or [self.issuer]
        resources = [r for r in resources if r]
        if not resources:
            return allowed
        if any(r not in allowed for r in resources):
            raise InvalidTargetError("'resource' names an audience this client may not request.")
        return resources

    # --- token issue -----------------------------------------------------------------------------------------------
    def generate_token(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        token = {"token_type": "Bearer", "access_token": secrets.token_urlsafe(32),
                 "expires_in": client.access_token_ttl, "scope": scope or ""}
        if include_refresh_token and grant_type != "client_credentials":
            token["refresh_token"] = ""  # filled in by save_token, which knows the grant
        return token

    def save_token(self, token: dict, request) -> None:
        client: Client = request.client
        grant_type = request.payload.grant_type
        user = request.user
        uid = user.id if user is not None else None
        refresh = None
        proof = token_proof()
        jkt = proof.jkt if proof else None  # RFC 9449 §5: the access token is bound to the proof's key
        # Refresh tokens of public clients are bound too (§5); a confidential client's are bound to its credentials.
        bind_refresh = jkt if client.is_public else None
        birth_ctx = self.birth_of(client) if grant_type in ("authorization_code", DEVICE_GRANT) else None
        if grant_type == "authorization_code":
            code: AuthCode = request.authorization_code
            gid, d = code.gid, code.data
            if "refresh_token" in token:
                refresh = f"{gid}.{secrets.token_urlsafe(32)}"
            self.tokens.create_grant(gid, client_id=client.client_id, user_id=uid, session_id=d["sid"],
                                     scope=d["scope"], audiences=d["aud"], auth_time=d["auth_time"], acr=d["acr"],
                                     amr=d["amr"], refresh_hash=sha256(refresh) if refresh else None,
                                     subject=user.sub, dpop_jkt=bind_refresh if refresh else None,
                                     birth=birth_ctx)
            ctx = {"sid": d["sid"], "at": d["auth_time"], "acr": d["acr"], "aud": d["aud"], "sub": user.sub,
                   "bx": birth_ctx}
        elif grant_type == "refresh_token":
            g = request.refresh_token.rec
            gid, refresh = g["gid"], request.new_refresh_token
            ctx = {"sid": g["sid"], "at": g["at"], "acr": g["acr"], "aud": json.loads(g["aud"]), "sub": g.get("sub"),
                   "bx": g.get("bx")}
        elif grant_type == DEVICE_GRANT:
            d = request.device
            gid = new_grant_id()
            if "refresh_token" in token:
                refresh = f"{gid}.{secrets.token_urlsafe(32)}"
            aud = client.audiences or [self.issuer]
            self.tokens.create_grant(gid, client_id=client.client_id, user_id=uid, session_id=d["sid"],
                                     scope=token["scope"], audiences=aud, auth_time=int(d["at"]), acr=d["acr"],
                                     amr=d["amr"].split(",") if d["amr"] else [],
                                     refresh_hash=sha256(refresh) if refresh else None, subject=user.sub,
                                     dpop_jkt=bind_refresh if refresh else None, birth=birth_ctx)
            ctx = {"sid": d["sid"], "at": int(d["at"]), "acr": d["acr"], "aud": aud, "sub": user.sub,
                   "bx": birth_ctx}
        else:  # client_credentials: a grant too, so deleting the client (or revoking) reaches these tokens
            gid = new_grant_id()
            aud = self.requested_audiences(client, request.payload.datalist.get("resource", []))
            self.tokens.create_grant(gid, client_id=client.client_id, user_id=None, session_id=None,
                                     scope=token["scope"], audiences=aud, auth_time=None, acr=None, amr=None,
                                     refresh_hash=None)
            ctx = {"sid": None, "at": None, "acr": None, "aud": aud}
        if grant_type in ("authorization_code", DEVICE_GRANT) and not self.session_live(uid, ctx["sid"]):
            # The session ended after the check above but before the grant existed (its revocation listener found
            # nothing to revoke): the grant is written now, so revoke it ourselves and hand nothing out.
            self.tokens.revoke_grant(gid, "session_revoked")
            raise InvalidGrantError("The login session that approved this grant has ended.")
        token["access_token"] = self.issue_access(client, gid, uid, token["scope"], ctx, token["access_token"],
                                                  jkt=jkt)
        if grant_type == DEVICE_GRANT and "openid" in token["scope"].split():
            d = request.device  # OIDC: an ID token for an OpenID grant, as the code grant's (OpenIDCode) gives
            token["id_token"] = self.id_token(client, user, token["scope"], token["access_token"], sid=gid,
                                              auth_time=int(d["at"]), acr=d["acr"],
                                              amr=d["amr"].split(",") if d["amr"] else [])
        if jkt:
            token["token_type"] = "DPoP"
        metrics.TOKENS.labels(grant_type).inc()
        if refresh:
            token["refresh_token"] = refresh
        if grant_type != "refresh_token":
            # A routine rotation is not audited (the grant row counts it; see authsvc.oauth.tokens): issuance is.
            self.record("oauth:token:issue", "success", user_id=uid, client_id=client.client_id,
                        grant_type=grant_type, grant=gid[:8], scope=token["scope"], format=client.token_format,
                        dpop=bool(jkt) or None)

    def issue_access(self, client: Client, gid: str, uid, scope: str, ctx: dict, opaque: str,
                     jkt: str | None = None) -> str:
        """Store a new access token of grant ``gid`` and return it (``opaque``, or a JWT for JWT clients). Raises
        invalid_grant if the grant was revoked meanwhile (nothing stored). ``ctx``: sid, at, acr, aud of the grant, and
        the user's opaque ``sub`` (kept in the record: introspection and JWTs name the user by it, never by ``uid``).
        ``jkt``: the DPoP key thumbprint the token is bound to (RFC 9449 §6: ``cnf.jkt``)."""
        now = int(self.clock.timestamp())
        ttl = client.access_token_ttl
        record = {"gid": gid, "cid": client.client_id, "uid": uid or "", "sub": (uid and ctx.get("sub")) or "",
                  "scope": scope,
                  "aud": " ".join(ctx["aud"]), "iat": now, "exp": now + ttl, "at": ctx["at"] or "",
                  "acr": ctx["acr"] or "", "jti": secrets.token_urlsafe(12)}
        if jkt:
            record["jkt"] = jkt
        if ctx.get("bx"):
            record["bx"] = ctx["bx"]  # the family's birth network: forwarded introspection scores it, no extra read
        access = self._jwt_access_token(record, client) if client.token_format == "jwt" else opaque
        if not self.tokens.save_access(access, record, ttl):
            raise InvalidGrantError("The grant was revoked.")
        return access

    def id_token(self, client: Client, user: User, scope: str, access_token: str, *, sid: str, auth_time: int,
                 acr: str | None, amr: list[str]) -> str:
        """An ID token (OIDC Core §2) for grants Authlib's OpenIDCode does not cover (the device grant): the same
        claims, key and lifetime as the code grant's, with ``at_hash`` of the access token issued with it."""
        from authlib.oidc.core.util import create_half_hash

        key, kid, alg = self.keys.signing_key()
        now = int(self.clock.timestamp())
        claims = {**self.user_claims(user, scope), "iss": self.issuer, "aud": [client.client_id], "iat": now,
                  "exp": now + self.settings.id_token_ttl, "auth_time": auth_time, "sid": sid}
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = amr
        at_hash = create_half_hash(access_token, alg)
        if at_hash is not None:
            claims["at_hash"] = at_hash.decode() if isinstance(at_hash, bytes) else at_hash
        return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])

    def _jwt_access_token(self, record: dict, client: Client) -> str:
        """RFC 9068 JWT access token: typ at+jwt, signed with the current key, short-lived (≤ 15 min by policy)."""
        key, kid, alg = self.keys.signing_key()
        claims = {"iss": self.issuer, "sub": record["sub"] or client.client_id, "aud": record["aud"].split(),
                  "client_id": client.client_id, "iat": record["iat"], "exp": record["exp"], "jti": record["jti"],
                  "scope": record["scope"]}
        if record["at"]:
            claims["auth_time"] = int(record["at"])
        if record["acr"]:
            claims["acr"] = record["acr"]
        if record.get("jkt"):
            claims["cnf"] = {"jkt": record["jkt"]}  # RFC 9449 §6.1
        return jwt.encode({"alg": alg, "kid": kid, "typ": "at+jwt"}, claims, key, algorithms=[alg])

    # --- token lookup ------------------------------------------------------------------------------------------------
    def _jwt_ok(self, token: str) -> bool:
        """A JWT access token verifies (allow-listed algorithms only, so ``alg: none`` and HMAC-with-the-public-key
        forgeries die here), is typed at+jwt (not an ID token) and is unexpired, from this issuer."""
        try:
            t = jwt.decode(token, self.keys.public_keyset(), algorithms=list(ALLOWED_ALGS))
            if t.header.get("typ") != "at+jwt":
                return False  # e.g. an ID token presented as an access token
            jwt.JWTClaimsRegistry(now=int(self.clock.timestamp()), iss={"essential": True, "value": self.issuer},
                                  exp={"essential": True}).validate(t.claims)
        except (JoseError, ValueError):
            return False
        return True

    def resolve_access(self, token: str) -> dict | None:
        """The live record behind an access token, or None. JWTs must verify first, then still be live in Redis
        (revocation)."""
        if not token:
            return None
        if token.count(".") == 2 and not self._jwt_ok(token):
            return None
        return self.tokens.lookup_access(token)

    def find_token(self, token: str, hint: str | None) -> TokenRef | None:
        """The token, whatever ``hint`` says: the hint only orders the search. RFC 7009 §2.1 / RFC 7662 §2.1: a server
        that cannot find the token under the hinted type MUST extend its search to the other types, so a wrong hint
        never hides a token from revocation or introspection."""
        first, second = ((self._find_refresh, self._find_access) if hint == "refresh_token"
                         else (self._find_access, self._find_refresh))
        return first(token) or second(token)

    def _find_access(self, token: str) -> TokenRef | None:
        rec = self.resolve_access(token)
        return TokenRef("access", rec, token) if rec else None

    def _find_refresh(self, token: str) -> TokenRef | None:
        gid = grant_id_of(token)
        if gid:
            rec = self.tokens.redis.hgetall(f"oauth:grant:{{{gid}}}")
            if rec and rec.get("rev") != "1" and rec.get("cur") == sha256(token):
                return TokenRef("refresh", {**rec, "gid": gid}, token)
        return None

    @staticmethod
    def may_introspect(token: TokenRef, client: Client) -> bool:
        # Audience restriction: a resource server sees only tokens meant for it (or the client's own tokens).
        if token.check_client(client):
            return True
        return bool(client.resource) and client.resource in token.rec.get("aud", "").split()

    # --- introspection: the lean path ---------------------------------------------------------------------------------
    def introspect(self):
        """The Flask view's answer: the lean path below, else Authlib's ``IntrospectionEndpoint``. (Requests that
        came through ``authsvc.oauth.fastpath`` were answered before Flask; this covers the rest.)"""
        req = flask_request
        body = self.introspect_lean(authorization=req.headers.get("Authorization"), form=req.form,
                                    secure=is_secure_transport(f"{req.scheme}://{req.host}/"))
        if body is None:
            return self.server.create_endpoint_response("introspection")
        return self.server.handle_response(200, body, default_json_headers)

    def introspect_lean(self, *, authorization: str | None, form, secure: bool, audit_ctx=None) -> dict | None:
        """RFC 7662 introspection answer for the common case, or None: "let Authlib's endpoint answer".

        The common case — a confidential client authenticating with a valid secret (Basic, else POST), a ``token``
        parameter, a known or no hint — is answered with one Redis round trip: one pipeline reading the client, the
        quota count (named after the presented secret, so a wrong one never spends the client's quota; see
        ``quota_name``) and the token's records. The checks and the answer are those of Authlib's endpoint (the same
        ``find_token`` logic and ``may_introspect`` / ``introspection_payload`` hooks). Everything else — no or
        wrong credentials, a public client, a missing parameter, an unknown hint, plain http to a non-loopback host,
        a client not in the cache — returns None, and Authlib answers it. A store that does not answer raises (→ 503): a token is
        never reported inactive because it could not be checked. Over quota raises ``Throttled`` (→ 429).
        """
        if not secure:
            return None  # Authlib answers insecure_transport
        token = form.get("token")
        hint = form.get("token_type_hint")
        if token is None or (hint and hint not in Introspection.SUPPORTED_TOKEN_TYPES):
            return None
        client_id, secret = extract_basic_authorization({"Authorization": authorization} if authorization else {})
        if not (client_id and secret):
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not (client_id and secret):
                return None
        if len(client_id) > 64:
            return None
        look_access = 0 < len(token) <= 4096  # whatever the hint (RFC 7662 §2.1): same round trip either way
        gid = grant_id_of(token)
        r = self.tokens.redis
        # One round trip: the client, the quota count (see quota_name) and the token's records.
        pipe, qname, reset = self._lean_lookup(client_id, secret)
        if look_access:
            at_key = self.tokens.access_key(token)
            pipe.get(at_key)
        if gid:
            pipe.hgetall(f"oauth:grant:{{{gid}}}")
        # Per-command errors come back in place (I/O errors still raise): the access-token GET may meet a record an
        # older version wrote as a hash (access_record reads that); any other command error is raised as usual.
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.ResponseError) and not (look_access and i == 3):
                raise reply
        if replies[0] is None:
            return None  # not cached: Authlib's path loads it from SQL (and caches it)
        client = self.clients.from_cache(replies[0])
        if client.is_public or not client.check_client_secret(secret):
            return None  # Authlib tries the other method, then answers invalid_client (the count went elsewhere)
        self.over_quota(int(replies[2]), reset, client.quota_per_minute, name=qname, client_id=client_id,
                        what=Introspection.ENDPOINT_NAME, audit_ctx=audit_ctx)
        ref = None
        if look_access:
            rec = self.tokens.access_record(r, at_key, replies[3], self.clock.timestamp(), fetched=True)
            if rec and (token.count(".") != 2 or self._jwt_ok(token)):
                ref = TokenRef("access", rec, token)
        if ref is None and gid:
            rec = replies[-1]
            if rec and rec.get("rev") != "1" and rec.get("cur") == sha256(token):
                ref = TokenRef("refresh", {**rec, "gid": gid}, token)
        if ref is None or not self.may_introspect(ref, client) or ref.is_expired() or ref.is_revoked():
            return {"active": False}
        if self.forwarded_drift(ref, form):
            return {"active": False}
        body = self.introspection_payload(ref)
        body.setdefault("active", True)
        return body

    # --- refresh: the lean path ---------------------------------------------------------------------------------------
    REUSED = "This refresh token was already used; the grant has been revoked."

    def refresh_lean(self, *, authorization: str | None, form, secure: bool, audit_ctx=None,
                     dpop: str | None = None) -> tuple[int, dict] | None:
        """The refresh-token grant (RFC 6749 §6) for the common case, or None: "let Authlib's grant answer".

        Common case: ``grant_type=refresh_token`` with a ``refresh_token``, no ``scope`` or ``resource`` (narrowing
        goes to Authlib), and a client that authenticates as registered — a confidential client with its secret
        (Basic, else POST), a public one with its ``client_id`` only — and may use the grant. Anything else returns
        None before any token is touched, and Authlib's ``RefreshTokenGrant`` (the same ``rotate_refresh`` and
        ``issue_access`` underneath) answers with its own errors. The work: one Redis round trip (client + quota
        count), the rotation (one Lua call, one autocommit SQL statement), the new access token (one pipeline).
        Returns (status, JSON body) as Authlib would; a store that does not answer raises (→ 503), over quota raises
        ``Throttled`` (→ 429).

        DPoP (RFC 9449): ``dpop`` is the ``DPoP`` header. A proof that fails any check (or needs a nonce) goes to
        Authlib's path, which checks it again and answers the error; a valid one is checked for replay (one SET NX,
        only once the client is known) and binds the new access token (``token_type: DPoP``). Without a proof, a
        "DPoP required" client goes to Authlib, and a DPoP-bound family is refused by the rotation before it swaps.
        """
        if not secure or form.get("grant_type") != "refresh_token" or "scope" in form or "resource" in form:
            return None
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            return None
        proof = None
        if dpop is not None:
            try:
                proof = self.dpop.validate(dpop, method="POST", uri=self.issuer + "/oauth2/token",
                                           require_nonce=bool(self.settings.dpop_require_nonce), check_replay=False)
            except OAuth2Error:
                return None  # Authlib's path answers invalid_dpop_proof / use_dpop_nonce
        basic_id, basic_secret = extract_basic_authorization(
            {"Authorization": authorization} if authorization else {})
        if basic_id or authorization:
            if not (basic_id and basic_secret) or "client_secret" in form:
                return None
            client_id, secret = basic_id, basic_secret
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if not client_id or len(client_id) > 64 or (secret is not None and not secret):
            return None
        pipe, qname, reset = self._lean_lookup(client_id, secret)
        raw, _, count = pipe.execute()
        if raw is None:
            return None  # not cached: Authlib's path loads the client from SQL (and caches it)
        client = self.clients.from_cache(raw)
        if secret is None:
            if not client.is_public:
                return None  # invalid_client, from Authlib
        elif client.is_public or not client.check_client_secret(secret):
            return None
        if not client.check_grant_type("refresh_token") or (client.dpop_bound_access_tokens and proof is None):
            return None  # unauthorized_client / invalid_dpop_proof, from Authlib
        self.over_quota(int(count), reset, client.quota_per_minute, name=qname, client_id=client_id, what="token",
                        audit_ctx=audit_ctx)
        if proof is not None and not self.dpop.replay.first_use(proof.jkt, proof.claims["jti"], self.dpop.replay_ttl):
            return 400, {"error": "invalid_dpop_proof", "error_description": "DPoP proof was already used (jti replay)"}
        gid = grant_id_of(refresh_token) or ""
        new = f"{gid}.{secrets.token_urlsafe(32)}"
        result = self.tokens.rotate_refresh(refresh_token, client_id, new, dpop_jkt=proof.jkt if proof else None)
        if result.outcome in ("unbound", "wrongkey"):  # a DPoP-bound family, refused before the swap
            try:
                self.check_dpop_rotation(result.outcome, refresh_token, audit_ctx=audit_ctx)
            except OAuth2Error as exc:
                return 400, {"error": exc.error, "error_description": exc.description}
        if result.outcome == "reuse":
            self.on_refresh_reuse(result.grant, audit_ctx=audit_ctx)
            return 400, {"error": "invalid_grant", "error_description": self.REUSED}
        if result.outcome != "ok":
            return 400, {"error": "invalid_grant"}
        g = result.grant
        if not g["uid"] or not result.user_active:
            return 400, {"error": "invalid_request", "error_description": "There is no 'user' for this token."}
        if self.token_drifted(g, audit_ctx, client=client):
            return 400, {"error": "invalid_grant", "error_description": self.DRIFTED}
        ctx = {"sid": g["sid"], "at": g["at"], "acr": g["acr"], "aud": json.loads(g["aud"]), "sub": g.get("sub"),
               "bx": g.get("bx")}
        try:
            access = self.issue_access(client, g["gid"], g["uid"], g["scope"], ctx, secrets.token_urlsafe(32),
                                       jkt=proof.jkt if proof else None)
        except InvalidGrantError as exc:
            return 400, {"error": "invalid_grant", "error_description": exc.description}
        metrics.TOKENS.labels("refresh_token").inc()
        return 200, {"access_token": access, "expires_in": client.access_token_ttl, "refresh_token": new,
                     "scope": g["scope"], "token_type": "DPoP" if proof else "Bearer"}

    # --- continuous risk for refresh families (public clients) -------------------------------------------------------
    DRIFTED = "This refresh token was used from another network than the one it was issued to; sign in again."

    def birth_of(self, client: Client) -> str | None:
        """The network a new refresh family is born on (the request redeeming the code or device code), packed; None
        for a confidential client — its refreshes come from the RP's server, whose address says nothing about where
        the user is — or with drift scoring off."""
        if not self.token_drift or not client.is_public:
            return None
        ip = self._ctx().get("ip")
        prefix = network_of(ip)
        if not prefix:
            return None
        g = self.geo_of(ip) if self.geo_of is not None else None
        return pack_birth(prefix, str(g.asn or "") if g else "", (g.country or "") if g else "", self.clock.timestamp(),
                          bool(g) and is_hosting(g.asn, g.org)) or None

    def token_drifted(self, grant: dict, ctx_of, *, client: Client | None = None, tag: str = "oauth:refresh:drift",
                      ip: str | None = None, user_agent: str | None = None) -> bool:
        """Score one use of a family born at ``grant["bx"]`` (authsvc.risk.drift.assess_token_use). True: it drifted,
        and the family is revoked (its access tokens too), audited, and the owner told. ``ctx_of()`` gives the
        request's {"ip", "user_agent"} — called only for a family that has a birth (public clients), so a
        confidential client's refresh pays nothing. A token has no step-up short of signing in again, so ``reauth``
        and ``end`` both refuse; only ``end`` is a takeover signal."""
        packed = grant.get("bx")
        if not packed or not self.token_drift:
            return False
        if ip is None:
            ctx = (ctx_of or self._ctx)()
            ip, user_agent = ctx.get("ip"), ctx.get("user_agent")
        drift = assess_token_use(packed, ip, self.clock.timestamp(), self.geo_of)
        if drift.action == ALLOW:
            return False
        gid = grant["gid"]
        self.tokens.revoke_grant(gid, f"drift_{drift.action}")
        uid = int(grant["uid"]) if grant.get("uid") else None
        texts = "; ".join(r.text for r in drift.reasons)
        self.record(tag, "failure", user_id=uid, reason=texts[:255], client_id=grant.get("cid"), grant=gid[:8],
                    action=drift.action, reasons=[r.code for r in drift.reasons],
                    takeover_signal=drift.action == END,
                    audit_ctx=lambda: {"ip": ip, "user_agent": (user_agent or "")[:512] or None})
        if self.alerts is not None and uid is not None:
            from authsvc.accounts.login import RequestContext

            user = self.db.session.get(User, uid)
            if user is not None:
                name = client.name if client is not None and client.client_id == grant.get("cid") else None
                if name is None and grant.get("cid"):
                    row = self.db.session.get(OAuthClient, grant["cid"])
                    name = row.name if row is not None else None
                self.alerts.app_signed_out(user, RequestContext(ip, user_agent), drift.reasons, name or "An app")
        return True

    def forwarded_drift(self, ref: TokenRef, form) -> bool:
        """Introspection "where the caller forwards it": a resource server may send the end user's address and user
        agent (``authsvc_client_ip``, ``authsvc_user_agent``); the token's family is then scored like a refresh, and a
        family that drifted is revoked (the answer is ``active: false``). Without the parameters nothing changes."""
        ip = form.get("authsvc_client_ip")
        if not ip or not ref.rec.get("bx") or not self.token_drift:
            return False
        ua = form.get("authsvc_user_agent")
        return self.token_drifted(ref.rec, None, tag="oauth:introspect:drift", ip=ip[:64],
                                  user_agent=(ua or "")[:512] or None)

    def check_refresh_scope(self, refresh_token: str, client_id: str, scope: str | None, resources=()) -> None:
        """Refuse a refresh that asks for more than its grant holds *before* the rotation (RFC 6749 §6: invalid_scope):
        Authlib checks the scope only after ``authenticate_refresh_token``, which has rotated by then, so the client's
        token was burnt and its retry revoked the family as "theft". Only the family's live token gets this answer;
        anything else goes on to the rotation, which calls a replay a replay."""
        if not scope and not resources:
            return
        gid = grant_id_of(refresh_token)
        if gid is None:
            return
        rec = self.tokens.redis.hmget(f"oauth:grant:{{{gid}}}", "cur", "rev", "cid", "scope", "aud")
        cur, rev, cid, granted, aud = rec
        if cur is None:  # Redis lost the twin: SQL is the durable truth
            row = self.db.session.get(OAuthGrant, gid)
            if row is None:
                return
            cur, rev, cid, granted, aud = (row.current_hash, "1" if row.revoked_at else "0", row.client_id, row.scope,
                                           row.audiences)
        if cid != client_id or rev == "1" or cur != sha256(refresh_token):
            return
        if resources and any(r not in json.loads(aud or "[]") for r in resources):
            # RFC 8707 §2.2: a refresh may name only resources the grant covers (checked before the rotation).
            raise InvalidTargetError("'resource' names an audience this grant does not cover.")
        if not scope:
            return
        if not set(scope.split()) <= set((granted or "").split()):
            from authlib.oauth2.rfc6749 import InvalidScopeError

            raise InvalidScopeError("A refresh may keep or narrow the granted scope, never widen it.")

    def introspection_payload(self, token: TokenRef) -> dict:
        rec = token.rec
        out = {"active": True, "client_id": rec["cid"], "scope": rec.get("scope", ""), "iss": self.issuer}
        if token.kind == "access":
            out.update(token_type="DPoP" if rec.get("jkt") else "Bearer", exp=int(float(rec["exp"])),
                       iat=int(float(rec["iat"])), aud=rec["aud"].split())
            if rec.get("jkt"):
                out["cnf"] = {"jkt": rec["jkt"]}  # RFC 9449 §6.2
        else:
            out.update(token_type="refresh_token", aud=json.loads(rec.get("aud") or "[]"))
        if rec.get("uid"):
            out["sub"] = rec.get("sub") or self.subject_of(rec["uid"])
        if rec.get("at"):
            out["auth_time"] = int(float(rec["at"]))
        if rec.get("acr"):
            out["acr"] = rec["acr"]
        return out

    # --- revocation --------------------------------------------------------------------------------------------------
    def revoke(self, token: TokenRef, client: Client) -> None:
        if token.kind == "access":
            self.tokens.revoke_access(token.raw)
        else:
            self.tokens.revoke_grant(token.rec["gid"], "client_revoked")
        self.record("oauth:token:revoke", "success", user_id=token.rec.get("uid") or None, client_id=client.client_id,
                    kind=token.kind, grant=token.rec.get("gid", "")[:8])

    def on_code_reuse(self, gid: str, client: Client) -> None:
        revoked = self.tokens.revoke_grant(gid, "code_reuse")
        self.record("oauth:code:reuse", "failure", reason="authorization code replayed", client_id=client.client_id,
                    grant=gid[:8], revoked=revoked)

    def on_refresh_reuse(self, grant: dict, audit_ctx=None) -> None:
        # A rotated refresh token came back: either the client or an attacker holds a stolen copy. Kill the family.
        metrics.REFRESH_REUSE.inc()
        self.tokens.revoke_grant(grant["gid"], "refresh_reuse")
        self.record("oauth:refresh:reuse", "failure", user_id=int(grant["uid"]) if grant.get("uid") else None,
                    reason="refresh token replayed: possible theft", client_id=grant.get("cid"),
                    grant=grant["gid"][:8], audit_ctx=audit_ctx)

    def on_sessions_revoked(self, user_id: int, sids: list[str]) -> None:
        """Session listener: tokens issued from an ended login session end with it."""
        if not sids:
            return
        rows = self.tokens.revoke_grants_where(OAuthGrant.session_id.in_(list(sids)), reason="session_revoked")
        if rows:
            self.record("oauth:token:revoke", "success", user_id=user_id, reason="session ended",
                        grants=len(rows))

    def on_session_suspended(self, user_id: int, sid: str) -> None:
        """Session listener: a login session suspended for drift (in-session step-up) loses what it minted — its
        refresh tokens must not work while it waits, and a suspension is not undone by tokens that outlive it.
        After the step-up the app gets new ones through the authorization endpoint (the session stands again)."""
        rows = self.tokens.revoke_grants_where(OAuthGrant.session_id == sid, reason="session_suspended")
        if rows:
            self.record("oauth:token:revoke", "success", user_id=user_id, reason="session suspended for step-up",
                        grants=len(rows))

    def revoke_for_user_client(self, user_id: int, client_id: str, reason: str) -> int:
        return len(self.tokens.revoke_grants_where(OAuthGrant.user_id == user_id, OAuthGrant.client_id == client_id,
                                                   reason=reason))


class DeviceStore:
    """RFC 8628 device codes in Redis: ``oauth:dev:{h}`` (hash), ``oauth:devuc:{USERCODE}`` → h. TTL = expiry."""

    _CLAIM = """
local s = redis.call('HGET', KEYS[1], 'status')
if s == 'approved' then redis.call('HSET', KEYS[1], 'status', 'used') end
return s
"""

    def __init__(self, redis_getter, clock, interval: int):
        self._redis = redis_getter
        self.clock = clock
        self.interval = interval
        self._claim = None

    @staticmethod
    def normalise(user_code: str) -> str:
        code = "".join(ch for ch in (user_code or "").upper() if ch.isalpha())
        return f"{code[:4]}-{code[4:8]}" if len(code) == 8 else ""

    def save(self, client_id: str, scope: str, data: dict, requester: dict | None = None) -> None:
        """``requester``: {"ip", "user_agent"} of the device that asked — shown on the confirmation page (where the
        request came from) and compared with where it is redeemed."""
        h = sha256(data["device_code"])
        ttl = int(data["expires_in"])
        r = self._redis()
        pipe = r.pipeline(transaction=False)
        req = requester or {}
        pipe.hset(f"oauth:dev:{{{h}}}", mapping={"cid": client_id, "scope": scope, "user_code": data["user_code"],
                                                 "exp": self.clock.timestamp() + ttl, "status": "pending",
                                                 "rip": (req.get("ip") or "")[:64],
                                                 "rua": (req.get("user_agent") or "")[:256]})
        pipe.expire(f"oauth:dev:{{{h}}}", ttl)
        pipe.set(f"oauth:devuc:{{{data['user_code']}}}", h, ex=ttl)
        pipe.execute()

    def get(self, device_code: str) -> DeviceCredential | None:
        if not device_code or len(device_code) > 128:
            return None
        key = f"oauth:dev:{{{sha256(device_code)}}}"
        data = self._redis().hgetall(key)
        return DeviceCredential(key, data) if data else None

    def by_user_code(self, user_code: str) -> DeviceCredential | None:
        code = self.normalise(user_code)
        if not code:
            return None
        r = self._redis()
        h = r.get(f"oauth:devuc:{{{code}}}")
        if not h:
            return None
        data = r.hgetall(f"oauth:dev:{{{h}}}")
        if not data or data.get("status") != "pending" or float(data["exp"]) <= self.clock.timestamp():
            return None
        return DeviceCredential(f"oauth:dev:{{{h}}}", data)

    def decide(self, cred: DeviceCredential, end_user: EndUser | None, approver_ip: str | None = None) -> None:
        r = self._redis()
        if end_user is None:
            r.hset(cred.key, "status", "denied")
        else:
            s = end_user.session
            r.hset(cred.key, mapping={"status": "approved", "uid": end_user.user.id, "sid": s.id,
                                      "at": int(s.created_at.timestamp()), "acr": acr_for(s.aal),
                                      "amr": ",".join(amr_for(s.methods)), "aip": (approver_ip or "")[:64]})
        r.delete(f"oauth:devuc:{{{cred.data['user_code']}}}")  # a user code works once

    def claim(self, cred: DeviceCredential) -> tuple[str, dict]:
        """Atomically turn 'approved' into 'used' so a device code yields tokens once."""
        r = self._redis()
        if self._claim is None or self._claim.registered_client is not r:
            self._claim = r.register_script(self._CLAIM)
        status = self._claim(keys=[cred.key])
        data = r.hgetall(cred.key) if status == "approved" else {}
        return status or "expired", data

    def too_fast(self, cred: DeviceCredential) -> bool:
        # SET NX with the interval as TTL: a poll inside the interval finds the key and must slow down.
        return not self._redis().set(cred.key.replace("oauth:dev:", "oauth:devpoll:"), 1, px=self.interval * 1000,
                                     nx=True)


def now_ts() -> int:
    return int(time.time())
