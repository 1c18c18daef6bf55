"""Multi-factor authentication: TOTP, recovery codes, WebAuthn (security keys and passkeys), trusted devices,
step-up. ``build_mfa`` is what ``authsvc.services`` calls; ``views.init_app`` adds the pages and the CLI."""

from __future__ import annotations

from authsvc.mfa.config import MfaSettings, load_mfa_settings
from authsvc.mfa.crypto import SecretBox
from authsvc.mfa.email_code import EmailCodeService
from authsvc.mfa.devices import DEVICE_COOKIE, TrustedDeviceService
from authsvc.mfa.recovery import RecoveryCodeService
from authsvc.mfa.service import MfaService
from authsvc.mfa.store import MfaStore
from authsvc.mfa.totp import TotpService
from authsvc.mfa.webauthn import WebAuthnService

__all__ = ["DEVICE_COOKIE", "MfaService", "MfaSettings", "build_mfa"]


def build_mfa(*, app, settings, db, redis_getter, clock, sessions, audit, mailer) -> MfaService:
    cfg = load_mfa_settings(settings, app.instance_path)
    store = MfaStore(redis_getter, max_failures=cfg.max_failures, failure_window=cfg.failure_window,
                     pending_ttl=cfg.pending_ttl, challenge_ttl=cfg.challenge_ttl)
    box = SecretBox(cfg.encryption_keys)
    return MfaService(
        db=db, settings=cfg, store=store,
        totp=TotpService(db=db, box=box, store=store, clock=clock),
        recovery=RecoveryCodeService(db=db, store=store, clock=clock),
        webauthn=WebAuthnService(db=db, store=store, clock=clock, rp_id=cfg.webauthn_rp_id,
                                 rp_name=cfg.webauthn_rp_name, origins=cfg.webauthn_origins),
        devices=TrustedDeviceService(db=db, clock=clock, days=cfg.trusted_device_days),
        sessions=sessions, audit=audit, mailer=mailer, clock=clock,
        email_code=EmailCodeService(redis_getter, secret=app.config["SECRET_KEY"].encode(), mailer=mailer,
                                    service_name=settings.service_name, ttl=cfg.pending_ttl))
