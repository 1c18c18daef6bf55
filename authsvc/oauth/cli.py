"""``authsvc clients create|list|update|rotate-secret|delete`` and ``authsvc keys rotate|list``."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


def _provider():
    return current_app.extensions["authsvc.oauth"]


@click.group("clients", help="OAuth / OIDC clients (relying parties, native apps, devices, machines).")
def clients_group():
    pass


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--type", "client_type", type=click.Choice(["public", "confidential"]), default="confidential",
              show_default=True, help="public = SPA / native / device app without a secret")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="exact match; repeat for several")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
@click.option("--grant", "grants", multiple=True,
              help="authorization_code, refresh_token, client_credentials, "
                   "urn:ietf:params:oauth:grant-type:device_code (default: authorization_code + refresh_token)")
@click.option("--scope", "scopes", multiple=True, help="allowed scopes (default: openid profile email offline_access)")
@click.option("--audience", "audiences", multiple=True, help="resources it may get tokens for (default: this server)")
@click.option("--resource", default=None, help="for resource servers: the audience identifier they accept")
@click.option("--token-format", type=click.Choice(["opaque", "jwt"]), default="opaque", show_default=True)
@click.option("--access-token-ttl", type=int, default=None)
@click.option("--quota", "quota", type=int, default=600, show_default=True, help="requests per minute")
@click.option("--dpop-required", is_flag=True, default=False,
              help="refuse token requests without a DPoP proof (RFC 9449 dpop_bound_access_tokens)")
@click.option("--require-par", is_flag=True, default=False,
              help="accept authorization requests only through PAR (RFC 9126 require_pushed_authorization_requests)")
@click.option("--origin", "origins", multiple=True,
              help="browser origin (https://app.example) an SPA calls token/userinfo/revoke from (CORS); repeatable")
@click.option("--jwks-uri", default=None, help="private_key_jwt: URL of the client's public JWKS")
@click.option("--jwks-file", type=click.File("r"), default=None, help="private_key_jwt: the client's public JWKS")
@click.option("--backchannel-logout-uri", "bcl_uri", default=None,
              help="OpenID Back-Channel Logout: where logout tokens are POSTed when a sign-in ends (https; http only "
                   "to 127.0.0.1 / [::1] for confidential clients)")
@click.option("--backchannel-logout-session-required", "bcl_sid", is_flag=True, default=False,
              help="the client needs the sid claim in its logout tokens")
@with_appcontext
def clients_create(name, client_type, redirect_uris, post_logout, grants, scopes, audiences, resource, token_format,
                   access_token_ttl, quota, dpop_required, require_par, origins, jwks_uri, jwks_file, bcl_uri, bcl_sid):
    from authsvc.oauth.clients import ClientError

    kwargs = {}
    if grants:
        kwargs["grant_types"] = grants
    if scopes:
        kwargs["scopes"] = scopes
    if jwks_uri or jwks_file:  # RFC 7523 private_key_jwt: no secret is made
        import json

        try:
            jwks = json.load(jwks_file) if jwks_file else None
        except ValueError:
            raise click.ClickException("--jwks-file is not JSON") from None
        kwargs.update(token_endpoint_auth_method="private_key_jwt", jwks=jwks, jwks_uri=jwks_uri)
    try:
        row, secret = _provider().clients.create(
            name=name, client_type=client_type, redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout,
            audiences=audiences, resource=resource, token_format=token_format, access_token_ttl=access_token_ttl,
            quota_per_minute=quota, dpop_bound_access_tokens=dpop_required, require_par=require_par,
            allowed_origins=origins, backchannel_logout_uri=bcl_uri, backchannel_logout_session_required=bcl_sid,
            **kwargs)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"client_id:     {row.id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.secho("The secret is shown once and is not stored; keep it now.", fg="yellow", err=True)


@clients_group.command("list")
@with_appcontext
def clients_list():
    for c in _provider().clients.list():
        click.echo(f"{c.id}\t{c.client_type}\t{c.name}\t{c.grant_types}\t{c.redirect_uris}"
                   f"\t{c.backchannel_logout_uri or '-'}")


@clients_group.command("update")
@click.argument("client_id")
@click.option("--name", default=None)
@click.option("--backchannel-logout-uri", "bcl_uri", default=None,
              help="OpenID Back-Channel Logout URI; an empty string removes it")
@click.option("--backchannel-logout-session-required/--no-backchannel-logout-session-required", "bcl_sid",
              default=None, help="whether the client needs the sid claim in its logout tokens")
@with_appcontext
def clients_update(client_id, name, bcl_uri, bcl_sid):
    from authsvc.oauth.clients import ClientError

    changes = {k: v for k, v in (("name", name), ("backchannel_logout_uri", bcl_uri),
                                 ("backchannel_logout_session_required", bcl_sid)) if v is not None}
    if not changes:
        raise click.UsageError("nothing to change")
    try:
        _provider().clients.update(client_id, **changes)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"updated {client_id}: {', '.join(sorted(changes))}")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@with_appcontext
def clients_rotate(client_id):
    from authsvc.oauth.clients import ClientError

    try:
        secret = _provider().clients.rotate_secret(client_id)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"client_secret: {secret}")
    click.secho("The old secret stopped working. The new one is shown once.", fg="yellow", err=True)


@clients_group.command("delete")
@click.argument("client_id")
@click.confirmation_option(prompt="Delete the client and revoke every token issued to it?")
@with_appcontext
def clients_delete(client_id):
    from authsvc.oauth.clients import ClientError

    try:
        _provider().clients.delete(client_id)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"deleted {client_id}")


@click.group("keys", help="ID-token / JWT signing keys.")
def keys_group():
    pass


@keys_group.command("rotate", help="next → current (signs), current → retired (still published), new next.")
@with_appcontext
def keys_rotate():
    states = _provider().keys.rotate()
    for kid, state in states.items():
        click.echo(f"{kid}\t{state}")


@keys_group.command("list")
@with_appcontext
def keys_list():
    keys = _provider().keys
    keys.ensure()
    for k in keys.list():
        click.echo(f"{k.kid}\t{k.alg}\t{k.state}\t{k.created_at:%Y-%m-%d %H:%M}")
