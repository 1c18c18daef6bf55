"""Where OAuth credentials live, and the atomic steps that keep them single-use.

* Authorization codes: ``oauth:code:{h}`` (JSON, TTL ≤ 10 min). Consuming one is a Lua script that deletes it and
  leaves ``oauth:codeused:{h}`` = the grant id its tokens will belong to; presenting the code again finds only the
  marker, and the grant is revoked (RFC 9700 §4.2.4 / ASVS 10.4.3). Both keys share the ``{h}`` hash tag.
* Access tokens: ``oauth:at:{h}`` (a JSON object of strings, TTL = lifetime), ``h`` = SHA-256 of the token.
  Introspection reads it with one GET (a single bulk reply: ~20 fewer reply elements to parse than the HGETALL of
  the hash it used to be; records written as hashes by an older version are still read, until they expire). Every access token belongs to a grant; ``oauth:grantat:{gid}`` indexes them so revoking the grant deletes
  them at once.
* Grants (refresh families): a durable SQL row (``oauth_grants``) plus a Redis twin ``oauth:grant:{gid}`` (hash:
  client, user, session, scope, ``cur`` = hash of the one live refresh token, ``rev``, ``bx`` = the network a public
  client's family was born on, for continuous risk; see ``authsvc.risk.drift.pack_birth``). A refresh token is
  ``<gid>.<256 random bits>``: the grant id inside tells us, durably, which family a presented token claims to be
  from, so a replayed old token is recognised as reuse even after Redis lost its state.
* Rotation is decided by a single-key Lua script (check the client, compare ``cur``, swap, or flag reuse) — of two
  racing refreshes exactly one wins — and confirmed by a compare-and-set UPDATE in SQL, which stays the durable truth.
  That UPDATE runs alone on an autocommit connection: one statement, one round trip, one commit; it returns what the
  new tokens need (grant fields, the user's status), so a refresh reads nothing else from SQL. A routine rotation
  writes no audit row: the grant row itself is the durable record (``generation`` counts rotations), and an audit
  append would put every refresh in the service behind the one lock of the audit chain's head. Reuse, revocation and
  issuance are audited.

Only hashes are stored. Nothing in this module logs a token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass

import redis
from sqlalchemy import bindparam, or_, select, update

from authsvc.models import OAuthGrant, User
from authsvc.redis_scripts import ScriptCache

_G = OAuthGrant.__table__
_U = User.__table__.alias("owner")
# SQLite renders RETURNING without table prefixes, so the subquery below reads "WHERE id = user_id": correct only
# while the users table has no column of that name. Fail at import rather than read the wrong status.
if "user_id" in _U.c:  # pragma: no cover - schema guard
    raise RuntimeError("users.user_id would shadow oauth_grants.user_id in the rotation's RETURNING")
# The compare-and-set that makes a rotation durable, built once (Core, not the ORM: it runs on every refresh).
# RETURNING hands back the grant and the user's status, so the refresh needs no further SELECT.
_ROTATE_SQL = (
    _G.update()
    .where(_G.c.id == bindparam("p_gid"), _G.c.client_id == bindparam("p_cid"),
           _G.c.current_hash == bindparam("p_old"), _G.c.revoked_at.is_(None),
           _G.c.expires_at > bindparam("p_now", type_=_G.c.expires_at.type),
           # RFC 9449 §5: a family bound to a DPoP key rotates only for a proof of that key.
           or_(_G.c.dpop_jkt.is_(None), _G.c.dpop_jkt == bindparam("p_jkt")))
    .values(current_hash=bindparam("p_new"), generation=_G.c.generation + 1,
            rotated_at=bindparam("p_now", type_=_G.c.rotated_at.type))
    .returning(_G.c.user_id, _G.c.session_id, _G.c.scope, _G.c.audiences, _G.c.auth_time, _G.c.acr, _G.c.amr,
               _G.c.expires_at, _G.c.dpop_jkt, _G.c.birth,
               select(_U.c.status).where(_U.c.id == _G.c.user_id).scalar_subquery().label("user_status"),
               select(_U.c.sub).where(_U.c.id == _G.c.user_id).scalar_subquery().label("user_sub"),
               # a must-reset account (breached, reported compromised, admin) gets no tokens through any grant
               select(_U.c.must_change_password).where(_U.c.id == _G.c.user_id).scalar_subquery()
               .label("user_must_reset"))
)

_CONSUME_CODE = """
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
  return {'ok', v}
