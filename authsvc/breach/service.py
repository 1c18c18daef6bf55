"""Service objects the app plugs in: the BreachChecker protocol and its implementations."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .corpus import Corpus
from .errors import BreachCheckUnavailable, CorpusError
from .range import DEFAULT_BASE_URL, RangeClient, RangeResult

log = logging.getLogger(__name__)


@runtime_checkable
class BreachChecker(Protocol):
    def is_breached(self, password: str) -> bool:
        """True if the password is known breached.  May raise BreachCheckUnavailable."""
        ...


class NullBreachChecker:
    """Checks nothing (breach checking disabled): always False."""

    def is_breached(self, password: str) -> bool:
        return False


def _file_signature(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class CorpusBreachChecker:
    """Checks against a corpus file and picks up a replaced file without restart.

    At most once per ``reload_interval`` seconds one caller stats the file; if
    (device, inode, size, mtime) changed, the new file is opened and swapped
    in by a single reference assignment (atomic for other threads).  If the
    new file is missing or corrupt the old corpus keeps serving and an error
    is logged once per bad file version: an operator's broken upload must not
    disable breach checking.  The old mapping is never closed explicitly,
    because a concurrent lookup may still be reading it; it is unmapped when
    the last reference goes.

    ``min_count``: the corpus cannot filter by count after the fact (counts
    are not stored).  A corpus built with a *higher* threshold than requested
    would silently miss passwords, so it is refused (CorpusError); a lower
    threshold is stricter than asked, which is accepted.
    """

    def __init__(self, path: str | os.PathLike[str], min_count: int | None = None, *,
                 reload_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self.min_count = min_count
        self.reload_interval = reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = _file_signature_or_error(self.path)
        self._corpus = self._open()  # fail closed at start-up: a bad file raises CorpusError
        self._next_check = clock() + reload_interval
        self._bad_signature: tuple[int, int, int, int] | None = None

    def _open(self) -> Corpus:
        corpus = Corpus.open(self.path)
        if self.min_count is not None and corpus.min_count > self.min_count:
            raise CorpusError(f"corpus was built with --min-count {corpus.min_count}, higher than the "
                              f"configured min_count {self.min_count}: it would miss passwords", path=self.path)
        return corpus

    @property
    def corpus(self) -> Corpus:
        return self._corpus

    def maybe_reload(self) -> bool:
        """Swap in a changed file if it is valid; return True if a swap happened."""
        now = self._clock()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False  # another thread is already checking: keep serving, don't queue up
        try:
            self._next_check = now + self.reload_interval
            try:
                sig = _file_signature(self.path)
            except OSError as exc:
                if self._bad_signature != (0, 0, 0, 0):
                    log.error("breach corpus %s unavailable (%s); still serving the previous one",
                              self.path, exc)
                    self._bad_signature = (0, 0, 0, 0)
                return False
            if sig == self._signature or sig == self._bad_signature:
                return False
            try:
                new = self._open()
            except CorpusError as exc:
                log.error("breach corpus %s changed but is unusable (%s); still serving the previous one",
                          self.path, exc)
                self._bad_signature = sig
                return False
            self._corpus, self._signature, self._bad_signature = new, sig, None
            log.info("breach corpus reloaded: %s (%d entries)", self.path, new.entry_count)
            return True
        finally:
            self._lock.release()

    def is_breached(self, password: str) -> bool:
        self.maybe_reload()
        try:
            return self._corpus.contains(password)
        except CorpusError as exc:
            # A shard failed its lazily checked CRC: we cannot answer, so fail closed.
            log.error("breach corpus lookup failed: %s", exc)
            raise BreachCheckUnavailable(str(exc), source=self.path, reason="corrupt") from exc


def _file_signature_or_error(path: str) -> tuple[int, int, int, int]:
    try:
        return _file_signature(path)
    except OSError as exc:
        raise CorpusError(f"cannot open corpus: {exc.strerror or exc}", path=path) from exc


class RangeBreachChecker:
    """Online check through the k-anonymity range API.

    ``fail_closed=True``: when the service cannot be asked, raise
    BreachCheckUnavailable so the caller refuses the password (safe default:
    an outage must not let breached passwords in).  ``fail_closed=False``:
    return False, log a warning and report ``degraded=True`` from
    :meth:`check`, so availability wins but the caller can record it.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout: float = 2.0, fail_closed: bool = True,
                 min_count: int = 1) -> None:
        self.client = RangeClient(base_url, timeout)
        self.fail_closed = fail_closed
        self.min_count = max(1, min_count)  # count 0 = padding row, never a hit
        self.degraded_count = 0  # approximate under threads; for metrics only

    def check(self, password: str) -> RangeResult:
        try:
            count = self.client.count(password)
        except BreachCheckUnavailable as exc:
            if self.fail_closed:
                raise
            self.degraded_count += 1
            log.warning("breach check unavailable, failing OPEN (password accepted unchecked): %s", exc)
            return RangeResult(False, 0, degraded=True, error=str(exc))
        return RangeResult(count >= self.min_count, count)

    def is_breached(self, password: str) -> bool:
        return self.check(password).breached


class ChainBreachChecker:
    """Breached if any checker says so.

    A checker that raises BreachCheckUnavailable does not stop the others: a
    definite "breached" from any of them wins.  If none says breached and one
    was unavailable, the error is re-raised (fail closed; a fail-open checker
    would have returned False instead of raising, so its policy is respected).
    """

    def __init__(self, checkers: Sequence[BreachChecker]) -> None:
        self.checkers = list(checkers)

    def is_breached(self, password: str) -> bool:
        error: BreachCheckUnavailable | None = None
        for checker in self.checkers:
            try:
                if checker.is_breached(password):
                    return True
            except BreachCheckUnavailable as exc:
                error = error or exc
        if error is not None:
            raise error
        return False
