"""``authsvc mfa …``: operator commands (the admin panel calls the same service methods)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("mfa", help="Second factors.")
def mfa_group():
    pass


@mfa_group.command("reset", help="Remove every factor and trusted device of a user (audited; the user is e-mailed).")
@click.option("--email", required=True)
@with_appcontext
def reset(email):
    from sqlalchemy import select

    from authsvc.accounts.login import RequestContext, normalize_email
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    user = db.session.execute(select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {email}")
    removed = services().mfa.reset_factors(user, actor=None, ctx=RequestContext(ip=None, user_agent="cli"))
    click.echo(f"reset {user.email}: " + ", ".join(f"{k}={v}" for k, v in removed.items()))


@mfa_group.command("unflag", help="Accept again a security key or passkey flagged as a possible clone (audited).")
@click.option("--email", required=True)
@click.option("--credential", "cred_id", required=True, type=int, help="The credential's id (admin user page).")
@with_appcontext
def unflag(email, cred_id):
    from sqlalchemy import select

    from authsvc.accounts.login import RequestContext, normalize_email
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    user = db.session.execute(select(User).where(User.email == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {email}")
    if not services().mfa.clear_clone_flag(user, cred_id, actor=None, ctx=RequestContext(ip=None, user_agent="cli")):
        raise click.ClickException(f"{user.email} has no flagged credential {cred_id}")
    click.echo(f"credential {cred_id} of {user.email} is accepted again")


@mfa_group.command("rewrap", help="Re-encrypt every TOTP seed under the newest key (before retiring an old key).")
@with_appcontext
def rewrap():
    from authsvc.services import services

    click.echo(f"re-encrypted {services().mfa.totp.rewrap_all()} TOTP seeds")
