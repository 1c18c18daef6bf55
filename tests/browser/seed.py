"""Realistic data for the page walk and the screenshots: made through the real services (login pipeline, sessions,
MFA, OAuth client service), with the app clock moved back so that a day of traffic lands in the last 24 hours."""

from __future__ import annotations

import datetime as dt

from authsvc.accounts.login import Decision, Reason, RequestContext

PASSWORD = "correct horse battery staple"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
          "Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
BOT = "python-requests/2.32.3"


def _user(email, *, admin=False):
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    services().accounts.register(email, PASSWORD, RequestContext("192.0.2.10", CHROME))
    user = db.session.execute(db.select(User).where(User.email == email)).scalar_one()
    user.email_verified_at = services().clock.now()
    user.is_admin = admin
    db.session.commit()
    return user


def _try(fn, *args):
    from authsvc.errors import Throttled

    try:
        return fn(*args)
    except Throttled:  # the throttles doing their job on the seeded attack
        return None


def seed(app, *, traffic: bool = True) -> dict:
    """Accounts alice (user), root (admin with TOTP), bob; a day of sign-ins and attacks; an OAuth client + consent."""
    from authsvc.extensions import db
    from authsvc.mfa.totp import code_at
    from authsvc.services import services

    out = {}
    with app.app_context():
        svc = services()
        alice, root, bob = _user("alice@example.com"), _user("root@example.com", admin=True), _user("bob@example.com")
        out.update(alice=alice.id, root=root.id, bob=bob.id)
        secret = svc.mfa.totp.begin(root)
        assert svc.mfa.totp.confirm(root, code_at(secret, int(svc.clock.timestamp()) // 30))
        svc.clock.advance(30)
        out["root_totp"] = secret
        if traffic:
            saved = svc.clock.offset
            svc.clock.offset -= dt.timedelta(hours=23)
            for hour in range(23):
                for i in range(1 + hour % 4):
                    _try(svc.login.login, "alice@example.com", PASSWORD, RequestContext("198.51.100.23", CHROME))
                for i in range(hour % 3):
                    _try(svc.login.login, "bob@example.com", "bad guess " + str(i), RequestContext("203.0.113.9", BOT))
                if hour in (4, 5, 6, 15, 16):  # a stuffing wave from one network
                    for i in range(6):
                        _try(svc.login.login, f"user{hour}{i}@example.net", "Summer2024!",
                             RequestContext(f"45.83.64.{10 + i}", BOT))
                if hour % 5 == 2:
                    svc.login._event(bob, RequestContext("185.220.101.4", FIREFOX), "mfa_required", Decision(
                        "step_up", float(hour % 4), (Reason("new_country", "First sign-in from Germany"),)))
                if hour % 7 == 3:
                    svc.login._event(bob, RequestContext("185.220.101.4", BOT), "denied", Decision(
                        "deny", 8.5, (Reason("tor_exit", "The network is a Tor exit node"),
                                      Reason("velocity", "Many accounts tried from this address"))))
                svc.clock.advance(3600)
            svc.clock.offset = saved
        # What alice sees: two live sessions, receipts with reasons behind a challenge and a block.
        svc.login.complete(alice, RequestContext("198.51.100.23", IPHONE), Decision(
            "step_up", 2.4, (Reason("new_device", "A browser never seen on this account"),
                             Reason("new_country", "First sign-in from Portugal"))), aal=1, methods=("pwd",))
        svc.login._event(alice, RequestContext("185.220.101.4", BOT), "denied", Decision(
            "deny", 9.1, (Reason("impossible_travel", "Lisbon to Singapore in 20 minutes is not possible"),
                          Reason("tor_exit", "The network is a Tor exit node"))))
        provider = app.extensions.get("authsvc.oauth")
        if provider is not None:
            row, _ = provider.clients.create(name="Photo Print Shop", redirect_uris=["https://photos.example/cb"],
                                             actor_id=root.id)
            from authsvc.models import OAuthConsent

            db.session.add(OAuthConsent(user_id=alice.id, client_id=row.id, scopes="openid profile email",
                                        granted_at=svc.clock.now()))
            db.session.commit()
            out["client_id"] = row.id
    return out


def totp_now(app, secret, steps=0):
    from authsvc.mfa.totp import code_at
    from authsvc.services import services

    with app.app_context():
        return code_at(secret, int(services().clock.timestamp()) // 30 + steps)
