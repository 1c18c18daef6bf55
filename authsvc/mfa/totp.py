"""TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, ±1 step, each step accepted at most once per user."""

from __future__ import annotations

import base64
import hmac
import io
import secrets
import unicodedata

import pyotp
import segno
from sqlalchemy import select

from authsvc.models import TotpCredential, User

STEP = 30
DIGITS = 6


def new_secret() -> str:
    """160 bits from the OS CSPRNG (RFC 4226 §4 recommends 160), base32 for authenticator apps."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def code_at(secret: str, step: int, digits: int = DIGITS) -> str:
    return pyotp.TOTP(secret, digits=digits, interval=STEP).at(step * STEP)


def ascii_code(code: str | None) -> str | None:
    """The code as ASCII digits, or None when it is not one. Any Unicode decimal digit counts as its value
    (fullwidth "１２３４５６", Arabic-Indic "١٢٣٤٥٦" — what phone keyboards in those locales type), spaces are ignored;
    anything else (superscripts, letters, signs) makes it no code at all — an "invalid code" answer, never a 500."""
    out = []
    for ch in (code or "").strip():
        if ch.isspace():
            continue
        value = unicodedata.decimal(ch, None)
        if value is None:
            return None
        out.append(str(value))
    text = "".join(out)
    return text if len(text) == DIGITS else None


def matching_step(secret: str, code: str, now: float, window: int = 1) -> int | None:
    """The time step (now ±window) whose code equals ``code``, compared in constant time."""
    code = ascii_code(code)
    if code is None:
        return None
    current = int(now // STEP)
    found = None
    for step in range(max(0, current - window), current + window + 1):
        if hmac.compare_digest(code_at(secret, step), code):
            found = step  # keep looping: same work whichever step matched
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data: URI, rendered here (the seed never leaves for a third-party QR service)."""
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
                                    title="TOTP enrolment QR code")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


class TotpService:
    def __init__(self, *, db, box, store, clock):
        self.db, self.box, self.store, self.clock = db, box, store, clock

    @staticmethod
    def _context(user_id: int) -> str:
        return f"totp:u{user_id}"

    def credential(self, user: User) -> TotpCredential | None:
        return self.db.session.get(TotpCredential, user.id)

    def enrolled(self, user: User) -> bool:
        return self.credential(user) is not None

    # --- enrolment ----------------------------------------------------------------------------------------------
    def begin(self, user: User) -> str:
        """A fresh seed, kept (encrypted) in Redis until the user proves their app has it."""
        secret = new_secret()
        self.store.put_enrolment(user.id, self.box.encrypt(secret.encode(), context=self._context(user.id) + ":new"))
        return secret

    def pending_secret(self, user: User) -> str | None:
        sealed = self.store.get_enrolment(user.id)
        if not sealed:
            return None
        return self.box.decrypt(sealed, context=self._context(user.id) + ":new")[0].decode()

    def confirm(self, user: User, code: str, *, aal: int = 1) -> bool:
        secret = self.pending_secret(user)
        if secret is None:
            return False
        self.store.precheck(user.id)
        step = matching_step(secret, code, self.clock.timestamp())
        # The confirming code claims its step, so it cannot be replayed for a login afterwards.
        if step is None or not self.store.claim_totp_step(user.id, step):
            self.store.record_failure(user.id)
            return False
        self.store.clear_failures(user.id)
        row = self.credential(user) or TotpCredential(user_id=user.id)
        row.secret = self.box.encrypt(secret.encode(), context=self._context(user.id))
        row.key_version = self.box.current
        row.created_at = self.clock.now()
        row.last_used_at = None
        row.enrolled_aal = aal
        row.suspended_at = None
        self.db.session.add(row)
        self.db.session.commit()
        self.store.drop_enrolment(user.id)
        return True

    def remove(self, user: User) -> bool:
        row = self.credential(user)
        if row is None:
            return False
        self.db.session.delete(row)
        self.db.session.commit()
        return True

    # --- verification -------------------------------------------------------------------------------------------
    def verify(self, user: User, code: str) -> bool:
        """True once per accepted time step. Raises Throttled (429) after too many failures."""
        row = self.credential(user)
        if row is None or row.suspended_at is not None:
            return False
        self.store.precheck(user.id)
        secret, stale = self.box.decrypt(row.secret, context=self._context(user.id))
        step = matching_step(secret.decode(), code, self.clock.timestamp())
        if step is None or not self.store.claim_totp_step(user.id, step):
            self.store.record_failure(user.id)
            return False
        self.store.clear_failures(user.id)
        row.last_used_at = self.clock.now()
        if stale:  # key rotation: re-encrypt under the newest key now that we hold the plaintext anyway
            row.secret = self.box.encrypt(secret, context=self._context(user.id))
            row.key_version = self.box.current
        self.db.session.commit()
        return True

    def suspend(self, user: User) -> bool:
        row = self.credential(user)
        if row is None or row.suspended_at is not None:
            return False
        row.suspended_at = self.clock.now()
        self.db.session.commit()
        return True

    def unsuspend(self, user: User) -> bool:
        row = self.credential(user)
        if row is None or row.suspended_at is None:
            return False
        row.suspended_at = None
        self.db.session.commit()
        return True

    def rewrap_all(self) -> int:
        """Re-encrypt every seed still under an older key (``authsvc mfa rewrap``), for retiring a key early."""
        n = 0
        for row in self.db.session.execute(
                select(TotpCredential).where(TotpCredential.key_version != self.box.current)).scalars():
            plain, _ = self.box.decrypt(row.secret, context=self._context(row.user_id))
            row.secret = self.box.encrypt(plain, context=self._context(row.user_id))
            row.key_version = self.box.current
            n += 1
        self.db.session.commit()
        return n
