"""``authsvc breach`` commands: build, check, info.  Plain click, no Flask app.

Exit codes of ``check``: 0 = not found, 1 = found, 2 = error (bad input or an
unusable corpus).  Errors never exit 1, so a script can't mistake a broken
corpus for a verdict in either direction.
"""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Any, NoReturn

import click

from .build import Progress, build_corpus
from .corpus import Corpus
from .default import ensure_default_corpus
from .errors import BreachError

EXIT_NOT_FOUND, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

breach = click.Group("breach", help="Breached-password corpus: build, inspect and query.")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


class _ClickProgress(Progress):
    """Draws one click progress bar per build phase on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, phase: str, total: int) -> None:
        self._bar = click.progressbar(length=max(total, 1), label=f"{phase:16s}", file=sys.stderr,
                                      show_pos=phase != "reading")
        self._bar.__enter__()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def measure_fp_rate(corpus: Corpus, samples: int, seed: int | None = None) -> float:
    """False-positive rate on random 64-bit keys (non-members w.p. ~1 - n/2**64)."""
    rng = random.Random(seed)
    hits = sum(corpus.contains_key(rng.getrandbits(64)) for _ in range(samples))
    return hits / max(1, samples)


@breach.command("build")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Corpus file to write.")
@click.option("--min-count", type=click.IntRange(min=1), default=None,
              help="Skip Pwned Passwords hashes seen fewer times (plain-list entries always pass).")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Fingerprint bits: 8 = ~9 bits/entry, FP ~0.4%; 16 = ~18 bits/entry, FP ~0.0015%.")
@click.option("--format", "input_format", type=click.Choice(["auto", "pwned", "plain"]), default="auto",
              show_default=True, help="Input format (auto detects per file).")
@click.option("--label", default=None, help="Source description stored in the header.")
@click.option("--tmp-dir", type=click.Path(file_okay=False), default=None, help="Where to spill temp files.")
@click.option("--shard-bits", type=click.IntRange(0, 24), default=None, hidden=True)
@click.option("--fp-sample", type=click.IntRange(min=0), default=200_000, show_default=True,
              help="Random non-members used to measure the false-positive rate (0 = skip).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars on stderr.")
def build_cmd(inputs: tuple[str, ...], output: str, min_count: int | None, bits: str, input_format: str,
              label: str | None, tmp_dir: str | None, shard_bits: int | None, fp_sample: int,
              progress: bool) -> None:
    """Build a corpus from Pwned Passwords files/folders and/or plain lists."""
    try:
        result = build_corpus(list(inputs), output, bits=int(bits), min_count=min_count,
                              input_format=input_format,  # type: ignore[arg-type]
                              shard_bits=shard_bits, tmp_dir=tmp_dir, source_label=label,
                              progress=_ClickProgress() if progress else None)
        corpus = Corpus.open(output, verify="full")  # self-check of what was just written
    except BreachError as exc:
        _fail(str(exc))
    click.echo(f"wrote {result.path}")
    click.echo(f"  entries        {result.entries:,} (from {result.input_lines:,} input lines, "
               f"{result.meta['below_min_count']:,} below --min-count)")
    click.echo(f"  bytes          {result.file_size:,}")
    click.echo(f"  bits/entry     {result.bits_per_entry:.3f}")
    click.echo(f"  shards         {1 << result.shard_bits}")
    click.echo(f"  build time     {result.seconds:.1f} s ({result.lines_per_second:,.0f} lines/s)")
    click.echo(f"  expected FP    {2.0 ** -result.bits:.6f}")
    if fp_sample:
        t = time.perf_counter()
        fp = measure_fp_rate(corpus, fp_sample)
        click.echo(f"  measured FP    {fp:.6f} on {fp_sample:,} random non-members "
                   f"({(time.perf_counter() - t) / fp_sample * 1e6:.2f} us/lookup)")


def _read_password() -> str:
    stdin = sys.stdin
    if stdin.isatty():
        # Interactive: prompt without echo so the password never shows on screen.
        return click.prompt("Password", hide_input=True, err=True)
    data = stdin.read()
    # Exactly one password: strip a single trailing line terminator only.
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    if "\n" in data:
        _fail("stdin must contain exactly one password (one line)")
    return data


@breach.command("check")
@click.option("--corpus", "corpus_path", type=click.Path(dir_okay=False), envvar="AUTHSVC_BREACH_CORPUS",
              default=None, help="Corpus file (default: the bundled common-password corpus).")
@click.option("--instance-path", envvar="AUTHSVC_INSTANCE_PATH", default="instance", show_default=True,
              type=click.Path(file_okay=False), help="Where the default corpus is built when --corpus is absent.")
def check_cmd(corpus_path: str | None, instance_path: str) -> None:
    """Read ONE password from stdin; exit 1 if it is breached, 0 if not.

    The password is never taken from argv (it would land in shell history and
    in the process list).
    """
    password = _read_password()
    if not password:
        _fail("empty password on stdin")
    try:
        path = corpus_path or ensure_default_corpus(os.path.abspath(instance_path))
        found = Corpus.open(path).contains(password)
    except BreachError as exc:
        _fail(str(exc))
    if found:
        click.echo(f"FOUND: this password is in the breached-password corpus ({path})")
        sys.exit(EXIT_FOUND)
    click.echo(f"not found in the breached-password corpus ({path})")
    sys.exit(EXIT_NOT_FOUND)


@breach.command("info")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check every shard checksum (reads the whole file).")
def info_cmd(file: str, verify: bool) -> None:
    """Print a corpus header (and verify its checksums)."""
    try:
        corpus = Corpus.open(file, verify="full" if verify else "lazy")
    except BreachError as exc:
        _fail(str(exc))
    meta = corpus.meta
    click.echo(f"file               {os.path.abspath(file)}")
    click.echo(f"format version     {meta['format_version']}")
    click.echo(f"entries            {meta['entry_count']:,}")
    click.echo(f"fingerprint bits   {meta['fingerprint_bits']}")
    click.echo(f"expected FP rate   {meta['expected_fp_rate']:.6g}")
    click.echo(f"bits per entry     {meta['bits_per_entry']}")
    click.echo(f"file size          {corpus.file_size:,} bytes")
    click.echo(f"shards             {1 << meta['shard_bits']}")
    click.echo(f"min count          {meta['min_count'] or 'none (all entries)'}")
    click.echo(f"source             {meta['source']}")
    click.echo(f"build date         {meta['build_date']}")
    click.echo(f"input lines        {meta['input_lines']:,} (pwned {meta['pwned_lines']:,}, "
               f"plain {meta['plain_lines']:,}, below min count {meta['below_min_count']:,})")
    click.echo(f"checksums          {'verified' if verify else 'header only (use --verify)'}")


if __name__ == "__main__":  # python -m authsvc.breach.cli ...
    breach()
