"""A second step every account has: a one-time code e-mailed to the verified address.

Used when the risk engine asks for a step-up and the account has no factor of its own (issue #19: a step-up the
account cannot meet used to be skipped). The code is

* 8 digits from the OS CSPRNG, bound to one pending login (its binding, never the cookie token itself);
* stored only as an HMAC (app secret, binding, code) in one Redis hash ``mfa:ec:{<binding>}`` with a short TTL;
* single use (the hash is deleted by the script that accepts it) and burnt after ``max_attempts`` wrong guesses;
* re-sent at most ``max_sends`` times per pending login, and mailed at most ``per_user_mails`` times an hour per
  account, so a password holder cannot turn it into a mail bomb.

Every script touches one key, so this runs unchanged on Redis Cluster. Redis down → the caller's 503.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask_babel import gettext as _

from authsvc.i18n.mail import mail_language
from authsvc.redis_scripts import ScriptCache

# KEYS: code hash   ARGV: hmac, max_sends, ttl → 1 stored, 0 too many sends for this pending login
_PUT = """
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
if s > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'n', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: code hash   ARGV: hmac, max_attempts → 1 accepted (and gone), 0 wrong, -1 no live code
_CHECK = """
local h = redis.call('HGET', KEYS[1], 'h')
if not h then return -1 end
if h == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n >= tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], 'h') end
return 0
"""

# KEYS: per-user mail counter   ARGV: window, cap → 1 may send, 0 over the cap
_MAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then return 0 end
return 1
"""

SENT, TOO_MANY = "sent", "too_many"
OK, WRONG, EXPIRED = 1, 0, -1


class EmailCodeService:
    def __init__(self, redis_getter, *, secret: bytes, mailer, service_name: str, ttl: int = 600,
                 digits: int = 8, max_attempts: int = 5, max_sends: int = 3, per_user_mails: int = 10):
        self._redis = redis_getter
        self._secret = secret
        self.mailer, self.service_name = mailer, service_name
        self.ttl, self.digits = ttl, digits
        self.max_attempts, self.max_sends, self.per_user_mails = max_attempts, max_sends, per_user_mails
        self._scripts = ScriptCache(redis_getter)

    def _mac(self, binding: str, code: str) -> str:
        return hmac.new(self._secret, f"email-code:{binding}:{code}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _key(binding: str) -> str:
        return f"mfa:ec:{{{binding}}}"

    def send(self, binding: str, user, ip: str | None) -> str:
        """Make a new code for this pending login (the previous one stops working) and mail it. SENT or TOO_MANY."""
        allowed = self._scripts.get("ec_mail", _MAIL)(keys=[f"mfa:ec:{{u{user.id}}}:mails"],
                                                       args=[3600, self.per_user_mails])
        if not allowed:
            return TOO_MANY
        code = f"{secrets.randbelow(10 ** self.digits):0{self.digits}d}"
        if not self._scripts.get("ec_put", _PUT)(keys=[self._key(binding)],
                                                  args=[self._mac(binding, code), self.max_sends, self.ttl]):
            return TOO_MANY
        minutes = max(1, self.ttl // 60)
        with mail_language(user):
            self.mailer.send(user.email, _("Your %(service)s sign-in code", service=self.service_name),
                             _("Your sign-in code is %(code)s", code=code) + "\n\n"
                             + _("It works once, for %(minutes)s minutes. Someone signed in with your password from "
                                 "IP %(ip)s and we want to be sure it is you.", minutes=minutes, ip=ip or _("unknown"))
                             + "\n\n"
                             + _("If this was not you, do not share the code with anyone: change your password now, "
                                 "because whoever tried knows it.") + "\n")
        return SENT

    def check(self, binding: str, code: str) -> int:
        """OK (the code is used up), WRONG (counted; burnt after max_attempts) or EXPIRED (no live code)."""
        code = "".join(ch for ch in (code or "") if not ch.isspace())
        if not (code.isascii() and code.isdigit() and len(code) == self.digits):
            # Never reaches Redis' compare, but still costs an attempt: any answer counts against the budget.
            code = "-"
        return int(self._scripts.get("ec_check", _CHECK)(keys=[self._key(binding)],
                                                        args=[self._mac(binding, code), self.max_attempts]))

    def drop(self, binding: str) -> None:
        self._redis().delete(self._key(binding))
