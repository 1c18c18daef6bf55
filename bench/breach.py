"""Benchmark of the breached-password corpus (authsvc.breach).

    .venv/bin/python bench/breach.py [--entries N] [--tmp DIR] [--baseline-sample N]

1. Generates N random SHA-1 hashes in Pwned Passwords text format
   (``SHA1HEX:COUNT\\r\\n``, sorted by hash like the real file).
2. Builds the corpus in a subprocess (``python -m authsvc.breach.cli build``)
   and takes its peak RSS from ``getrusage(RUSAGE_CHILDREN)``.
3. Times lookups including SHA-1 (p50/p99 over >=100k passwords) and the
   false-positive rate on 1 M random non-member passwords.
4. Baselines on a sample, so the structure choice is shown by measurement:
   pyfusefilter Fuse8 through its public API, and a sorted 16-bit
   fingerprints-in-buckets table (the "simple numpy" alternative).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from authsvc.breach.corpus import Corpus

BARS = {"bits8": 9.5, "bits16": 19.0, "lookup_us": 2.0, "rate": 2_000_000, "mem_mb": 2048}
HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


# Runs the CLI in the child and writes the child's own peak RSS (VmHWM, which
# exec resets) at exit: RUSAGE_CHILDREN.ru_maxrss would also count the
# parent's pages at fork time (the generator's arrays).
CHILD = """
import atexit, runpy, sys
hwm_file = sys.argv.pop(1)
def _hwm():
    with open('/proc/self/status') as f:
        kb = [l.split()[1] for l in f if l.startswith('VmHWM:')][0]
    with open(hwm_file, 'w') as f:
        f.write(kb)
atexit.register(_hwm)
sys.argv[0] = 'authsvc.breach.cli'
runpy.run_module('authsvc.breach.cli', run_name='__main__')
"""


def generate(path: str, n: int, seed: int = 1) -> float:
    """Write n sorted random hashes; return seconds taken."""
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    top = np.sort(rng.integers(0, 2**63 - 1, size=n, dtype=np.int64).astype(np.uint64) << np.uint64(1)
                  | rng.integers(0, 2, size=n, dtype=np.uint64))
    step = 1_000_000
    with open(path, "wb") as fh:
        for a in range(0, n, step):
            k = top[a:a + step]
            m = k.size
            rows = np.empty((m, 40 + 1 + 7 + 2), dtype=np.uint8)
            # 16 hex digits from the sorted top 64 bits, 24 random ones after.
            for j in range(16):
                rows[:, j] = HEX[(k >> np.uint64(60 - 4 * j)) & np.uint64(15)]
            rows[:, 16:40] = HEX[rng.integers(0, 16, size=(m, 24), dtype=np.uint8)]
            rows[:, 40] = ord(":")
            # Heavy-tailed counts with 1..7 digits, like the real file.
            counts = np.minimum((rng.pareto(1.2, m) + 1).astype(np.int64), 9_999_999)
            width = np.floor(np.log10(counts)).astype(np.int64) + 1
            for j in range(7):
                digit = (counts // 10 ** np.maximum(width - 1 - j, 0)) % 10
                rows[:, 41 + j] = np.where(j < width, 48 + digit, 0)
            idx = np.arange(m)
            rows[idx, 41 + width] = 13
            rows[idx, 42 + width] = 10
            mask = np.arange(rows.shape[1])[None, :] < (43 + width)[:, None]
            fh.write(rows[mask].tobytes())
    return time.perf_counter() - t


def time_lookups(fn, passwords: list[str]) -> tuple[float, float]:
    return time_interleaved({"f": fn}, passwords)["f"]


def time_interleaved(fns: dict, passwords: list[str]) -> dict[str, tuple[float, float]]:
    """p50/p99 in µs per call; the functions take turns on each password so a
    busy machine (shared CPUs) affects all of them alike."""
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {k: [] for k in fns}
    items = list(fns.items())
    for p in passwords:
        for name, fn in items:
            a = clock()
            fn(p)
            samples[name].append(clock() - a)
    out = {}
    for name, v in samples.items():
        v.sort()
        out[name] = (v[len(v) // 2] / 1000, v[int(len(v) * 0.99)] / 1000)
    return out


def sha1_only(p: str) -> int:
    return int.from_bytes(hashlib.sha1(p.encode()).digest()[:8], "big")


def random_passwords(n: int, tag: str) -> list[str]:
    return [f"{tag}-{x}" for x in np.random.default_rng(7).integers(0, 2**62, size=n).tolist()]


def baseline_pyfusefilter(n: int, ours: Corpus) -> dict[str, float]:
    """Fuse8 through pyfusefilter's public API, timed interleaved with ``ours``."""
    import pyfusefilter

    hexes = [hashlib.sha1(f"m{i}".encode()).hexdigest().upper() for i in range(n)]
    t = time.perf_counter()
    f = pyfusefilter.Fuse8(hexes)
    build = time.perf_counter() - t
    check = lambda p: f.contains(hashlib.sha1(p.encode()).hexdigest().upper())
    timed = time_interleaved({"pyfusefilter": check, "ours": ours.contains, "sha1": sha1_only},
                             random_passwords(100_000, "pff"))
    p50, p99 = timed["pyfusefilter"]
    non = random_passwords(200_000, "pfn")
    fp = sum(map(check, non)) / len(non)
    return {"keys": n, "bits": f.size_in_bytes() * 8 / n, "rate": n / build, "p50": p50, "p99": p99, "fp": fp,
            "ours_p50": timed["ours"][0], "sha1_p50": timed["sha1"][0]}


