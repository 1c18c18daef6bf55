"""Breached-password corpus: build, memory-map and query; plus an online range checker.

Design (chosen by measurement, see ``bench/breach.py`` and docs/BENCHMARKS.md):

* **Structure: binary fuse filters, one per shard, in our own mmap-able file.**
  Keys are the first 64 bits of SHA-1; the top ``shard_bits`` pick a shard of
  ~4 M keys (so building one needs ~150 MB whatever the input size).  Each
  shard is a 3-wise binary fuse filter built by pyfusefilter's C ``populate``
  fed straight from numpy; its fingerprint array is stored in the file, and
  lookups call the C ``contain`` on a struct that points into the read-only
  mapping (fuse.py), so all gunicorn workers share one page-cache copy.

* **Why not a sorted-fingerprint table** (top b bits pick a bucket of
  average load L; the next f bits are stored sorted and found with
  ``bisect``): its FP rate is ≈ L·2^-f at f + 32/L bits/entry.  Measured on
  2 M keys with f = 16: L = 16 gives 18.1 bits/entry at FP 2.1e-4, and L = 4
  gives 24.4 bits at FP 5e-5.  A 16-bit fuse filter gets FP 1.5e-5 at
  18.0 bits, and an 8-bit one gets FP 3.9e-3 at 9.0 bits; the table
  cannot reach the 8-bit variant's size at all.  Its lookups cost about the
  same (one ``bisect`` vs. one C call).  Elias-Fano or Golomb-coded lists reach
  f + 1.5-2 bits but need bit-level decoding per lookup, which is too slow
  in Python for a 2 µs budget.
  pyfusefilter's public objects are not used: their ``populate`` hashes each
  key in a Python loop (0.4-1.2 M keys/s measured vs. ~9 M keys/s for the C call
  from numpy) and their filter lives in a private heap buffer per process.

* **Build** streams the input through 256 spill files (bounded memory), then
  de-duplicates and builds each shard (build.py).  The text parser is
  vectorised numpy with SWAR hex decoding (parse.py).
"""

from .build import BuildResult, build_corpus
from .corpus import Corpus
from .default import ensure_default_corpus
from .errors import BreachCheckUnavailable, BreachError, BuildError, CorpusError
from .parse import PasswordList
from .range import DEFAULT_BASE_URL, RangeClient, RangeResult
from .service import (
                      BreachChecker,
                      ChainBreachChecker,
                      CorpusBreachChecker,
                      NullBreachChecker,
                      RangeBreachChecker,
)

__all__ = [
                      "DEFAULT_BASE_URL",
                      "BreachCheckUnavailable",
                      "BreachChecker",
                      "BreachError",
                      "BuildError",
                      "BuildResult",
                      "ChainBreachChecker",
                      "Corpus",
                      "CorpusBreachChecker",
                      "CorpusError",
                      "NullBreachChecker",
                      "PasswordList",
                      "RangeBreachChecker",
                      "RangeClient",
                      "RangeResult",
                      "build_corpus",
                      "ensure_default_corpus",
]
