"""Password -> 64-bit key mapping shared by the builder and the reader.

A corpus stores *keys*: the first 64 bits of the SHA-1 digest, big-endian.
SHA-1 is what the Pwned Passwords set is published in, and its output is
uniformly distributed, so these 64 bits need no further hashing to be used as
a filter hash (see :mod:`authsvc.breach.fuse`).  With 2 billion entries the
chance that two distinct breached passwords share a 64-bit key is ~0.1, and a
shared key only ever makes the filter answer "breached" (never the reverse).
"""

from __future__ import annotations

import hashlib
import string

_HEX = frozenset(string.hexdigits)
_sha1 = hashlib.sha1
_from_bytes = int.from_bytes


def password_key(password: str) -> int:
    """Return the 64-bit key of ``password`` (UTF-8, exactly as typed)."""
    return _from_bytes(_sha1(password.encode("utf-8")).digest()[:8], "big")


def sha1_key(sha1_hex: str) -> int:
    """Return the 64-bit key of a full 40-digit SHA-1 hex string (any case).

    Raises ValueError on anything but 40 hex digits: a truncated hash would
    silently look up a different key.
    """
    if len(sha1_hex) != 40 or not _HEX.issuperset(sha1_hex):
        raise ValueError(f"expected 40 hex digits, got {sha1_hex!r}")
    return int(sha1_hex[:16], 16)
