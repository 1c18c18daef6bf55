"""Opaque, revocable login sessions.

* The cookie carries 256 random bits (``secrets.token_urlsafe(32)``); Redis and SQL only ever see SHA-256 of it.
* Redis (``sess:{<hash>}``, a hash with a TTL) is the fast path: idle and absolute expiry, last-seen, device data.
  A per-user index (``usess:{u<id>}``) lists a user's sessions. The two keys are never touched by one script, so
  they need no common hash tag; each single-key script is Cluster-safe as it is.
* SQL (``user_sessions`` plus ``users.sessions_valid_after``) is the durable truth for revocation: a session that a
  Redis restore or failover brings back is still refused if SQL says it was revoked.
* Every failure to reach either store raises, and the error handler turns it into 503. Nothing here fails open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update

from authsvc.models import User, UserSession
from authsvc.redis_scripts import ScriptCache
from authsvc.risk.drift import (ALLOW, END, PARALLEL_SWITCHES, PARALLEL_WINDOW, Birth, Use, assess, browser_key, is_hosting,
                                network_of)

# One round trip: read the session, enforce idle/absolute expiry against the caller's clock, touch last_seen and
# re-arm the TTL to whichever deadline comes first. Only KEYS[1] is touched, so it runs unchanged on Redis Cluster.
# It also returns what continuous session risk needs (authsvc.risk.drift): the birth context (b_*) and the count of
# network changes within the parallel-use window (ARGV[4] = this use's network prefix, ARGV[5] = the window).
_TOUCH = """
local h = redis.call('HMGET', KEYS[1], 'uid', 'created', 'last_seen', 'aal', 'methods', 'bc',
                     'b_pfx', 'b_uaf', 'b_asn', 'b_cc', 'np', 'nsw', 'nsw_t', 'b_hst', 'su')
if not h[1] then return nil end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local created = tonumber(h[2])
local last_seen = tonumber(h[3])
if now - last_seen > idle or now - created > absolute then
  redis.call('DEL', KEYS[1])
  return nil
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
if h[7] and ARGV[4] and ARGV[4] ~= '' and ARGV[4] ~= h[11] then
  local n = tonumber(h[12] or '0')
  local since = tonumber(h[13] or '0')
  if now - since > tonumber(ARGV[5]) then n = 1; since = now else n = n + 1 end
  redis.call('HSET', KEYS[1], 'np', ARGV[4], 'nsw', n, 'nsw_t', since)
  h[12] = tostring(n)
elseif h[13] and now - tonumber(h[13]) > tonumber(ARGV[5]) then
  h[12] = '0'
end
local ttl = math.min(idle, absolute - (now - created))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.floor(ttl * 1000)))
return h
"""


# In-session step-up (authsvc.risk.drift "reauth"): the suspended session's hash carries ``su`` (the drift reason
# codes) and ``suf`` (failed step-up proofs). Suspending is one HSET in _drifted; these scripts are the rest.
# _RESUME: the one winner of racing step-ups clears ``su`` and re-bases the birth context on the network and browser
# that just proved the factor (returns 1), or finds nothing to resume (0: not suspended any more, or gone).
_RESUME = """
if redis.call('EXISTS', KEYS[1]) == 0 or not redis.call('HGET', KEYS[1], 'su') then return 0 end
redis.call('HDEL', KEYS[1], 'su', 'suf', 'sup')
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
# _STEPUP_FAIL: count one failed proof of a suspended session; returns the new count (0: not suspended).
_STEPUP_FAIL = """
if not redis.call('HGET', KEYS[1], 'su') then return 0 end
return redis.call('HINCRBY', KEYS[1], 'suf', 1)
"""


_STEPUP_PWD = """
if redis.call('HGET', KEYS[1], 'su') then redis.call('HSET', KEYS[1], 'sup', '1') end
return 1
"""


class StepUpRequired(Exception):
    """The session is suspended for drift: every use answers "step-up required" (pages: the step-up page; bearer
    uses: 401 ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``, RFC 9470 §3) until its owner
    re-proves the strongest factor (authsvc.mfa.views.resume)."""

    def __init__(self, sid: str, reasons: str = ""):
        super().__init__("step-up required")
        self.sid, self.reasons = sid, reasons


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _skey(sid: str) -> str:
    return f"sess:{{{sid}}}"


def _ukey(user_id: int) -> str:
    return f"usess:{{u{user_id}}}"


