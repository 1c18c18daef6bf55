"""Binding authsvc's login sessions to a browser key (DBSC), with state in Redis next to the session.

Every piece of state is a field of the session's own Redis hash, so it dies with the session (logout, revocation,
expiry, account erasure) and no other key names the session or the user. Nothing here is durable on purpose: a lost
binding only means the browser registers again, while the session keeps SQL's revocation backstop.

| field of ``sess:{<sid>}`` | what |
|---|---|
| ``rc`` | the outstanding registration challenge (single use) |
| ``bk`` | the binding: JSON ``{"id", "alg", "jwk", "at"}`` (set once: HSETNX) |
| ``ch`` | outstanding refresh challenges, newest last (at most 3; each single use) |
| ``bc`` | the short cookie: ``<sha256 now>:<deadline>:<sha256 previous>:<previous until>`` |
| ``mis`` | when a request without the short cookie was last audited (one row a minute) |

A bound session needs its short cookie, except within ``grace`` seconds of the binding and before any refresh: a
browser follows the sign-in's redirect while it registers, so that first page can arrive without the cookie.

The session check reads ``bc`` in the same script that touches the session (no extra round trip): a bound session
needs its short cookie. A request without it is refused (the browser refreshes first; one that could not is sent to
sign in); a short cookie presented after its deadline, or the previous one after its grace, is a replay — the session
ends and the event is audited as a takeover signal. So is a refresh proof signed by a key other than the bound one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from authsvc.dbsc.protocol import ProofError, verify_proof

OK, MISSING, REPLAY = "ok", "missing", "replay"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Bound:
    dbsc_id: str
    cookie: str
    max_age: int


class DbscError(Exception):
    def __init__(self, status: int, code: str, message: str, *, end_session: bool = False):
        super().__init__(message)
        self.status, self.code, self.end_session = status, code, end_session


# Consume one challenge from a space-separated list field (single use under concurrency: one caller gets 1).
_CONSUME = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local out, found = {}, 0
for c in string.gmatch(v, '%S+') do
  if c == ARGV[2] and found == 0 then found = 1 else table.insert(out, c) end
end
if found == 1 then
  if #out == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' ')) end
end
return found
"""

# Add a challenge to the list (keeping the newest ARGV[3]) if the session still exists.
_PUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HGET', KEYS[1], ARGV[1])
local out = {}
if v then for c in string.gmatch(v, '%S+') do table.insert(out, c) end end
table.insert(out, ARGV[2])
while #out > tonumber(ARGV[3]) do table.remove(out, 1) end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' '))
return 1
"""


HISTORY_KEEP = 150  # short cookies remembered per session: 25 hours of 10-minute cookies (the absolute timeout)
HISTORY_CHARS = 24  # 96 bits of each cookie's SHA-256: plenty to recognise one, nothing to forge one from

# A new short cookie: set ``bc`` and push the replaced cookie's hash prefix onto ``bh`` (bounded), on a live session.
_ROTATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'bc', ARGV[1])
if ARGV[2] ~= '' then
  local v = redis.call('HGET', KEYS[1], 'bh') or ''
  local out = {}
  for c in string.gmatch(v, '%S+') do table.insert(out, c) end
  table.insert(out, ARGV[2])
  while #out > tonumber(ARGV[3]) do table.remove(out, 1) end
  redis.call('HSET', KEYS[1], 'bh', table.concat(out, ' '))
end
return 1
"""

