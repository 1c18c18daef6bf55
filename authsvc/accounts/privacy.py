"""Export my data, delete my account (GDPR Art. 15/20 and Art. 17).

Export
  One JSON document: profile, factors *without secrets* (no TOTP seed, recovery-code hash, credential public key or
  device token hash), sessions, login history with the risk receipt of every attempt, OAuth consents, and the audit
  events about the user. Built from an allow-list of fields, never by dumping rows, so a column added later cannot
  leak a secret into the file.

Erasure
  1. every session is revoked (the revocation listeners end OAuth grants issued from them), and the user's OAuth
     grants are revoked in Redis;
  2. SQL: every row of every table with a foreign key to ``users.id`` is deleted (found from the metadata, so a table
     added by another package is covered without touching this file), then the user row;
  3. Redis: the session hashes and the per-user index, every key with the user's hash tag ``{u<id>}`` (MFA
     counters, enrolment, one-time code display), and the OAuth grant/access-token records of the user's grants;
  4. the outbox (embedded mail delivery) loses the messages addressed to the user;
  5. the audit log gets a tombstone ``account:delete:success`` carrying the user id only.

  Throttle marks stay: they are keyed by an HMAC of the e-mail address (no address in clear) and expire by
  themselves within their windows (the ``known`` set after 180 days).

  **The audit log is not rewritten.** Its rows are hash-chained; editing one to remove an IP or user agent would
  break verification of everything after it. Past events keep their IP and user agent as the security record of
  what happened to the account (legitimate interest / establishment and defence of legal claims, GDPR
  Art. 6(1)(f), 17(3)(e)); they carry the numeric user id, never the e-mail address, so after erasure they no
  longer point to a person. Operators prune the log by age under their retention policy (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select

from authsvc.models import Base, LoginEvent, SecurityEvent, User, UserSession

EXPORT_FORMAT = "authsvc-export/1"


@dataclass(frozen=True)
class ErasureReport:
    user_id: int
    sql_rows: dict
    redis_keys: int
    outbox_messages: int


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


class PrivacyService:
    def __init__(self, *, db, redis_getter, clock, audit, sessions, hasher, outbox=None):
        self.db, self._redis, self.clock, self.audit = db, redis_getter, clock, audit
        self.sessions, self.hasher, self.outbox = sessions, hasher, outbox
        # Packages that keep per-user state elsewhere register ``callable(user)`` here; called before the SQL rows go.
        self.erasure_listeners: list = []

    # --- fresh proof for the delete form: the password, with a small per-user budget --------------------------------
    MAX_PASSWORD_FAILURES = 5
    FAILURE_WINDOW = 900

    def check_password(self, user: User, password: str) -> bool:
        """True if ``password`` is the user's. At most 5 wrong tries per 15 minutes (then False without hashing)."""
        r = self._redis()
        key = f"privacy:pwfail:{{u{user.id}}}"
        if int(r.get(key) or 0) >= self.MAX_PASSWORD_FAILURES:
            return False
        if user.password_hash and self.hasher.verify(user.password_hash, password or "").ok:
            r.delete(key)
            return True
        pipe = r.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.FAILURE_WINDOW)
        pipe.execute()
        return False

    # --- export ---------------------------------------------------------------------------------------------------------
    PAGE = 1000  # rows per keyset page: the export's memory does not grow with the user's history

    def export(self, user: User, *, mfa=None, oauth_consents=None) -> dict:
        """The whole document as a dict (small accounts, tests, the CLI). The web and API serve ``export_stream``."""
        head = self._export_head(user, mfa, oauth_consents)
        out = dict(head)
        for name, rows in self._export_sections(user):
            out[name] = list(rows)
        return out

    def export_stream(self, user: User, *, mfa=None, oauth_consents=None, counts: dict | None = None):
        """The same document as ``export``, yielded as text chunks, one list item per line.

        The small parts (profile, factors, consents) are built first, before the first byte is sent, so a failure
        there is still an HTTP error. Sessions, login history and audit events are read in keyset pages of
        ``PAGE`` rows and written as they are read, so memory stays flat whatever the history's length. The very
        last key is ``"complete"`` with the number of items of each list (``counts`` gets the same numbers): a
        download cut off at any point is not valid JSON, and a lenient reader that still parses it finds no
        ``complete`` key. Errors in the small parts are raised here, before the generator is returned."""
        head = self._export_head(user, mfa, oauth_consents)
        counts = {} if counts is None else counts

        def chunks():
            dump = self._dump
            yield "{\n"
            for key, value in head.items():
                yield f"  {dump(key)}: {dump(value)},\n"
            for name, rows in self._export_sections(user):
                n = 0
                yield f"  {dump(name)}: ["
                for row in rows:
                    yield ("\n    " if n == 0 else ",\n    ") + dump(row)
                    n += 1
                yield "\n  ],\n" if n else "],\n"
                counts[name] = n
            yield f'  "complete": {dump(dict(counts, done=True))}\n}}\n'

        return chunks()

    @staticmethod
    def _dump(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    def _export_head(self, user: User, mfa, oauth_consents) -> dict:
        return {
            "format": EXPORT_FORMAT,
            "exported_at": _iso(self.clock.now()),
            "profile": {"id": user.id, "email": user.email, "status": user.status, "is_admin": user.is_admin,
                        "email_verified_at": _iso(user.email_verified_at), "created_at": _iso(user.created_at),
                        "password_changed_at": _iso(user.password_changed_at),
                        "must_change_password": user.must_change_password,
                        "notifications": {"new_sign_in": bool(getattr(user, "notify_new_sign_in", True))}},
            "factors": self._factors(user, mfa),
            "oauth_consents": [self._consent(c) for c in oauth_consents or []],
        }

    def _export_sections(self, user: User):
        return (("sessions", self._export_sessions(user)), ("login_history", self._export_logins(user)),
                ("audit_events", self._export_audit(user)))

    def _pages(self, query, keyset):
        """Rows of ``query`` (Core, ordered by ``key_cols``) in pages of ``PAGE``; ``keyset(last_row)`` gives the
        WHERE clause that continues after a row. Only one page is ever held."""
        s, last = self.db.session, None
        while True:
            q = query if last is None else query.where(keyset(last))
            page = s.execute(q.limit(self.PAGE)).all()
            yield from page
            if len(page) < self.PAGE:
                return
            last = page[-1]

    def _export_sessions(self, user: User):
        sessions_live = {i.id: i for i in self.sessions.list_for(user)}
        t = UserSession.__table__
        q = select(t).where(t.c.user_id == user.id).order_by(t.c.created_at.desc(), t.c.id.desc())
        for row in self._pages(q, lambda r: or_(t.c.created_at < r.created_at,
                                                      and_(t.c.created_at == r.created_at, t.c.id < r.id))):
            live = sessions_live.get(row.id)
            yield {
                "id": row.id[:12],  # a prefix names it; the full hash is a lookup key and stays out of files
                "created_at": _iso(row.created_at), "ip": row.ip, "user_agent": row.user_agent, "aal": row.aal,
                "methods": row.methods.split(",") if row.methods else [], "active": live is not None,
                "last_seen_at": _iso(live.last_seen_at) if live else None,
                "revoked_at": _iso(row.revoked_at), "revoke_reason": row.revoke_reason,
            }

    def _export_logins(self, user: User):
        t = LoginEvent.__table__
        q = select(t).where(t.c.user_id == user.id).order_by(t.c.occurred_at.desc(), t.c.id.desc())
        for e in self._pages(q, lambda r: or_(t.c.occurred_at < r.occurred_at,
                                                    and_(t.c.occurred_at == r.occurred_at, t.c.id < r.id))):
            yield {
                "at": _iso(e.occurred_at), "outcome": e.outcome, "method": e.method, "ip": e.ip,
                "user_agent": e.user_agent, "country": e.country, "asn": e.asn, "risk_score": e.score,
                "decision": e.decision, "reasons": json.loads(e.reasons) if e.reasons else [],
            }

    def _export_audit(self, user: User):
        t = SecurityEvent.__table__
        q = select(t).where(or_(t.c.subject_id == user.id, t.c.actor_id == user.id)).order_by(t.c.id)
        for ev in self._pages(q, lambda r: t.c.id > r.id):
            yield {"id": ev.id, "at": _iso(ev.occurred_at), "tag": ev.tag, "outcome": ev.outcome,
                   "by_you": ev.actor_id == user.id, "about_you": ev.subject_id == user.id,
                   "ip": ev.ip, "user_agent": ev.user_agent, "reason": ev.reason,
                   "details": json.loads(ev.details) if ev.details else None}

    @staticmethod
    def _consent(c: dict) -> dict:
        """An allow-list of a consent's fields, times as ISO strings (``last_used`` is a datetime once an app
        redeemed a code: dumping it raw made the whole export a 500)."""
        return {"client_id": c.get("client_id"), "name": c.get("name"), "scopes": list(c.get("scopes") or []),
                "granted_at": _iso(c.get("granted_at")), "last_used": _iso(c.get("last_used"))}

    @staticmethod
    def _factors(user: User, mfa) -> dict:
        out = {"password": {"set": bool(user.password_hash), "changed_at": _iso(user.password_changed_at)}}
        if mfa is None:
            return out
        ov = mfa.overview(user)
        totp = ov.get("totp")
        out["totp"] = {"enrolled": totp is not None, "created_at": _iso(getattr(totp, "created_at", None)),
                       "last_used_at": _iso(getattr(totp, "last_used_at", None))}
        out["security_keys_and_passkeys"] = [
            {"name": c.name, "created_at": _iso(c.created_at), "last_used_at": _iso(c.last_used_at),
             "transports": (c.transports or "").split(",") if c.transports else []}
            for c in ov.get("webauthn", [])]
        out["recovery_codes"] = {"set": bool(ov.get("recovery_set")), "unused": ov.get("recovery_remaining", 0)}
        out["trusted_devices"] = [
            {"name": d.name, "created_at": _iso(d.created_at), "last_used_at": _iso(d.last_used_at),
             "expires_at": _iso(d.expires_at)} for d in ov.get("devices", [])]
        return out

    # --- erasure --------------------------------------------------------------------------------------------------------
    def erase(self, user: User, *, ip: str | None = None, oauth=None) -> ErasureReport:
        uid, email = user.id, user.email
        s = self.db.session
        # 1. Nothing issued to this user may keep working: sessions (+ listeners), then OAuth grants.
        self.sessions.revoke_all(user, "account_deleted")
        sids = list(s.execute(select(UserSession.id).where(UserSession.user_id == uid)).scalars())
        gids = self._oauth_grants(uid)
        tokens = getattr(oauth, "tokens", None)
        if tokens is not None and gids:
            from authsvc.models import OAuthGrant

            tokens.revoke_grants_where(OAuthGrant.user_id == uid, reason="account_deleted")
        for listener in self.erasure_listeners:
            listener(user)
        # 2. SQL: every table that points at users.id, children before parents, then the user.
        counts = {}
        for table in reversed(Base.metadata.sorted_tables):
            cols = [c for c in table.columns for fk in c.foreign_keys if fk.column.table.name == "users"]
            for col in cols:
                n = s.execute(delete(table).where(col == uid)).rowcount
                if n:
                    counts[table.name] = counts.get(table.name, 0) + n
        s.execute(delete(User).where(User.id == uid))
        counts["users"] = 1
        s.commit()
        # 3. Redis.
        redis_keys = self._erase_redis(uid, sids, gids)
        # 4. Mail kept by the embedded outbox.
        mails = self._erase_outbox(email)
        # 5. Tombstone: the id only — no e-mail, no IP, no user agent.
        self.audit.record("account:delete:success", "success", actor_id=uid, subject_id=uid,
                          details={"sql_rows": sum(counts.values()), "redis_keys": redis_keys})
        return ErasureReport(uid, counts, redis_keys, mails)

    def _oauth_grants(self, uid: int) -> list[str]:
        try:
            from authsvc.models import OAuthGrant
        except ImportError:  # pragma: no cover - the OAuth models ship with the schema
            return []
        return list(self.db.session.execute(select(OAuthGrant.id).where(OAuthGrant.user_id == uid)).scalars())

    def _erase_redis(self, uid: int, sids: list[str], gids: list[str]) -> int:
        r = self._redis()
        keys = {f"usess:{{u{uid}}}"} | {f"sess:{{{sid}}}" for sid in sids}
        for gid in gids:
            keys |= {f"oauth:grant:{{{gid}}}", f"oauth:grantat:{{{gid}}}"}
            for h in r.smembers(f"oauth:grantat:{{{gid}}}") or ():
                keys.add(f"oauth:at:{{{h}}}")
        keys |= set(r.scan_iter(match=f"*{{u{uid}}}*", count=1000))
        # Short-lived records that name the user inside their value (pending logins, codes, access tokens).
        for pattern in ("mfa:pending:*", "oauth:code:*", "oauth:at:*", "oauth:dev:*"):
            for key in r.scan_iter(match=pattern, count=1000):
                if self._names_user(r, key, uid):
                    keys.add(key)
        keys = sorted(keys)
        n = 0
        for i in range(0, len(keys), 500):
            n += r.delete(*keys[i:i + 500])
        return n

    @staticmethod
    def _names_user(r, key: str, uid: int) -> bool:
        kind = r.type(key)
        if kind == "hash":
            h = r.hgetall(key)
            return any(h.get(f) == str(uid) for f in ("uid", "user_id", "sub"))
        if kind == "string":
            raw = r.get(key) or ""
            try:
                data = json.loads(raw)
            except ValueError:
                return False
            return isinstance(data, dict) and any(data.get(f) in (uid, str(uid)) for f in ("uid", "user_id", "sub"))
        return False

    def _erase_outbox(self, email: str) -> int:
        if self.outbox is None:
            return 0
        n = 0
        for m in self.outbox.messages(to=email):
            try:
                os.remove(os.path.join(self.outbox.folder, m.name))
                n += 1
            except FileNotFoundError:
                pass
        return n
