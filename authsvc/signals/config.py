"""Shared Signals settings. Like the MFA ones they ride in ``Settings.extra`` (explicit overrides or a TOML file) or
in ``AUTHSVC_SIGNALS_*`` environment variables, and are validated once, at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from authsvc.config import ConfigError, env_name


@dataclass(frozen=True)
class SignalsSettings:
    signals_worker_in_serve: bool = True  # `authsvc serve` (./run) starts `authsvc signals worker` beside the server
    signals_poll_interval: float = 0.2  # seconds between outbox scans when idle
    signals_batch: int = 100  # rows claimed per pass
    signals_concurrency: int = 8  # deliveries in flight per worker (network-bound)
    signals_lease_seconds: float = 120.0  # a claimed row is re-offered after this (worker killed mid-delivery)
    signals_max_attempts: int = 10  # then the row is given up (failed_at), shown in the admin panel
    signals_backoff_base: float = 2.0  # seconds before the 2nd attempt; doubles each time
    signals_backoff_max: float = 3600.0
    signals_push_timeout: float = 5.0  # connect + read timeout of one push (a hanging receiver)
    # Push endpoints must be https:// on a public address; on for development/tests only (http://localhost RPs).
    signals_allow_insecure_push: bool = False
    signals_max_streams_per_client: int = 5
    # RISC receiver: one upstream transmitter whose SETs we act on (issuer, its JWKS URL, the audience it uses).
    signals_upstream_issuer: str | None = None
    signals_upstream_jwks_url: str | None = None
    signals_upstream_audience: str | None = None


def _coerce(name: str, raw, typ):
    if raw is None:
        return None
    try:
        if typ is bool or typ == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, "int"):
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if typ in (float, "float"):
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        return str(raw) or None
    except (TypeError, ValueError):
        raise ConfigError(env_name(name), f"expected {typ if isinstance(typ, str) else typ.__name__}, got {raw!r}") \
            from None


def load_signals_settings(extra, environ=None) -> SignalsSettings:
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(SignalsSettings):
        raw = extra.get(f.name, environ.get(env_name(f.name)))
        if raw is None:
            continue
        typ = f.type if not isinstance(f.type, str) else f.type.split(" |")[0]
        values[f.name] = _coerce(f.name, raw, {"bool": bool, "int": int, "float": float}.get(typ, typ))
    s = SignalsSettings(**values)
    for name in ("signals_poll_interval", "signals_lease_seconds", "signals_backoff_base", "signals_backoff_max",
                 "signals_push_timeout"):
        if not getattr(s, name) > 0:
            raise ConfigError(env_name(name), "must be > 0")
    for name in ("signals_batch", "signals_concurrency", "signals_max_attempts", "signals_max_streams_per_client"):
        if getattr(s, name) < 1:
            raise ConfigError(env_name(name), "must be ≥ 1")
    if s.signals_push_timeout * 2 >= s.signals_lease_seconds:
        raise ConfigError(env_name("signals_lease_seconds"), "must be more than twice signals_push_timeout")
    if bool(s.signals_upstream_issuer) != bool(s.signals_upstream_jwks_url):
        raise ConfigError(env_name("signals_upstream_jwks_url"), "set both signals_upstream_issuer and _jwks_url")
    return s
