"""Input readers: Pwned Passwords text format and plain password lists.

Each reader yields numpy ``uint64`` arrays of 64-bit keys (see keys.py) in
chunks of bounded size, so memory does not grow with the input.

Pwned Passwords text (``SHA1HEX:COUNT`` per line, CRLF or LF, any order) is
parsed vectorised with numpy, ~10x faster than a Python loop.  Only the 16 hex
digits that form the key and the ``:`` position are validated per line (the
other 24 digits are not needed and checking them would double parse time).
The downloader's per-prefix mode writes files named ``XXXXX.txt`` holding
35-digit suffixes; those are recognised and the prefix taken from the name.
"""

from __future__ import annotations

import hashlib
import os
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import BuildError

Format = Literal["pwned", "pwned-suffix", "plain"]
InputFormat = Literal["auto", "pwned", "plain"]

CHUNK_BYTES = 16 * 1024 * 1024
PLAIN_BATCH = 1 << 20
MAX_LINE = 1 << 20
MAX_INFLIGHT = 3  # blocks parsed ahead when a thread pool is used (~16 MiB each)

_FULL_RE = re.compile(rb"^[0-9A-Fa-f]{40}:[0-9]+\r?$")
_SUFFIX_RE = re.compile(rb"^[0-9A-Fa-f]{35}:[0-9]+\r?$")
_PREFIX_NAME_RE = re.compile(r"^[0-9A-Fa-f]{5}$")


@dataclass
class PasswordList:
    """An in-memory plain password list used as a build input."""

    name: str
    passwords: Iterable[str]


@dataclass
class ParseStats:
    pwned_lines: int = 0
    plain_lines: int = 0
    below_min_count: int = 0
    formats: dict[str, int] = field(default_factory=dict)


def detect_format(path: str, forced: InputFormat = "auto") -> Format:
    """Decide how to read ``path`` from its first non-blank line (and its name).

    Only the first line decides: every later line is validated by the parser,
    which reports the exact line, instead of a bad line silently turning a
    hash file into a "plain list" of hex strings.
    """
    if forced == "plain":
        return "plain"
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise BuildError(f"cannot read input: {exc.strerror or exc}", path=path) from exc
    first = next((ln for ln in head.split(b"\n") if ln.strip()), b"")
    if _FULL_RE.match(first):
        return "pwned"
    if _PREFIX_NAME_RE.match(stem) and _SUFFIX_RE.match(first):
        return "pwned-suffix"
    return "pwned" if forced == "pwned" else "plain"  # forced: the parser names the bad line


def _read_chunks(path: str) -> Iterator[tuple[memoryview, int]]:
    """Yield (block, bytes_read); blocks end on a line boundary (``\\n``).

    Each block gets a fresh buffer filled with ``readinto`` (blocks may be
    parsed concurrently); only the partial last line is copied forward.
    """
    with open(path, "rb") as fh:
        left = os.fstat(fh.fileno()).st_size  # sizes buffers: per-prefix files are ~30 KB, not 16 MiB
        rest, unreported = b"", 0
        while True:
            want = min(CHUNK_BYTES, left)
            got = 0
            if want:
                buf = bytearray(len(rest) + want)
                buf[:len(rest)] = rest
                got = fh.readinto(memoryview(buf)[len(rest):])
            if not got:
                if rest:  # last line without a terminator
                    yield memoryview(rest + b"\n"), unreported
                return
            left -= got
            unreported += got
            end = len(rest) + got
            cut = buf.rfind(b"\n", 0, end) + 1
            rest = bytes(buf[cut:end])
            if len(rest) > MAX_LINE:  # no newline in sight: not a text hash file; don't buffer it all
                raise BuildError(f"line longer than {MAX_LINE} bytes (not a Pwned Passwords text file?)",
                                 path=path)
            if cut:
                yield memoryview(buf)[:cut], unreported
                unreported = 0


_B01, _B0F, _B80 = np.uint64(0x0101010101010101), np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x8080808080808080)


def _bytes_ge(w: np.ndarray, lo: int) -> np.ndarray:
    """Per byte of w (all bytes < 0x80): 0x80 where byte >= lo, else 0 (no carries)."""
    return (w + _B01 * np.uint64(0x80 - lo)) & _B80


