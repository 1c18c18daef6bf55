"""Issue 16 v3.2: what-ifs on the recorded terms, without a replay per variant (docs/RISK.md §6 v3.2, naive in b).

The engine's score is a sum of terms (RiskEngine.terms); this replays the file once with the shipped engine, keeps
every row's terms (the `risk fit` collector), and re-adds them with one change each — drop the hour, travel,
velocity or prior term, scale the IP or UA likelihood — then reports all of them beside the reference. Learning does
not depend on the score, so a re-weighted sum is exactly what a replay of that variant would score.

    PYTHONPATH=. .venv/bin/python bench/risk_term_counterfactuals.py out/b23.csv out/b23_reference.csv out/cf_b23
"""
import pathlib
import sys

from authsvc.risk.evaluation.ablate import summarise
from authsvc.risk.evaluation.fit import collect
from authsvc.risk.evaluation.report import load


def main(src: str, reference: str, outdir: str) -> None:
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    c = collect(src, out / "v32.csv")
    ix = {name: i for i, name in enumerate(c.columns)}
    base, X = c.v2, c.X
    vel = [i for name, i in ix.items() if name.startswith("v:")]
    variants = {
        "v32": base,
        "no_hour": base - X[:, ix["hour"]],
        "no_travel": base - X[:, ix["travel"]],
        "no_velocity": base - X[:, vel].sum(axis=1),
        "no_prior": base - X[:, ix["prior"]],
        "ip_lr_x1.5": base + 0.5 * X[:, ix["ip_lr"]],
        "ua_lr_x0.5": base - 0.5 * X[:, ix["ua_lr"]],
        "ua_lr_x1.5": base + 0.5 * X[:, ix["ua_lr"]],
    }
    for name, scores in variants.items():
        with open(out / f"{name}.csv", "w") as f:
            f.write("index,score,decision,reasons\n")
            f.writelines(f"{i},{v:.4f},,\n" for i, v in zip(c.index, scores))
    names = list(variants)
    d = load(src, [out / f"{n}.csv" for n in names] + [reference])
    print(summarise(d, names + ["reference"], buckets=("all",)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
