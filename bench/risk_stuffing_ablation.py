"""Issue 16 v2.1 stuffing ablation (docs/RISK.md §6 v2.1): v2.1 + one change each.

    PYTHONPATH=. .venv/bin/python bench/risk_stuffing_ablation.py out/a.csv out/abl_stuff_a
"""
import sys
from authsvc.risk.evaluation.ablate import run_ablations, summarise
from authsvc.risk.evaluation.reference import REF_MU_UA
from authsvc.risk.evaluation.report import load
extra = {"v21": {}, "v21_mu_ua_ref": dict(mu_ua=REF_MU_UA), "v21_prior_form1": dict(prior_form=1),
         "v21_no_hour": dict(hour_weight=0.0), "v21_no_travel": dict(impossible_travel_weight=0.0),
         "v21_addone": dict(global_smoothing=1), "v21_user_smooth_0.25": dict(user_smoothing=0.25)}
names = list(extra)
paths = run_ablations(sys.argv[1], sys.argv[2], names, extra=extra)
print(summarise(load(sys.argv[1], paths), names, buckets=("all",)))
