"""Issue 16: first-login friction vs attacks on accounts without history at no_history_log_lr = 0 and -2.

    PYTHONPATH=. .venv/bin/python bench/risk_first_login.py out/a.csv out/a_v2.csv
"""
import csv, sys, numpy as np
from authsvc.risk.evaluation.report import load
src, sc = sys.argv[1], sys.argv[2]
d = load(src, sc)
ok = []
with open(src) as f:
    r = csv.DictReader(f); rows = sorted(r, key=lambda x: x["Login Timestamp"])
ok = np.array([x["Login Successful"] in ("True", "true", "1") for x in rows])
atk = (d.attack_type != "") & (d.history == 0)
for name, m in (("attack rows on no-history accounts", atk), ("…with the right password", atk & ok)):
    s = d.scores[m]
    print(name, m.sum(), "stepped up at nh=0:", round(float((s >= -1).mean()), 3), "at nh=-2:", round(float((s - 2 >= -1).mean()), 3))
    for t in sorted(set(d.attack_type[m])):
        mm = m & (d.attack_type == t); s = d.scores[mm]
        print("  ", t, mm.sum(), round(float((s - 2 >= -1).mean()), 3))
first = d.legit & d.evaluated & (d.history == 0)
print("owners' first logins", first.sum(), "stepped up at nh=-2:", round(float((d.scores[first] - 2 >= -1).mean()), 4))
