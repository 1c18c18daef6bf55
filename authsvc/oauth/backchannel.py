"""OpenID Connect Back-Channel Logout 1.0, the provider's side: tell each app when a sign-in it got tokens from ends.

Reads top to bottom as the life of one notice:

1. **A login ends.** Every way a session ends (logout, RP-initiated logout, "end this session" / "end all", "this
   wasn't me", drift and DBSC containment, admin disable / end sessions, password change or reset, erasure) goes
   through ``SessionService``'s revoke paths, which call ``on_sessions_ending`` *before* the commit that ends the
   sessions. Replacing a session's token (step-up, reauthentication) is not an end: the login goes on, with the same
   ``sid``, so nothing is sent.
2. **Which apps.** Grants record the session they came from (``oauth_grants.session_id``); the sessions record their
   login (``user_sessions.login_id``, the ``sid``). Apps told = clients with a ``backchannel_logout_uri`` holding a
   grant (live or not: the app's own session outlives its tokens) from any session of the ended login, §2.3.
3. **Queued with the end.** One outbox row (kind ``bcl``, authsvc.signals.outbox) per (app, login), written in the same
   SQL transaction as the revocation: the sessions never end without the apps being told, or the other way round.
   The row holds the claims that cannot be rebuilt later (the user's ``sub``, the ``sid``, the ``jti``) — the user may
   be erased meanwhile — but no token.
4. **Signed at each attempt.** The worker signs the logout token (§2.4) when it delivers, with the provider's current
   key and a fresh ``iat``/``exp``, so a retry an hour later is not an expired token; the ``jti`` stays the same
   across attempts, so an RP that dedupes by ``jti`` acts once.
5. **POSTed.** Form-encoded ``logout_token=…`` to the URI registered *now* (an app whose URI was removed, or that was
   deleted, is not told), short timeouts, redirects not followed (§2.5). 200 or 204 is done (§2.8); anything else
   raises and the outbox retries with backoff. The user's logout never waits for an app.

The token cannot pass for an ID token: ``typ`` is ``logout+jwt``, it has ``events`` and never a ``nonce`` (§2.4, §4.1).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import requests
from joserfc import jwt
from sqlalchemy import select

from authsvc.models import OAuthClient, OAuthGrant, User, UserSession

log = logging.getLogger("authsvc.oauth.backchannel")

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TYP = "logout+jwt"
KIND = "bcl"  # the outbox kind
# Token replacements of one continuing login (authsvc.mfa.service): not an end, nothing is sent.
ROTATIONS = frozenset({"step_up", "reauthenticated"})


class DeliveryFailed(Exception):
    """The RP did not answer 200/204 in time: the outbox retries."""


@dataclass(frozen=True)
class Notice:
    """One app to tell about one ended login."""

    client_id: str
    sub: str
    sid: str | None  # None only for a session from before login ids existed: then the token names the user only
    jti: str

    def payload(self) -> dict:
        return {"cid": self.client_id, "sub": self.sub, "sid": self.sid}


def _enqueue(session, kind, target, payload, *, jti, now):
    """The shared durable outbox (authsvc.signals.outbox): one row in ``session``'s transaction, no commit."""
    from authsvc.signals.outbox import enqueue

    return enqueue(session, kind, target, payload, jti=jti, now=now)