end
local used = redis.call('GET', KEYS[2])
if used then return {'reused', used} end
return {'none', ''}
"""

# KEYS[1] = oauth:grant:{gid}; ARGV = presented hash, new hash, client id, DPoP key thumbprint of the request ("" =
# no proof). One key: atomic and Cluster-safe. Returns {outcome, <_GRANT_FIELDS>...}: the grant's fields come back
# with the verdict (no separate HGETALL). Another client's token touches nothing (RFC 6749 §10.4); neither does a
# request without the key a bound family needs ('unbound' = no proof, 'wrongkey' = another key) — checked before the
# hash, so someone holding a copied refresh token but not the key can neither refresh nor revoke the family.
_GRANT_FIELDS = ("cid", "uid", "sid", "scope", "aud", "at", "acr", "amr")
_ROTATE = """
local f = redis.call('HMGET', KEYS[1], 'cur', 'rev', 'cid', 'uid', 'sid', 'scope', 'aud', 'at', 'acr', 'amr', 'jkt')
if not f[1] then return {'miss'} end
if f[3] ~= ARGV[3] then return {'foreign'} end
if f[2] == '1' then return {'revoked'} end
if f[11] and f[11] ~= '' and f[11] ~= ARGV[4] then
  if ARGV[4] == '' then return {'unbound'} end
  return {'wrongkey'}
end
local out = 'ok'
if f[1] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'rev', '1')
  out = 'reuse'
else
  redis.call('HSET', KEYS[1], 'cur', ARGV[2])
end
return {out, f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '', f[8] or '', f[9] or '', f[10] or ''}
"""

# KEYS[1] = oauth:grant:{gid}; ARGV = the hash this request swapped in, the hash it replaced. Puts the old one back
# only if nothing moved since (the family is not revoked and the swap is still ours).
_UNDO = """
local f = redis.call('HMGET', KEYS[1], 'cur', 'rev')
if f[1] == ARGV[1] and f[2] ~= '1' then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2])
  return 1
