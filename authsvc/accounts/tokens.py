"""Single-use e-mail tokens (verification, reset, admin setup): 256 random bits, SHA-256 stored, atomic consume."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update

from authsvc.models import EmailToken


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EmailTokenService:
    def __init__(self, db, clock):
        self.db = db
        self.clock = clock

    def issue(self, purpose: str, user_id: int | None, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        self.db.session.add(EmailToken(id=_h(token), user_id=user_id, purpose=purpose, created_at=now,
                                       expires_at=now + dt.timedelta(seconds=ttl)))
        self.db.session.commit()
        return token

    def replace(self, purpose: str, user_id: int | None, ttl: int) -> str:
        """Invalidate the user's live ``purpose`` tokens and issue a new one, in one transaction (only the newest link
        works). ``user_id=None`` runs the very same statements for no account — the UPDATE matches nothing and the
        row is born used and expired — so a request for an unknown address does the same database work."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        real = user_id is not None
        self.db.session.execute(
            update(EmailToken)
            .where(EmailToken.user_id == (user_id if real else 0), EmailToken.purpose == purpose,
                   EmailToken.used_at.is_(None))
            .values(used_at=now)
        )
        self.db.session.add(EmailToken(id=_h(token), user_id=user_id, purpose=purpose, created_at=now,
                                       expires_at=now + dt.timedelta(seconds=ttl) if real else now,
                                       used_at=None if real else now))
        self.db.session.commit()
        return token

    def peek(self, purpose: str, token: str) -> EmailToken | None:
        """The live token row, without using it up (to render a form)."""
        if not token or len(token) > 128:
            return None
        row = self.db.session.get(EmailToken, _h(token))
        if row is None or row.purpose != purpose or row.used_at is not None or row.expires_at <= self.clock.now():
            return None
        return row

    def consume(self, purpose: str, token: str) -> EmailToken | None:
        """Use the token once. The conditional UPDATE makes two concurrent uses produce one winner."""
        row = self.peek(purpose, token)
        if row is None:
            return None
        res = self.db.session.execute(
            update(EmailToken)
            .where(EmailToken.id == row.id, EmailToken.used_at.is_(None))
            .values(used_at=self.clock.now())
        )
        self.db.session.commit()
        return row if res.rowcount == 1 else None

    def invalidate(self, purpose: str, user_id: int) -> None:
        self.db.session.execute(
            update(EmailToken)
            .where(EmailToken.user_id == user_id, EmailToken.purpose == purpose, EmailToken.used_at.is_(None))
            .values(used_at=self.clock.now())
        )
        self.db.session.commit()

    def any_live(self, purpose: str) -> bool:
        now = self.clock.now()
        return self.db.session.execute(
            select(EmailToken.id).where(EmailToken.purpose == purpose, EmailToken.used_at.is_(None),
                                        EmailToken.expires_at > now).limit(1)
        ).first() is not None