@dataclass(frozen=True)
class SessionInfo:
    id: str  # token hash
    user_id: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    ip: str | None
    user_agent: str | None
    aal: int
    methods: tuple[str, ...]
    binding: str | None = None  # DBSC short-cookie state ("bc"); set when the session is bound to a device key
    must_change_password: bool = False  # set by check_light (the API refuses everything but the change)
    login_id: str | None = None  # the login this session belongs to: the OIDC ``sid`` (set by issue and check)
    suspended: str | None = None  # drift reason codes while the session waits for a step-up (check(allow_suspended))


class StaleCredentials(Exception):
    """The credentials a login proved were replaced (or every session was cut off) before its session was issued."""


@dataclass(frozen=True)
class Generation:
    """What a login proved, as it was when it proved it: the cut-off and (for a password) the stored hash."""

    valid_after: dt.datetime | None
    password_hash: str | None = None

    @classmethod
    def of(cls, user: User, password_hash: str | None = None) -> "Generation":
        return cls(user.sessions_valid_after, password_hash)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    info: SessionInfo
    expires_at: dt.datetime


# Statements of the login and page-request paths, built once (building a select costs ~0.1 ms of CPU each time).
_INSERT_SESSION = insert(UserSession.__table__)
# The credential generation a login saw at its password check, compared at issue time under the user row's write lock:
# a password change, reset, "this wasn't me" or "sign out everywhere" that committed in between makes it fail. The
# UPDATE writes nothing new; it exists to take the lock (PostgreSQL: the row; SQLite: the database), so a concurrent
# cut-off either waits for this session's row (and then revokes it) or is seen here (and no session is made).
_GUARD_VA = (update(User.__table__)
             .where(User.id == bindparam("p_uid"), User.sessions_valid_after == bindparam("p_va"))
             .values(sessions_valid_after=User.sessions_valid_after))
_GUARD_VA_PW = _GUARD_VA.where(User.password_hash == bindparam("p_pw"))
_CHECK_SQL = (select(User, UserSession.revoked_at, UserSession.created_at, UserSession.login_id)
              .join(UserSession, UserSession.user_id == User.id)
              .where(UserSession.id == bindparam("p_sid")))


