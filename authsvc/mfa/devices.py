"""Trusted devices ("remember this device"): a random token in ``__Host-authsvc-device``, its SHA-256 in SQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import select, update

from authsvc.models import TrustedDevice, User

DEVICE_COOKIE = "__Host-authsvc-device"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def device_name(user_agent: str | None) -> str:
    """A human name ("Chrome on Linux") for the list; only for display, never for a decision."""
    ua = user_agent or ""
    browser = next((name for pat, name in ((r"Edg/", "Edge"), (r"OPR/", "Opera"), (r"Firefox/", "Firefox"),
                                             (r"Chrom(e|ium)/", "Chrome"), (r"Safari/", "Safari"))
                    if re.search(pat, ua)), "Browser")
    system = next((name for pat, name in ((r"Android", "Android"), (r"iPhone|iPad", "iOS"), (r"Windows", "Windows"),
                                            (r"Mac OS X|Macintosh", "macOS"), (r"Linux", "Linux"))
                   if re.search(pat, ua)), "unknown system")
    return f"{browser} on {system}"


class TrustedDeviceService:
    def __init__(self, *, db, clock, days: int):
        self.db, self.clock, self.days = db, clock, days

    def create(self, user: User, user_agent: str | None) -> tuple[TrustedDevice, str]:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        row = TrustedDevice(user_id=user.id, token_hash=_hash(token), name=device_name(user_agent), created_at=now,
                            last_used_at=now, expires_at=now + dt.timedelta(days=self.days))
        self.db.session.add(row)
        self.db.session.commit()
        return row, token

    def lookup(self, token: str | None) -> TrustedDevice | None:
        """The live device behind a cookie value, or None (unknown, revoked, expired)."""
        if not token or len(token) > 128:
            return None
        row = self.db.session.execute(select(TrustedDevice).where(TrustedDevice.token_hash == _hash(token))).scalar()
        if row is None or row.revoked_at is not None or row.expires_at <= self.clock.now():
            return None
        return row

    def is_trusted_id(self, user: User, device_id: str | int | None) -> bool:
        if not device_id:
            return False
        try:
            row = self.db.session.get(TrustedDevice, int(device_id))
        except (TypeError, ValueError):
            return False
        return (row is not None and row.user_id == user.id and row.revoked_at is None
                and row.expires_at > self.clock.now())

    def touch(self, device_id: int) -> None:
        self.db.session.execute(update(TrustedDevice).where(TrustedDevice.id == device_id)
                                .values(last_used_at=self.clock.now()))
        self.db.session.commit()

    def list_for(self, user: User) -> list[TrustedDevice]:
        now = self.clock.now()
        rows = self.db.session.execute(select(TrustedDevice).where(
            TrustedDevice.user_id == user.id, TrustedDevice.revoked_at.is_(None))
            .order_by(TrustedDevice.last_used_at.desc())).scalars()
        return [r for r in rows if r.expires_at > now]

    def revoke(self, user: User, device_id: int) -> bool:
        res = self.db.session.execute(update(TrustedDevice).where(
            TrustedDevice.id == device_id, TrustedDevice.user_id == user.id, TrustedDevice.revoked_at.is_(None))
            .values(revoked_at=self.clock.now()))
        self.db.session.commit()
        return res.rowcount == 1

    def revoke_all(self, user: User) -> int:
        res = self.db.session.execute(update(TrustedDevice).where(
            TrustedDevice.user_id == user.id, TrustedDevice.revoked_at.is_(None)).values(revoked_at=self.clock.now()))
        self.db.session.commit()
        return res.rowcount
