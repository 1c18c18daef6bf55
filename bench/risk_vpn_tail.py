"""Issue 16: who are the lowest-scoring 0.5 % of VPN probes (docs/RISK.md §6 v2.1)?

    PYTHONPATH=. .venv/bin/python bench/risk_vpn_tail.py out/b.csv out/b_v2.csv
"""
import csv, numpy as np, sys
from authsvc.risk.evaluation.report import load
src, sc = sys.argv[1], sys.argv[2]
d = load(src, sc)
# per-row context
rows = {}
with open(src) as f:
    r = csv.DictReader(f)
    allrows = sorted(r, key=lambda x: x["Login Timestamp"])
hist_asn, hist_ua, hist_cc, hist_br = {}, {}, {}, {}
from authsvc.risk.ua import parse_ua
info = []
for x in allrows:
    u = x["User ID"]; ua = parse_ua(x["User Agent String"])
    info.append((x["ASN"] in hist_asn.get(u, ()), x["User Agent String"] in hist_ua.get(u, ()),
                 (ua.browser, ua.os) in hist_br.get(u, ()), ua.device_type in {t for (_, _, t) in hist_cc.get(u, ())}))
    if x["Login Successful"] in ("True", "true", "1"):
        hist_asn.setdefault(u, set()).add(x["ASN"]); hist_ua.setdefault(u, set()).add(x["User Agent String"])
        hist_br.setdefault(u, set()).add((ua.browser, ua.os)); hist_cc.setdefault(u, set()).add((0, 0, ua.device_type))
info = np.array(info)
m = d.evaluated & (d.history >= 1)
a = m & (d.attack_type == "vpn"); l = m & d.legit
s = d.scores
t = np.quantile(s[a], 0.005)
low = a & (s <= t)
print("vpn attacks", a.sum(), "0.5% threshold", round(t, 3), "n low", low.sum())
print("owner logins at/above threshold:", round((s[l] >= t).mean(), 3))
for name, col in zip(("same ASN", "same UA string", "same browser+OS", "same device type"), info.T):
    print(f"{name}: low {col[low].mean():.2f}  all vpn {col[a].mean():.3f}")
print("clone share low", d.clone[low].mean(), "history of low", np.percentile(d.history[low], [10, 50, 90]))
print("same ASN and same browser+OS:", (info[:, 0] & info[:, 2])[a].mean())