class SessionService:
    def __init__(self, *, db, redis_getter, clock, idle_timeout: int, absolute_timeout: int):
        self.db = db
        self._redis = redis_getter
        self.clock = clock
        self.idle = idle_timeout
        self.absolute = absolute_timeout
        self._scripts = ScriptCache(redis_getter)
        # Called with (user_id, [session ids]) after sessions are revoked, so that what was issued *from* a session
        # (OAuth tokens, trusted-device marks) dies with it. Listeners must not raise for "nothing to do".
        self.revocation_listeners: list = []
        # Called with (user_id, [session ids], reason) *before* the commit that ends them, to add rows to the same SQL
        # transaction (authsvc.oauth.backchannel queues the apps' logout tokens there): either the sessions end and
        # the apps will be told, or neither happens. They must not commit.
        self.ending_writers: list = []
        self.backstop_ttl = 5.0
        self._backstop: dict[str, tuple] = {}
        # Continuous session risk (authsvc.risk.drift), wired by authsvc.services: ``context_of(ip, ua)`` gives the
        # birth fields stored at issue, ``geo_of(ip)`` the ASN/country of a use that left the birth network, and
        # ``drift_listener(user_id, sid, drift, ip, ua)`` audits and tells the owner after the session is ended.
        self.context_of = None
        self.geo_of = None
        self.drift_listener = None
        # Live sessions per user (issue 20; 0 = no cap): a sign-in beyond it ends the user's oldest sessions, like any
        # ended session (SQL first, then Redis, then the revocation listeners: tokens issued from them die too);
        # ``cap_listener(user_id, [ended session ids])`` audits it.
        self.max_per_user = 0
        self.cap_listener = None
        # In-session step-up: ``suspension_listeners`` are called with (user_id, sid) when a session is suspended
        # (OAuth revokes what the session minted: a suspended session's refresh tokens must not work).
        self.suspension_listeners: list = []
        self.step_up_max_failures = 5

    def _ending(self, user_id: int, sids: list[str], reason: str) -> None:
        if sids:
            for writer in self.ending_writers:
                writer(user_id, sids, reason)

    def _revoked(self, user_id: int, sids: list[str]) -> None:
        for sid in sids:  # this process forgets its cached backstop answer at once; others within backstop_ttl
            self._backstop.pop(sid, None)
        for listener in self.revocation_listeners:
            listener(user_id, sids)

    @property
    def redis(self):
        return self._redis()

    def _touch_script(self):
        return self._scripts.get("touch", _TOUCH)

    # --- issue -------------------------------------------------------------------------------------------------------
    def issue(self, user: User, *, ip: str | None, user_agent: str | None, aal: int = 1,
              methods: tuple[str, ...] = ("pwd",), before_commit=None,
              generation: Generation | None = None, login_id: str | None = None) -> IssuedSession:
        """``before_commit(session_id)`` may add rows (receipt, audit event) to the same SQL transaction.

        ``login_id``: the login a replacement session continues (step-up, reauthentication), so apps keep seeing the
        same OIDC ``sid``; None for a new sign-in (a fresh random one).

        ``generation``: what the login saw at its proof; raises :class:`StaleCredentials` (nothing written) if the
        account's credentials or cut-off changed since."""
        token = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG
        sid = token_hash(token)
        login_id = login_id or secrets.token_urlsafe(16)  # 128 bits; unrelated to the token
        ua = (user_agent or "")[:512]
        if generation is not None:
            params = {"p_uid": user.id, "p_va": generation.valid_after}
            if generation.password_hash is not None:
                params["p_pw"] = generation.password_hash
            guard = _GUARD_VA_PW if generation.password_hash is not None else _GUARD_VA
            if generation.valid_after is None or self.db.session.execute(guard, params).rowcount != 1:
                self.db.session.rollback()
                raise StaleCredentials()
        now = self.clock.now()  # after the lock: a cut-off committed before it is older than this session
        # SQL first: if the durable record cannot be written, no usable token exists anywhere.
        # A Core INSERT (built once), not an ORM object: nothing reads the row back in this request, and the unit of
        # work's flush machinery costs more CPU than the statement (measured on the login path).
        self.db.session.execute(_INSERT_SESSION, {"id": sid, "user_id": user.id, "created_at": now, "ip": ip,
                                                  "user_agent": ua, "aal": aal, "methods": ",".join(methods),
                                                  "login_id": login_id})
        if before_commit is not None:
            before_commit(sid)
        self.db.session.commit()
        ts = now.timestamp()
        pipe = self.redis.pipeline(transaction=False)
        fields = {"uid": user.id, "created": ts, "last_seen": ts, "ip": ip or "", "ua": ua,
                  "aal": aal, "methods": ",".join(methods)}
        if self.context_of is not None:
            birth = self.context_of(ip, ua)
            fields.update(birth, np=birth.get("b_pfx", ""), nsw=0, nsw_t=0)
        pipe.hset(_skey(sid), mapping=fields)
        pipe.expire(_skey(sid), min(self.idle, self.absolute))
        pipe.sadd(_ukey(user.id), sid)
        pipe.expire(_ukey(user.id), self.absolute)
        pipe.execute()
        if self.max_per_user:
            self._cap(user.id, now)
        info = SessionInfo(sid, user.id, now, now, ip, ua, aal, methods, login_id=login_id)
        return IssuedSession(token, info, now + dt.timedelta(seconds=min(self.idle, self.absolute)))

    # --- check (hot path) --------------------------------------------------------------------------------------------
    def _touch(self, sid: str, now: float, ctx):
        prefix = network_of(ctx[0]) if ctx is not None and self.context_of is not None else ""
        return self._touch_script()(keys=[_skey(sid)], args=[repr(now), self.idle, self.absolute, prefix,
                                                              PARALLEL_WINDOW]), prefix

    def _drifted(self, uid: int, sid: str, raw, prefix: str, ctx, now: float) -> bool:
        """Continuous session risk for one use: True when the session was ended for drift (authsvc.risk.drift).
        Raises :class:`StepUpRequired` when the session is (or is now) suspended for a step-up."""
        b_pfx, b_uaf, b_asn, b_cc, _np, nsw = raw[6:12]
        suspended = raw[14] if len(raw) > 14 else None
        if ctx is None or not b_pfx:
            if suspended:
                raise StepUpRequired(sid, suspended)
            return False  # born before drift scoring, or a caller with no request context
        ip, ua = ctx
        if prefix == b_pfx and (not b_uaf or browser_key(ua) == b_uaf) and int(nsw or 0) < PARALLEL_SWITCHES:
            if suspended:
                raise StepUpRequired(sid, suspended)
            return False  # the common case: the birth network and browser, no flapping — nothing to assess
        asn = country = ""
        hosting = False
        if prefix and prefix != b_pfx and self.geo_of is not None:
            g = self.geo_of(ip)
            if g:
                asn, country, hosting = str(g.asn or ""), g.country or "", is_hosting(g.asn, g.org)
        drift = assess(Birth(b_pfx, b_uaf or "", b_asn or "", b_cc or "", float(raw[1]), raw[13] == "1"),
                       Use(prefix, browser_key(ua), asn, country, now, int(nsw or 0), hosting))
        if drift.action == ALLOW:
            if suspended:
                raise StepUpRequired(sid, suspended)
            return False
        if drift.action == END:
            self._end(uid, sid, f"drift_{drift.action}:" + ",".join(r.code for r in drift.reasons))
            if self.drift_listener is not None:
                self.drift_listener(uid, sid, drift, ip, ua)
            return True
        # REAUTH: not clearly stolen. Suspend (one HSET) until the owner re-proves a factor in this session.
        codes = ",".join(r.code for r in drift.reasons)
        if not suspended:
            self.redis.hset(_skey(sid), mapping={"su": codes or "drift", "suf": 0})
            self._backstop.pop(sid, None)
            for listener in self.suspension_listeners:
                listener(uid, sid)
            if self.drift_listener is not None:
                self.drift_listener(uid, sid, drift, ip, ua)
        raise StepUpRequired(sid, suspended or codes)

    # --- in-session step-up ------------------------------------------------------------------------------------------
    def suspended(self, sid: str) -> str | None:
        """The drift reasons a session is suspended for, or None (not suspended, or gone). One HGET."""
        return self.redis.hget(_skey(sid), "su") or None

    def resume(self, user: User, sid: str, *, ip: str | None, user_agent: str | None, aal: int,
               methods: tuple[str, ...]) -> bool:
        """A suspended session whose owner just re-proved a factor resumes: ``su`` cleared, birth context re-based on
        this network and browser (the owner is not asked again on every page), ``aal``/``methods`` raised and the
        time of the last proof (SQL ``created_at``: auth_time, freshness) set to now. Atomic in Redis: of two racing
        step-ups one resumes (True), the other finds nothing to do (False). The absolute lifetime (Redis
        ``created``) is not extended."""
        ua = (user_agent or "")[:512]
        fields = {"aal": aal, "methods": ",".join(methods), "ip": ip or "", "ua": ua}
        if self.context_of is not None:
            birth = self.context_of(ip, ua)
            fields.update(birth, np=birth.get("b_pfx", ""), nsw=0, nsw_t=0)
        args = [str(x) for kv in fields.items() for x in kv]
        if not self._scripts.get("resume", _RESUME)(keys=[_skey(sid)], args=args):
            return False
        self.db.session.execute(update(UserSession).where(
            UserSession.id == sid, UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(created_at=self.clock.now(), aal=aal, methods=",".join(methods)))
        self.db.session.commit()
        self._backstop.pop(sid, None)
        return True

    def mark_password_proven(self, sid: str) -> None:
        """An account without a factor gave its password on the step-up page: the e-mailed code is the second half
        (``sup``, cleared when the session resumes; set only while it is suspended)."""
        self._scripts.get("stepup_pwd", _STEPUP_PWD)(keys=[_skey(sid)], args=[])

    def password_proven(self, sid: str) -> bool:
        return self.redis.hget(_skey(sid), "sup") == "1"

    def _cap(self, uid: int, now: dt.datetime) -> None:
        """End the user's sessions beyond the newest ``max_per_user`` that can still be live (not revoked, born
        within the absolute timeout): one indexed SELECT per sign-in, at most 100 ended per sign-in. Two sign-ins at
        the same instant may each end one (the cap holds, one session more may end)."""
        excess = list(self.db.session.execute(
            select(UserSession.id).where(UserSession.user_id == uid, UserSession.revoked_at.is_(None),
                                         UserSession.created_at >= now - dt.timedelta(seconds=self.absolute))
            .order_by(UserSession.created_at.desc(), UserSession.id.desc())
            .offset(self.max_per_user).limit(100)).scalars())
        self.db.session.rollback()
        if not excess:
            return
        for old in excess:
            self._end(uid, old, "session_cap")
        if self.cap_listener is not None:
            self.cap_listener(uid, excess)

    def step_up_failed(self, user: User, sid: str) -> tuple[int, bool]:
        """Count one failed proof for a suspended session: (failures so far, ended). At ``step_up_max_failures`` the
        session ends and is contained like a drift "end" (what it minted ends; the caller audits and tells)."""
        n = int(self._scripts.get("stepup_fail", _STEPUP_FAIL)(keys=[_skey(sid)], args=[]) or 0)
        if n >= self.step_up_max_failures:
            self._end(user.id, sid, "drift_stepup_failed")
            return n, True
        return n, False

    def _end(self, uid: int, sid: str, reason: str) -> None:
        res = self.db.session.execute(update(UserSession).where(
            UserSession.id == sid, UserSession.user_id == uid, UserSession.revoked_at.is_(None))
            .values(revoked_at=self.clock.now(), revoke_reason=reason[:64]))
        if res.rowcount:
            self._ending(uid, [sid], reason)
        self.db.session.commit()
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_skey(sid))
        pipe.srem(_ukey(uid), sid)
        pipe.execute()
        self._revoked(uid, [sid])

    def check(self, token: str | None, ctx: tuple[str | None, str | None] | None = None, *,
              allow_suspended: bool = False) -> tuple[SessionInfo, User] | None:
        """Return the live session and its user, or None. Raises if a store is unreachable (→ 503).

        ``ctx`` = (client IP, user agent) of this use: with it the use is scored for drift from the session's birth
        context, and a session that drifted is ended (None). A session suspended for a step-up raises
        :class:`StepUpRequired`, or with ``allow_suspended`` (the step-up page, DBSC refresh, sign-out) is returned
        with ``SessionInfo.suspended`` set."""
        if not token or len(token) > 128:
            return None
        sid = token_hash(token)
        now = self.clock.timestamp()
        raw, prefix = self._touch(sid, now, ctx)
        if raw is None:
            return None
        uid, created, last_seen, aal, methods, binding = raw[:6]
        row = self.db.session.execute(_CHECK_SQL, {"p_sid": sid}).first()
        if row is None:
            return None
        user, revoked_at, created_at, login_id = row
        if revoked_at is not None or not user.is_active or created_at < user.sessions_valid_after \
                or user.id != int(uid):
            # Redis still had it (lost deletion, restored snapshot): finish the job now.
            self.redis.delete(_skey(sid))
            return None
        suspended = None
        try:
            if self._drifted(user.id, sid, raw, prefix, ctx, now):
                return None
        except StepUpRequired as exc:
            if not allow_suspended:
                raise
            suspended = exc.reasons
        info = SessionInfo(sid, user.id, created_at, dt.datetime.fromtimestamp(float(last_seen), dt.UTC),
                           None, None, int(aal), tuple(methods.split(",")) if methods else (), binding or None,
                           login_id=login_id, suspended=suspended)
        return info, user

    def check_light(self, token: str | None, ctx: tuple[str | None, str | None] | None = None
                    ) -> tuple[SessionInfo, str] | None:
        """The hot path (API session check): the session and the user's e-mail, without loading ORM objects.

        Redis is consulted on every call, so a revocation (a Redis DEL) is seen at once. The SQL backstop (revoked
        row, disabled user, ``sessions_valid_after``) is what catches a deletion Redis *lost*; its answer is cached
        per process for ``backstop_ttl`` seconds, which bounds how long a session resurrected by a Redis restore
        could live — measured by bench/p2_session.py, this halves the cost of a check.
        """
        if not token or len(token) > 128:
            return None
        sid = token_hash(token)
        now = self.clock.timestamp()
        raw, prefix = self._touch(sid, now, ctx)
        if raw is None:
            return None
        uid, created, last_seen, aal, methods, binding = raw[:6]
        if binding:
            return None  # a device-bound browser session is never a bearer token (a stolen cookie replayed as one)
        now_m = time.monotonic()
        hit = self._backstop.get(sid)
        if hit is None or hit[0] < now_m:
            row = self.db.session.execute(
                select(User.email, User.status, User.sessions_valid_after, UserSession.revoked_at,
                       UserSession.created_at, UserSession.user_id, User.must_change_password)
                .join(UserSession, UserSession.user_id == User.id).where(UserSession.id == sid)
            ).first()
            self.db.session.rollback()  # read-only: end the transaction now, not at teardown
            ok = bool(row) and row.revoked_at is None and row.status == "active" \
                and row.created_at >= row.sessions_valid_after and row.user_id == int(uid)
            hit = (now_m + self.backstop_ttl, ok, row.email if row else None, row.created_at if row else None,
                   bool(row and row.must_change_password))
            if len(self._backstop) > 50_000:
                self._backstop.clear()  # crude bound; entries are cheap to rebuild
            self._backstop[sid] = hit
        _, ok, email, created_at, must_change = hit
        if not ok:
            self.redis.delete(_skey(sid))
            return None
        if self._drifted(int(uid), sid, raw, prefix, ctx, now):
            self._backstop.pop(sid, None)
            return None
        info = SessionInfo(sid, int(uid), created_at, dt.datetime.fromtimestamp(float(last_seen), dt.UTC),
                           None, None, int(aal), tuple(methods.split(",")) if methods else (),
                           must_change_password=must_change)
        return info, email

    # --- list / revoke -------------------------------------------------------------------------------------------------
    def list_for(self, user: User) -> list[SessionInfo]:
        r = self.redis
        sids = sorted(r.smembers(_ukey(user.id)))
        if not sids:
            return []
        pipe = r.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(_skey(sid))
        live = {sid: h for sid, h in zip(sids, pipe.execute()) if h}
        gone = set(sids) - set(live)
        if gone:
            r.srem(_ukey(user.id), *gone)
        if not live:
            return []
        durable = {
            s.id: s for s in self.db.session.execute(
                select(UserSession).where(UserSession.id.in_(list(live)), UserSession.revoked_at.is_(None))
            ).scalars()
        }
        now = self.clock.timestamp()
        out = []
        for sid, h in live.items():
            s = durable.get(sid)
            if s is None or s.created_at < user.sessions_valid_after:
                continue
            if now - float(h["last_seen"]) > self.idle or now - float(h["created"]) > self.absolute:
                continue
            out.append(SessionInfo(
                sid, user.id, s.created_at, dt.datetime.fromtimestamp(float(h["last_seen"]), dt.UTC),
                h.get("ip") or None, h.get("ua") or None, int(h.get("aal", 1)),
                tuple((h.get("methods") or "").split(",")), h.get("bc") or None,
            ))
        out.sort(key=lambda i: i.last_seen_at, reverse=True)
        return out

    def revoke(self, user: User, sid: str, reason: str) -> bool:
        """Revoke one of ``user``'s sessions. False if it is not theirs or already gone."""
        res = self.db.session.execute(
            update(UserSession)
            .where(UserSession.id == sid, UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=self.clock.now(), revoke_reason=reason)
        )
        if res.rowcount:
            self._ending(user.id, [sid], reason)
        self.db.session.commit()
        if res.rowcount == 0:
            # Not this user's session (or already revoked): touch nothing in Redis, or one user could end
            # another's session by guessing its id.
            return False
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(_skey(sid))
        pipe.srem(_ukey(user.id), sid)
        pipe.execute()
        self._revoked(user.id, [sid])
        return True

    def revoke_all(self, user: User, reason: str, *, except_sid: str | None = None) -> int:
        """Revoke every session of ``user`` (but ``except_sid``). Durable first, then Redis."""
        now = self.clock.now()
        cond = [UserSession.user_id == user.id, UserSession.revoked_at.is_(None)]
        if except_sid:
            cond.append(UserSession.id != except_sid)
        else:
            # The cut-off also kills sessions whose rows a concurrent login is still writing.
            user.sessions_valid_after = now
        ended = list(self.db.session.execute(select(UserSession.id).where(*cond)).scalars())
        n = self.db.session.execute(update(UserSession).where(*cond).values(revoked_at=now, revoke_reason=reason)).rowcount
        self._ending(user.id, ended, reason)
        self.db.session.commit()
        r = self.redis
        sids = [s for s in r.smembers(_ukey(user.id)) if s != except_sid]
        if sids:
            pipe = r.pipeline(transaction=False)
            for sid in sids:
                pipe.delete(_skey(sid))
            pipe.srem(_ukey(user.id), *sids)
            pipe.execute()
        self._revoked(user.id, ended)
        return n
