"""Issue 16 v3: owners' friction with the registration seed (docs/RISK.md §6 v3), from a replay's score file.

    PYTHONPATH=. .venv/bin/python bench/risk_registration_seed.py out/a11.csv out/a11_v2.csv

The simulator has no registration events, so the seed's effect is estimated, not replayed: an owner's first login
after a seed from the registering browser is scored against one earlier proven visit, as the owner's *second* login
is today (history 1). Its step-up rate at the defaults is the measured rate of owners' logins with history 1; the
per-user rates replace every first login's certain step-up (today) by that rate (expected value per user).
"""
import sys

import numpy as np

from authsvc.risk.evaluation.report import load

data = load(sys.argv[1], sys.argv[2])
dec = data.all_decisions[0]
owner = data.legit & data.evaluated
challenged = (dec != "allow") & owner
first = owner & (data.history == 0)
second = owner & (data.history == 1)
p1 = float(challenged[second].mean())
_, inv = np.unique(data.user[owner], return_inverse=True)
n = np.bincount(inv)
before = np.bincount(inv, weights=challenged[owner].astype(float)) / n
after_c = np.where(first[owner], p1, challenged[owner].astype(float))
after = np.bincount(inv, weights=after_c) / n
print(f"owners' logins in the window: {int(owner.sum())} of {len(n)} users; first logins {int(first.sum())} "
      f"(challenged today: {challenged[first].mean():.3f}); history-1 logins {int(second.sum())} challenged: {p1:.3f}")
for label, r in (("today (first login stepped up)", before), ("with the registration seed (estimate)", after)):
    print(f"{label}: per-user step-up rate median {np.median(r):.3f} mean {r.mean():.3f} p90 "
          f"{np.percentile(r, 90):.3f}; share of logins challenged {r.dot(n) / n.sum():.3f}")
