"""Evaluation of a replay: per attacker type and history bucket, with bootstrap 95 % intervals.

Protocol (Wiefling et al., ACM TOPS 2022, as in RISK.md):

* legitimate = successful, non-attack logins of users with earlier history (≥ 1 prior successful login);
* attacks of a type = rows labelled with that type whose victim has earlier history (the bucket is the victim's);
  without an ``Attack Type`` column (the real dataset) the types are ``ato`` (Is Account Takeover) and
  ``attack_ip`` (other rows from attack IPs);
* history = number of earlier successful logins of the user in the file;
* rows in the first ``warmup`` fraction of the time span are not evaluated (they are still replayed), so global
  frequencies are populated - the time split of the published protocol.

Metrics: ROC AUC (ties count ½); TPR at 1 % and 0.1 % FPR; and the median over users of the share of a user's
legitimate logins (in the bucket) that must re-authenticate when the threshold blocks 99.5 % / 99 % of attacks.
Intervals: percentile bootstrap, resampling users (legitimate side, as clusters) and attacks independently; the
attack side resamples campaigns when the file has a ``Campaign`` column (rows of one stuffing campaign share its IP
pool, UA choice and hours: six campaigns are six draws, not 3,000), single rows otherwise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .schema import ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN, parse_bool, parse_timestamp

__all__ = ["threshold_table", "BUCKETS", "Metrics", "load", "evaluate", "auc", "format_table", "clone_shares", "PairedMetrics",
           "evaluate_paired", "format_paired", "friction"]

BUCKETS: tuple[tuple[str, int, int], ...] = (("all", 1, 10**9), ("1-3", 1, 3), ("4-11", 4, 11), (">=12", 12, 10**9), (">=39", 39, 10**9))
METRIC_NAMES = ("auc", "tpr@1%fpr", "tpr@0.1%fpr", "reauth@99.5%", "reauth@99%")


@dataclass
class Loaded:
    scores: np.ndarray
    history: np.ndarray
    user: np.ndarray  # integer user id
    legit: np.ndarray  # bool
    attack_type: np.ndarray  # object: "" for non-attack
    evaluated: np.ndarray  # bool: after warm-up
    clone: np.ndarray  # bool: same ASN and exact UA string as an earlier successful login of the same user
    # Every score file given to load(), in order (scores is the first); decisions of each (the replay's action).
    all_scores: list[np.ndarray] | None = None
    all_decisions: list[np.ndarray] | None = None
    # The bootstrap's unit on the attack side: rows of one campaign share an id; every other row has its own.
    cluster: np.ndarray | None = None


@dataclass
class Metrics:
    attack: str
    bucket: str
    n_legit: int
    n_users: int
    n_attack: int
    point: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n_clusters: int = 0  # resampled units on the attack side (= n_attack without a Campaign column)


def _read_scores(scores: str | Path) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    with open(scores, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            out[row[0]] = (float(row[1]), row[2])
    return out


def load(logins: str | Path, scores: str | Path | Sequence[str | Path], warmup: float = 0.25) -> Loaded:
    """Labels from the logins file; scores from one score file or several (paired comparison of models)."""
    paths = [scores] if isinstance(scores, (str, Path)) else list(scores)
    tables = [_read_scores(p) for p in paths]
    score_by_index = {k: v[0] for k, v in tables[0].items()}
    indices: list[str] = []
    ts_list, hist, users, legit, types, sc, clone, clusters = [], [], [], [], [], [], [], []
    campaign_ids: dict[str, int] = {}
    uid_map: dict[str, int] = {}
    prior: dict[str, int] = {}
    seen_pairs: set[tuple[str, str, str]] = set()  # (user, ASN, UA) of successful logins, for the clone diagnostic
    with open(logins, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {n: i for i, n in enumerate(header)}
        i_idx, i_ts, i_user, i_ok = col["index"], col["Login Timestamp"], col["User ID"], col["Login Successful"]
        i_aip, i_ato, i_type = col["Is Attack IP"], col["Is Account Takeover"], col.get(ATTACK_TYPE_COLUMN)
        i_asn, i_ua, i_camp = col["ASN"], col["User Agent String"], col.get(CAMPAIGN_COLUMN)
        rows = sorted(reader, key=lambda r: r[i_ts])  # history must follow time order, like the replay
    for row in rows:
        user = row[i_user]
        ok = parse_bool(row[i_ok])
        if i_type is not None:
            kind = row[i_type]
        elif parse_bool(row[i_ato]):
            kind = "ato"
        elif parse_bool(row[i_aip]):
            kind = "attack_ip"
        else:
            kind = ""
        h = prior.get(user, 0)
        ts_list.append(parse_timestamp(row[i_ts]))
        hist.append(h)
        users.append(uid_map.setdefault(user, len(uid_map)))
        legit.append(ok and not kind and not parse_bool(row[i_aip]))
        types.append(kind)
        sc.append(score_by_index.get(row[i_idx], np.nan))
        indices.append(row[i_idx])
        camp = row[i_camp] if i_camp is not None and kind else ""
        # A campaign's id is negative (its number), any other row's its position: distinct, and in row order.
        clusters.append(-1 - campaign_ids.setdefault(camp, len(campaign_ids)) if camp else len(clusters))
        pair = (user, row[i_asn], row[i_ua])
        clone.append(bool(kind) and pair in seen_pairs)
        if ok:
            prior[user] = h + 1
            seen_pairs.add(pair)
    ts = np.asarray(ts_list)
    cutoff = ts.min() + warmup * (ts.max() - ts.min()) if len(ts) else 0.0
    scores_arr = np.asarray(sc, dtype=float)
    if np.isnan(scores_arr).any():
        raise ValueError(f"{int(np.isnan(scores_arr).sum())} rows of the logins file have no score")
    all_scores, all_decisions = [scores_arr], []
    for k, table in enumerate(tables):
        if k:
            arr = np.asarray([table[i][0] if i in table else np.nan for i in indices], dtype=float)
            if np.isnan(arr).any():
                raise ValueError(f"{int(np.isnan(arr).sum())} rows of the logins file have no score in {paths[k]}")
            all_scores.append(arr)
        all_decisions.append(np.asarray([table[i][1] for i in indices], dtype=object))
    return Loaded(scores_arr, np.asarray(hist), np.asarray(users), np.asarray(legit), np.asarray(types, dtype=object),
                  ts >= cutoff, np.asarray(clone, dtype=bool), all_scores, all_decisions, np.asarray(clusters))


def clone_shares(data: Loaded) -> dict[str, tuple[int, float]]:
    """Per attack type: evaluable attacks and the share that reuse the victim's own ASN *and* exact UA string.

    No model that sees only IP-derived and UA-derived features can rank such an attack above the victim's own
    logins from that network and device, so if this share exceeds 0.5 % (1 %) the re-authentication rate at
    99.5 % (99 %) blocked is necessarily close to 1 - whatever the model.
    """
    out: dict[str, tuple[int, float]] = {}
    base = data.evaluated & (data.history >= 1)
    for kind in sorted({t for t in data.attack_type if t}):
        mask = base & (data.attack_type == kind)
        n = int(mask.sum())
        if n:
            out[kind] = (n, float(data.clone[mask].mean()))
    return out


def auc(legit: np.ndarray, attack: np.ndarray) -> float:
    """P(score_attack > score_legit) + ½ P(equal): Mann-Whitney, computed with a sort (ties by searchsorted)."""
    s = np.sort(legit)
    below = np.searchsorted(s, attack, "left")
    equal = np.searchsorted(s, attack, "right") - below
    return float((below + 0.5 * equal).sum() / (len(legit) * len(attack)))


class _Prepared:
    """Sorting done once; each bootstrap replicate only re-weights (O(n) instead of O(n log n))."""

    def __init__(self, legit: np.ndarray, legit_users: np.ndarray, attack: np.ndarray) -> None:
        order = np.argsort(legit, kind="stable")
        self.l_sorted = legit[order]
        self.l_order = order
        self.legit = legit
        _, self.l_user = np.unique(legit_users, return_inverse=True)
        self.n_users = int(self.l_user.max()) + 1 if len(legit) else 0
        self.a_sorted = np.sort(attack)
        self.a_left = np.searchsorted(self.l_sorted, self.a_sorted, "left")
        self.a_right = np.searchsorted(self.l_sorted, self.a_sorted, "right")

    def metrics(self, w_user: np.ndarray, w_attack: np.ndarray) -> dict[str, float]:
        w_l = w_user[self.l_user].astype(float)  # a user drawn k times counts k times
        cw = np.concatenate(([0.0], np.cumsum(w_l[self.l_order])))
        W_l, W_a = cw[-1], float(w_attack.sum())
        out: dict[str, float] = {}
        below, equal = cw[self.a_left], cw[self.a_right] - cw[self.a_left]
        out["auc"] = float((w_attack * (below + 0.5 * equal)).sum() / (W_l * W_a))
        cwa = np.concatenate(([0.0], np.cumsum(w_attack)))
        for name, fpr in (("tpr@1%fpr", 0.01), ("tpr@0.1%fpr", 0.001)):
            # Threshold = the legitimate score above which at most `fpr` of the legitimate weight lies.
            k = min(int(np.searchsorted(cw[1:], (1 - fpr) * W_l, "left")), len(self.l_sorted) - 1)
            t = self.l_sorted[k]
            j = np.searchsorted(self.a_sorted, t, "right")
            out[name] = float((W_a - cwa[j]) / W_a)
        for name, blocked in (("reauth@99.5%", 0.995), ("reauth@99%", 0.99)):
            # Highest threshold that still blocks (score ≥ t) `blocked` of the attack weight.
            k = min(int(np.searchsorted(cwa[1:], (1 - blocked) * W_a, "right")), len(self.a_sorted) - 1)
            t = self.a_sorted[k]
            flagged = (self.legit >= t).astype(float)
            per_user_n = np.bincount(self.l_user, minlength=self.n_users)
            per_user_f = np.bincount(self.l_user, weights=flagged, minlength=self.n_users)
            rate = per_user_f / np.maximum(per_user_n, 1)
            out[name] = _weighted_median(rate, w_user.astype(float))
        return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    mask = weights > 0
    v, w = values[mask], weights[mask]
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w)
    return float(v[np.searchsorted(cw, 0.5 * cw[-1], "left")])


class _AttackDraw:
    """Bootstrap weights for the attack rows of one cell: campaigns (or single rows) drawn with replacement, each
    row weighted by how often its unit was drawn. With one unit per row this is the plain row bootstrap, draw for
    draw (the same random numbers: paired reports of files without a Campaign column do not change)."""

    def __init__(self, clusters: np.ndarray) -> None:
        _, self.unit = np.unique(clusters, return_inverse=True)
        self.n = int(self.unit.max()) + 1 if len(clusters) else 0

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        return rng.multinomial(self.n, np.full(self.n, 1.0 / self.n))[self.unit]


def _clusters(data: Loaded, mask: np.ndarray) -> np.ndarray:
    return data.cluster[mask] if data.cluster is not None else np.arange(int(mask.sum()))


def evaluate(data: Loaded, *, bootstrap: int = 200, seed: int = 0, min_attacks: int = 20) -> list[Metrics]:
    rng = np.random.default_rng(seed)
    types = sorted({t for t in data.attack_type if t})
    results: list[Metrics] = []
    base = data.evaluated & (data.history >= 1)
    for kind in types:
        for bucket, lo, hi in BUCKETS:
            in_b = base & (data.history >= lo) & (data.history <= hi)
            lmask = in_b & data.legit
            amask = in_b & (data.attack_type == kind)
            n_l, n_a = int(lmask.sum()), int(amask.sum())
            if n_l < 2 or n_a < min_attacks:
                continue
            prep = _Prepared(data.scores[lmask], data.user[lmask], data.scores[amask])
            point = prep.metrics(np.ones(prep.n_users), np.ones(n_a))
            draw = _AttackDraw(_clusters(data, amask))
            a_order = np.argsort(data.scores[amask], kind="stable")  # _Prepared holds the attacks sorted
            reps = {m: [] for m in METRIC_NAMES}
            for _ in range(bootstrap):
                wu = rng.multinomial(prep.n_users, np.full(prep.n_users, 1.0 / prep.n_users))
                wa = draw(rng)[a_order]
                for m, v in prep.metrics(wu, wa).items():
                    reps[m].append(v)
            ci = {m: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (np.nan, np.nan)
                  for m, v in reps.items()}
            results.append(Metrics(kind, bucket, n_l, prep.n_users, n_a, point, ci, draw.n))
    return results


def _cell(point: float, lo: float, hi: float, *, signed: bool = False) -> str:
    """A point estimate with its interval; without one (``--bootstrap 0``) the point alone, not "[nan, nan]"."""
    f = "{:+.3f}" if signed else "{:.3f}"
    if np.isnan(lo) or np.isnan(hi):
        return f.format(point)
    return f"{f.format(point)} [{f.format(lo)}, {f.format(hi)}]"


def _attacks(r: "Metrics | PairedMetrics") -> str:
    """The attack count, and the campaigns it was resampled by when those are fewer than the rows."""
    if not 0 < r.n_clusters < r.n_attack:
        return str(r.n_attack)
    # Below a handful of campaigns the resampling cannot see how campaigns differ: the interval then reflects the
    # owners' side only, and says so.
    return f"{r.n_attack} ({r.n_clusters} campaign{'s' if r.n_clusters > 1 else ''}{'; too few to resample' if r.n_clusters < 5 else ''})"


def format_table(results: Sequence[Metrics]) -> str:
    head = "| attacker | history | legit logins (users) | attacks | ROC AUC | TPR@1%FPR | TPR@0.1%FPR | re-auth @99.5% blocked | re-auth @99% blocked |"
    lines = [head, "|" + "---|" * 9]
    for r in results:
        cells = []
        for m in METRIC_NAMES:
            lo, hi = r.ci[m]
            cells.append(_cell(r.point[m], lo, hi))
        lines.append(f"| {r.attack} | {r.bucket} | {r.n_legit} ({r.n_users}) | {_attacks(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- several models on the same rows: paired bootstrap ------------------------------------------------------------


@dataclass
class PairedMetrics:
    """One (attacker, bucket) cell for several models; ``diff`` = first model − second, on the same replicates."""

    attack: str
    bucket: str
    n_legit: int
    n_users: int
    n_attack: int
    point: list[dict[str, float]]
    ci: list[dict[str, tuple[float, float]]]
    diff: dict[str, float]
    diff_ci: dict[str, tuple[float, float]]
    n_clusters: int = 0


def evaluate_paired(data: Loaded, *, bootstrap: int = 200, seed: int = 0, min_attacks: int = 20) -> list[PairedMetrics]:
    """Like :func:`evaluate` for every score file of ``data``, with the same bootstrap draws for all models, so
    the interval of the difference between the first two models is a paired one."""
    assert data.all_scores is not None and len(data.all_scores) >= 2
    rng = np.random.default_rng(seed)
    types = sorted({t for t in data.attack_type if t})
    out: list[PairedMetrics] = []
    base = data.evaluated & (data.history >= 1)
    for kind in types:
        for bucket, lo, hi in BUCKETS:
            in_b = base & (data.history >= lo) & (data.history <= hi)
            lmask = in_b & data.legit
            amask = in_b & (data.attack_type == kind)
            n_l, n_a = int(lmask.sum()), int(amask.sum())
            if n_l < 2 or n_a < min_attacks:
                continue
            preps = [_Prepared(sc[lmask], data.user[lmask], sc[amask]) for sc in data.all_scores]
            n_u = preps[0].n_users
            # _Prepared sorts attacks per model: map the shared attack weights through each model's own order.
            a_orders = [np.argsort(sc[amask], kind="stable") for sc in data.all_scores]
            points = [p.metrics(np.ones(n_u), np.ones(n_a)) for p in preps]
            draw = _AttackDraw(_clusters(data, amask))
            reps: list[dict[str, list[float]]] = [{m: [] for m in METRIC_NAMES} for _ in preps]
            dreps: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
            for _ in range(bootstrap):
                wu = rng.multinomial(n_u, np.full(n_u, 1.0 / n_u))
                wa = draw(rng)
                ms = [p.metrics(wu, wa[o]) for p, o in zip(preps, a_orders)]
                for k, m in enumerate(ms):
                    for name, v in m.items():
                        reps[k][name].append(v)
                for name in METRIC_NAMES:
                    dreps[name].append(ms[0][name] - ms[1][name])

            def _ci(v: list[float]) -> tuple[float, float]:
                return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (np.nan, np.nan)

            out.append(PairedMetrics(
                kind, bucket, n_l, n_u, n_a, points, [{m: _ci(v) for m, v in r.items()} for r in reps],
                {m: points[0][m] - points[1][m] for m in METRIC_NAMES}, {m: _ci(v) for m, v in dreps.items()}, draw.n,
            ))
    return out


_SHORT = {"auc": "AUC", "tpr@1%fpr": "TPR@1%", "tpr@0.1%fpr": "TPR@0.1%", "reauth@99.5%": "re-auth@99.5%",
          "reauth@99%": "re-auth@99%"}


def format_paired(results: Sequence[PairedMetrics], names: Sequence[str],
                  metrics: Sequence[str] = ("auc", "tpr@1%fpr", "tpr@0.1%fpr", "reauth@99.5%")) -> str:
    """One column per (metric, model), then the paired difference first − second with its 95 % interval."""
    head = ["attacker", "history", "legit (users)", "attacks"]
    for m in metrics:
        head += [f"{_SHORT[m]} {n}" for n in names] + [f"Δ{_SHORT[m]}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.attack, r.bucket, f"{r.n_legit} ({r.n_users})", _attacks(r)]
        for m in metrics:
            for k in range(len(names)):
                lo, hi = r.ci[k][m]
                cells.append(_cell(r.point[k][m], lo, hi))
            lo, hi = r.diff_ci[m]
            cells.append(_cell(r.diff[m], lo, hi, signed=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def friction(data: Loaded, k: int = 0) -> dict[str, float]:
    """Owners' friction for score file k: decisions other than ``allow`` on legitimate successful logins
    (evaluated window), per user, plus the share of first logins (no earlier history) that are challenged."""
    assert data.all_decisions is not None
    dec = data.all_decisions[k]
    owner = data.legit & data.evaluated
    challenged = (dec != "allow") & owner
    out: dict[str, float] = {}
    for label, mask in (("all", owner), ("with_history", owner & (data.history >= 1))):
        n = int(mask.sum())
        if not n:
            continue
        _, inv = np.unique(data.user[mask], return_inverse=True)
        per_n = np.bincount(inv)
        per_c = np.bincount(inv, weights=challenged[mask].astype(float))
        rate = per_c / per_n
        out[f"{label}: logins"] = float(n)
        out[f"{label}: share of logins challenged"] = float(challenged[mask].mean())
        out[f"{label}: median per-user rate"] = float(np.median(rate))
        out[f"{label}: mean per-user rate"] = float(rate.mean())
        out[f"{label}: p90 per-user rate"] = float(np.percentile(rate, 90))
    first = owner & (data.history == 0)
    if first.any():
        out["first logins challenged"] = float(challenged[first].mean())
    return out


def threshold_table(data: Loaded, thresholds: Sequence[float], k: int = 0) -> str:
    """For step-up thresholds on score file k: owners' friction (evaluated window) and the share of each attack
    type (victims with history) at or above the threshold. First logins are counted as the replayed model scored
    them (the engine: ``no_history_log_lr`` plus signals)."""
    assert data.all_scores is not None
    sc = data.all_scores[k]
    owner = data.legit & data.evaluated
    hist = owner & (data.history >= 1)
    first = owner & (data.history == 0)
    types = sorted({t for t in data.attack_type if t})
    amask = {t: data.evaluated & (data.history >= 1) & (data.attack_type == t) for t in types}
    _, inv = np.unique(data.user[hist], return_inverse=True)
    per_n = np.bincount(inv)
    head = ["step-up at score ≥", "owners' logins (history ≥ 1)", "median / mean / p90 per-user rate",
            "first logins"] + [f"{t} caught" for t in types]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in thresholds:
        flagged = sc >= t
        rate = np.bincount(inv, weights=flagged[hist].astype(float)) / per_n
        cells = [f"{t:g}", f"{flagged[hist].mean():.3f}",
                 f"{np.median(rate):.3f} / {rate.mean():.3f} / {np.percentile(rate, 90):.3f}",
                 f"{flagged[first].mean():.3f}" if first.any() else "–"]
        cells += [f"{flagged[amask[a]].mean():.3f}" if amask[a].any() else "–" for a in types]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
