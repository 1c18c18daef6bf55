"""authsvc — account-takeover defense and authentication service."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

__version__ = "0.1.0"


def _secret_key(instance_path: str, configured: str | None) -> str:
    """Configured key, else one generated once and kept (0600) in the instance folder so restarts keep CSRF valid."""
    if configured:
        return configured
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    except OSError:
        raise


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """config → extensions → services → blueprints → cli."""
    from authsvc.config import load_settings
    from authsvc.extensions import csrf, db, redis_ext
    from authsvc.resources import resource_dir

    settings = load_settings(config)
    app = Flask(
        __name__,
        instance_path=os.path.abspath(settings.instance_path) if settings.instance_path else None,
        instance_relative_config=True,
        static_folder=resource_dir("static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    logging.getLogger("authsvc").setLevel(settings.log_level.upper())

    database_url = settings.database_url or "sqlite:///" + os.path.join(app.instance_path, "authsvc.db")
    app.config.update(
        AUTHSVC=settings,
        SECRET_KEY=_secret_key(app.instance_path, settings.secret_key),
        SQLALCHEMY_DATABASE_URI=database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(database_url, settings.database_lock_timeout),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        # Flask's own cookie holds only the CSRF secret, never login state.
        SESSION_COOKIE_NAME="__Host-authsvc-csrf",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # bound to the CSRF cookie's life instead of a clock that expires long forms
        JSON_SORT_KEYS=False,
    )
    app.config.update(settings.extra)

    db.init_app(app)
    csrf.init_app(app)
    redis_ext.init_app(app)

    from authsvc.services import build_services

    with app.app_context():
        app.extensions["authsvc"] = build_services(app, settings)

    from authsvc.signals import init_app as init_signals

    init_signals(app)  # the SQL outbox + worker (Shared Signals, Back-Channel Logout): before anything registers kinds

    from authsvc import jobs

    jobs.init_app(app)  # exports and the full chain check as background jobs on the outbox worker (issue 20)
    from authsvc.admin import rollup

    rollup.init_app(app)  # the dashboard's ended hours counted by the outbox worker, off the request path

    from authsvc.web import errors, http

    http.init_app(app)
    errors.init_app(app)

    from authsvc import i18n
    from authsvc.web import theme

    i18n.init_app(app)  # Flask-Babel: catalogs compiled from authsvc/translations, locale per user/cookie/header
    i18n.register_routes(app)
    theme.init_app(app)  # operator branding: template overrides, /brand.css, /theme/<file>

    from authsvc.admin import bp as admin_bp
    from authsvc.api import bp as api_bp
    from authsvc.web import bp as web_bp

    csrf.exempt(api_bp)  # the API authenticates with a bearer token, never a cookie, so CSRF cannot apply
    app.register_blueprint(web_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)

    from authsvc.oauth import init_app as init_oauth

    init_oauth(app)  # OAuth 2.0 / OIDC provider: its blueprints, CLI groups and the session-revocation listener

    from authsvc.signals import init_transmitter

    init_transmitter(app)  # SSF transmitter (streams, CAEP/RISC SETs) on the provider's clients and keys

    from authsvc.dbsc import init_app as init_dbsc

    init_dbsc(app)  # device-bound sessions: registration offer, register/refresh endpoints

    from authsvc.federation import init_app as init_federation

    init_federation(app)  # "Continue with Google": upstream providers, linked identities, `authsvc idp`

    from authsvc.api.fastpath import SessionCheckFastPath

    app.wsgi_app = SessionCheckFastPath(app, app.wsgi_app)  # GET /api/v1/session without Flask (measured, P2)

    from authsvc.cli import init_app as init_cli

    init_cli(app)

    from authsvc.keycheck import check_keys

    if app.config.get("AUTHSVC_KEY_CHECK", True):
        check_keys(app)  # refuse to start when the shared database holds rows this host's keys cannot open
    return app


def _engine_options(url: str, lock_timeout: float = 10.0) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several gunicorn workers share one file: wait for the writer instead of failing with "database is locked".
        return {"connect_args": {"timeout": 15}}
    args: dict[str, Any] = {"connect_timeout": 3}
    if url.startswith("postgresql") and lock_timeout > 0:
        # A statement waiting for a lock (a long transaction, a migration, an operator's psql) gives up after this
        # and the request becomes a 503, as SQLite's busy timeout does — never a worker held until the server's
        # own timeout. Per connection, so migrations run by `authsvc db upgrade` fail fast instead of queueing every
        # request behind their lock.
        args["options"] = f"-c lock_timeout={int(lock_timeout * 1000)}"
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5, "pool_timeout": 5, "connect_args": args}
