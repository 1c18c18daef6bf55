"""Federated sign-in: "Continue with Google / Apple / Microsoft / GitHub / any OpenID provider" (issue 17).

``init_app(app)`` builds the ``FederationService`` (``app.extensions["authsvc_federation"]``), registers its pages
and the ``authsvc idp add|list|remove`` commands. See service.py for the rules and docs/SECURITY.md for the tests.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from authsvc.extensions import RedisExtension, csrf, db
    from authsvc.federation.cli import idp_group
    from authsvc.federation.service import FederationService
    from authsvc.federation.views import bp, callback, providers_for_page

    svc = app.extensions["authsvc"]
    app.extensions["authsvc_federation"] = FederationService(
        db=db, redis_getter=lambda: RedisExtension.client_for(app), login=svc.login, mfa=svc.mfa,
        sessions=svc.sessions, audit=svc.audit, clock=svc.clock, settings=svc.settings, mailer=svc.mailer,
        box=svc.mfa.totp.box, app=app)
    csrf.exempt(callback)  # state (bound to this browser) is the callback's CSRF defence; Apple POSTs cross-site
    app.register_blueprint(bp)
    from authsvc.federation.admin import bp as admin_bp

    app.register_blueprint(admin_bp)
    app.jinja_env.globals["federation_providers"] = providers_for_page
    app.jinja_env.globals["federation_identities"] = app.extensions["authsvc_federation"].identities
    app.cli.add_command(idp_group)
