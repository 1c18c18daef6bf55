"""Signing keys for ID tokens and JWT access tokens, rotated through the JWKS.

Life of a key: ``next`` (published in the JWKS, not signing yet, so relying parties that cache the JWKS already know
it) → ``current`` (signs) → ``retired`` (still published until every token it signed has expired) → deleted.
``authsvc keys rotate`` moves each key one step. Private keys are stored AES-256-GCM encrypted (the kid is the
associated data, so a ciphertext cannot be swapped onto another row) under a key-encryption key from config
(``AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY``) or one generated once into the instance folder (0600) — so a database dump
alone never yields a signing key.

Keys are cached in-process for ``CACHE_SECONDS`` so signing and verifying never hit SQL on the hot path; a rotation
reaches every worker within that time, which is why a new key is published as ``next`` one rotation before it signs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import delete, select

from authsvc.models import OAuthSigningKey

CACHE_SECONDS = 30
ALLOWED_ALGS = ("RS256", "ES256")  # the JWT allow-list: never "none", never HS* with a public key


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_kek(configured: str | None, instance_path: str) -> bytes:
    if configured:
        key = _b64d(configured)
        if len(key) != 32:
            from authsvc.config import ConfigError

            raise ConfigError("AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY", "must be 32 bytes, base64url-encoded")
        return key
    path = os.path.join(instance_path, "oauth_kek")
    try:
        with open(path) as fh:
            return _b64d(fh.read().strip())
    except FileNotFoundError:
        key = AESGCM.generate_key(bit_length=256)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker won the race: use its key
            with open(path) as fh:
                return _b64d(fh.read().strip())
        with os.fdopen(fd, "w") as fh:
            fh.write(_b64e(key))
        return key


class KeyStore:
    def __init__(self, db, clock, kek: bytes, alg: str, retire_after: int):
        self.db = db
        self.clock = clock
        self._aead = AESGCM(kek)
        self.alg = alg
        self.retire_after = retire_after  # seconds a retired key stays published (≥ longest token it signed)
        self._lock = threading.Lock()
        self._cache: tuple[float, object, KeySet, KeySet, str] | None = None

    # --- storage -----------------------------------------------------------------------------------------------------
    def _encrypt(self, kid: str, data: bytes) -> str:
        nonce = os.urandom(12)
        return _b64e(nonce + self._aead.encrypt(nonce, data, kid.encode()))

    def _decrypt(self, kid: str, blob: str) -> bytes:
        raw = _b64d(blob)
        return self._aead.decrypt(raw[:12], raw[12:], kid.encode())

    def unreadable(self) -> tuple[list[str], int]:
        """(kids whose private key this KEK cannot open, number of stored keys): the start-up check that several
        hosts share one ``AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY`` (authsvc.keycheck)."""
        from cryptography.exceptions import InvalidTag

        rows = self.db.session.execute(select(OAuthSigningKey.kid, OAuthSigningKey.private_jwk_enc)).all()
        bad = []
        for kid, blob in rows:
            try:
                self._decrypt(kid, blob)
            except (InvalidTag, ValueError):
                bad.append(kid)
        return bad, len(rows)

    def _new_key(self, state: str) -> OAuthSigningKey:
        kid = secrets.token_urlsafe(12)
        params = {"kid": kid, "alg": self.alg, "use": "sig"}
        key = RSAKey.generate_key(2048, parameters=params) if self.alg == "RS256" else \
            ECKey.generate_key("P-256", parameters=params)
        now = self.clock.now()
        row = OAuthSigningKey(kid=kid, alg=self.alg, state=state, public_jwk=json.dumps(key.as_dict(private=False)),
                              private_jwk_enc=self._encrypt(kid, json.dumps(key.as_dict(private=True)).encode()),
                              created_at=now, activated_at=now if state == "current" else None)
        self.db.session.add(row)
        return row

    def ensure(self) -> None:
        """A current and a next key exist (first start, or after an operator deleted keys)."""
        rows = self.db.session.execute(select(OAuthSigningKey)).scalars().all()
        states = {r.state for r in rows}
        if "current" not in states:
            nxt = [r for r in rows if r.state == "next"]
            if nxt:
                nxt[0].state, nxt[0].activated_at = "current", self.clock.now()
            else:
                self._new_key("current")
            states.add("current")
            if nxt:
                states.discard("next")
        if "next" not in states:
            self._new_key("next")
        self.db.session.commit()

    def rotate(self) -> dict:
        """current → retired, next → current, a fresh next; drop retired keys whose tokens have all expired."""
        now = self.clock.now()
        self.ensure()
        rows = self.db.session.execute(select(OAuthSigningKey)).scalars().all()
        for r in rows:
            if r.state == "current":
                r.state, r.retired_at = "retired", now
        for r in rows:
            if r.state == "next":
                r.state, r.activated_at = "current", now
        new = self._new_key("next")
        cutoff = now - dt.timedelta(seconds=self.retire_after)
        self.db.session.execute(delete(OAuthSigningKey).where(OAuthSigningKey.state == "retired",
                                                              OAuthSigningKey.retired_at < cutoff))
        self.db.session.commit()
        self._cache = None
        return {r.kid: r.state for r in rows} | {new.kid: "next"}

    def list(self) -> list[OAuthSigningKey]:
        return list(self.db.session.execute(select(OAuthSigningKey).order_by(OAuthSigningKey.created_at)).scalars())

    # --- use (cached) ------------------------------------------------------------------------------------------------
    def _load(self):
        c = self._cache
        if c is not None and c[0] > time.monotonic():
            return c
        with self._lock:
            rows = self.list()
            if not any(r.state == "current" for r in rows) or not any(r.state == "next" for r in rows):
                self.ensure()
                rows = self.list()
            current = next(r for r in rows if r.state == "current")
            signer_cls = RSAKey if current.alg == "RS256" else ECKey
            signer = signer_cls.import_key(json.loads(self._decrypt(current.kid, current.private_jwk_enc)))
            public = KeySet.import_key_set({"keys": [json.loads(r.public_jwk) for r in rows]})
            self._cache = (time.monotonic() + CACHE_SECONDS, signer, KeySet([signer]), public, current.alg)
            return self._cache

    def signing_key(self):
        """(private key, kid, alg) of the current key."""
        _, signer, _, _, alg = self._load()
        return signer, signer.kid, alg

    def public_keyset(self) -> KeySet:
        return self._load()[3]

    def jwks(self) -> dict:
        return self.public_keyset().as_dict(private=False)

    def invalidate(self) -> None:
        self._cache = None
