"""Issue 16 v3.2: the week-long failing-accounts counter, validated on seeds it was not chosen on.

The stop-25 ablation (bench/risk_ip_accounts_ablation.py, files b23c / b404c) suggested a fixed 7-day window of
accounts that failed from an IP, threshold 10. This replays, in one pass: v3.1 (the day rule only), the week rule in
place of the day rule (at 10 and at 5), both rules adding up, v3.2 as shipped (both rules, one group: only the larger
term counts), v3.2 with a week set from which a later success from the IP removes the account ("net"), and the
reference:

    PYTHONPATH=. .venv/bin/python bench/risk_ip_week_validation.py out/a505c.csv out/week_a505c

and prints the ablation summary (`all` rows; AUC / TPR@1 % / TPR@0.1 % per attacker). Campaign intervals for a pair:
`risk report SRC out/week_X/v31.csv out/week_X/v32.csv --name v31 --name v32`.
"""
import dataclasses
import pathlib
import sys

from authsvc.risk.config import DEFAULT_VELOCITY_RULES, RiskConfig, VelocityRule
from authsvc.risk.evaluation import replay as rp
from authsvc.risk.evaluation.ablate import summarise
from authsvc.risk.evaluation.reference import ReferenceModel
from authsvc.risk.evaluation.report import load
from authsvc.risk.evaluation.velocity import IP_ACCOUNTS_WEEK_WINDOW, VelocityTracker
from authsvc.risk.model import RiskEngine
from authsvc.risk.store import InMemoryRiskStore


class NetTracker(VelocityTracker):
    """Adds ``ip_accounts_week_net``: the week count, where a success from the IP removes the account."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.net: dict[str, list] = {}

    def counters(self, ts, user, ip, prefix, asn):
        out = super().counters(ts, user, ip, prefix, asn)
        fa = self.net.get(ip)
        if fa is not None and ts < fa[0] and fa[1]:
            out["ip_accounts_week_net"] = float(len(fa[1]))
        return out

    def observe(self, ts, user, ip, prefix, asn, success, user_known):
        super().observe(ts, user, ip, prefix, asn, success, user_known)
        fa = self.net.get(ip)
        if not success:
            if fa is None or ts >= fa[0]:
                self.net[ip] = [ts + IP_ACCOUNTS_WEEK_WINDOW, {user}]
            else:
                fa[1].add(user)
        elif fa is not None:
            fa[1].discard(user)


def main(src, outdir):
    rp.VelocityTracker = NetTracker
    shipped = DEFAULT_VELOCITY_RULES
    by = {r.counter: r for r in shipped}
    day, week = by["ip_accounts_day"], by["ip_accounts_week"]
    others = tuple(r for r in shipped if r.counter not in ("ip_accounts_day", "ip_accounts_week"))
    day_alone, week_alone = dataclasses.replace(day, group=""), dataclasses.replace(week, group="")
    net = VelocityRule("ip_accounts_week_net", 10, 1.5, "ip_many_accounts_week", "{value:.0f}", group=week.group)
    variants = {
        "v31": others + (day_alone,),
        "week10": others + (week_alone,),
        "week5": others + (dataclasses.replace(week_alone, threshold=5),),
        "day5_week10": others + (day_alone, week_alone),
        "v32": shipped,
        "day5_or_net10": others + (day, net),
        "day5_or_net5": others + (day, dataclasses.replace(net, threshold=5)),
    }
    pathlib.Path(outdir).mkdir(parents=True, exist_ok=True)
    store = InMemoryRiskStore(max_entries=200, max_age_days=183)
    engines = [RiskEngine(store=store, config=dataclasses.replace(RiskConfig(), velocity_rules=r))
               for r in variants.values()]
    names = list(variants) + ["reference"]
    engines.append(ReferenceModel())
    rp.replay_many(src, [f"{outdir}/{n}.csv" for n in names], engines)
    d = load(src, [f"{outdir}/{n}.csv" for n in names])
    print(summarise(d, names, buckets=("all",)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