def baseline_sorted16(n: int, bucket_load: int = 16) -> dict[str, float]:
    """Top b bits pick a bucket, next 16 bits stored sorted; offsets as u32."""
    keys = np.unique(np.random.default_rng(3).integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) << np.uint64(1))
    b = max(1, round(np.log2(n / bucket_load)))
    t = time.perf_counter()
    bucket = keys >> np.uint64(64 - b)
    fps = ((keys >> np.uint64(48 - b)) & np.uint64(0xFFFF)).astype(np.uint16)  # sorted within bucket already
    offsets = np.searchsorted(bucket, np.arange((1 << b) + 1, dtype=np.uint64)).astype(np.uint32)
    build = time.perf_counter() - t
    fpv, offv = memoryview(fps.tobytes()).cast("H"), memoryview(offsets.tobytes()).cast("I")
    sh1, sh2 = 64 - b, 48 - b

    def contains(p: str) -> bool:
        k = int.from_bytes(hashlib.sha1(p.encode()).digest()[:8], "big")
        bk, f = k >> sh1, (k >> sh2) & 0xFFFF
        i = bisect.bisect_left(fpv, f, offv[bk], offv[bk + 1])
        return i < offv[bk + 1] and fpv[i] == f

    p50, p99 = time_lookups(contains, random_passwords(100_000, "s16"))
    non = random_passwords(200_000, "s16n")
    fp = sum(map(contains, non)) / len(non)
    bits = (fps.nbytes + offsets.nbytes) * 8 / keys.size
    return {"keys": int(keys.size), "bits": bits, "rate": keys.size / build, "p50": p50, "p99": p99, "fp": fp,
            "load": bucket_load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=50_000_000)
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8)
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    ap.add_argument("--baseline-sample", type=int, default=2_000_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    ap.add_argument("--non-members", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.entries
    work = tempfile.mkdtemp(prefix="breach-bench-", dir=args.tmp)
    try:
        src, out = os.path.join(work, "pwned.txt"), os.path.join(work, "bench.corpus")
        gen_s = generate(src, n)
        src_bytes = os.path.getsize(src)
        print(f"generated {n:,} lines ({src_bytes / 1e9:.2f} GB) in {gen_s:.1f} s", flush=True)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        hwm_file = os.path.join(work, "hwm")
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, hwm_file, "build", src, "-o", out,
                        "--bits", str(args.bits), "--tmp-dir", work, "--no-progress", "--fp-sample", "0"],
                       check=True, env=env)
        build_s = time.perf_counter() - t
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = usage.ru_utime + usage.ru_stime
        with open(hwm_file) as fh:
            peak_mb = int(fh.read()) / 1024
        os.unlink(src)

        corpus = Corpus.open(out)
        bpe = corpus.bits_per_entry()
        load_lookup = os.getloadavg()[0]
        timed = time_interleaved({"corpus": corpus.contains, "sha1": sha1_only},
                                 random_passwords(args.lookups, "look"))
        p50, p99 = timed["corpus"]
        non = random_passwords(args.non_members, "non")
        cpu0 = time.process_time()
        fp = sum(map(corpus.contains, non)) / len(non)
        cpu_per_lookup = (time.process_time() - cpu0) / len(non) * 1e6
        rate = n / build_s
        bar_bits = BARS[f"bits{args.bits}"]
        print(f"\n== authsvc.breach corpus, {n:,} entries, {args.bits}-bit fingerprints ==")
        print(f"file size            {corpus.file_size / 1e6:10.1f} MB")
        print(f"bits per entry       {bpe:10.3f}   bar <= {bar_bits}  ratio {bpe / bar_bits:.2f}")
        print(f"build wall time      {build_s:10.1f} s  (incl. interpreter start and corpus self-check)")
        print(f"build rate           {rate:10,.0f} lines/s  bar >= {BARS['rate']:,}  ratio {rate / BARS['rate']:.2f}"
              f"  (build CPU {cpu_s:.1f} s = {n / cpu_s:,.0f} lines per CPU-second; "
              f"1-min load avg at start {load_before:.1f} on {os.cpu_count()} CPUs)")
        print(f"peak build RSS       {peak_mb:10.0f} MB  bar <= {BARS['mem_mb']}  ratio {peak_mb / BARS['mem_mb']:.2f}")
        print(f"lookup incl. SHA-1   p50 {p50:.2f} us  p99 {p99:.2f} us  ({args.lookups:,} lookups)  "
              f"bar p50 <= {BARS['lookup_us']}  ratio {p50 / BARS['lookup_us']:.2f}")
        print(f"  reference: SHA-1 + key alone, interleaved: p50 {timed['sha1'][0]:.2f} us p99 {timed['sha1'][1]:.2f} us "
              f"(1-min load avg {load_lookup:.1f} on {os.cpu_count()} CPUs)")
        print(f"  mean CPU time per lookup incl. SHA-1 (process_time over the {len(non):,} FP lookups): "
              f"{cpu_per_lookup:.2f} us")
        print(f"false-positive rate  {fp:.5f} on {len(non):,} non-members  (expected ~{2.0 ** -args.bits:.5f})")

        s = min(args.baseline_sample, n)
        print(f"\n== baselines on a {s:,}-key sample ==")
        pf = baseline_pyfusefilter(s, corpus)
        print(f"pyfusefilter Fuse8 (public API): {pf['bits']:.2f} bits/entry, populate {pf['rate']:,.0f} keys/s, "
              f"lookup p50 {pf['p50']:.2f} us p99 {pf['p99']:.2f} us, FP {pf['fp']:.5f} "
              "(heap buffer, not mmap-shareable)")
        print(f"  interleaved with it: this corpus p50 {pf['ours_p50']:.2f} us, SHA-1 alone p50 {pf['sha1_p50']:.2f} us")
        del corpus
        for load in (4, 16):
            st = baseline_sorted16(s, load)
            print(f"sorted 16-bit fingerprints, bucket load {load}: {st['bits']:.2f} bits/entry, "
                  f"lookup p50 {st['p50']:.2f} us p99 {st['p99']:.2f} us, FP {st['fp']:.5f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
