"""Pwned Passwords k-anonymity range client (online option).

Only the first 5 hex digits of the password's SHA-1 leave the process
(``GET {base_url}/range/{prefix}``); matching happens locally.  We send
``Add-Padding: true`` so the response size does not reveal the prefix's
bucket; padding rows have count 0 and are ignored.

HTTP library: ``requests`` (already a dependency of the stack; gives
connection pooling, so a check costs one round trip, not a TLS handshake).
A ``requests.Session`` is not documented as thread-safe and must not be
shared across fork, so each (process, thread) gets its own session.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass

import requests

from .errors import BreachCheckUnavailable

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.pwnedpasswords.com"


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Outcome of one online check.

    ``degraded`` is True when the service could not be asked and the checker
    is fail-open: ``breached`` is then False *by policy*, not by evidence.
    """

    breached: bool
    count: int = 0
    degraded: bool = False
    error: str | None = None


class RangeClient:
    """Minimal client for ``/range/{prefix}``; raises BreachCheckUnavailable on any failure."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout: float = 2.0,
                 user_agent: str = "authsvc-breach-check") -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.user_agent = user_agent
        self._local = threading.local()

    def _session(self) -> requests.Session:
        pid = os.getpid()
        s = getattr(self._local, "session", None)
        if s is None or self._local.pid != pid:
            s = requests.Session()
            s.headers.update({"Add-Padding": "true", "User-Agent": self.user_agent})
            self._local.session, self._local.pid = s, pid
        return s

    def count(self, password: str) -> int:
        """How often the password appears in the service's breach data (0 = not found)."""
        digest = hashlib.sha1(password.encode("utf-8")).hexdigest().upper()
        prefix, suffix = digest[:5], digest[5:]
        url = f"{self.base_url}/range/{prefix}"
        try:
            resp = self._session().get(url, timeout=self.timeout)
        except requests.Timeout as exc:
            raise BreachCheckUnavailable(f"range query timed out after {self.timeout}s", source=url,
                                         reason="timeout") from exc
        except requests.RequestException as exc:
            raise BreachCheckUnavailable(f"range query failed: {exc.__class__.__name__}", source=url,
                                         reason="connection") from exc
        if resp.status_code != 200:
            raise BreachCheckUnavailable(f"range query returned HTTP {resp.status_code}", source=url,
                                         reason=f"http-{resp.status_code}")
        return _find(resp.text, suffix, url)


def _find(body: str, suffix: str, url: str) -> int:
    seen = 0
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        sfx, sep, cnt = line.partition(":")
        if not sep or len(sfx) != 35 or not cnt.strip().isdigit():
            # A garbled body is "no answer", not "not breached" (the caller's policy decides).
            raise BreachCheckUnavailable(f"malformed range response line {line[:60]!r}", source=url,
                                         reason="malformed")
        seen += 1
        if sfx.upper() == suffix:
            return int(cnt)  # padding rows have count 0 and fall through as "not found"
    if not seen:
        raise BreachCheckUnavailable("empty range response", source=url, reason="malformed")
    return 0
