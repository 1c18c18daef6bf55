"""Recovery codes: 10 single-use codes of 16 base32 characters (80 random bits each), shown once.

Stored as SHA-256(per-set salt ‖ code). Why not argon2: a code has no identifier, so a login would have to run one
argon2 verify per unused code (up to ten per attempt) — a cheap DoS lever — while 80 bits from a CSPRNG already put
an offline search of a stolen table out of reach (2^80 hashes per code). The salt stops one precomputed table
from covering every user.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, func, select, update

from authsvc.models import RecoveryCode, User

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
COUNT = 10
LENGTH = 16


def normalize(code: str) -> str:
    return "".join(c for c in (code or "").upper() if c.isalnum())


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + normalize(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


class RecoveryCodeService:
    def __init__(self, *, db, store, clock):
        self.db, self.store, self.clock = db, store, clock

    def generate(self, user: User, *, aal: int = 1) -> list[str]:
        """A new set; the old set (used or not) stops working in the same transaction."""
        salt = secrets.token_hex(16)
        codes = [_new_code() for _ in range(COUNT)]
        now = self.clock.now()
        self.db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        self.db.session.add_all(RecoveryCode(user_id=user.id, salt=salt, code_hash=_hash(salt, c), created_at=now,
                                                enrolled_aal=aal)
                                for c in codes)
        self.db.session.commit()
        return codes

    def remaining(self, user: User) -> int:
        return self.db.session.execute(select(func.count()).select_from(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).scalar_one()

    def has_any(self, user: User) -> bool:
        return self.db.session.execute(select(RecoveryCode.id).where(RecoveryCode.user_id == user.id)
                                       .limit(1)).first() is not None

    def use(self, user: User, code: str) -> bool:
        """Spend one code. Throttled with TOTP failures; the conditional UPDATE makes a code usable exactly once."""
        self.store.precheck(user.id)
        salt = self.db.session.execute(select(RecoveryCode.salt).where(RecoveryCode.user_id == user.id)
                                       .limit(1)).scalar_one_or_none()
        ok = False
        if salt is not None and len(normalize(code)) == LENGTH:
            res = self.db.session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _hash(salt, code),
                       RecoveryCode.used_at.is_(None))
                .values(used_at=self.clock.now()))
            self.db.session.commit()
            ok = res.rowcount == 1
        if not ok:
            self.store.record_failure(user.id)
            return False
        self.store.clear_failures(user.id)
        return True

    def remove_all(self, user: User) -> None:
        self.db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        self.db.session.commit()
