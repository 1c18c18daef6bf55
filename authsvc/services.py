"""The one place that builds services from settings (warehouse's pattern): views ask ``services()`` for them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import Flask, current_app

from authsvc.accounts.login import LoginService, NullRiskScorer, NullSecondFactor
from authsvc.accounts.service import AccountService
from authsvc.accounts.tokens import EmailTokenService
from authsvc.audit import AuditLog
from authsvc.clock import Clock
from authsvc.config import Settings
from authsvc.defense import NullThrottle
from authsvc.extensions import RedisExtension, db
from authsvc.notify import OutboxMailer, SmtpMailer
from authsvc.passwords import PasswordHasherService, PasswordPolicy
from authsvc.sessions import SessionService


@dataclass
class Services:
    settings: Settings
    clock: Clock
    hasher: PasswordHasherService
    policy: PasswordPolicy
    audit: AuditLog
    sessions: SessionService
    tokens: EmailTokenService
    mailer: object
    outbox: OutboxMailer | None
    breach: object
    accounts: AccountService
    login: LoginService


def _breach_checker(settings: Settings, app: Flask):
    """The breached-password corpus; its own package decides how (see authsvc/breach)."""
    try:
        from authsvc import breach
        breach.ensure_default_corpus  # noqa: B018
    except (ImportError, AttributeError):  # TEMP until the corpus package lands
        return _NoBreach()
    checkers = []
    path = settings.breach_corpus or breach.ensure_default_corpus(app.instance_path)
    checkers.append(breach.CorpusBreachChecker(path))
    if settings.breach_range_url:
        checkers.append(breach.RangeBreachChecker(settings.breach_range_url, fail_closed=True))
    return checkers[0] if len(checkers) == 1 else breach.ChainBreachChecker(checkers)


class _NoBreach:
    def is_breached(self, password: str) -> bool:
        return False


def build_services(app: Flask, settings: Settings) -> Services:
    clock = Clock()
    hasher = PasswordHasherService(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost,
                                   parallelism=settings.argon2_parallelism)
    breach = _breach_checker(settings, app)
    policy = PasswordPolicy(min_length=settings.password_min_length,
                            min_length_with_mfa=settings.password_min_length_with_mfa,
                            max_length=settings.password_max_length, service_name=settings.service_name,
                            breach_checker=breach)
    audit = AuditLog(db, clock)
    sessions = SessionService(db=db, redis_getter=lambda: RedisExtension.client_for(app), clock=clock,
                              idle_timeout=settings.session_idle_timeout,
                              absolute_timeout=settings.session_absolute_timeout)
    tokens = EmailTokenService(db, clock)
    outbox = None
    if settings.smtp_host:
        mailer = SmtpMailer(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                            password=settings.smtp_password, starttls=settings.smtp_starttls,
                            sender=settings.mail_from)
    else:
        mailer = outbox = OutboxMailer(os.path.join(app.instance_path, "outbox"), settings.mail_from)
    accounts = AccountService(db=db, hasher=hasher, policy=policy, sessions=sessions, tokens=tokens, mailer=mailer,
                              audit=audit, settings=settings, clock=clock)
    login = LoginService(db=db, hasher=hasher, throttle=NullThrottle(), breach=breach, risk=NullRiskScorer(),
                         mfa=NullSecondFactor(), sessions=sessions, audit=audit,
                         require_verified_email=settings.require_verified_email)
    return Services(settings, clock, hasher, policy, audit, sessions, tokens, mailer, outbox, breach, accounts, login)


def services() -> Services:
    return current_app.extensions["authsvc"]
