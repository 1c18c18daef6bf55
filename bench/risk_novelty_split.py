"""Issue 16 v3.1 (docs/RISK.md §6): which attacks of one type each model catches, split by what the victim's
history already held (country / ASN / device type / OS / browser seen in an earlier successful login).

    PYTHONPATH=. .venv/bin/python bench/risk_novelty_split.py out/b23.csv out/b23_v2.csv out/b23_reference.csv [naive]

Caught = scored above the model's own threshold at 1 % FPR over the owners' evaluated logins (victims with history,
after the report's 25 % warm-up), as in `risk report`.
"""

from __future__ import annotations

import collections
import csv
import sys

import numpy as np

from authsvc.risk.evaluation.schema import ATTACK_TYPE_COLUMN, parse_bool, parse_timestamp

LEVELS = (("country", "Country"), ("asn", "ASN"), ("device type", "Device Type"), ("os", "OS Name and Version"),
          ("browser", "Browser Name and Version"))


def _scores(path: str) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        return {row[0]: float(row[1]) for row in reader}


def main(logins: str, mine: str, ref: str, kind: str = "naive") -> None:
    a, b = _scores(mine), _scores(ref)
    with open(logins, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        col = {n: i for i, n in enumerate(next(reader))}
        rows = sorted(reader, key=lambda r: r[col["Login Timestamp"]])
    ts = [parse_timestamp(r[col["Login Timestamp"]]) for r in rows]
    cutoff = ts[0] + 0.25 * (ts[-1] - ts[0])
    seen: dict[str, dict[str, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    n: collections.Counter[str] = collections.Counter()
    owners_a, owners_b, attacks = [], [], []
    for t, r in zip(ts, rows):
        user, ok, label = r[col["User ID"]], parse_bool(r[col["Login Successful"]]), r[col[ATTACK_TYPE_COLUMN]]
        evaluated = t >= cutoff and n[user] >= 1
        if evaluated and ok and not label and not parse_bool(r[col["Is Attack IP"]]):
            owners_a.append(a[r[0]])
            owners_b.append(b[r[0]])
        if evaluated and label == kind:
            held = tuple(name for name, c in LEVELS if r[col[c]] in seen[user][name])
            attacks.append((a[r[0]], b[r[0]], held))
        if ok and not label:
            for name, c in LEVELS:
                seen[user][name].add(r[col[c]])
            n[user] += 1
    ta, tb = np.percentile(owners_a, 99), np.percentile(owners_b, 99)
    groups: dict[tuple[str, ...], list[tuple[bool, bool]]] = collections.defaultdict(list)
    for sa, sb, held in attacks:
        groups[held].append((sa > ta, sb > tb))
    print(f"{kind}: {len(attacks)} attacks; thresholds at 1 % FPR {ta:.3f} / {tb:.3f}")
    print("| seen before | attacks | caught first / second |\n|---|---|---|")
    for held, v in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        arr = np.array(v)
        print(f"| {' + '.join(held) or 'nothing'} | {len(v)} | {arr[:, 0].mean():.3f} / {arr[:, 1].mean():.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
