"""Issue 16 v2.1 ablation (docs/RISK.md §6 v2.1): v2 + one long-window distinct-accounts counter (per IP or /24,
failures only or all attempts, 1 or 7 days, threshold 5 or 10), all variants and the reference in one replay pass.

    PYTHONPATH=. .venv/bin/python bench/risk_ip_accounts_ablation.py out/a.csv out/abl_ipacc_a
"""
import dataclasses, sys
from authsvc.risk.config import RiskConfig, VelocityRule, DEFAULT_VELOCITY_RULES
from authsvc.risk.model import RiskEngine
from authsvc.risk.store import InMemoryRiskStore
from authsvc.risk.evaluation import replay as rp
from authsvc.risk.evaluation.velocity import VelocityTracker
from authsvc.risk.evaluation.reference import ReferenceModel

# v2 = today's rules without v2.1's ip_accounts_day, so every row adds one counter to v2.
BASE = tuple(r for r in DEFAULT_VELOCITY_RULES if r.counter != "ip_accounts_day")
WINDOWS = {"1d": 86400, "7d": 7 * 86400}

class X(VelocityTracker):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.fw = {}  # (kind, win, ip) -> [start, set]
    def counters(self, ts, user, ip, prefix, asn):
        out = super().counters(ts, user, ip, prefix, asn)
        for kind in ("fail", "all"):
            for wn, w in WINDOWS.items():
                for lvl, key in (("ip", ip), ("pfx", prefix)):
                    e = self.fw.get((kind, wn, lvl, key))
                    if e and ts < e[0] + w:
                        out[f"{lvl}acc_{kind}_{wn}"] = float(len(e[1]))
        return out
    def observe(self, ts, user, ip, prefix, asn, success, user_known):
        super().observe(ts, user, ip, prefix, asn, success, user_known)
        for kind in ("fail", "all"):
            if kind == "fail" and success:
                continue
            for wn, w in WINDOWS.items():
                for lvl, key in (("ip", ip), ("pfx", prefix)):
                    k = (kind, wn, lvl, key)
                    e = self.fw.get(k)
                    if e is None or ts >= e[0] + w:
                        e = self.fw[k] = [ts, set()]
                    e[1].add(user)

rp.VelocityTracker = X
variants = {"v2": ()}
for lvl in ("ip", "pfx"):
    for kind in ("fail", "all"):
        for wn in WINDOWS:
            for thr in (5, 10):
                c = f"{lvl}acc_{kind}_{wn}"
                variants[f"{c}_t{thr}"] = (VelocityRule(c, thr, 1.5, c, "{value}"),)
variants["v2_no_ipdistinct"] = "drop"
src, outdir = sys.argv[1], sys.argv[2]
import pathlib; pathlib.Path(outdir).mkdir(exist_ok=True)
store = InMemoryRiskStore(max_entries=200, max_age_days=183)
engines, names = [], []
for n, extra in variants.items():
    if extra == "drop":
        rules = tuple(r for r in BASE if r.counter != "ip_distinct_users")
    else:
        rules = BASE + extra
    engines.append(RiskEngine(store=store, config=dataclasses.replace(RiskConfig(), velocity_rules=rules)))
    names.append(n)
engines.append(ReferenceModel()); names.append("reference")
rp.replay_many(src, [f"{outdir}/{n}.csv" for n in names], engines)
from authsvc.risk.evaluation.report import load
from authsvc.risk.evaluation.ablate import summarise
d = load(src, [f"{outdir}/{n}.csv" for n in names])
print(summarise(d, names, buckets=("all", "1-3")))
