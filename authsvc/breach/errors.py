"""Exceptions of the breached-password package.

Every exception carries the data needed to act on it (path, offset, shard,
URL...) as attributes, not only in the message, so callers and logs can use it.
"""

from __future__ import annotations


class BreachError(Exception):
    """Base class of every error raised by :mod:`authsvc.breach`."""


class CorpusError(BreachError):
    """A corpus file is missing, corrupt, truncated or of an unknown format.

    Raised instead of ever answering "not breached" from a damaged file: a
    corrupt corpus must not silently weaken password policy (fail closed).
    """

    def __init__(self, message: str, *, path: str | None = None, shard: int | None = None) -> None:
        self.path = path
        self.shard = shard
        where = f" [{path}" + (f", shard {shard}" if shard is not None else "") + "]" if path else ""
        super().__init__(message + where)


class BuildError(BreachError):
    """The build input is unusable (bad line, unreadable file, bad option)."""

    def __init__(self, message: str, *, path: str | None = None, line_no: int | None = None,
                 line: bytes | None = None) -> None:
        self.path = path
        self.line_no = line_no
        self.line = line
        where = ""
        if path is not None:
            where = f" [{path}" + (f":{line_no}" if line_no is not None else "") + "]"
        if line is not None:
            where += f" line={line[:80]!r}"
        super().__init__(message + where)


class BreachCheckUnavailable(BreachError):
    """A checker could not give an answer (service down, corpus shard corrupt...).

    Raised only by checkers configured to fail closed; the caller must then
    refuse the password change / registration rather than accept it unchecked.
    """

    def __init__(self, message: str, *, source: str | None = None, reason: str | None = None) -> None:
        self.source = source
        self.reason = reason
        super().__init__(message)
