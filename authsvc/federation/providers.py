"""Upstream provider presets and the Authlib Flask client for each configured provider.

Presets fill in what the operator would otherwise look up (discovery URL, issuer, scopes, response mode); anything
given explicitly wins. One Authlib ``FlaskOAuth2App`` per provider, cached while its row is unchanged, so discovery
and the JWKS are fetched once per worker, not per sign-in.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from authlib.integrations.flask_client import OAuth

KINDS = ("oidc", "google", "apple", "microsoft", "github")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
TENANT_PLACEHOLDER = "{tenantid}"
GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class Preset:
    name: str
    issuer: str | None
    discovery_url: str | None
    scopes: str
    response_mode: str | None = None  # Apple: form_post (a cross-site POST back to us)
    oidc: bool = True


PRESETS = {
    "google": Preset("Google", "https://accounts.google.com",
                     "https://accounts.google.com/.well-known/openid-configuration", "openid email profile"),
    # Apple posts the code (and, on the first sign-in only, the user's name) back with response_mode=form_post.
    "apple": Preset("Apple", "https://appleid.apple.com", "https://appleid.apple.com/.well-known/openid-configuration",
                    "openid email name", response_mode="form_post"),
    # Multi-tenant: the token's iss names the user's tenant; it is checked against this template with the token's
    # own tid (never accepted as "any Microsoft issuer").
    "microsoft": Preset("Microsoft", "https://login.microsoftonline.com/{tenantid}/v2.0",
                        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
                        "openid email profile"),
    # OAuth 2.0 only: no ID token; the subject is GitHub's numeric user id, the address comes from /user/emails with
    # its own verified flag.
    "github": Preset("GitHub", "https://github.com", None, "read:user user:email", oidc=False),
}


def preset(kind: str) -> Preset | None:
    return PRESETS.get(kind)


def is_oidc(provider) -> bool:
    p = PRESETS.get(provider.kind)
    return p.oidc if p else True


def response_mode(provider) -> str | None:
    p = PRESETS.get(provider.kind)
    return p.response_mode if p else None


def issuer_matches(template: str, iss: str | None, tid: str | None) -> bool:
    """The token's ``iss`` against the configured issuer. A ``{tenantid}`` template is filled with the token's own
    ``tid`` (Microsoft's multi-tenant endpoints), which must look like a tenant id — never a wildcard."""
    if not isinstance(iss, str) or not iss:
        return False
    if TENANT_PLACEHOLDER not in template:
        return iss == template
    if not isinstance(tid, str) or not re.fullmatch(r"[0-9a-fA-F-]{36}", tid):
        return False
    return iss == template.replace(TENANT_PLACEHOLDER, tid)


class ClientCache:
    """Authlib Flask clients, one per provider row version."""

    def __init__(self, app, timeout: float = 5.0):
        self.oauth = OAuth(app)
        self.timeout = timeout
        self._names: dict[int, str] = {}

    def client(self, provider, client_secret: str | None):
        fingerprint = hashlib.sha256(json.dumps(
            [provider.kind, provider.issuer, provider.discovery_url, provider.client_id, client_secret,
             provider.scopes]).encode()).hexdigest()[:16]
        name = f"idp{provider.id}_{fingerprint}"
        if self._names.get(provider.id) != name:
            kwargs = {"scope": provider.scopes, "code_challenge_method": "S256", "default_timeout": self.timeout}
            config = dict(client_id=provider.client_id, client_secret=client_secret, client_kwargs=kwargs)
            if is_oidc(provider):
                config["server_metadata_url"] = provider.discovery_url
            else:  # GitHub
                config.update(authorize_url="https://github.com/login/oauth/authorize",
                              access_token_url="https://github.com/login/oauth/access_token",
                              api_base_url=GITHUB_API + "/")
            self.oauth.register(name, overwrite=True, **config)
            self._names[provider.id] = name
        return self.oauth.create_client(name)
