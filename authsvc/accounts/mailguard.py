"""Limits on the mail anyone can make us send, and the browser binding of e-mail verification links.

Mail limits (issue #12 item 6, issue #19)
  Reset links, "someone tried to register with your address" notices and verification re-sends are sent on an
  anonymous request, so without a limit anyone can bomb a mailbox (35 mails in seconds) — and every reset mail
  killed the previous link. Each kind of mail is counted per *submitted* address (a keyed hash, never the address in
  clear) and all kinds together per source IP, in fixed windows of ``mail_limit_window`` seconds on the app clock.
  Counting happens before the account is looked at, so a real and an unknown address cost and answer the same; a
  suppressed mail changes nothing else (the newest reset link stays valid). Redis down → the error propagates (503).

Verification bound to the registering browser (issue #19, pre-hijack)
  Registration (and an unverified sign-in that re-sends the link) sets a random cookie and records its hash with the
  link. Opening the link in that browser confirms with one click; anywhere else the password chosen at registration
  is asked for — so the real owner of the address cannot confirm, by clicking a mail they did not ask for, an account
  an attacker registered with the attacker's password. Five wrong passwords use the link up.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from authsvc.redis_scripts import ScriptCache

# INCR a window counter; arm the expiry on first use. Returns the count.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

BROWSER_COOKIE = "__Host-authsvc-reg"
MAX_VERIFY_PASSWORD_FAILURES = 5


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def mail_source(ip: str) -> str:
    """What the per-source limit counts: an IPv4 address, or the /64 of an IPv6 one (one host's usual allocation, so
    rotating addresses inside it does not reset the count)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return ip


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


class MailGuard:
    def __init__(self, *, redis_getter, secret: bytes, settings, clock):
        self._redis = redis_getter
        self._secret = secret
        self.settings = settings
        self.clock = clock
        self._scripts = ScriptCache(redis_getter)

    def _h(self, kind: str, value: str) -> str:
        return hmac.new(self._secret, f"{kind}:{value}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]

    # --- mail limits ----------------------------------------------------------------------------------------------
    def allow(self, kind: str, email: str, ip: str | None) -> bool:
        """Count one ``kind`` mail (reset / register / verify) to ``email`` asked from ``ip``; False = suppress.

        Both counters are always charged (same work whatever the answer); no IP (a call outside a request) → only
        the address is counted."""
        s = self.settings
        window = s.mail_limit_window
        bucket = int(self.clock.timestamp() // window)
        count = self._scripts.get("mail_count", _COUNT)
        n_addr = count(keys=[f"mail:{{a:{self._h('a', email)}}}:{kind}:{bucket}"], args=[2 * window])
        n_ip = count(keys=[f"mail:{{ip:{mail_source(ip)}}}:{bucket}"], args=[2 * window]) if ip else 0
        return int(n_addr) <= s.mail_limit_per_address and int(n_ip) <= s.mail_limit_per_ip

    # --- verification links bound to a browser ---------------------------------------------------------------------
    def bind(self, token: str, browser: str | None) -> None:
        if browser:
            self._redis().set(f"verify:bind:{{{_sha(token)}}}", _sha(browser), ex=self.settings.verify_token_ttl)

    def is_bound_to(self, token: str, browser: str | None) -> bool:
        if not browser or len(browser) > 128:
            return False
        stored = self._redis().get(f"verify:bind:{{{_sha(token)}}}")
        return stored is not None and hmac.compare_digest(str(stored), _sha(browser))

    def password_failure(self, token: str) -> int:
        key = f"verify:pwfail:{{{_sha(token)}}}"
        pipe = self._redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.settings.verify_token_ttl)
        return int(pipe.execute()[0])
