"""Checker service objects: null, corpus (with reload), chain."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from authsvc.breach import (
    BreachChecker,
    BreachCheckUnavailable,
    ChainBreachChecker,
    CorpusBreachChecker,
    CorpusError,
    NullBreachChecker,
    PasswordList,
    build_corpus,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _build(path: Path, words: list[str], **kw: object) -> None:
    build_corpus([PasswordList("t", words)], path, **kw)  # type: ignore[arg-type]


def test_null_checker() -> None:
    assert NullBreachChecker().is_breached("password") is False
    assert isinstance(NullBreachChecker(), BreachChecker)


def test_corpus_checker_reloads_on_change_and_keeps_old_on_corruption(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.corpus"
    _build(path, ["alpha-1", "alpha-2"])
    clock = FakeClock()
    checker = CorpusBreachChecker(path, clock=clock)
    assert isinstance(checker, BreachChecker)
    assert checker.is_breached("alpha-1") and not checker.is_breached("beta-1xx")

    _build(path, ["beta-1xx"])  # atomic replace -> new inode
    assert checker.is_breached("alpha-1")  # checked at most once per second: not yet
    clock.now += 1.01
    assert checker.is_breached("beta-1xx") and not checker.is_breached("alpha-1")

    good = checker.corpus
    tmp = tmp_path / "new"
    tmp.write_bytes(b"ASBREACH" + b"\0" * 100)  # corrupt upload, renamed into place
    os.replace(tmp, path)
    clock.now += 1.01
    with caplog.at_level(logging.ERROR, logger="authsvc.breach.service"):
        assert checker.is_breached("beta-1xx")
    assert checker.corpus is good
    assert any("unusable" in r.message for r in caplog.records)

    _build(path, ["gamma-1"])  # a fixed file is picked up again
    clock.now += 1.01
    assert checker.is_breached("gamma-1")


def test_corpus_checker_fails_closed_at_startup(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        CorpusBreachChecker(tmp_path / "missing.corpus")


def test_corpus_checker_min_count_mismatch(tmp_path: Path) -> None:
    src = tmp_path / "p.txt"
    src.write_text("0" * 40 + ":50\n")
    path = tmp_path / "c.corpus"
    build_corpus([src], path, min_count=10)
    with pytest.raises(CorpusError, match="min-count"):
        CorpusBreachChecker(path, min_count=5)  # corpus would miss counts 5..9
    assert CorpusBreachChecker(path, min_count=20).corpus.min_count == 10  # stricter is fine


def test_corpus_checker_lazy_shard_corruption_raises_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "c.corpus"
    words = [f"w{i}" for i in range(2000)]
    _build(path, words, shard_bits=1)
    checker = CorpusBreachChecker(path)
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    tmp = tmp_path / "x"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    from authsvc.breach import Corpus

    checker._corpus = Corpus.open(path, verify="lazy")  # as a large file would be opened
    with pytest.raises(BreachCheckUnavailable) as info:
        for w in words:
            checker.is_breached(w)
    assert info.value.reason == "corrupt"


class _Fixed:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer

    def is_breached(self, password: str) -> bool:
        if self.answer is None:
            raise BreachCheckUnavailable("down", reason="test")
        return self.answer


def test_chain_any_of_and_error_policy() -> None:
    assert ChainBreachChecker([_Fixed(False), _Fixed(True)]).is_breached("x")
    assert not ChainBreachChecker([_Fixed(False), _Fixed(False)]).is_breached("x")
    assert ChainBreachChecker([_Fixed(None), _Fixed(True)]).is_breached("x")  # definite hit wins
    with pytest.raises(BreachCheckUnavailable):
        ChainBreachChecker([_Fixed(False), _Fixed(None)]).is_breached("x")
    assert not ChainBreachChecker([]).is_breached("x")


def test_corpus_checker_concurrent_lookups_during_reload(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "c.corpus"
    _build(path, ["stable-pw"])
    clock = FakeClock()
    checker = CorpusBreachChecker(path, clock=clock)
    errors: list[Exception] = []
    misses = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal misses
        while not stop.is_set():
            try:
                misses += not checker.is_breached("stable-pw")  # in every version of the file
            except Exception as exc:  # noqa: BLE001 - any error in a thread is a failure, reported below
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(5):
        _build(path, ["stable-pw", f"extra-{i}"])
        clock.now += 1.01
        checker.maybe_reload()
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and misses == 0
    assert checker.is_breached("extra-4")
