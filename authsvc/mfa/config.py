"""MFA settings. They ride in ``Settings.extra`` (explicit overrides, e.g. ``create_app({"webauthn_rp_id": ...})``)
or in ``AUTHSVC_*`` environment variables, and are validated here once, at start, like the core settings.

TODO(lead): move these fields into ``authsvc.config.Settings`` so a TOML file can carry them too (config.py is not
ours to edit in this issue); the names below are already the ones Settings would use.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from authsvc.config import ConfigError, Settings, env_name


@dataclass(frozen=True)
class MfaSettings:
    encryption_keys: tuple[tuple[str, bytes], ...]  # (version, 32-byte key), newest first
    webauthn_rp_id: str
    webauthn_rp_name: str
    webauthn_origins: tuple[str, ...]
    totp_issuer: str
    trusted_device_days: int = 30
    fresh_auth_seconds: int = 600  # adding/removing a factor needs a proof this recent (ASVS 7.5.1)
    pending_ttl: int = 300  # password done, second factor outstanding
    challenge_ttl: int = 300  # WebAuthn challenges
    max_failures: int = 5  # per user per window, TOTP + recovery codes together
    failure_window: int = 300
    # A factor enrolled with only a password as proof stays "unconfirmed" this long: a password reset or "this
    # wasn't me" removes it (an attacker with the password may have planted it). See MfaService.unconfirmed_since.
    unconfirmed_days: int = 7
    totp_notify_failures: int = 10  # consecutive wrong TOTP codes (across windows): the owner is told, once
    totp_lock_failures: int = 100  # …and at this many TOTP is suspended until a recovery code or a reset (NIST 100)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_keys(raw: str, setting: str = "mfa_encryption_keys") -> tuple[tuple[str, bytes], ...]:
    """``"v2:<base64 32 bytes>,v1:<base64 32 bytes>"`` → ((v2, key), (v1, key)); the first one encrypts."""
    keys: list[tuple[str, bytes]] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        version, sep, b64 = item.partition(":")
        try:
            key = base64.b64decode(b64, validate=True) if sep else b""
        except ValueError:
            key = b""
        if not version or not version.isalnum() or len(version) > 8 or len(key) != 32:
            raise ConfigError(env_name(setting), "expected 'version:<base64 of 32 bytes>' entries, newest first")
        if version in dict(keys):
            raise ConfigError(env_name(setting), f"key version {version!r} appears twice")
        keys.append((version, key))
    if not keys:
        raise ConfigError(env_name(setting), "no key given")
    return tuple(keys)


def _default_keys(instance_path: str) -> str:
    """Like Flask's secret key: a key generated once (0600) into the instance folder, so restarts keep seeds readable."""
    path = os.path.join(instance_path, "mfa_keys")
    try:
        with open(path) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        value = "v1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker won the race: use its key
            with open(path) as fh:
                return fh.read().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value


def load_mfa_settings(settings: Settings, instance_path: str, environ=None) -> MfaSettings:
    environ = os.environ if environ is None else environ

    def get(name, default=None):
        if name in settings.extra:
            return settings.extra[name]
        return environ.get(env_name(name), default)

    def get_int(name, default, low):
        raw = get(name, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(env_name(name), f"expected int, got {raw!r}") from None
        if value < low:
            raise ConfigError(env_name(name), f"must be ≥ {low} (got {value})")
        return value

    keys = parse_keys(str(get("mfa_encryption_keys") or _default_keys(instance_path)))
    rp_id = str(get("webauthn_rp_id", "localhost")).strip().lower()
    if not rp_id or "/" in rp_id or ":" in rp_id:
        raise ConfigError(env_name("webauthn_rp_id"), "must be a bare domain such as example.com")
    raw_origins = get("webauthn_origins") or origin_of(settings.base_url)
    origins = tuple(o.strip().rstrip("/") for o in
                    (raw_origins.split(",") if isinstance(raw_origins, str) else raw_origins) if o.strip())
    for o in origins:
        host = urlsplit(o).hostname or ""
        if not o.startswith(("https://", "http://")) or not (host == rp_id or host.endswith("." + rp_id)):
            raise ConfigError(env_name("webauthn_origins"),
                              f"{o!r} must be an http(s) origin on the RP ID {rp_id!r} or a sub-domain of it")
    return MfaSettings(
        encryption_keys=keys, webauthn_rp_id=rp_id,
        webauthn_rp_name=str(get("webauthn_rp_name", settings.service_name)),
        webauthn_origins=origins, totp_issuer=str(get("totp_issuer", settings.service_name)),
        trusted_device_days=get_int("mfa_trusted_device_days", 30, 0),
        fresh_auth_seconds=get_int("mfa_fresh_auth_seconds", 600, 30),
        pending_ttl=get_int("mfa_pending_ttl", 300, 30),
        challenge_ttl=get_int("webauthn_challenge_ttl", 300, 30),
        max_failures=get_int("mfa_max_failures", 5, 1),
        failure_window=get_int("mfa_failure_window", 300, 1),
        unconfirmed_days=get_int("mfa_unconfirmed_days", 7, 0),
        totp_notify_failures=get_int("mfa_totp_notify_failures", 10, 1),
        totp_lock_failures=get_int("mfa_totp_lock_failures", 100, 1),
    )
