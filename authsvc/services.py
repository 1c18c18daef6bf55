"""The one place that builds services from settings (warehouse's pattern): views ask ``services()`` for them."""

from __future__ import annotations

import logging

import os
from dataclasses import dataclass

from flask import Flask, current_app

from authsvc.accounts.activity import ActivityService
from authsvc.accounts.login import LoginService, NullRiskScorer
from authsvc.accounts.service import AccountService
from authsvc.accounts.tokens import EmailTokenService
from authsvc.audit import AnchorSigner, AuditLog, CheckpointStore
from authsvc.clock import Clock
from authsvc.config import Settings, asn_files
from authsvc.defense import NullThrottle, RedisThrottle
from authsvc.extensions import RedisExtension, db
from authsvc.mfa import build_mfa
from authsvc.notify import OutboxMailer, SmtpMailer
from authsvc.notify.alerts import LoginAlerts
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
    throttle: object
    activity: ActivityService
    mfa: object = None  # authsvc.mfa.MfaService
    refusals: object = None  # authsvc.defense.refusals.RefusalLog: 429s counted, audited and shown (bounded)


def _breach_checker(settings: Settings, app: Flask):
    """The breached-password corpus (authsvc/breach): the configured file, else the default list shipped with the
    package, plus the k-anonymity range service when a mirror is configured (fail closed)."""
    from authsvc import breach

    path = settings.breach_corpus or breach.ensure_default_corpus(app.instance_path)
    checkers = [breach.CorpusBreachChecker(path)]
    if settings.breach_range_url:
        checkers.append(breach.RangeBreachChecker(settings.breach_range_url, fail_closed=True))
    return checkers[0] if len(checkers) == 1 else breach.ChainBreachChecker(checkers)


def _risk_scorer(app: Flask, settings: Settings, mfa):
    """The risk engine with its Redis store and the operator's geo files (or NullRiskScorer when switched off)."""
    if not settings.risk_enabled:
        return NullRiskScorer(), None
    from authsvc.risk import GeoResolver, RiskConfig, RiskEngine
    from authsvc.risk.live import LiveRiskScorer, RedisRiskStore

    geo = None
    if settings.risk_asn_file or settings.risk_country_file:
        files = asn_files(settings.risk_asn_file)  # comma-separated: IPv4 and IPv6 CSVs, at most one .mmdb
        mmdb = [f for f in files if f.endswith(".mmdb")]
        geo = GeoResolver(asn_csv=[f for f in files if not f.endswith(".mmdb")] or None,
                          asn_mmdb=mmdb[0] if mmdb else None, country_mmdb=settings.risk_country_file)
    elif not app.config.get("TESTING"):
        # Found by an outside attack: with no files, "another provider", "a hosting network" and "another country"
        # cannot be told, so a copied cookie replayed with the owner's browser string passes the session checks.
        logging.getLogger("authsvc").warning(
            "no IP-to-ASN/country files configured (AUTHSVC_RISK_ASN_FILE, AUTHSVC_RISK_COUNTRY_FILE): the login risk "
            "score and the continuous session checks can compare browsers and /24 networks only, not providers, "
            "hosting networks or countries (docs/RISK.md §1, docs/OPERATIONS.md)")
    config = RiskConfig(step_up_threshold=settings.risk_step_up_threshold,
                        deny_threshold=settings.risk_deny_threshold)
    if settings.risk_weights_file:  # checked at start-up (Settings.validate); its thresholds replace the two above
        from authsvc.risk.weights import load_weights

        config = load_weights(settings.risk_weights_file, config)
    store = RedisRiskStore(lambda: RedisExtension.client_for(app), max_entries=config.history_max_entries,
                           max_age_days=config.history_max_age_days)
    trusted = (lambda user, device_id: mfa.devices.is_trusted_id(user, device_id)) if mfa is not None else None
    return LiveRiskScorer(RiskEngine(store=store, config=config, geo=geo), is_trusted_device=trusted), geo


