"""Start-up check that this host's keys open what the shared database already holds (issue 12 item 5).

Two secrets encrypt rows in SQL: the TOTP seed keys (``AUTHSVC_MFA_ENCRYPTION_KEYS``) and the OAuth
key-encryption key (``AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY``). Unset, each is generated into the instance folder, so a
second host on the same database would make its own and then fail on every seed and signing key the first one
wrote (``InvalidTag``), answering 500s for TOTP sign-ins and token signing. ``check_keys`` tries each stored
signing key and one TOTP seed per key version and refuses the start with a ``ConfigError`` naming the settings.

A database that is not reachable or not migrated yet (``authsvc db upgrade`` on a fresh one) is not checked: there
is nothing this host could fail to open, and a request that reaches a broken key later still fails closed.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from authsvc.config import ConfigError

log = logging.getLogger("authsvc")
OAUTH_SETTING = "AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY"
MFA_SETTING = "AUTHSVC_MFA_ENCRYPTION_KEYS"


def unreadable(app) -> dict[str, str]:
    """{setting: what this host cannot open}; empty when every checked row opens."""
    from authsvc.extensions import db
    from authsvc.mfa.crypto import UnknownKeyVersion
    from authsvc.models import TotpCredential

    problems: dict[str, str] = {}
    with app.app_context():
        try:
            provider = app.extensions.get("authsvc.oauth")
            if provider is not None:
                bad, total = provider.keys.unreadable()
                if bad:
                    problems[OAUTH_SETTING] = (f"{len(bad)} of {total} OAuth signing keys in the database were "
                                               "encrypted under another key-encryption key")
            mfa = app.extensions["authsvc"].mfa
            if mfa is not None:
                box = mfa.totp.box
                # one seed per key version found in the table (the newest of each), a handful of rows at most
                newest = select(TotpCredential.key_version, func.max(TotpCredential.user_id).label("uid")) \
                    .group_by(TotpCredential.key_version)
                bad = []
                for version, uid in db.session.execute(newest).all():
                    secret = db.session.execute(select(TotpCredential.secret)
                                                .where(TotpCredential.user_id == uid)).scalar_one()
                    try:
                        box.decrypt(secret, context=mfa.totp._context(uid))
                    except (UnknownKeyVersion, ValueError):
                        bad.append(version)
                if bad:
                    problems[MFA_SETTING] = ("TOTP seeds under key version(s) " + ", ".join(sorted(bad)) +
                                             " do not open with this host's keys")
        except SQLAlchemyError as exc:  # not migrated yet, or the database is down: nothing to compare against
            log.warning("key check skipped: the database could not be read (%s)", type(exc).__name__)
        finally:
            db.session.rollback()
            db.session.remove()
    return problems


def check_keys(app) -> None:
    problems = unreadable(app)
    if problems:
        raise ConfigError(
            " and ".join(problems),
            "this host's keys cannot open data the shared database already holds (" + "; ".join(problems.values())
            + "). Every host on one database must use the same values: set them explicitly on each host instead of "
              "the per-instance-folder files oauth_kek / mfa_keys (see docs/OPERATIONS.md, 'Several hosts').")
