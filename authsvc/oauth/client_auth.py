"""``private_key_jwt`` client authentication (RFC 7523 §2.2 / §3, OIDC Core §9) on Authlib's JWTBearerClientAssertion.

What this adds to Authlib's helper: the signature algorithms are an allow-list of asymmetric ones (no ``none``, no
HMAC keyed with a public key); ``exp`` must lie at most an hour ahead (Authlib's client signs for one hour; every
accepted ``jti`` is remembered until its ``exp``); ``jti`` is single-use in Redis (``SET NX``, per client); ``aud`` must name this server — its issuer,
its token endpoint or the endpoint being called (RFC 7523 §3, RFC 9126 §2); and the client's keys come from its
registration, by value (``jwks``) or from its ``jwks_uri`` (https; fetched with timeouts and a size cap, cached in
Redis, re-fetched at most once a minute when a ``kid`` is unknown). A JWKS that cannot be fetched and is not cached
is "ask again later" (503), never a pass.

``client_secret_jwt`` is not offered: it needs the client secret in the clear on the server (HMAC key), and authsvc
keeps only a hash of client secrets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import has_request_context, request as flask_request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger("authsvc.oauth")

METHOD = "private_key_jwt"
ALGS = ("RS256", "PS256", "ES256", "EdDSA")
MAX_LIFETIME = 3600  # seconds exp may lie ahead (Authlib's client signs for 1 h; the jti is held that long)
JWKS_MAX_BYTES = 64 * 1024
JWKS_CACHE_TTL = 300
JWKS_REFETCH_GAP = 60


class JWKSUnavailable(OAuth2Error):
    error = "temporarily_unavailable"
    status_code = 503
    description = "The client's JWKS could not be fetched; retry later."


def parse_public_jwks(value) -> KeySet:
    """A JWKS of public asymmetric keys only (raises ValueError otherwise): a private member or a symmetric key in a
    registration is a leak or a mistake, never accepted."""
    data = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ValueError("a JWKS is an object with a non-empty 'keys' list")
    for k in data["keys"]:
        if not isinstance(k, dict) or k.get("kty") not in ("RSA", "EC", "OKP"):
            raise ValueError("only RSA, EC and OKP public keys are accepted")
        if any(m in k for m in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise ValueError("the JWKS holds private key material")
    return KeySet.import_key_set(data)


def validate_jwks_uri(uri: str) -> None:
    parts = urlsplit(uri or "")
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)) or not parts.hostname \
            or "@" in parts.netloc or len(uri) > 512:
        raise ValueError("jwks_uri must be an https URL (http only on loopback), without user info")


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = METHOD

    def __init__(self, provider, *, fetch=None):
        super().__init__(validate_jti=True, leeway=30)
        self.provider = provider
        self._fetch = fetch or fetch_jwks

    # --- Authlib hooks -----------------------------------------------------------------------------------------------
    def get_audiences(self):
        iss = self.provider.issuer
        out = [iss, iss + "/oauth2/token"]
        if has_request_context():
            out.append(iss + flask_request.path)  # the endpoint called (PAR, introspection, revocation…)
        return out

    def resolve_client_public_key(self, client):
        if getattr(client, "token_endpoint_auth_method", None) != METHOD:
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        return self._keys(client)

    def process_assertion_claims(self, assertion, resolve_key):
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ALGS))
        except JoseError as e:
            if getattr(self, "_client", None) is not None and self._refetch(self._client):
                try:
                    token = jwt.decode(assertion, self._keys(self._client), algorithms=list(ALGS))
                except JoseError:
                    raise InvalidClientError(description="The client assertion does not verify.") from e
            else:
                raise InvalidClientError(description="The client assertion does not verify.") from e
        except ValueError as e:
            raise InvalidClientError(description="The client assertion is malformed.") from e
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims):
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp > time.time() + MAX_LIFETIME:
            raise InvalidClientError(description=f"The assertion's exp must be at most {MAX_LIFETIME} s ahead.")
        super().verify_claims(claims)

    def validate_jti(self, claims, jti):
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        ttl = max(1, int(float(claims["exp"]) - time.time()) + self.leeway)
        h = hashlib.sha256(f"{claims['sub']}\x00{jti}".encode()).hexdigest()
        return bool(self.provider.tokens.redis.set(f"oauth:cajti:{{{h}}}", 1, nx=True, ex=ttl))

    def __call__(self, query_client, request):
        def remember(client_id):
            client = query_client(client_id)
            self._client = client
            return client

        self._client = None
        try:
            return super().__call__(remember, request)
        finally:
            self._client = None

    # --- keys --------------------------------------------------------------------------------------------------------
    def _keys(self, client) -> KeySet:
        if client.jwks:
            return parse_public_jwks(client.jwks)
        if not client.jwks_uri:
            raise InvalidClientError(description="The client has no registered keys.")
        r = self.provider.tokens.redis
        raw = r.get(f"oauth:jwks:{{{client.client_id}}}")
        if raw is None:
            raw = self._load(client)
        try:
            return parse_public_jwks(raw)
        except (ValueError, JoseError) as e:
            raise InvalidClientError(description="The client's JWKS is not a valid set of public keys.") from e

    def _load(self, client) -> str:
        try:
            raw = self._fetch(client.jwks_uri)
        except Exception as e:  # noqa: BLE001 - any network failure is "cannot check now"
            log.warning("oauth: jwks_uri of %s unavailable: %s", client.client_id, type(e).__name__)
            raise JWKSUnavailable() from e
        self.provider.tokens.redis.set(f"oauth:jwks:{{{client.client_id}}}", raw, ex=JWKS_CACHE_TTL)
        return raw

    def _refetch(self, client) -> bool:
        """Key rotation at the client: re-fetch a cached jwks_uri once (at most once a minute per client)."""
        if client is None or client.jwks or not client.jwks_uri:
            return False
        if not self.provider.tokens.redis.set(f"oauth:jwksgap:{{{client.client_id}}}", 1, nx=True,
                                              ex=JWKS_REFETCH_GAP):
            return False
        self._load(client)
        return True


def fetch_jwks(uri: str) -> str:
    """GET a client's JWKS: 2 s to connect, 3 s to read, at most JWKS_MAX_BYTES, no redirects."""
    import requests

    with requests.get(uri, timeout=(2, 3), stream=True, allow_redirects=False,
                      headers={"Accept": "application/json"}) as resp:
        resp.raise_for_status()
        body = b""
        for chunk in resp.iter_content(8192):
            body += chunk
            if len(body) > JWKS_MAX_BYTES:
                raise ValueError("JWKS too large")
    text = body.decode("utf-8")
    parse_public_jwks(text)
    return text
