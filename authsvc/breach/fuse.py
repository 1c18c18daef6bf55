"""Per-shard binary fuse filters: built and queried by pyfusefilter's C code.

Why not pyfusefilter's public API: ``Fuse8(...)``/``populate`` hashes every
key in a Python loop (``xxhash(str(key))``, ~1-2 M keys/s), and its filter
lives in a private C heap buffer, so each gunicorn worker would hold its own
deserialized copy.  We use the same compiled functions through the package's
cffi handle (version pinned) instead:

* build: a numpy ``uint64`` array goes straight to
  ``binary_fuse{8,16}_populate`` (no Python per key), and the resulting
  fingerprint array is copied into our file;
* lookup: a ``binary_fuse{8,16}_t`` struct whose ``Fingerprints`` pointer
  points *into the read-only mmap* is passed to ``binary_fuse{8,16}_contain``:
  zero copies, one shared page-cache copy for all processes.

The C code hashes a key as ``h = murmur64(key + seed)``; keys are already
uniform SHA-1 bits, the mixing just decorrelates a shard's (constant) top
bits from the segment choice.  :func:`py_contains` is the same lookup in
pure Python, used when the compiled module is unavailable and to cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BuildError

M64 = (1 << 64) - 1
MODE_DIRECT = 0  # the only mode of format v1: h = murmur64(key + seed), as in binaryfusefilter.h


def native() -> tuple[Any, Any] | None:
    """(ffi, lib) of pyfusefilter's compiled module, or None if not importable."""
    try:
        from pyfusefilter._xorfilter import ffi, lib
    except ImportError:
        return None
    return ffi, lib


def murmur64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def py_contains(key: int, params: tuple[int, int, int, int, Any, int]) -> bool:
    """Pure-Python ``binary_fuse*_contain`` (fingerprints: indexable u8/u16)."""
    seed, sl, slm, scl, fp, mask = params
    h = murmur64((key + seed) & M64)
    h0 = (h * scl) >> 64
    h1 = h0 + sl
    return ((h ^ (h >> 32)) & mask) == (fp[h0] ^ fp[h1 ^ ((h >> 18) & slm)] ^ fp[(h1 + sl) ^ (h & slm)])


@dataclass(frozen=True, slots=True)
class ShardFilter:
    """One built shard: parameters plus its fingerprint array."""

    seed: int
    segment_length: int
    segment_length_mask: int
    segment_count_length: int
    key_count: int
    fingerprints: np.ndarray  # uint8 or uint16, little-endian


def build_shard(keys: np.ndarray, bits: int) -> ShardFilter:
    """Build a binary fuse filter over ``keys`` (unique ``uint64``, any order)."""
    handle = native()
    if handle is None:
        raise BuildError("building a corpus needs the pyfusefilter package")
    ffi, lib = handle
    if bits not in (8, 16):
        raise BuildError(f"fingerprint bits must be 8 or 16, not {bits}")
    ctype = f"binary_fuse{bits}_t *"
    allocate = getattr(lib, f"binary_fuse{bits}_allocate")
    populate = getattr(lib, f"binary_fuse{bits}_populate")
    free = getattr(lib, f"binary_fuse{bits}_free")
    dtype = np.dtype(f"<u{bits // 8}")
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    n = int(keys.size)
    if n >= 1 << 32:
        raise BuildError(f"shard of {n} keys exceeds the C filter's 32-bit size")
    filt = ffi.new(ctype)
    if not allocate(n, filt):
        raise MemoryError(f"binary fuse allocation failed for {n} keys")
    try:
        ptr = ffi.cast("uint64_t *", ffi.from_buffer(keys)) if n else ffi.NULL
        if not populate(ptr, n, filt):  # keys are unique, so this is very unlikely
            raise BuildError(f"binary fuse construction failed for a shard of {n} keys")
        raw = ffi.buffer(filt.Fingerprints, filt.ArrayLength * dtype.itemsize)
        fps = np.frombuffer(raw, dtype=dtype.newbyteorder("=")).astype(dtype, copy=True)  # native -> LE
        return ShardFilter(int(filt.Seed), int(filt.SegmentLength), int(filt.SegmentLengthMask),
                           int(filt.SegmentCountLength), n, fps)
    finally:
        free(filt)
