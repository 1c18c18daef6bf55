"""OAuth 2.0 / OpenID Connect provider built on Authlib, to RFC 9700 (see docs/ARCHITECTURE.md "OAuth/OIDC").

``init_app(app)`` builds the provider from settings, registers its blueprints, and hooks session revocation so that
tokens issued from a login session end with it. ``current_app.extensions["authsvc.oauth"]`` is the ``OAuthProvider``;
its ``clients`` attribute is the ``ClientService`` the admin panel can call.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from authsvc.extensions import RedisExtension, csrf, db
    from authsvc.oauth.clients import ClientService
    from authsvc.oauth.config import load_oauth_settings
    from authsvc.oauth.keys import KeyStore, load_kek
    from authsvc.oauth.provider import DeviceStore, OAuthProvider
    from authsvc.oauth.tokens import TokenStore
    from authsvc.oauth.views import api, web

    svc = app.extensions["authsvc"]
    settings = load_oauth_settings(app.config)
    redis_getter = lambda: RedisExtension.client_for(app)  # noqa: E731
    tokens = TokenStore(db, redis_getter, svc.clock, code_ttl=settings.code_ttl,
                        refresh_ttl=settings.refresh_token_ttl)
    keys = KeyStore(db, svc.clock, load_kek(settings.key_encryption_key, app.instance_path), settings.signing_alg,
                    retire_after=max(settings.id_token_ttl, 900) + 300)
    clients = ClientService(db=db, redis_getter=redis_getter, clock=svc.clock, audit=svc.audit, tokens=tokens,
                            default_ttl=settings.access_token_ttl)
    provider = OAuthProvider(app=app, db=db, clock=svc.clock, audit=svc.audit, settings=settings, keys=keys,
                             tokens=tokens, clients=clients,
                             device=DeviceStore(redis_getter, svc.clock, settings.device_interval))
    app.extensions["authsvc.oauth"] = provider
    if svc.settings.session_drift_enabled:
        # Continuous risk for public clients' refresh families: the same geo lookup and owner alerts as sessions.
        provider.token_drift = True
        provider.geo_of = svc.sessions.geo_of
        provider.alerts = svc.login.alerts
    svc.sessions.revocation_listeners.append(provider.on_sessions_revoked)
    # OpenID Connect Back-Channel Logout 1.0: the apps of an ended login are queued in the revocation's own
    # transaction and told by the shared outbox worker (kind "bcl"); see authsvc/oauth/backchannel.py.
    from authsvc.oauth.backchannel import KIND, BackChannelLogout
    from authsvc.signals import signals

    def enqueue(session, kind, target, payload, *, jti, now):
        return signals(app).enqueue(session, kind, target, payload, jti=jti)

    provider.backchannel = BackChannelLogout(provider, timeout=signals(app).settings.signals_push_timeout,
                                             enqueue=enqueue)
    svc.sessions.ending_writers.append(provider.backchannel.on_sessions_ending)
    signals(app).register_handler(KIND, provider.backchannel.deliver)
    svc.sessions.suspension_listeners.append(provider.on_session_suspended)
    csrf.exempt(api)  # clients authenticate with their credentials or PKCE, never a cookie
    # Authorization and logout requests may come by POST from the client's page (OIDC Core §3.1.2.1, RP-Initiated
    # Logout §2); the views check the CSRF token themselves on POSTs of their own consent/confirmation forms.
    from authsvc.oauth import views as _views

    csrf.exempt(_views.authorize)
    csrf.exempt(_views.logout)
    app.register_blueprint(api)
    app.register_blueprint(web)

    from authsvc.oauth.fastpath import OAuthFastPath

    app.wsgi_app = OAuthFastPath(app, app.wsgi_app)  # introspection + refresh grant without Flask (measured, P2/P3)

    from authsvc.oauth.cli import clients_group, keys_group

    app.cli.add_command(clients_group)
    app.cli.add_command(keys_group)
