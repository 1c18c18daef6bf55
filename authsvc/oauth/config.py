"""OAuth settings. They ride in Flask's config (``OAUTH_*`` keys passed to ``create_app``) or the environment
(``AUTHSVC_OAUTH_*``), and are validated once at start like the core settings: a bad value stops the start."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from authsvc.config import ConfigError


@dataclass(frozen=True)
class OAuthSettings:
    issuer: str | None = None  # None → the core base_url. Must be the public https URL in production.
    code_ttl: int = 300  # seconds; RFC 9700 / ASVS 10.4.2: ≤ 10 minutes
    access_token_ttl: int = 600  # default for clients that do not set their own
    id_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 86400  # absolute lifetime of a refresh family (ASVS 10.4.8)
    signing_alg: str = "RS256"  # RS256 | ES256
    key_encryption_key: str | None = None  # base64url 32 bytes; None → generated into instance/oauth_kek
    token_quota_per_minute: int = 120  # per access token at /userinfo
    device_code_ttl: int = 600
    device_interval: int = 5
    # DPoP (RFC 9449): 1 → every DPoP proof (token endpoint, userinfo) must carry a server nonce (§8, use_dpop_nonce).
    dpop_require_nonce: int = 0
    dpop_proof_max_age: int = 120  # seconds a proof's iat may lie in the past (its jti is remembered that long)
    dpop_nonce_period: int = 300  # a nonce is accepted for one to two periods
    par_ttl: int = 60  # RFC 9126 §2.2: lifetime of a pushed request's request_uri until its first use

    def validate(self) -> "OAuthSettings":
        checks = [
            ("code_ttl", 10 <= self.code_ttl <= 600, "must be between 10 and 600 seconds (RFC 9700: ≤ 10 min)"),
            ("access_token_ttl", 10 <= self.access_token_ttl <= 86400, "must be between 10 s and 1 day"),
            ("id_token_ttl", 10 <= self.id_token_ttl <= 86400, "must be between 10 s and 1 day"),
            ("refresh_token_ttl", self.refresh_token_ttl >= 60, "must be ≥ 60 seconds"),
            ("signing_alg", self.signing_alg in ("RS256", "ES256"), "must be RS256 or ES256"),
            ("token_quota_per_minute", self.token_quota_per_minute >= 1, "must be ≥ 1"),
            ("device_code_ttl", 60 <= self.device_code_ttl <= 1800, "must be between 60 and 1800 seconds"),
            ("dpop_require_nonce", self.dpop_require_nonce in (0, 1), "must be 0 or 1"),
            ("dpop_proof_max_age", 10 <= self.dpop_proof_max_age <= 600, "must be between 10 and 600 seconds"),
            ("dpop_nonce_period", 10 <= self.dpop_nonce_period <= 3600, "must be between 10 and 3600 seconds"),
            ("par_ttl", 10 <= self.par_ttl <= 600, "must be between 10 and 600 seconds"),
        ]
        for name, ok, problem in checks:
            if not ok:
                raise ConfigError(f"AUTHSVC_OAUTH_{name.upper()}", f"{problem} (got {getattr(self, name)!r})")
        if self.issuer and not self.issuer.startswith(("https://", "http://localhost", "http://127.0.0.1")):
            raise ConfigError("AUTHSVC_OAUTH_ISSUER", "must be an https URL (http only for localhost)")
        return self


def load_oauth_settings(config, environ=None) -> OAuthSettings:
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(OAuthSettings):
        raw = config.get("OAUTH_" + f.name.upper(), environ.get("AUTHSVC_OAUTH_" + f.name.upper()))
        if raw is None:
            continue
        try:
            values[f.name] = int(raw) if f.type == "int" else str(raw)
        except ValueError:
            raise ConfigError(f"AUTHSVC_OAUTH_{f.name.upper()}", f"expected an integer, got {raw!r}") from None
    return OAuthSettings(**values).validate()
