"""Pushed Authorization Requests (RFC 9126): the pushed parameters kept in Redis behind a one-time ``request_uri``.

``oauth:par:{sha256(ref)}`` → JSON {"cid", "params" (list-valued), "opened"}; only the hash of the random part is a
key, so a Redis dump holds no usable request_uri. Lifetime: ``ttl`` seconds for the hop from the client to the
browser's first visit of the authorization endpoint (RFC 9126 §2.2: short-lived; ``expires_in``); that visit may
have to go through sign-in, MFA and consent, so the first use stretches the record to ``interaction_ttl`` — once.
The record is deleted (atomically, GETDEL) when the authorization response (a code, or an error for the client) is
issued: a request_uri yields one authorization response (RFC 9126 §4, one-time use), and of two racing approvals
only one gets it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets

PREFIX = "urn:ietf:params:oauth:request_uri:"
_REF = re.compile(r"[A-Za-z0-9_-]{43}")  # 256 random bits, base64url (RFC 9126 §2.2: cryptographically random)
MAX_PARAMS = 64  # distinct parameter names kept per pushed request
MAX_VALUES = 8  # values per parameter name (resource may repeat; nothing else should)


def _key(ref: str) -> str:
    return "oauth:par:{%s}" % hashlib.sha256(ref.encode()).hexdigest()


def ref_of(request_uri: str | None) -> str | None:
    """The random part of one of our request_uri values, or None (not ours, malformed)."""
    if not request_uri or not request_uri.startswith(PREFIX):
        return None
    ref = request_uri[len(PREFIX):]
    return ref if _REF.fullmatch(ref) else None


class PARStore:
    _OPEN = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local rec = cjson.decode(raw)
if rec['opened'] == 0 then
  rec['opened'] = 1
  redis.call('SET', KEYS[1], cjson.encode(rec), 'EX', tonumber(ARGV[1]))
end
return raw
"""

    def __init__(self, redis_getter, *, ttl: int = 60, interaction_ttl: int = 900):
        self._redis = redis_getter
        self.ttl = ttl
        self.interaction_ttl = interaction_ttl
        self._open = None

    def push(self, client_id: str, params: dict[str, list[str]]) -> tuple[str, int]:
        """Store a validated pushed request; returns (request_uri, expires_in)."""
        ref = secrets.token_urlsafe(32)
        self._redis().set(_key(ref), json.dumps({"cid": client_id, "params": params, "opened": 0}), ex=self.ttl)
        return PREFIX + ref, self.ttl

    def open(self, request_uri: str) -> dict | None:
        """The pushed request behind ``request_uri`` ({"cid", "params"}), or None if unknown, expired or used. The
        first open stretches its life to the interaction window (see the module docstring)."""
        ref = ref_of(request_uri)
        if ref is None:
            return None
        r = self._redis()
        if self._open is None or self._open.registered_client is not r:
            self._open = r.register_script(self._OPEN)
        raw = self._open(keys=[_key(ref)], args=[self.interaction_ttl])
        return json.loads(raw) if raw else None

    def consume(self, request_uri: str) -> bool:
        """Use the request_uri up (one authorization response per pushed request). False if it was already used
        or has expired — the caller then issues nothing."""
        ref = ref_of(request_uri)
        return ref is not None and self._redis().getdel(_key(ref)) is not None


def clean_params(form) -> dict[str, list[str]] | None:
    """The pushed parameters worth keeping (list-valued), minus client credentials; None if the request is too big
    to be a real authorization request (the endpoint answers invalid_request)."""
    out: dict[str, list[str]] = {}
    for name in form:
        if name in ("client_secret", "client_assertion", "client_assertion_type"):
            continue
        values = form.getlist(name)
        if len(values) > MAX_VALUES:
            return None
        out[name] = values
        if len(out) > MAX_PARAMS:
            return None
    return out
