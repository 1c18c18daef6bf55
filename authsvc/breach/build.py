"""Corpus builder: external bucket spill, then one binary fuse filter per shard.

Memory is bounded independently of input size:

1. *Spill.*  Inputs are parsed in 16 MiB blocks; each block's keys are
   partitioned by their top 8 bits and appended to 256 temp files.
2. *Shard.*  With the total known, ``shard_bits`` is chosen so a shard holds
   about TARGET_SHARD_KEYS keys (~24 bytes/key while the C code builds it,
   ~200 MB).  A shard is loaded from the spill files that cover it, de-duplicated
   (``np.unique``), built and appended to the output.  A spill file that is
   larger than MAX_LOAD_KEYS (only for inputs >8 billion lines) is first
   re-spilled by shard in streaming fashion, so no step loads more than a
   bounded number of keys.

Both phases run on THREADS worker threads (numpy and the cffi call release
the GIL), with a bounded look-ahead so memory stays bounded.

The output is written to ``<output>.tmp.<pid>`` and renamed into place, so a
reader never sees a half-written corpus.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import numpy as np

from .errors import BuildError
from .format import (
    FORMAT_VERSION,
    SHARD_DTYPE,
    align,
    encode_header,
    shard_table_offset,
)
from .fuse import MODE_DIRECT, build_shard
from .parse import (
    InputFormat,
    ParseStats,
    PasswordList,
    detect_format,
    read_password_list,
    read_plain,
    read_pwned,
)

SPILL_BITS = 8
TARGET_SHARD_KEYS = 1 << 22
MAX_LOAD_KEYS = 1 << 25
READ_CHUNK_KEYS = 1 << 22
MEMORY_KEYS = 1 << 23  # keys buffered in memory (64 MiB) before spilling to disk
THREADS = max(1, min(2, os.cpu_count() or 1))  # parse / shard-build worker threads

T = TypeVar("T")
R = TypeVar("R")

Input = str | os.PathLike[str] | PasswordList


class Progress:
    """Progress sink; the default does nothing.  The CLI draws bars with it."""

    def start(self, phase: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


@dataclass
class BuildResult:
    path: str
    entries: int
    file_size: int
    bits: int
    shard_bits: int
    input_lines: int
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bits_per_entry(self) -> float:
        return self.file_size * 8 / max(1, self.entries)

    @property
    def lines_per_second(self) -> float:
        return self.input_lines / max(self.seconds, 1e-9)


def _expand(inputs: Sequence[Input], fmt: InputFormat) -> tuple[list[tuple[Any, str]], list[dict[str, Any]]]:
    """Resolve inputs to (source, format) pairs plus a compact description for the header."""
    files: list[tuple[Any, str]] = []
    described: list[dict[str, Any]] = []
    for item in inputs:
        if isinstance(item, PasswordList):
            files.append((item, "plain-memory"))
            described.append({"name": item.name, "format": "plain"})
            continue
        path = os.fspath(item)
        if os.path.isdir(path):
            found = sorted(os.path.join(root, name) for root, dirs, names in os.walk(path)
                           for name in names if not name.startswith("."))
            if not found:
                raise BuildError("input folder has no files", path=path)
            kinds: dict[str, int] = {}
            for f in found:
                k = detect_format(f, fmt)
                kinds[k] = kinds.get(k, 0) + 1
                files.append((f, k))
            described.append({"path": os.path.abspath(path), "files": len(found), "formats": kinds})
        elif os.path.isfile(path):
            k = detect_format(path, fmt)
            files.append((path, k))
            described.append({"path": os.path.abspath(path), "format": k, "bytes": os.path.getsize(path)})
        else:
            raise BuildError("input not found", path=path)
    return files, described


class _Spill:
    """256 append-only temp files of raw little-endian uint64 keys.

    The first MEMORY_KEYS keys are only buffered in memory: small builds (the
    default corpus, tests) then never touch the disk, and 256 file creations
    cost more than the whole build on a busy filesystem.
    """

    def __init__(self, tmp: str) -> None:
        self.dir = tmp
        self.counts = np.zeros(1 << SPILL_BITS, dtype=np.int64)
        self._files: dict[int, IO[bytes]] = {}
        self._memory: list[np.ndarray] | None = []
        self._buffered = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self._buffered

    def in_memory(self) -> np.ndarray | None:
        """All keys if nothing was spilled to disk, else None."""
        if self._memory is None:
            return None
        return np.concatenate(self._memory) if self._memory else np.empty(0, dtype=np.uint64)

    def path(self, b: int) -> str:
        return os.path.join(self.dir, f"spill-{b:03d}.u64")

    def add(self, keys: np.ndarray) -> None:
        if keys.size == 0:
            return
        if self._memory is not None:
            self._memory.append(keys)
            self._buffered += int(keys.size)
            if self._buffered <= MEMORY_KEYS:
                return
            keys, self._memory, self._buffered = np.concatenate(self._memory), None, 0  # spill from now on
        bucket = (keys >> np.uint64(64 - SPILL_BITS)).astype(np.uint16)
        order = np.argsort(bucket, kind="stable")
        keys = keys[order]
        counts = np.bincount(bucket, minlength=1 << SPILL_BITS)
        self.counts += counts
        pos = 0
        for b in np.flatnonzero(counts):
            n = int(counts[b])
            fh = self._files.get(int(b))
            if fh is None:
                # Held open across add() calls (closed in close()): reopening 256 files per block is slow.
                fh = self._files[int(b)] = open(self.path(int(b)), "ab")  # noqa: SIM115
            fh.write(keys[pos:pos + n].astype("<u8", copy=False).tobytes())
            pos += n

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def load(self, b: int) -> np.ndarray:
        if not self.counts[b]:
            return np.empty(0, dtype=np.uint64)
        return np.fromfile(self.path(b), dtype="<u8").astype(np.uint64, copy=False)

    def stream(self, b: int) -> Iterator[np.ndarray]:
        if not self.counts[b]:
            return
        with open(self.path(b), "rb") as fh:
            while chunk := fh.read(READ_CHUNK_KEYS * 8):
                yield np.frombuffer(chunk, dtype="<u8").astype(np.uint64)


def _in_order(pool: Executor, fn: Callable[[T], R], items: Iterator[T]) -> Iterator[R]:
    """Map ``fn`` over ``items`` on ``pool`` with at most THREADS tasks ahead.

    Shard building is C (cffi releases the GIL) and numpy, so threads use
    both cores; the small look-ahead bounds memory to THREADS+1 shards.
    """
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > THREADS:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def choose_shard_bits(total_keys: int) -> int:
    if total_keys <= TARGET_SHARD_KEYS:
        return 0
    return min(24, math.ceil(math.log2(total_keys / TARGET_SHARD_KEYS)))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sort + drop duplicates.  Not np.unique: numpy 2.x uses a hash table
    there, ~10x slower on 64-bit keys; a stable (tim)sort is linear on the
    already-sorted Pwned Passwords file."""
    keys.sort(kind="stable")
    if keys.size < 2:
        return keys
    keep = np.empty(keys.size, dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys if keep.all() else keys[keep]


def _shard_key_sets(spill: _Spill, shard_bits: int, tmp: str) -> Iterator[np.ndarray]:
    """Yield the de-duplicated keys of shard 0, 1, ... 2**shard_bits - 1, in order."""
    everything = spill.in_memory()
    if everything is not None:  # small input: nothing on disk
        keys = _sorted_unique(everything)
        shard_of = keys >> np.uint64(64 - shard_bits) if shard_bits else np.zeros(keys.size, np.uint64)
        bounds = np.searchsorted(shard_of, np.arange((1 << shard_bits) + 1, dtype=np.uint64))
        for i in range(1 << shard_bits):
            yield keys[bounds[i]:bounds[i + 1]]
        return
    if shard_bits <= SPILL_BITS:
        per = 1 << (SPILL_BITS - shard_bits)
        for s in range(1 << shard_bits):
            parts = [spill.load(b) for b in range(s * per, (s + 1) * per)]
            yield _sorted_unique(np.concatenate(parts))
        return
    split = shard_bits - SPILL_BITS
    shift = np.uint64(64 - shard_bits)
    for b in range(1 << SPILL_BITS):
        first = b << split
        if spill.counts[b] <= MAX_LOAD_KEYS:
            keys = _sorted_unique(spill.load(b))
            bounds = np.searchsorted(keys >> shift, np.arange(first, first + (1 << split) + 1, dtype=np.uint64))
            for i in range(1 << split):
                yield keys[bounds[i]:bounds[i + 1]]
            continue
        # Oversized spill bucket: re-spill by shard without loading it whole.
        sub = os.path.join(tmp, f"sub-{b:03d}")
        os.mkdir(sub)
        handles = [open(os.path.join(sub, f"{i}.u64"), "wb") for i in range(1 << split)]  # noqa: SIM115 (closed below)
        try:
            for chunk in spill.stream(b):
                local = (chunk >> shift).astype(np.int64) - first
                order = np.argsort(local, kind="stable")
                counts = np.bincount(local, minlength=1 << split)
                chunk, pos = chunk[order], 0
                for j in np.flatnonzero(counts).tolist():
                    n = int(counts[j])
                    handles[j].write(chunk[pos:pos + n].astype("<u8").tobytes())
                    pos += n
        finally:
            for h in handles:
                h.close()
        os.unlink(spill.path(b))
        for i in range(1 << split):
            p = os.path.join(sub, f"{i}.u64")
            yield _sorted_unique(np.fromfile(p, dtype="<u8").astype(np.uint64))
            os.unlink(p)


def build_corpus(inputs: Sequence[Input], output: str | os.PathLike[str], *, bits: int = 8,
                 min_count: int | None = None, input_format: InputFormat = "auto",
                 shard_bits: int | None = None, tmp_dir: str | None = None,
                 source_label: str | None = None, progress: Progress | None = None) -> BuildResult:
    """Build a corpus file at ``output`` from Pwned Passwords text and/or plain lists.

    ``min_count``: drop Pwned Passwords lines seen fewer times (plain-list
    entries have no count and always pass).  ``shard_bits`` overrides the
    automatic choice (tests).  Raises BuildError on bad input.
    """
    if bits not in (8, 16):
        raise BuildError(f"--bits must be 8 or 16, not {bits}")
    if min_count is not None and min_count < 1:
        raise BuildError(f"--min-count must be >= 1, not {min_count}")
    if not inputs:
        raise BuildError("no input given")
    progress = progress or Progress()
    started = time.monotonic()
    output = os.fspath(output)
    files, described = _expand(inputs, input_format)
    stats = ParseStats()
    threshold = min_count or 1
    # Exit order: the pool is shut down (waiting for in-flight tasks) before the temp dir goes.
    with tempfile.TemporaryDirectory(prefix="breach-build-", dir=tmp_dir) as tmp, \
            ThreadPoolExecutor(THREADS, thread_name_prefix="breach-build") as pool:
        spill = _Spill(tmp)
        progress.start("reading", sum(os.path.getsize(f) for f, k in files if k != "plain-memory"))
        try:
            for src, kind in files:
                stats.formats[kind] = stats.formats.get(kind, 0) + 1
                if kind == "plain-memory":
                    chunks = read_password_list(src, stats)
                elif kind == "plain":
                    chunks = read_plain(src, stats, progress.advance)
                else:
                    chunks = read_pwned(src, kind, threshold, stats, progress.advance, pool)  # type: ignore[arg-type]
                for keys in chunks:
                    spill.add(keys)
        finally:
            spill.close()
            progress.finish()
        total = spill.total
        sbits = choose_shard_bits(total) if shard_bits is None else shard_bits
        if not 0 <= sbits <= 24:
            raise BuildError(f"shard_bits must be in 0..24, not {sbits}")
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "builder": "authsvc.breach",
            "filter": "binary-fuse-3 (pyfusefilter C populate, per shard)",
            "key": "first 64 bits of SHA-1, big-endian; shard = top shard_bits bits",
            "fingerprint_bits": bits,
            "expected_fp_rate": 2.0 ** -bits,
            "shard_bits": sbits,
            "min_count": min_count,
            "source": source_label or ", ".join(d.get("path", d.get("name", "?")) for d in described),
            "sources": described,
            "build_date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
            "input_lines": stats.pwned_lines + stats.plain_lines,
            "pwned_lines": stats.pwned_lines,
            "plain_lines": stats.plain_lines,
            "below_min_count": stats.below_min_count,
        }
        # Reserve room for the fields only known at the end (numbers, <= 20 chars each).
        meta_reserved = align(len(json.dumps(meta)) + 512, 8)
        meta.update(entry_count=0, file_size=0, bits_per_entry=0.0, meta_reserved=meta_reserved)
        table = np.zeros(1 << sbits, dtype=SHARD_DTYPE)
        data_offset = align(shard_table_offset(meta_reserved) + table.nbytes)
        tmp_out = f"{output}.tmp.{os.getpid()}"
        entries = 0
        try:
            with open(tmp_out, "wb") as out:
                pos = data_offset
                progress.start("building shards", 1 << sbits)
                built = _in_order(pool, lambda keys: build_shard(keys, bits),
                                  _shard_key_sets(spill, sbits, tmp))
                for i, shard in enumerate(built):
                    data = shard.fingerprints.tobytes()
                    out.seek(pos)
                    out.write(data)
                    table[i] = (pos, shard.seed, shard.fingerprints.size, shard.key_count, shard.segment_length,
                                shard.segment_length_mask, shard.segment_count_length, zlib.crc32(data),
                                MODE_DIRECT, 0)
                    entries += shard.key_count
                    pos = align(pos + len(data))
                    progress.advance(1)
                progress.finish()
                file_size = pos
                out.truncate(file_size)
                meta.update(entry_count=entries, file_size=file_size,
                            bits_per_entry=round(file_size * 8 / max(1, entries), 4))
                out.seek(0)
                out.write(encode_header(meta, table, meta_reserved))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_out, output)
        except BaseException:
            if os.path.exists(tmp_out):
                os.unlink(tmp_out)
            raise
    return BuildResult(output, entries, file_size, bits, sbits, int(meta["input_lines"]),
                       time.monotonic() - started, meta)
