"""Read-only, memory-mapped corpus reader.

The file is mapped with ``ACCESS_READ``: every process mapping it (gunicorn
workers, CLI) shares the same page-cache pages, nothing is copied into the
heap, and the mapping cannot be written through.  A ``Corpus`` is immutable
after open except for the per-shard "verified" slots, whose races are benign
(a shard may be verified twice), so one instance is safe to share across
threads; the C lookup only reads.

A lookup is SHA-1, a shift to pick the shard, and one call of the compiled
``binary_fuse*_contain`` on a struct pointing into the mapping (see fuse.py);
without the compiled module it falls back to the same lookup in Python.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
import zlib
from collections.abc import Callable
from typing import Any, Literal

from .errors import CorpusError
from .format import FULL_VERIFY_LIMIT, Header, decode_header
from .fuse import MODE_DIRECT, native, py_contains
from .keys import sha1_key

_sha1 = hashlib.sha1
_from_bytes = int.from_bytes

Verify = Literal["auto", "full", "lazy"]


def _native_shard(handle: tuple[Any, Any], bits: int, raw: memoryview, seed: int, sl: int, slm: int, scl: int,
                  n: int, keys: int) -> tuple[Callable[[int, Any], bool], Any, Any]:
    """(contain_fn, C struct pointing into the mapping, buffer object to keep alive).

    The ``from_buffer`` object holds a buffer export on the mmap, so while the
    Corpus keeps it, the mapping cannot be closed or unmapped under C.
    """
    ffi, lib = handle
    filt = ffi.new(f"binary_fuse{bits}_t *")
    filt.Seed, filt.Size, filt.SegmentLength, filt.SegmentLengthMask = seed, keys, sl, slm
    filt.SegmentCount, filt.SegmentCountLength, filt.ArrayLength = scl // sl, scl, n
    buf = ffi.from_buffer(raw)
    filt.Fingerprints = ffi.cast(f"uint{bits}_t *", buf)
    contain = lib.binary_fuse8_contain if bits == 8 else lib.binary_fuse16_contain
    return contain, filt, buf


def _close_quietly(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except BufferError:  # views still referenced (e.g. by a traceback): GC unmaps later
        pass


class Corpus:
    """An opened corpus file.  Use :meth:`open`."""

    def __init__(self, path: str, header: Header, mm: mmap.mmap, file_size: int, verify: Verify,
                 use_native: bool = True) -> None:
        self.path = path
        self.header = header
        self.file_size = file_size
        self._mm = mm
        bits = header.fingerprint_bits
        if bits not in (8, 16):
            raise CorpusError(f"unsupported fingerprint size {bits}", path=path)
        if bits == 16 and sys.byteorder != "little":  # the file is little-endian; keep it simple
            raise CorpusError("16-bit corpora need a little-endian host", path=path)
        self._shift = 64 - header.shard_bits  # key >> 64 == 0 for the single-shard case
        handle = native() if use_native else None
        self.native = handle is not None
        view = memoryview(mm)
        itemsize = bits // 8
        # Per shard: (contain_fn, arg) so that a lookup is ``fn(key, arg)``.
        # _shards[i] stays None until shard i's CRC is verified, so the
        # lookup's single falsy test also covers lazy verification.
        self._params: list[tuple[Callable[[int, Any], bool], Any]] = []
        self._crc_views: list[memoryview] = []
        self._keepalive: list[Any] = []  # C lookups read through these; the closures below hold self
        for i, rec in enumerate(header.shards):
            off, n = int(rec["offset"]), int(rec["array_length"])
            seed, sl = int(rec["seed"]), int(rec["segment_length"])
            slm, scl = int(rec["segment_length_mask"]), int(rec["segment_count_length"])
            end = off + n * itemsize
            # Checked once here so no lookup (C or Python) can read outside the shard.
            if off < header.data_offset or end > file_size or scl + 2 * sl > n or slm >= sl or sl == 0:
                raise CorpusError("shard record out of bounds", path=path, shard=i)
            if int(rec["mode"]) != MODE_DIRECT:
                raise CorpusError(f"unknown shard mode {int(rec['mode'])}", path=path, shard=i)
            raw = view[off:end]
            self._crc_views.append(raw)
            if handle is not None:
                fn, filt, buf = _native_shard(handle, bits, raw, seed, sl, slm, scl, n, int(rec["key_count"]))
                self._params.append((fn, filt))
                self._keepalive.append(buf)
            else:
                fps = raw.cast("H") if bits == 16 else raw
                self._params.append((py_contains, (seed, sl, slm, scl, fps, (1 << bits) - 1)))
        self._shards: list[tuple[Callable[[int, Any], bool], Any] | None] = [None] * len(self._params)
        self.contains = self._make_contains()  # type: ignore[method-assign,assignment]
        data_bytes = file_size - header.data_offset
        if verify == "full" or (verify == "auto" and data_bytes <= FULL_VERIFY_LIMIT):
            self.verify()

    # ----------------------------------------------------------------- open
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: Verify = "auto", use_native: bool = True) -> Corpus:
        """Map ``path`` and check its header; raise CorpusError if unusable.

        ``verify``: "full" checks every shard CRC now; "lazy" on first use of
        each shard; "auto" (default) is full up to 64 MiB of data, else lazy.
        ``use_native=False`` forces the pure-Python lookup (tests).
        """
        spath = os.fspath(path)
        try:
            with open(spath, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0:
                    raise CorpusError("empty file", path=spath)
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise CorpusError(f"cannot open corpus: {exc.strerror or exc}", path=spath) from exc
        try:
            header = decode_header(mm, size, spath)
            return cls(spath, header, mm, size, verify, use_native)
        except BaseException:
            _close_quietly(mm)
            raise

    # --------------------------------------------------------------- verify
    def _verify_shard(self, i: int) -> tuple[Callable[[int, Any], bool], Any]:
        if zlib.crc32(self._crc_views[i]) != int(self.header.shards[i]["crc32"]):
            raise CorpusError("shard checksum mismatch (file corrupt)", path=self.path, shard=i)
        self._shards[i] = self._params[i]
        return self._params[i]

    def verify(self) -> None:
        """Check every shard's checksum now (reads the whole file)."""
        for i in range(len(self._params)):
            self._verify_shard(i)

    # --------------------------------------------------------------- lookup
    def contains_key(self, key: int) -> bool:
        """Membership of a 64-bit key (may be a false positive, never a false negative)."""
        i = key >> self._shift
        fn, arg = self._shards[i] or self._verify_shard(i)
        return bool(fn(key, arg))

    def contains(self, password: str) -> bool:
        """True if ``password`` is (probably) in the corpus.

        Replaced per instance by :meth:`_make_contains`'s closure (same logic).
        """
        return self.contains_key(_from_bytes(_sha1(password.encode()).digest()[:8], "big"))

    def _make_contains(self) -> Callable[[str], bool]:
        """The hot path as a closure: ``contains_key(password_key(pw))`` inlined,
        with its state in closure cells instead of attribute lookups; Python
        call overhead is a measurable share of the 2 µs budget."""
        # ``verify`` is a bound method: the closure keeps this Corpus (and so the
        # mapping the C structs point into) alive as long as it is referenced.
        shards, shift, verify = self._shards, self._shift, self._verify_shard
        sha1, from_bytes = _sha1, _from_bytes

        def contains(password: str) -> bool:
            key = from_bytes(sha1(password.encode()).digest()[:8], "big")
            i = key >> shift
            fn, arg = shards[i] or verify(i)
            return bool(fn(key, arg))

        return contains

    def contains_sha1(self, sha1_hex: str) -> bool:
        """True if the SHA-1 (40 hex digits, any case) is (probably) in the corpus."""
        return self.contains_key(sha1_key(sha1_hex))

    # ----------------------------------------------------------------- info
    @property
    def meta(self) -> dict[str, Any]:
        return self.header.meta

    @property
    def entry_count(self) -> int:
        return int(self.header.meta["entry_count"])

    @property
    def min_count(self) -> int:
        """Threshold the corpus was built with (1 = everything included)."""
        return int(self.header.meta.get("min_count") or 1)

    def bits_per_entry(self) -> float:
        return self.file_size * 8 / max(1, self.entry_count)

    def __repr__(self) -> str:
        return f"Corpus({self.path!r}, entries={self.entry_count}, bits={self.header.fingerprint_bits})"
