"""On-disk layout of a corpus file (format version 1, little-endian).

::

    offset 0   preamble, 24 bytes: magic "ASBREACH" | u32 version | u32 meta_len
                                   | u32 shard_count | u32 header_crc32
    offset 24  metadata: UTF-8 JSON, ``meta_len`` bytes (zero padded after)
    SHARD_TABLE_OFFSET(meta_reserved)
               shard table: ``shard_count`` records of SHARD_DTYPE (48 bytes)
    data       per shard, a fingerprint array (u8 or u16), 64-byte aligned,
               at the absolute offset given in its record.

Integrity (why this choice): ``header_crc32`` covers preamble (crc field
zeroed), metadata and shard table, and is *always* checked at open, together
with the expected file size, so a truncated file or damaged header is refused
immediately at negligible cost.  Each shard record has a CRC-32 of its
fingerprint bytes.  Checking all of them reads the whole file (2 GB for the
full Pwned Passwords set, ~1-2 s per gunicorn worker), so the reader verifies
every shard at open only for files up to FULL_VERIFY_LIMIT and otherwise
verifies each shard on its first use in the process (a few MB, ~ms), raising
CorpusError — never answering "not breached" from unverified bytes.
CRC-32 is enough: the threat is accidental corruption; an attacker able to
write the corpus file can replace it wholesale anyway.
"""

from __future__ import annotations

import json
import mmap
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CorpusError

MAGIC = b"ASBREACH"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sIIII")
DATA_ALIGN = 64
FULL_VERIFY_LIMIT = 64 * 1024 * 1024  # bytes of fingerprints verified eagerly at open

SHARD_DTYPE = np.dtype([
    ("offset", "<u8"),  # absolute file offset of the fingerprint array
    ("seed", "<u8"),
    ("array_length", "<u4"),  # number of fingerprints (not bytes)
    ("key_count", "<u4"),
    ("segment_length", "<u4"),
    ("segment_length_mask", "<u4"),
    ("segment_count_length", "<u4"),
    ("crc32", "<u4"),
    ("mode", "u1"),  # hashing scheme; v1 has only MODE_DIRECT (see fuse.py)
    ("pad", "u1", (7,)),
])
assert SHARD_DTYPE.itemsize == 48


def align(n: int, to: int = DATA_ALIGN) -> int:
    return (n + to - 1) // to * to


def shard_table_offset(meta_reserved: int) -> int:
    return align(PREAMBLE.size + meta_reserved, 8)


@dataclass(frozen=True)
class Header:
    version: int
    meta: dict[str, Any]
    shards: np.ndarray  # SHARD_DTYPE records
    data_offset: int  # where fingerprint data starts

    @property
    def fingerprint_bits(self) -> int:
        return int(self.meta["fingerprint_bits"])

    @property
    def shard_bits(self) -> int:
        return int(self.meta["shard_bits"])


def encode_header(meta: dict[str, Any], shards: np.ndarray, meta_reserved: int) -> bytes:
    """Return preamble + metadata + shard table (with CRC), padded to data start."""
    meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(meta_bytes) > meta_reserved:
        raise ValueError(f"metadata of {len(meta_bytes)} bytes exceeds reserved {meta_reserved}")
    table_off = shard_table_offset(meta_reserved)
    body = bytearray(table_off)
    body[PREAMBLE.size:PREAMBLE.size + len(meta_bytes)] = meta_bytes
    body += shards.astype(SHARD_DTYPE, copy=False).tobytes()
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(meta_bytes), len(shards), 0)
    body[:PREAMBLE.size] = pre
    crc = zlib.crc32(body)
    body[:PREAMBLE.size] = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(meta_bytes), len(shards), crc)
    return bytes(body)


def decode_header(buf: bytes | memoryview | mmap.mmap, file_size: int, path: str) -> Header:
    """Parse and verify a header; raise CorpusError on any inconsistency."""
    if file_size < PREAMBLE.size:
        raise CorpusError(f"file too short for a corpus ({file_size} bytes)", path=path)
    magic, version, meta_len, shard_count, crc = PREAMBLE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CorpusError(f"not a breached-password corpus (magic {bytes(magic)!r})", path=path)
    if version != FORMAT_VERSION:
        raise CorpusError(f"unsupported corpus format version {version} (expected {FORMAT_VERSION})",
                          path=path)
    if meta_len > file_size:
        raise CorpusError(f"truncated header (metadata of {meta_len} bytes, file {file_size})", path=path)
    try:
        meta = json.loads(bytes(buf[PREAMBLE.size:PREAMBLE.size + meta_len]).decode("utf-8"))
        reserved = int(meta["meta_reserved"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"unreadable corpus metadata: {exc}", path=path) from exc
    table_off = shard_table_offset(reserved)
    table_end = table_off + shard_count * SHARD_DTYPE.itemsize
    if table_end > file_size:
        raise CorpusError(f"truncated header (shard table ends at {table_end}, file {file_size})", path=path)
    zeroed = PREAMBLE.pack(magic, version, meta_len, shard_count, 0)
    actual = zlib.crc32(bytes(buf[PREAMBLE.size:table_end]), zlib.crc32(zeroed))
    if actual != crc:
        raise CorpusError(f"header checksum mismatch (stored {crc:#010x}, computed {actual:#010x})", path=path)
    shards = np.frombuffer(bytes(buf[table_off:table_end]), dtype=SHARD_DTYPE)
    expected_size = int(meta.get("file_size", -1))
    if expected_size != file_size:
        raise CorpusError(f"file size {file_size} differs from recorded {expected_size} (truncated or "
                          "appended to)", path=path)
    if shard_count != 1 << int(meta["shard_bits"]):
        raise CorpusError(f"shard count {shard_count} inconsistent with shard_bits", path=path)
    return Header(version, meta, shards, table_end)