# Set a field only on a live session (never resurrect a hash the session's expiry or revocation removed).
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'mis', ARGV[1])
return 1
"""


def _skey(sid: str) -> str:
    return f"sess:{{{sid}}}"


class DbscService:
    def __init__(self, *, redis_getter, clock, cookie_ttl: int = 600, challenge_ttl: int = 300, grace: int = 15,
                 absolute_timeout: int = 86400):
        self._redis = redis_getter
        self.clock = clock
        self.cookie_ttl = cookie_ttl
        self.challenge_ttl = challenge_ttl
        # A browser registers right after the response that offered it; two minutes is plenty (the draft: "new
        # challenges issued should have a short lifetime").
        self.registration_ttl = min(challenge_ttl, 120)
        self.grace = grace  # the previous short cookie stays good this long after a refresh (requests in flight)
        self.absolute = absolute_timeout
        from authsvc.redis_scripts import ScriptCache

        self._scripts = ScriptCache(redis_getter)

    @property
    def redis(self):
        return self._redis()

    def _push(self, sid: str, field: str, challenge: str, keep: int) -> None:
        self._scripts.get("dbsc_push", _PUSH)(keys=[_skey(sid)], args=[field, challenge, keep])

    def _consume(self, sid: str, field: str, challenge: str) -> bool:
        if not challenge or any(ch.isspace() for ch in challenge):
            return False
        return bool(self._scripts.get("dbsc_consume", _CONSUME)(keys=[_skey(sid)], args=[field, challenge]))

    # --- offer -----------------------------------------------------------------------------------------------------
    def _challenge(self) -> str:
        # The issue time rides in the challenge itself, so a stale one is refused without another key or TTL.
        return f"{int(self.clock.timestamp()):x}.{secrets.token_urlsafe(24)}"

    def _fresh(self, challenge: str, ttl: int | None = None) -> bool:
        try:
            issued = int(challenge.split(".", 1)[0], 16)
        except ValueError:
            return False
        return 0 <= self.clock.timestamp() - issued <= (ttl or self.challenge_ttl)

    def registration_challenge(self, sid: str) -> str:
        challenge = self._challenge()
        self._push(sid, "rc", challenge, 1)
        return challenge

    def refresh_challenge(self, sid: str) -> str:
        challenge = self._challenge()
        self._push(sid, "ch", challenge, 3)
        return challenge

    # --- register ----------------------------------------------------------------------------------------------------
    def register(self, sid: str, proof_token: str | None, *, context: tuple[str | None, str | None] | None = None
                 ) -> Bound:
        """Bind the live session ``sid`` to the key in the proof. The proof's ``jti`` must be a registration
        challenge issued for this very session (single use, ``registration_ttl``), and the request must come from the
        network and browser the session was born in (when continuous session risk recorded them): a browser
        registers seconds after its sign-in, from where it signed in; anyone else holding the challenge does not."""
        try:
            proof = verify_proof(proof_token, registration=True)
        except ProofError as exc:
            raise DbscError(400, exc.code, str(exc)) from exc
        r = self.redis
        if context is not None:
            from authsvc.risk.drift import browser_key, network_of

            b_pfx, b_uaf = r.hmget(_skey(sid), "b_pfx", "b_uaf")
            if (b_pfx and network_of(context[0]) != b_pfx) or (b_uaf and browser_key(context[1]) != b_uaf):
                raise DbscError(403, "wrong_context", "register from the browser and network that signed in")
        if not self._consume(sid, "rc", proof.jti) or not self._fresh(proof.jti, self.registration_ttl):
            raise DbscError(400, "bad_challenge", "the proof does not answer a registration challenge of this session")
        skey = _skey(sid)
        dbsc_id = secrets.token_urlsafe(18)
        binding = json.dumps({"id": dbsc_id, "alg": proof.alg, "jwk": proof.jwk, "at": int(self.clock.timestamp())},
                             separators=(",", ":"))
        # HSETNX: a session binds once. A second registration (another browser holding the cookie) cannot replace
        # the first key.
        if not r.hsetnx(skey, "bk", binding):
            raise DbscError(409, "already_bound", "this session is already bound to a key")
        return Bound(dbsc_id, self._new_cookie(sid, previous=None), self.cookie_ttl)

    # --- refresh -----------------------------------------------------------------------------------------------------
    def binding(self, sid: str) -> dict | None:
        raw = self.redis.hget(_skey(sid), "bk")
        return json.loads(raw) if raw else None

    def refresh(self, sid: str, dbsc_id: str, proof_token: str | None) -> Bound:
        """A new short cookie for a proof over an outstanding challenge, signed by the bound key.

        Raises DbscError: 403 (no proof, or a challenge that is unknown or used: answer with a new one — the browser
        retries), 401 with ``end_session`` (a proof the bound key did not sign: takeover signal).
        """
        bound = self.binding(sid)
        if bound is None or bound.get("id") != dbsc_id:
            raise DbscError(401, "not_bound", "no bound session with this identifier")
        if not proof_token:
            raise DbscError(403, "challenge", "sign the challenge")
        try:
            proof = verify_proof(proof_token, registration=False, stored_jwk=bound["jwk"], stored_alg=bound["alg"])
        except ProofError as exc:
            if exc.code in ("bad_signature", "wrong_key", "jwk_on_refresh"):
                raise DbscError(401, exc.code, str(exc), end_session=True) from exc
            raise DbscError(400, exc.code, str(exc)) from exc
        if not self._consume(sid, "ch", proof.jti) or not self._fresh(proof.jti):
            raise DbscError(403, "stale_challenge", "the challenge is unknown, expired or already used")
        current = self.redis.hget(_skey(sid), "bc")
        return Bound(dbsc_id, self._new_cookie(sid, previous=current), self.cookie_ttl)

    BINDING_FIELDS = ("bk", "bc", "bh")  # the key, the live short cookie, the short cookies given before

    def carry_binding(self, old_sid: str, new_sid: str) -> bool:
        """A session re-issued under a new token (a step-up rotates it) keeps its device binding: the same key, the
        same live short cookie and its history. Without this, a thief holding the cookie jar and the password could
        step up into a fresh, unbound session and bind it to the thief's own key (found by an outside attack)."""
        values = self.redis.hmget(_skey(old_sid), self.BINDING_FIELDS)
        if not values[0]:
            return False
        self.redis.hset(_skey(new_sid), mapping={k: v for k, v in zip(self.BINDING_FIELDS, values) if v})
        return True

    def is_bound(self, sid: str) -> bool:
        return bool(self.redis.hexists(_skey(sid), "bk"))

    def _new_cookie(self, sid: str, *, previous: str | None) -> str:
        cookie = secrets.token_urlsafe(32)
        now = int(self.clock.timestamp())
        prev_hash, prev_until = "", now + self.grace
        if previous:
            # The previous cookie's grace never outlives its own deadline (found by an outside attack: a copy replayed
            # after it expired, within seconds of the owner's next refresh, was accepted again).
            prev_hash = previous.split(":")[0]
            try:
                prev_until = min(prev_until, int(float(previous.split(":")[1])))
            except (IndexError, ValueError):
                pass
        # The server's deadline is the cookie's Max-Age plus a little slack for clocks and requests in flight.
        value = f"{_sha(cookie)}:{now + self.cookie_ttl + self.grace}:{prev_hash}:{prev_until}"
        self._scripts.get("dbsc_rotate", _ROTATE)(keys=[_skey(sid)], args=[value, prev_hash[:HISTORY_CHARS],
                                                                          HISTORY_KEEP])
        return cookie

    def was_issued(self, sid: str, presented: str | None) -> bool:
        """Whether ``presented`` is a short cookie this session was given before (and has since replaced): read only
        when a request came without the live one, so the hot path does not pay for it."""
        if not presented or len(presented) > 128:
            return False
        history = self.redis.hget(_skey(sid), "bh") or ""
        return _sha(presented)[:HISTORY_CHARS] in history.split()

    def note_missing(self, sid: str) -> bool:
        """True at most once a minute per session (when a request without the short cookie should be audited)."""
        r = self.redis
        now = int(self.clock.timestamp())
        last = r.hget(_skey(sid), "mis")
        if last and now - int(last) < 60:
            return False
        self._scripts.get("dbsc_mark", _MARK)(keys=[_skey(sid)], args=[now])
        return True

    # --- enforce (session check) ---------------------------------------------------------------------------------
    def judge(self, state: str, presented: str | None) -> str:
        """``state``: the session's ``bc`` field. OK, MISSING (no short cookie: refuse, keep the session) or REPLAY
        (an expired or superseded short cookie: end the session)."""
        try:
            cur, deadline, prev, prev_until = state.split(":")
            deadline_f, prev_until_f = float(deadline), float(prev_until)
        except ValueError:
            return MISSING
        now = self.clock.timestamp()
        if not presented:
            # Requests in flight at registration: the browser follows the sign-in's redirect while it registers, so
            # the first page can reach us after the binding but before the browser holds the short cookie (seen in
            # CI with Chromium 156 under load). The first short cookie (no previous one) carries the binding time +
            # grace as its "previous until": until then, a request with no short cookie at all is still served.
            # Nothing is given away: the same login cookie was a bearer credential a moment earlier, and after the
            # first refresh (or the grace) a bare login cookie is refused again.
            return OK if not prev and now <= prev_until_f else MISSING
        if len(presented) > 128:
            return MISSING
        h = _sha(presented)
        if secrets.compare_digest(h, cur):
            return OK if now <= deadline_f else REPLAY
        if prev and secrets.compare_digest(h, prev):
            return OK if now <= prev_until_f else REPLAY
        return MISSING  # a value this session never issued: not evidence about this session