def build_services(app: Flask, settings: Settings) -> Services:
    clock = Clock()
    hasher = PasswordHasherService(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost,
                                   parallelism=settings.argon2_parallelism)
    breach = _breach_checker(settings, app)
    policy = PasswordPolicy(min_length=settings.password_min_length,
                            min_length_with_mfa=settings.password_min_length_with_mfa,
                            max_length=settings.password_max_length, service_name=settings.service_name,
                            breach_checker=breach, min_guesses_log10=settings.password_min_guesses_log10)
    audit = AuditLog(db, clock)
    # A new worker resumes the dashboard's chain check from the signed checkpoint in Redis (issue 20).
    audit.checkpoint_store = CheckpointStore(lambda: RedisExtension.client_for(app), app.config["SECRET_KEY"].encode())
    audit.anchor_signer = AnchorSigner(app.config["SECRET_KEY"].encode())  # retention's signed chain start
    sessions = SessionService(db=db, redis_getter=lambda: RedisExtension.client_for(app), clock=clock,
                              idle_timeout=settings.session_idle_timeout,
                              absolute_timeout=settings.session_absolute_timeout)
    tokens = EmailTokenService(db, clock)
    outbox = None
    from authsvc.notify.htmlmail import EmailRenderer

    renderer = EmailRenderer(settings)  # every message: its text part plus the same as HTML
    if settings.smtp_host:
        mailer = SmtpMailer(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                            password=settings.smtp_password, starttls=settings.smtp_starttls,
                            sender=settings.mail_from, renderer=renderer)
    else:
        mailer = outbox = OutboxMailer(os.path.join(app.instance_path, "outbox"), settings.mail_from, renderer)
    if settings.throttle_enabled:
        # The service-wide budget for unfamiliar attempts: explicit, or a share of the warm hashing capacity summed
        # over live hosts (a floor only until one is measured); a token bucket (authsvc/defense/budget.py).
        from authsvc.defense.budget import UnfamiliarBudget

        budget = UnfamiliarBudget(redis_getter=lambda: RedisExtension.client_for(app), hasher=hasher,
                                  settings=settings)
        throttle = RedisThrottle(redis_getter=lambda: RedisExtension.client_for(app), settings=settings,
                                 secret=app.config["SECRET_KEY"].encode(), budget=budget)
    else:  # the operator runs an equivalent limiter in front of us
        throttle = NullThrottle()
    from authsvc.accounts.mailguard import MailGuard

    mail_guard = MailGuard(redis_getter=lambda: RedisExtension.client_for(app), secret=app.config["SECRET_KEY"].encode(),
                           settings=settings, clock=clock)
    accounts = AccountService(db=db, hasher=hasher, policy=policy, sessions=sessions, tokens=tokens, mailer=mailer,
                              audit=audit, settings=settings, clock=clock, throttle=throttle, mail_guard=mail_guard)
    mfa = build_mfa(app=app, settings=settings, db=db, redis_getter=lambda: RedisExtension.client_for(app),
                    clock=clock, sessions=sessions, audit=audit, mailer=mailer)
    risk, geo = _risk_scorer(app, settings, mfa)
    accounts.risk = risk  # a confirmed address seeds the account's risk history (AccountService.verify_email)
    if geo is not None and isinstance(throttle, RedisThrottle):
        throttle.asn_lookup = lambda ip: (geo.lookup(ip).asn if ip else None)  # per-ASN limits need the file
    login = LoginService(db=db, hasher=hasher, throttle=throttle, breach=breach, risk=risk,
                         mfa=mfa, sessions=sessions, audit=audit, clock=clock,
                         alerts=LoginAlerts(mailer=mailer, tokens=tokens, settings=settings, geo=geo, clock=clock),
                         require_verified_email=settings.require_verified_email)
    mfa.login = login  # an MFA-completed login finishes through the same last stage (session, receipts, alerts)
    # "This wasn't me" forgets every remembered device too: the attacker's browser may be one of them.
    accounts.lockdown_listeners.append(lambda user: mfa.devices.revoke_all(user))
    if settings.session_drift_enabled:
        _wire_session_drift(sessions, geo, audit, login.alerts, db, settings,
                            forget_devices=(mfa.devices.revoke_all if mfa is not None else None))
    _wire_session_cap(sessions, audit, settings.session_max_per_user)
    from authsvc.accounts.emailchange import EmailChangeService

    accounts.email_changes = EmailChangeService(db=db, redis_getter=lambda: RedisExtension.client_for(app),
                                                mailer=mailer, audit=audit, settings=settings, clock=clock,
                                                sessions=sessions)
    accounts.factors = mfa  # lockdown and reset remove factors an attacker with the password may have planted
    # ... and every place the throttle counted as familiar (the attacker signed in from some of them).
    accounts.lockdown_listeners.append(lambda user: throttle.clear_account(user.email))
    from authsvc.defense.refusals import RefusalLog

    refusals = RefusalLog(redis_getter=lambda: RedisExtension.client_for(app),
                          secret=app.config["SECRET_KEY"].encode(), clock=clock)
    return Services(settings, clock, hasher, policy, audit, sessions, tokens, mailer, outbox, breach, accounts, login,
                    throttle, ActivityService(db), mfa, refusals)