end
return 0
"""


def _at_key(token_hash: str) -> str:
    return f"oauth:at:{{{token_hash}}}"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_grant_id() -> str:
    return secrets.token_hex(16)


def grant_id_of(refresh_token: str) -> str | None:
    gid, sep, rest = refresh_token.partition(".")
    if not sep or len(gid) != 32 or not rest or len(refresh_token) > 200:
        return None
    try:
        int(gid, 16)
    except ValueError:
        return None
    return gid


class ConsumeResult:
    OK, REUSED, INVALID = "ok", "reused", "invalid"


@dataclass
class RotateResult:
    outcome: str  # ok | reuse | invalid | unbound (bound family, no DPoP proof) | wrongkey (proof of another key)
    grant: dict | None = None
    user_active: bool = False  # ok only: the grant's user is active (read in the rotation's own statement)


class TokenStore:
    def __init__(self, db, redis_getter, clock, *, code_ttl: int, refresh_ttl: int):
        self.db = db
        self._redis = redis_getter
        self.clock = clock
        self.code_ttl = code_ttl
        self.refresh_ttl = refresh_ttl
        self._scripts = ScriptCache(redis_getter)

    @property
    def redis(self):
        return self._redis()

    def _script(self, name: str, body: str):
        return self._scripts.get(name, body)

    # --- authorization codes -------------------------------------------------------------------------------------------
    def save_code(self, code: str, data: dict) -> None:
        h = sha256(code)
        self.redis.set(f"oauth:code:{{{h}}}", json.dumps(data), ex=self.code_ttl)

    def consume_code(self, code: str, grant_id: str) -> tuple[str, dict | str | None]:
        """(OK, data) for the first use; (REUSED, grant id of the first use); (INVALID, None)."""
        if not code or len(code) > 128:
            return ConsumeResult.INVALID, None
        h = sha256(code)
        # The marker outlives the code so a late replay still revokes what the code produced.
        kind, value = self._script("code", _CONSUME_CODE)(
            keys=[f"oauth:code:{{{h}}}", f"oauth:codeused:{{{h}}}"], args=[grant_id, 86400])
        if kind == "ok":
            return ConsumeResult.OK, json.loads(value)
        if kind == "reused":
            return ConsumeResult.REUSED, value
        return ConsumeResult.INVALID, None

    # --- grants ------------------------------------------------------------------------------------------------------
    def create_grant(self, gid: str, *, client_id: str, user_id: int | None, session_id: str | None, scope: str,
                     audiences: list[str], auth_time: int | None, acr: str | None, amr: list[str] | None,
                     refresh_hash: str | None, subject: str | None = None, dpop_jkt: str | None = None,
                     birth: str | None = None) -> OAuthGrant:
        """``subject``: the user's opaque ``sub``, kept in the Redis twin so the lean paths name the user by it.
        ``dpop_jkt``: the DPoP key a public client's refresh family is bound to. ``birth``: the network it was born
        on (``authsvc.risk.drift.pack_birth``; public clients only), compared with every refresh."""
        now = self.clock.now()
        row = OAuthGrant(id=gid, client_id=client_id, user_id=user_id, session_id=session_id, scope=scope,
                         audiences=json.dumps(audiences), auth_time=auth_time, acr=acr,
                         amr=",".join(amr or []) or None, current_hash=refresh_hash, dpop_jkt=dpop_jkt,
                         birth=birth or None,
                         generation=0, created_at=now,
                         expires_at=now + dt.timedelta(seconds=self.refresh_ttl))
        # SQL first: without the durable record no usable refresh token may exist anywhere.
        self.db.session.add(row)
        self.db.session.commit()
        self._mirror(row, subject)
        return row

    def _mirror(self, row: OAuthGrant, subject: str | None) -> None:
        self._write_twin(row.id, self._twin(row.client_id, row.user_id, row.session_id, row.scope, row.audiences,
                                            row.auth_time, row.acr, row.amr, row.current_hash,
                                            row.revoked_at is not None, subject, dpop_jkt=row.dpop_jkt,
                                            birth=row.birth),
                         row.expires_at)

    @staticmethod
    def _twin(client_id, user_id, session_id, scope, audiences, auth_time, acr, amr, current_hash, revoked,
              subject=None, *, dpop_jkt=None, birth=None) -> dict:
        return {"cid": client_id, "uid": user_id or "", "sub": (user_id and subject) or "", "sid": session_id or "",
                "scope": scope, "aud": audiences, "at": auth_time or "", "acr": acr or "", "amr": amr or "",
                "cur": current_hash or "-", "rev": "1" if revoked else "0", "jkt": dpop_jkt or "", "bx": birth or ""}

    def _write_twin(self, gid: str, mapping: dict, expires_at: dt.datetime) -> None:
        ttl = max(1, int((expires_at - self.clock.now()).total_seconds()))
        key = f"oauth:grant:{{{gid}}}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()

    def rotate_refresh(self, refresh_token: str, client_id: str, new_refresh: str,
                       dpop_jkt: str | None = None) -> RotateResult:
        """Swap the family's live refresh token for ``new_refresh`` iff ``refresh_token`` is it.

        A token of the family that is not the live one is a replay: the family is revoked ("reuse"). Of two requests
        racing with the same token, the Lua script lets exactly one through; the other sees a mismatch. SQL confirms
        with a compare-and-set UPDATE, committed before this returns (the durable truth: a Redis restore must not
        resurrect an old generation). The caller hands the new tokens out only after that.

        ``dpop_jkt``: the thumbprint of the request's verified DPoP proof (None: no proof). A family bound to a key
        (RFC 9449 §5, public clients) is not touched without a proof of that key: "unbound" / "wrongkey".
        """
        gid = grant_id_of(refresh_token)
        if gid is None:
            return RotateResult("invalid")
        old, new = sha256(refresh_token), sha256(new_refresh)
        key = f"oauth:grant:{{{gid}}}"
        jkt = dpop_jkt or ""
        reply = self._script("rotate", _ROTATE)(keys=[key], args=[old, new, client_id, jkt])
        outcome = reply[0]
        if outcome in ("foreign", "revoked"):
            return RotateResult("invalid")
        if outcome in ("unbound", "wrongkey"):
            return RotateResult(outcome)
        if outcome == "reuse":
            return RotateResult("reuse", {"gid": gid, **dict(zip(_GRANT_FIELDS, reply[1:]))})
        # ok or miss: SQL decides durably.
        now = self.clock.now()
        try:
            row = self._autocommit(_ROTATE_SQL, {"p_gid": gid, "p_cid": client_id, "p_old": old, "p_new": new,
                                                 "p_now": now, "p_jkt": jkt})
        except Exception:
            # The database did not answer (→ 503). Without this, Redis would keep the new hash that no client ever
            # received, and the client's retry with its token would look like a replay and revoke the family: a
            # database blip would sign the user out of the app. Put the old hash back (best effort; if the statement
            # did commit before the connection died, the retry is refused as reuse — fail closed, as before).
            if outcome == "ok":
                try:
                    self._script("undo", _UNDO)(keys=[key], args=[new, old])
                except redis.exceptions.RedisError:
                    pass
            raise
        if row is not None:
            if outcome == "miss":  # Redis lost the twin (restart without AOF, eviction): re-create it from SQL
                self._write_twin(gid, self._twin(client_id, row.user_id, row.session_id, row.scope, row.audiences,
                                                 row.auth_time, row.acr, row.amr, new, False, row.user_sub,
                                                 dpop_jkt=row.dpop_jkt, birth=row.birth),
                                 row.expires_at)
            return RotateResult(
                "ok", {"gid": gid, "cid": client_id, "uid": row.user_id, "sid": row.session_id, "scope": row.scope,
                       "aud": row.audiences, "at": row.auth_time, "acr": row.acr, "amr": row.amr,
                       "sub": row.user_sub, "bx": row.birth or ""},
                user_active=row.user_status == "active" and not row.user_must_reset)
        grant = self.db.session.get(OAuthGrant, gid)
        if grant is None or grant.client_id != client_id:
            return RotateResult("invalid")
        if grant.dpop_jkt and grant.dpop_jkt != jkt and grant.revoked_at is None:
            if outcome == "ok":  # Redis had no binding (an older twin): put the hash back, refuse
                try:
                    self._script("undo", _UNDO)(keys=[key], args=[new, old])
                except redis.exceptions.RedisError:
                    pass
            return RotateResult("wrongkey" if jkt else "unbound")
        if grant.revoked_at is not None or grant.expires_at <= now:
            if outcome == "ok":
                self.redis.hset(key, "rev", "1")
            return RotateResult("invalid")
        return RotateResult("reuse", self.grant_info(grant))

    def _autocommit(self, statement, params):
        """Run one statement as its own transaction: on PostgreSQL a single round trip (no BEGIN, no COMMIT), on a
        pooled connection of the request's engine. Returns the first row of RETURNING."""
        with self.db.engine.connect() as conn:
            return conn.execution_options(isolation_level="AUTOCOMMIT").execute(statement, params).first()

    @staticmethod
    def grant_info(row: OAuthGrant) -> dict:
        return {"gid": row.id, "cid": row.client_id, "uid": row.user_id, "sid": row.session_id, "scope": row.scope,
                "aud": row.audiences, "at": row.auth_time, "acr": row.acr, "amr": row.amr, "bx": row.birth or ""}

    def revoke_grant(self, gid: str, reason: str) -> bool:
        res = self.db.session.execute(
            update(OAuthGrant).where(OAuthGrant.id == gid, OAuthGrant.revoked_at.is_(None))
            .values(revoked_at=self.clock.now(), revoke_reason=reason[:64])
        )
        self.db.session.commit()
        self._kill_in_redis([gid])
        return res.rowcount == 1

    def revoke_grants_where(self, *cond, reason: str) -> list[OAuthGrant]:
        rows = list(self.db.session.execute(
            select(OAuthGrant).where(OAuthGrant.revoked_at.is_(None), *cond)).scalars())
        if not rows:
            return []
        now = self.clock.now()
        self.db.session.execute(update(OAuthGrant).where(OAuthGrant.id.in_([g.id for g in rows]))
                                .values(revoked_at=now, revoke_reason=reason[:64]))
        self.db.session.commit()
        self._kill_in_redis([g.id for g in rows])
        return rows

    def _kill_in_redis(self, gids: list[str]) -> None:
        r = self.redis
        pipe = r.pipeline(transaction=False)
        for gid in gids:
            pipe.hset(f"oauth:grant:{{{gid}}}", "rev", "1")
            pipe.smembers(f"oauth:grantat:{{{gid}}}")
        results = pipe.execute()
        pipe = r.pipeline(transaction=False)
        for gid, members in zip(gids, results[1::2]):
            for h in members:
                pipe.delete(_at_key(h))
            pipe.delete(f"oauth:grantat:{{{gid}}}")
        pipe.execute()

    # --- access tokens -----------------------------------------------------------------------------------------------
    def save_access(self, token: str, record: dict, ttl: int) -> bool:
        """Store the token under its grant. False (and nothing stored) if the grant was revoked meanwhile.

        A revocation flags the grant *before* it lists the grant's tokens, and we index the token *before* we read
        the flag, so a token saved while its grant is being revoked is either deleted by the revoker or by us.
        """
        h = sha256(token)
        gkey = f"oauth:grant:{{{record['gid']}}}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(_at_key(h), json.dumps({k: ("" if v is None else str(v)) for k, v in record.items()}),
                 ex=ttl)
        pipe.sadd(f"oauth:grantat:{{{record['gid']}}}", h)
        pipe.expire(f"oauth:grantat:{{{record['gid']}}}", self.refresh_ttl)
        pipe.hget(gkey, "rev")
        if pipe.execute()[-1] == "1":
            self.redis.delete(_at_key(h))
            return False
        return True

    def lookup_access(self, token: str) -> dict | None:
        """The live access token's record, or None. One HGETALL; raises if Redis is down (→ 503, never 'inactive')."""
        if not token or len(token) > 4096:
            return None
        return self.access_record(self.redis, self.access_key(token), None, self.clock.timestamp())

    @staticmethod
    def access_key(token: str) -> str:
        return _at_key(sha256(token))

    @staticmethod
    def access_record(r, key: str, reply, now: float, *, fetched: bool = False) -> dict | None:
        """Decode the reply of ``GET key`` (fetched by the caller, e.g. in a pipeline, or here); None unless live."""
        if not fetched:
            try:
                reply = r.get(key)
            except redis.exceptions.ResponseError as exc:
                reply = exc
        if isinstance(reply, redis.exceptions.ResponseError):
            if "WRONGTYPE" not in str(reply):
                raise reply
            rec = r.hgetall(key)  # a hash written before the JSON format
        else:
            rec = json.loads(reply) if reply else None
        if not rec or float(rec.get("exp", 0)) <= now:
            return None
        return rec

    def revoke_access(self, token: str) -> None:
        self.redis.delete(self.access_key(token))

    # --- quotas ------------------------------------------------------------------------------------------------------
    def quota_key(self, name: str) -> tuple[str, int]:
        """The counter of ``name``'s current one-minute window, and the seconds until that window ends."""
        now = int(self.clock.timestamp())
        return f"oauth:q:{{{name}}}:{now // 60}", 60 - now % 60

    @staticmethod
    def queue_charge(pipe, key: str) -> None:
        """Add "count one request" to a pipeline: its last reply is the count after this request. Plain commands, no
        script, so the lean paths can send it in the same round trip as their reads (SET NX EX gives the window its
        expiry exactly once; INCR keeps it)."""
        pipe.set(key, 0, ex=61, nx=True)
        pipe.incr(key)

    def charge(self, name: str, limit: int) -> tuple[int, int]:
        """Count one request against ``name``'s per-minute quota: (count, seconds until the window resets)."""
        key, reset = self.quota_key(name)
        pipe = self.redis.pipeline(transaction=False)
        self.queue_charge(pipe, key)
        return int(pipe.execute()[-1]), reset
