"""Shared Signals (SSF 1.0 / CAEP / RISC) and the durable delivery core they share with Back-Channel Logout.

``init_app(app)`` builds ``app.extensions["authsvc.signals"]`` (a ``Signals``): its ``worker`` drains the SQL outbox
(authsvc.signals.outbox), ``register_handler(kind, fn)`` adds a delivery kind, ``enqueue(session, ...)`` adds a row
inside the caller's transaction. Audit listeners (``services().audit.on_record``) are where rows get written.
See docs/ARCHITECTURE.md "Shared Signals: outbox and worker".
"""

from __future__ import annotations

from flask import Flask, current_app

from authsvc.signals import outbox as _outbox
from authsvc.signals.config import SignalsSettings, load_signals_settings


class Signals:
    def __init__(self, app: Flask, settings: SignalsSettings):
        from authsvc.extensions import db

        self.app = app
        self.settings = settings
        self.clock = app.extensions["authsvc"].clock
        self.worker = _outbox.OutboxWorker(
            app, db, self.clock, batch=settings.signals_batch, lease_seconds=settings.signals_lease_seconds,
            max_attempts=settings.signals_max_attempts, backoff_base=settings.signals_backoff_base,
            backoff_max=settings.signals_backoff_max, concurrency=settings.signals_concurrency)

    def register_handler(self, kind: str, fn) -> None:
        self.worker.register_handler(kind, fn)

    def enqueue(self, session, kind: str, target: str, payload, *, jti: str | None = None, delay: float = 0.0) -> str:
        """Add a delivery to ``session``'s open transaction (no commit); returns its jti."""
        return _outbox.enqueue(session, kind, target, payload, jti=jti, now=self.clock.now(), delay=delay)


def init_app(app: Flask) -> Signals:
    settings = load_signals_settings(app.config["AUTHSVC"].extra)
    sig = Signals(app, settings)
    app.extensions["authsvc.signals"] = sig
    from authsvc.signals.cli import signals_group

    app.cli.add_command(signals_group)
    return sig


def init_transmitter(app: Flask) -> None:
    """The SSF transmitter (authsvc.signals.ssf) on top of the OAuth provider: its endpoints, its audit listener
    and its push handler. Called after ``authsvc.oauth.init_app``."""
    from authsvc.extensions import RedisExtension, csrf, db
    from authsvc.signals.ssf import Transmitter
    from authsvc.signals.views import bp

    sig = signals(app)
    svc = app.extensions["authsvc"]
    t = Transmitter(app, db, svc.clock, svc.audit, app.extensions["authsvc.oauth"], sig.settings,
                    app.config["SECRET_KEY"].encode(), lambda: RedisExtension.client_for(app))
    app.extensions["authsvc.ssf"] = t
    svc.audit.on_record(t.on_audit)
    sig.register_handler("ssf_push", t.push)
    csrf.exempt(bp)  # receivers authenticate with bearer tokens, never a cookie
    app.register_blueprint(bp)
    from authsvc.signals import receiver

    receiver.init_app(app)  # RISC receiver: SETs from the configured upstream transmitter


def signals(app: Flask | None = None) -> Signals:
    return (app or current_app).extensions["authsvc.signals"]


__all__ = ["Signals", "init_app", "signals"]