class BackChannelLogout:
    def __init__(self, provider, *, timeout: float = 5.0, token_ttl: int = 120, enqueue=_enqueue):
        self.provider = provider
        self.db = provider.db
        self.clock = provider.clock
        self.timeout = timeout  # seconds for connect and for read: far under the outbox lease
        self.token_ttl = token_ttl  # §2.4 exp; ASVS 10.5.5 suggests about two minutes
        self._enqueue = enqueue

    # --- 1-3: queue, inside the revocation's transaction -------------------------------------------------------------
    def notices_for(self, user_id: int, sids: list[str]) -> list[Notice]:
        """The apps to tell that the logins of sessions ``sids`` (of ``user_id``) ended, one per (app, login)."""
        session = self.db.session
        ended = session.execute(select(UserSession.id, UserSession.login_id)
                                .where(UserSession.id.in_(list(sids)), UserSession.user_id == user_id)).all()
        if not ended:
            return []
        login_ids = sorted({lid for _, lid in ended if lid})
        legacy = [sid for sid, lid in ended if not lid]
        base = (select(UserSession.login_id, OAuthGrant.client_id, OAuthClient.backchannel_logout_session_required)
                .join(OAuthGrant, OAuthGrant.session_id == UserSession.id)
                .join(OAuthClient, OAuthClient.id == OAuthGrant.client_id)
                .where(UserSession.user_id == user_id, OAuthGrant.user_id == user_id,
                       OAuthClient.backchannel_logout_uri.is_not(None)).distinct())
        rows = []
        if login_ids:  # every session of the login, the replaced ones too: an app signed in before a step-up counts
            rows += session.execute(base.where(UserSession.login_id.in_(login_ids))).all()
        if legacy:
            rows += session.execute(base.where(UserSession.id.in_(legacy))).all()
        if not rows:
            return []  # the common case: no app with a logout URI signed in with these logins
        sub = session.execute(select(User.sub).where(User.id == user_id)).scalar()
        if sub is None:
            return []
        out, seen = [], set()
        for login_id, client_id, need_sid in sorted(rows, key=lambda r: (r[1], r[0] or "")):
            if (client_id, login_id) in seen:
                continue
            seen.add((client_id, login_id))
            if need_sid and not login_id:
                continue  # the app needs a sid we never gave it (a session from before login ids): it cannot match
            out.append(Notice(client_id, sub, login_id, secrets.token_urlsafe(16)))
        return out

    def on_sessions_ending(self, user_id: int, sids: list[str], reason: str) -> None:
        """``SessionService.ending_writers`` hook: queue the logout tokens in the revocation's own transaction."""
        if reason in ROTATIONS or not sids:
            return
        now = self.clock.now()
        for notice in self.notices_for(user_id, sids):
            self._enqueue(self.db.session, KIND, notice.client_id, notice.payload(), jti=notice.jti, now=now)

    # --- 4: the logout token ----------------------------------------------------------------------------------------
    def logout_token(self, client_id: str, sub: str | None, sid: str | None, jti: str) -> str:
        """§2.4: iss, aud (the one client), iat, exp, jti, events, sub and/or sid; never a nonce. Signed like ID tokens
        (the same keys, the same allow-listed algorithm), typed ``logout+jwt``."""
        if not sub and not sid:
            raise ValueError("a logout token names a sub, a sid or both")
        key, kid, alg = self.provider.keys.signing_key()
        now = int(self.clock.timestamp())
        claims = {"iss": self.provider.issuer, "aud": client_id, "iat": now, "exp": now + self.token_ttl,
                  "jti": jti, "events": {LOGOUT_EVENT: {}}}
        if sub:
            claims["sub"] = sub
        if sid:
            claims["sid"] = sid
        return jwt.encode({"alg": alg, "kid": kid, "typ": LOGOUT_TYP}, claims, key, algorithms=[alg])

    # --- 5: delivery (the outbox worker's handler) --------------------------------------------------------------------
    def deliver(self, item) -> str:
        """Deliver one queued notice (an outbox ``Item``). Returns "delivered" or "skipped" (the client is gone or no
        longer has a URI: nobody to tell, so no retry); raises ``DeliveryFailed`` for a retry."""
        p = item.payload
        client = self.provider.clients.get(p.get("cid") or item.target)
        if client is None or not client.backchannel_logout_uri:
            log.info("back-channel logout %s: client %s has no logout URI now; not sent", item.jti, item.target)
            return "skipped"
        token = self.logout_token(client.client_id, p.get("sub"), p.get("sid"), item.jti)
        try:
            # stream=True: the body is never read (an RP cannot make us download anything), only the status line.
            # One request per call, no shared Session: the worker delivers from several pool threads at once.
            with requests.post(client.backchannel_logout_uri, data={"logout_token": token}, timeout=self.timeout,
                               allow_redirects=False, stream=True, headers={"Accept": "application/json"}) as r:
                status = r.status_code
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{type(exc).__name__}") from None  # the message may hold the URI: keep it short
        if status not in (200, 204):  # §2.8: 200 (some frameworks answer 204 for an empty body)
            raise DeliveryFailed(f"HTTP {status}")
        return "delivered"