def _wire_session_cap(sessions: SessionService, audit: AuditLog, cap: int) -> None:
    """Issue 20: at most ``cap`` live sessions per user; the oldest ones a sign-in pushes out are audited."""
    sessions.max_per_user = cap

    def capped(user_id, sids):
        audit.record_many([{"tag": "session:cap:end", "outcome": "info", "subject_id": user_id,
                            "reason": "session_cap", "details": {"session": sid[:12], "cap": cap}} for sid in sids])

    sessions.cap_listener = capped


def _wire_session_drift(sessions: SessionService, geo, audit: AuditLog, alerts: LoginAlerts, db, settings,
                        forget_devices=None) -> None:
    """Continuous session risk (authsvc.risk.drift): each session remembers the context it was born in, each use is
    compared with it inside the session check, and a session that drifted is ended, audited and reported."""
    from authsvc.defense import prefix_of
    from authsvc.risk.drift import END, browser_key, is_hosting, network_of

    def birth(ip, ua):
        info = geo.lookup(ip) if (geo is not None and ip) else None
        return {"b_pfx": prefix_of(ip) or "", "b_uaf": browser_key(ua),
                "b_asn": str(info.asn or "") if info else "", "b_cc": (info.country or "") if info else "",
                "b_hst": "1" if info and is_hosting(info.asn, info.org) else ""}

    def drifted(user_id, sid, drift, ip, ua):
        from authsvc.accounts.login import RequestContext
        from authsvc.models import User

        texts = "; ".join(r.text for r in drift.reasons)
        tag = "session:drift:end" if drift.action == END else "session:drift:stepup"  # stepup: suspended
        user = db.session.get(User, user_id)
        # A session ended as stolen: the thief who copied its cookie jar holds the trusted-device cookie too, so the
        # marks are forgotten and the next sign-in asks for the second factor again (as on a DBSC violation).
        forgotten = forget_devices(user) if (drift.action == END and user is not None and forget_devices) else 0
        audit.record(tag, "failure", subject_id=user_id, ip=ip, user_agent=ua,
                     reason=texts[:255], details={"session": sid[:12], "reasons": [r.code for r in drift.reasons],
                                                  "takeover_signal": drift.action == END,
                                                  "trusted_devices_forgotten": forgotten})
        if user is not None:  # the owner hears of it either way: whoever was refused may not be the owner
            notice = alerts.session_theft if drift.action == END else alerts.session_moved
            notice(user, RequestContext(ip, ua), drift.reasons)  # translated for the owner (notify/alerts.py)

    sessions.step_up_max_failures = max(1, settings.session_stepup_max_failures)
    # Warm what the first scored check of a process would otherwise load in the middle of a request: the user-agent
    # parser's import and regexes (~0.5 s of CPU on the shared box) and the prefix helper. Measured as the p99 of the
    # session check with drift on (bench/p2_session.py): every worker's first checks queued behind this.
    browser_key("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/141.0.0.0 Safari/537.36")
    network_of("192.0.2.1")
    sessions.context_of = birth
    sessions.geo_of = (lambda ip: geo.lookup(ip)) if geo is not None else None
    sessions.drift_listener = drifted


def services() -> Services:
    return current_app.extensions["authsvc"]
