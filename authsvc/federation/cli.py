"""``authsvc idp add|list|remove``: the upstream identity providers users may sign in with."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from authsvc.federation.providers import KINDS


def _fed():
    return current_app.extensions["authsvc_federation"]


@click.group("idp", help="Upstream identity providers (Continue with Google, Apple, Microsoft, GitHub, OIDC).")
def idp_group():
    pass


@idp_group.command("add")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--slug", default=None, help="in the callback URL /federation/<slug>/callback (default: the kind)")
@click.option("--client-id", required=True)
@click.option("--client-secret", envvar="AUTHSVC_IDP_CLIENT_SECRET", default=None,
              help="or AUTHSVC_IDP_CLIENT_SECRET (kept out of the shell history); sealed in the database")
@click.option("--issuer", default=None, help="required for kind oidc; presets know theirs")
@click.option("--discovery-url", default=None, help="default: <issuer>/.well-known/openid-configuration")
@click.option("--name", default=None, help='the button text after "Continue with"')
@click.option("--scopes", default=None)
@click.option("--trust-mfa", is_flag=True, help="let this provider's amr (mfa, otp, hwk...) stand for a second factor")
@with_appcontext
def add(kind, slug, client_id, client_secret, issuer, discovery_url, name, scopes, trust_mfa):
    from authsvc.federation.service import FederationRefused

    try:
        row = _fed().add_provider(slug=slug or kind, kind=kind, client_id=client_id, client_secret=client_secret,
                                  name=name, issuer=issuer, discovery_url=discovery_url, scopes=scopes,
                                  trust_mfa=trust_mfa)
    except FederationRefused as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"added {row.slug} ({row.kind}) issuer={row.issuer}")
    click.echo(f"redirect URI to register at the provider: {_fed().redirect_uri(row)}")


@idp_group.command("list")
@with_appcontext
def list_():
    rows = _fed().providers(enabled_only=False)
    if not rows:
        click.echo("no identity providers")
    for row in rows:
        click.echo(f"{row.slug}\t{row.kind}\t{row.name}\t{row.issuer}\ttrust_mfa={'yes' if row.trust_mfa else 'no'}"
                   f"\t{'enabled' if row.enabled else 'disabled'}")


@idp_group.command("remove")
@click.argument("slug")
@with_appcontext
def remove(slug):
    if not _fed().remove_provider(slug):
        raise click.ClickException(f"no provider {slug!r}")
    click.echo(f"removed {slug} and the identities linked through it")
