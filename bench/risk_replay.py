"""Replay throughput: wall-clock and CPU rows/s on a login file in the RBA schema.

    PYTHONPATH=. .venv/bin/python bench/risk_replay.py /tmp/risk/big/logins.csv --rows 400000

CPU time is reported next to wall time because the benchmark machine is shared: under load the wall-clock
figure measures the neighbours as much as the code.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time

if "--pure-python-ua" in sys.argv:
    # Hide ua-parser-rs so ua-parser falls back to its pure-Python resolver (the before/after of issue 16).
    sys.modules["ua_parser_rs"] = None  # type: ignore[assignment]

from authsvc.risk.evaluation.replay import replay  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("logins")
    ap.add_argument("--rows", type=int, default=0, help="only the first N rows (0 = all)")
    ap.add_argument("--pure-python-ua", action="store_true", help="without ua-parser-rs (see the top of this file)")
    ap.add_argument("--scores-out", help="keep the score file here (to compare runs byte for byte)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.logins
        if args.rows:
            src = os.path.join(tmp, "slice.csv")
            with open(args.logins, encoding="utf-8") as fin, open(src, "w", encoding="utf-8") as fout:
                fout.writelines(itertools.islice(fin, args.rows + 1))  # simulator rows have no embedded newlines
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats = replay(src, os.path.join(tmp, "scores.csv"))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if args.scores_out:
            shutil.copyfile(os.path.join(tmp, "scores.csv"), args.scores_out)
    load = os.getloadavg()[0]
    print(f"{stats.rows} rows: wall {wall:.1f} s = {stats.rows / wall:,.0f} rows/s; "
          f"CPU {cpu:.1f} s = {stats.rows / cpu:,.0f} rows/s; load average {load:.1f} on {os.cpu_count()} CPUs; "
          f"UA resolver: {'pure Python' if args.pure_python_ua else 'ua-parser-rs'}")


if __name__ == "__main__":
    main()
