"""CPU cost of scoring with fitted term weights (`risk fit`) against the v2 sum, in the same run.

    PYTHONPATH=. .venv/bin/python bench/risk_fit_cost.py out/a.csv out/w_a.json --rows 100000

Replays the first N rows of a login file twice per round, alternating v2 / fitted (in-memory store, velocity
counters on), and prints the CPU seconds of each and the ratio fitted / v2 per round and the median. The replay
includes feature extraction, the store and the CSV I/O, i.e. everything a score costs besides Redis.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time

from authsvc.risk import RiskEngine
from authsvc.risk.evaluation.replay import replay
from authsvc.risk.weights import load_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("logins")
    ap.add_argument("weights")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cfg = load_weights(args.weights)
    print("load:", open("/proc/loadavg").read().split()[:3])
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "slice.csv")
        with open(args.logins, encoding="utf-8") as fin, open(src, "w", encoding="utf-8") as fout:
            fout.writelines(itertools.islice(fin, args.rows + 1))
        ratios = []
        for r in range(args.rounds):
            cpu = {}
            for name, engine in (("v2", RiskEngine()), ("fitted", RiskEngine(config=cfg))):
                c0 = time.process_time()
                replay(src, os.path.join(tmp, f"{name}.csv"), engine=engine)
                cpu[name] = time.process_time() - c0
            ratios.append(cpu["fitted"] / cpu["v2"])
            print(f"round {r + 1}: v2 {cpu['v2']:.2f} CPU-s, fitted {cpu['fitted']:.2f} CPU-s, "
                  f"ratio {ratios[-1]:.3f} ({args.rows / cpu['v2']:,.0f} vs {args.rows / cpu['fitted']:,.0f} rows/CPU-s)")
        print(f"median ratio fitted / v2: {statistics.median(ratios):.3f}")
    print("load:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
