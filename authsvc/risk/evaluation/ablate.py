"""Ablations (issue 16): many variants of the engine, and the reference, replayed in one pass of a login file.

Each ``v1_*`` variant changes one thing of the engine before issue 16 (``v1``) so the table says which part of the
model costs or gains what; ``v1_as_reference`` configures the engine to be the reference (a check of the maths: its
scores equal the reference's on every row of an account with history); ``v2*`` are today's defaults and variants. All engine variants share one store, so
history and global counts are learned once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
import numpy as np

from ..config import RiskConfig
from ..geo import GeoResolver
from ..model import RiskEngine
from ..store import InMemoryRiskStore
from .reference import REF_MU_IP, REF_MU_UA, ReferenceModel
from .replay import replay_many
from .report import BUCKETS, Loaded, _Prepared

__all__ = ["VARIANTS", "run_ablations", "summarise"]

_NO_CLIP = (-1e9, 1e9)
# The engine before issue 16 (v1): every ablation row changes one thing of it, so the rows stay meaningful
# whatever today's defaults are.
V1: dict[str, object] = dict(mu_ip=(0.45, 0.15, 0.30, 0.10), prior_form=0, prior_weight=1.0, hour_weight=0.5,
                             impossible_travel_weight=3.0, global_smoothing=0, user_smoothing=0.0)
_AS_REFERENCE = dict(global_smoothing=1, prior_form=1, mu_ip=REF_MU_IP, mu_ua=REF_MU_UA, hour_weight=0.0,
                     log_lr_clip=_NO_CLIP, impossible_travel_weight=0.0, velocity_rules=(),
                     history_max_entries=10**9, history_max_age_days=1e9)

# name → RiskConfig fields; "reference" is the separate ReferenceModel, "v2" today's defaults (RiskConfig()).
VARIANTS: dict[str, dict[str, object]] = {
    "v1": V1,
    "v1_as_reference": dict(V1, **_AS_REFERENCE),
    "v1_addone_global": dict(V1, global_smoothing=1),
    "v1_no_clip": dict(V1, log_lr_clip=_NO_CLIP),
    "v1_prior_off": dict(V1, prior_weight=0.0),
    "v1_prior_reference": dict(V1, prior_form=1),
    "v1_prior_form2": dict(V1, prior_form=2),
    "v1_no_hour": dict(V1, hour_weight=0.0),
    "v1_hour_1.0": dict(V1, hour_weight=1.0),
    "v1_mu_ip_reference": dict(V1, mu_ip=REF_MU_IP),
    "v1_mu_ua_reference": dict(V1, mu_ua=REF_MU_UA),
    "v1_no_velocity": dict(V1, velocity_rules=()),
    "v1_no_travel": dict(V1, impossible_travel_weight=0.0),
    "v1_travel_1.5": dict(V1, impossible_travel_weight=1.5),
    "v1_user_smoothing_1": dict(V1, user_smoothing=1.0),
    "v2": {},
    "v2_prior_off": dict(prior_weight=0.0),
    "v2_prior_half": dict(prior_weight=0.5),
}


def run_ablations(logins: str | Path, outdir: str | Path, names: list[str] | None = None,
                  geo: GeoResolver | None = None, extra: dict[str, dict[str, object]] | None = None) -> list[Path]:
    variants = dict(VARIANTS, **(extra or {}))
    names = names or [*variants, "reference"]
    base = RiskConfig()
    store = InMemoryRiskStore(max_entries=10**9, max_age_days=1e9)
    # Engines with the default history bounds need their own store (bounds are applied on read and on learn).
    bounded = InMemoryRiskStore(max_entries=base.history_max_entries, max_age_days=base.history_max_age_days)
    engines: list[RiskEngine | ReferenceModel] = []
    for name in names:
        if name == "reference":
            engines.append(ReferenceModel(geo=geo))
            continue
        cfg = dataclasses.replace(base, **variants[name])  # type: ignore[arg-type]  # base = RiskConfig()
        unbounded = cfg.history_max_entries >= 10**9
        engines.append(RiskEngine(store=store if unbounded else bounded, config=cfg, geo=geo))
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{n}.csv" for n in names]
    replay_many(logins, list(paths), engines)
    return paths


def summarise(data: Loaded, names: list[str], buckets: tuple[str, ...] = ("all", "1-3", ">=12")) -> str:
    """Point estimates per variant and attacker type: AUC / TPR@1%FPR / TPR@0.1%FPR (no intervals: ablation)."""
    assert data.all_scores is not None
    bk = {b: (lo, hi) for b, lo, hi in BUCKETS}
    bk["all"] = (1, 10**9)
    types = sorted({t for t in data.attack_type if t})
    base = data.evaluated & (data.history >= 1)
    head = ["variant"] + [f"{t} {b}" for t in types for b in buckets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, sc in zip(names, data.all_scores):
        cells = [name]
        for t in types:
            for b in buckets:
                lo, hi = bk[b]
                m = base & (data.history >= lo) & (data.history <= hi)
                lm, am = m & data.legit, m & (data.attack_type == t)
                if lm.sum() < 2 or am.sum() < 20:
                    cells.append("–")
                    continue
                p = _Prepared(sc[lm], data.user[lm], sc[am])
                r = p.metrics(np.ones(p.n_users), np.ones(int(am.sum())))
                cells.append(f"{r['auc']:.3f} / {r['tpr@1%fpr']:.3f} / {r['tpr@0.1%fpr']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