def hex_words_to_nibbles(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SWAR hex decoding of uint64 words holding 8 ASCII chars each (little-endian).

    Returns (nibbles, valid): byte i of ``nibbles`` is the value of char i;
    ``valid`` is False for a word with any non-hex char.  ~4x faster than a
    256-entry lookup table on numpy, which matters at billions of lines.
    """
    upper = w & ~(_B01 * np.uint64(0x20))  # a-f -> A-F (digits lose bit 0x20, handled below)
    digit = _bytes_ge(w, 0x30) & ~_bytes_ge(w, 0x3A)
    letter = _bytes_ge(upper, 0x41) & ~_bytes_ge(upper, 0x47)
    valid = ((w & _B80) == 0) & ((digit | letter) == _B80)
    nib = (w & _B0F) + np.uint64(9) * ((w >> np.uint64(6)) & _B01)
    return nib, valid


def _pack_nibbles(nib: np.ndarray) -> np.ndarray:
    """(n, 2) uint64 of nibbles (char order = byte order) -> (n,) 64-bit big-endian value."""
    t = ((nib << np.uint64(4)) | (nib >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    t = (t | (t >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    t = (t | (t >> np.uint64(16))) & np.uint64(0xFFFFFFFF)  # bytes 0..3 = the 4 output bytes, in order
    return (t[:, 0] | (t[:, 1] << np.uint64(32))).byteswap()


def parse_pwned_block(block: bytes | memoryview, *, prefix: int | None, min_count: int, path: str,
                      line_base: int) -> tuple[np.ndarray, int, int]:
    """Parse one newline-terminated block; return (keys, lines, below_min_count).

    The COUNT field is parsed (and validated) only when ``min_count > 1``.

    ``prefix`` is the 20-bit value of a per-prefix file's name, or None.
    ``line_base`` is the number of lines before this block (for error messages).
    """
    if len(block) < 16:
        block = bytes(block) + bytes(16)  # tiny block: pad so the 16-byte gather stays inside
    arr = np.frombuffer(block, dtype=np.uint8)
    size = len(block)
    ends = np.flatnonzero(arr == 10)
    raw_lines = int(ends.size)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    hexlen = 40 if prefix is None else 35
    line_idx = None
    if not (ends - starts >= hexlen + 2).all():  # blank (or short) lines present: drop blank ones
        blank = (ends == starts) | ((ends == starts + 1) & (arr[np.maximum(ends - 1, 0)] == 13))
        line_idx = np.flatnonzero(~blank)
        starts, ends = starts[line_idx], ends[line_idx]
    if min_count > 1:  # only the count parser needs the exact end (without CR)
        ends = ends - (arr[np.maximum(ends - 1, 0)] == 13)
    ok = ends - starts >= hexlen + 2
    ok &= arr[np.minimum(starts + hexlen, size - 1)] == ord(":")
    # One gather of the first 16 bytes of every line through an overlapping
    # 16-byte strided view (short lines are clipped, and already flagged).
    view = np.ndarray(shape=(size - 15,), dtype="S16", buffer=arr, strides=(1,))
    words = view[np.minimum(starts, size - 16)].view("<u8").reshape(-1, 2)
    nib, valid = hex_words_to_nibbles(words)
    ok &= valid[:, 0] & valid[:, 1]
    keys = _pack_nibbles(nib)
    if prefix is not None:  # 5 digits from the file name + first 11 of the 35-digit suffix
        keys = (keys >> np.uint64(20)) | np.uint64(prefix << 44)
    if min_count > 1:
        counts, digits_ok = _parse_counts(arr, starts + hexlen + 1, ends)
        ok &= digits_ok
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        s, e = int(starts[i]), int(ends[i])
        line_no = line_base + (i if line_idx is None else int(line_idx[i])) + 1
        raise BuildError("malformed Pwned Passwords line (expected SHA1HEX:COUNT; use --format plain for a "
                         "password list)", path=path,
                         line_no=line_no, line=bytes(block[s:e]).rstrip(b"\r"))
    below = 0
    if min_count > 1:
        passing = counts >= min_count
        below = int(starts.size - np.count_nonzero(passing))
        keys = keys[passing]
    return keys, raw_lines, below


def _parse_counts(arr: np.ndarray, cstart: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = ends - cstart
    maxw = int(width.max(initial=0))
    ok = (width >= 1) & (width <= 18)
    counts = np.zeros(cstart.size, dtype=np.int64)
    for j in range(min(maxw, 18)):
        pos = cstart + j
        valid = pos < ends
        d = arr[np.minimum(pos, arr.size - 1)].astype(np.int64) - 48
        ok &= ~valid | ((d >= 0) & (d <= 9))
        counts = np.where(valid, counts * 10 + d, counts)
    return counts, ok


def read_pwned(path: str, fmt: Format, min_count: int, stats: ParseStats,
               progress: Callable[[int], None] | None = None,
               pool: Executor | None = None) -> Iterator[np.ndarray]:
    """Yield the keys of a Pwned Passwords file, block by block.

    With ``pool``, blocks are parsed on its threads (numpy releases the GIL,
    so two threads use two cores) while this thread reads ahead; at most
    MAX_INFLIGHT blocks are held, which bounds memory.  Results are consumed
    in order, so error line numbers stay exact.
    """
    prefix = None
    if fmt == "pwned-suffix":
        prefix = int(os.path.splitext(os.path.basename(path))[0], 16)

    def parse(block: memoryview) -> tuple[np.ndarray, int, int]:
        return parse_pwned_block(block, prefix=prefix, min_count=min_count, path=path, line_base=0)

    lines = 0
    pending: deque[tuple[Future[tuple[np.ndarray, int, int]] | tuple[np.ndarray, int, int], int]] = deque()

    def finish(item: Future[tuple[np.ndarray, int, int]] | tuple[np.ndarray, int, int],
               consumed: int) -> np.ndarray:
        nonlocal lines
        try:
            keys, n, below = item.result() if isinstance(item, Future) else item
        except BuildError as exc:
            raise BuildError("malformed Pwned Passwords line (expected SHA1HEX:COUNT; use --format plain "
                             "for a password list)", path=path, line_no=lines + (exc.line_no or 0),
                             line=exc.line) from None
        lines += n
        stats.pwned_lines += int(keys.size) + below
        stats.below_min_count += below
        if progress:
            progress(consumed)
        return keys

    try:
        for block, consumed in _read_chunks(path):
            pending.append((pool.submit(parse, block) if pool else parse(block), consumed))
            while len(pending) > (MAX_INFLIGHT if pool else 0):
                yield finish(*pending.popleft())
        while pending:
            yield finish(*pending.popleft())
    finally:
        for item, _ in pending:
            if isinstance(item, Future):
                item.cancel()


def _hash_lines(lines: Iterable[bytes]) -> Iterator[np.ndarray]:
    sha1, from_bytes = hashlib.sha1, int.from_bytes
    buf = array("Q")
    for line in lines:
        buf.append(from_bytes(sha1(line).digest()[:8], "big"))
        if len(buf) >= PLAIN_BATCH:
            yield np.frombuffer(buf, dtype=np.uint64).copy()
            buf = array("Q")
    if buf:
        yield np.frombuffer(buf, dtype=np.uint64).copy()


def read_plain(path: str, stats: ParseStats,
               progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """One password per line, UTF-8; only the line terminator is stripped.

    Lines are hashed as raw bytes, which equals hashing the UTF-8 text a user
    types; undecodable lines can simply never match.  Blank lines are skipped.
    """
    def lines() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            first = True
            for raw in fh:
                if progress:
                    progress(len(raw))
                line = raw.rstrip(b"\r\n")
                if first:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # UTF-8 BOM from some editors
                    first = False
                if line:
                    stats.plain_lines += 1
                    yield line
    return _hash_lines(lines())


def read_password_list(src: PasswordList, stats: ParseStats) -> Iterator[np.ndarray]:
    def lines() -> Iterator[bytes]:
        for pw in src.passwords:
            if pw:
                stats.plain_lines += 1
                yield pw.encode("utf-8")
    return _hash_lines(lines())
