"""Ablations (issue 16): many variants of the engine, and the reference, replayed in one pass of a login file.

Each variant changes one thing of the shipped default (``base``) so the table says which part of the model costs
or gains what; ``engine_as_reference`` configures the engine to be the reference (a check of the maths: its scores
must equal the reference's on every row of an account with history). All engine variants share one store, so
history and global counts are learned once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

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
_AS_REFERENCE = dict(global_smoothing=1, prior_form=1, mu_ip=REF_MU_IP, mu_ua=REF_MU_UA, hour_weight=0.0,
                     log_lr_clip=_NO_CLIP, impossible_travel_weight=0.0, velocity_rules=(),
                     history_max_entries=10**9, history_max_age_days=1e9)

# name → changes to the base (default) RiskConfig; "reference" is the separate ReferenceModel.
VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "engine_as_reference": _AS_REFERENCE,
    "addone_global": dict(global_smoothing=1),
    "prior_as_reference": dict(prior_form=1),
    "prior_off": dict(prior_weight=0.0),
    "no_clip": dict(log_lr_clip=_NO_CLIP),
    "no_hour": dict(hour_weight=0.0),
    "mu_ip_reference": dict(mu_ip=REF_MU_IP),
    "mu_ua_reference": dict(mu_ua=REF_MU_UA),
    "no_velocity": dict(velocity_rules=()),
    "no_travel": dict(impossible_travel_weight=0.0),
    "user_smoothing_1": dict(user_smoothing=1.0),
    "user_smoothing_0.5": dict(user_smoothing=0.5),
    "user_smoothing_2": dict(user_smoothing=2.0),
    "us1_mu_ip_ref": dict(user_smoothing=1.0, mu_ip=REF_MU_IP),
    "us1_mu_ip_ref_prior_ref": dict(user_smoothing=1.0, mu_ip=REF_MU_IP, prior_form=1),
    # candidates for the new default, built from the single-change rows above
    "cand_prior_half": dict(mu_ip=REF_MU_IP, prior_form=1, prior_weight=0.5),
    "cand_prior_half_travel": dict(mu_ip=REF_MU_IP, prior_form=1, prior_weight=0.5, impossible_travel_weight=1.5),
    "cand_prior_off": dict(mu_ip=REF_MU_IP, prior_weight=0.0),
    "cand_prior_ref": dict(mu_ip=REF_MU_IP, prior_form=1),
    "cand_prior_ref_hour1": dict(mu_ip=REF_MU_IP, prior_form=1, hour_weight=1.0),
    "cand_prior_ref_hour1_min3": dict(mu_ip=REF_MU_IP, prior_form=1, hour_weight=1.0, hour_min_history=3),
    "cand_prior_ref_hour1_travel": dict(mu_ip=REF_MU_IP, prior_form=1, hour_weight=1.0, impossible_travel_weight=1.5),
    "cand_prior_0.75_hour1": dict(mu_ip=REF_MU_IP, prior_form=1, prior_weight=0.75, hour_weight=1.0),
    "cand_prior2_hour1_travel": dict(mu_ip=REF_MU_IP, prior_form=2, hour_weight=1.0, impossible_travel_weight=1.5),
    "prior2": dict(prior_form=2),
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
        cfg = dataclasses.replace(base, **variants[name])  # type: ignore[arg-type]
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
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             "(each cell: AUC / TPR@1%FPR / TPR@0.1%FPR)"]
    lines = lines[:2]
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


Summary = Callable[[Loaded, list[str]], str]
