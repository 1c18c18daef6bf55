"""Helpers for the breach tests (module name unique: tests have no __init__.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8")).hexdigest().upper()


def write_pwned(path: Path, passwords: list[str], counts: list[int] | None = None, *, crlf: bool = True,
                sort: bool = True) -> Path:
    counts = counts or [1] * len(passwords)
    rows = [(sha1_hex(p), c) for p, c in zip(passwords, counts)]
    if sort:
        rows.sort()
    nl = "\r\n" if crlf else "\n"
    path.write_text("".join(f"{h}:{c}{nl}" for h, c in rows), encoding="ascii", newline="")
    return path
