"""Issue 16 v3: why the reference ranks stuffing rows higher (docs/RISK.md §6 v3) — its prior drifts with time.

    PYTHONPATH=. .venv/bin/python bench/risk_stuffing_time.py out/a11.csv out/a11_v2.csv out/a11_reference.csv

The reference's prior log((N+1)/(n_u+1)) is the engine's log((N+1)/(U·(n_u+1))) plus log U(t), U(t) the accounts
with a successful login so far: a constant that grows with time. Prints, per attacker type (victims with history,
evaluated window): the number of campaigns' distinct days, the mean log U(t) of its rows against owners', and AUC /
TPR@1 % / TPR@0.1 % of both score files against (1) all owners and (2) only owners' logins within 3 days of
the attack rows, where log U(t) is about the same for both classes.
"""
import csv
import sys

import numpy as np

from authsvc.risk.evaluation.report import _Prepared, load
from authsvc.risk.evaluation.schema import parse_bool, parse_timestamp

logins, engine, reference = sys.argv[1:4]
with open(logins, newline="", encoding="utf-8") as fh:
    reader = csv.reader(fh)
    col = {n: i for i, n in enumerate(next(reader))}
    rows = sorted(((parse_timestamp(r[col["Login Timestamp"]]), r[col["User ID"]], parse_bool(r[col["Login Successful"]]))
                   for r in reader), key=lambda x: x[0])
seen: set[str] = set()
log_u, day = [], []
for t, user, ok in rows:  # the same time order as report.load (stable sort by timestamp)
    log_u.append(np.log(max(len(seen), 1)))
    day.append(int(t // 86400))
    if ok:
        seen.add(user)
log_u, day = np.asarray(log_u), np.asarray(day)
data = load(logins, [engine, reference])
base = data.evaluated & (data.history >= 1)
owners = base & data.legit
print(f"owners' logins: {int(owners.sum())}, mean log U(t) {log_u[owners].mean():.3f}")
for kind in sorted({t for t in data.attack_type if t}):
    am = base & (data.attack_type == kind)
    if am.sum() < 20:
        continue
    near = np.unique((day[am][:, None] + np.arange(-3, 4)[None, :]).ravel())  # the attack days ± 3
    same_day = owners & np.isin(day, near)
    print(f"{kind}: {int(am.sum())} rows on {len(np.unique(day[am]))} days, mean log U(t) {log_u[am].mean():.3f} "
          f"(owners {log_u[owners].mean():.3f}, +{log_u[am].mean() - log_u[owners].mean():.3f})")
    for label, own in (("all owners", owners), (f"owners within 3 days ({int(same_day.sum())})", same_day)):
        cells = []
        for name, sc in zip(("authsvc", "reference"), data.all_scores):
            p = _Prepared(sc[own], data.user[own], sc[am])
            r = p.metrics(np.ones(p.n_users), np.ones(int(am.sum())))
            cells.append(f"{name} {r['auc']:.3f} / {r['tpr@1%fpr']:.3f} / {r['tpr@0.1%fpr']:.3f}")
        print(f"   {label}: " + " | ".join(cells))
