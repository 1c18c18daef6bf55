"""`authsvc risk fit`: learn the weights of the engine's terms from labelled outcomes, offline.

One replay pass with the v2 engine records, per row, the score's terms kept separate (``RiskEngine.terms``). Rows of
accounts with history in a *training* window (after ``warmup``, before ``split`` of the time span) with a label
fit a logistic regression over those terms (scikit-learn, offline only); the result is written as a weights file
(``authsvc/risk/weights.py``) that the live engine applies with plain arithmetic. Rows after ``split`` are the
*evaluation* window: ``risk report --warmup <split>`` on the score files written here compares v2, the fitted
weights and the reference on logins the fit never saw.

Labels (``--labels``):

* ``outcomes`` — only what the service records without anyone confirming an attack: 1 = the right password whose
  step-up failed (an ``Outcome`` of ``stepup_failed`` in an export; in the simulator's files ``Is Account
  Takeover`` with ``Login Successful`` false, the naive/VPN/targeted probes), 0 = a successful login (the owner
  passed the step-up, or was allowed). Attack labels are not read.
* ``attacks`` — adds the attack-labelled rows as 1: ``Attack Type`` ≠ "", ``Is Attack IP`` (stuffing and spraying
  attempts), ``Is Account Takeover`` / an ``Outcome`` of ``reported`` or ``confirmed`` (a successful takeover
  found later: "this wasn't me", an admin's confirmation). This is the "training on attack data" of Wiefling et al.

The offset of the fitted score is set so that the owners' step-up rate at the step-up threshold on the training
window equals v2's (the same friction budget); the deny threshold stays v2's.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..config import RiskConfig
from ..context import Decision, LoginContext
from ..geo import GeoResolver
from ..model import FLAG_TERMS, RiskEngine
from ..signals import Features
from ..weights import weights_config, write_weights
from .schema import ATTACK_TYPE_COLUMN, REPLAY_COLUMNS, SCORE_COLUMNS, parse_timestamp

__all__ = ["FitInputError", "LABELS", "OUTCOME_COLUMN", "Collected", "FitResult", "check_input", "collect", "labels",
           "fit", "term_columns", "write_scores"]

LABELS = ("outcomes", "attacks")
OUTCOME_COLUMN = "Outcome"  # written by `risk export`: allowed | stepup_passed | stepup_failed | denied | failed |
#                             reported | confirmed
OUTCOMES = ("allowed", "stepup_passed", "stepup_failed", "denied", "failed", "reported", "confirmed", "")
REQUIRED = (*REPLAY_COLUMNS, "Is Account Takeover")
_BOOL = {"true": True, "1": True, "t": True, "yes": True, "false": False, "0": False, "f": False, "no": False}


class FitInputError(ValueError):
    """The logins file cannot be used: the message names the column or the line."""


def term_columns(cfg: RiskConfig) -> list[str]:
    base = ["prior", "ip_lr", "ua_lr", "lr_clip", "hour", "travel", "no_history", "trusted_device",
            "breached_password"]
    seen = []
    for rule in cfg.velocity_rules:
        name = "v:" + rule.code
        if name not in seen:
            seen.append(name)
    return base + seen


def _bool(text: str, column: str, line: int) -> bool:
    v = _BOOL.get(text.strip().lower())
    if v is None:
        raise FitInputError(f"line {line}: {column!r} must be True or False, got {text[:40]!r}")
    return v


@dataclass
class LabelColumns:
    ts: np.ndarray  # UNIX seconds per row, file order
    ok: np.ndarray
    ato: np.ndarray
    attack_ip: np.ndarray
    attack_type: np.ndarray  # bool: a non-empty Attack Type
    outcome: np.ndarray | None  # object array of Outcome strings, or None without the column
    index: list[str]


def check_input(logins: str | Path) -> LabelColumns:
    """Read and check every row before the (long) replay: clear errors instead of a traceback halfway through."""
    try:
        fh = open(logins, newline="", encoding="utf-8")
    except OSError as exc:
        raise FitInputError(f"{logins}: cannot read ({exc.strerror or exc})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise FitInputError(f"{logins}: empty file (expected a header row in the RBA schema)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise FitInputError(f"{logins}: not a CSV file ({exc})") from None
        col = {n: i for i, n in enumerate(header)}
        missing = [c for c in REQUIRED if c not in col]
        if missing:
            raise FitInputError(f"{logins}: missing column(s) {', '.join(repr(m) for m in missing)} "
                                f"(the RBA schema; see docs/RISK.md §7)")
        i_aip, i_type, i_out = col.get("Is Attack IP"), col.get(ATTACK_TYPE_COLUMN), col.get(OUTCOME_COLUMN)
        ts, ok, ato, aip, atype, outc, index = [], [], [], [], [], [], []
        seen: set[str] = set()
        try:
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise FitInputError(f"line {line}: {len(row)} fields, the header has {len(header)}")
                try:
                    ts.append(parse_timestamp(row[col["Login Timestamp"]]))
                except ValueError:
                    raise FitInputError(f"line {line}: 'Login Timestamp' is not a timestamp: "
                                        f"{row[col['Login Timestamp']][:40]!r}") from None
                idx = row[col["index"]]
                if not idx or idx in seen:
                    raise FitInputError(f"line {line}: 'index' must be unique and non-empty, got {idx[:40]!r}")
                seen.add(idx)
                index.append(idx)
                ok.append(_bool(row[col["Login Successful"]], "Login Successful", line))
                ato.append(_bool(row[col["Is Account Takeover"]], "Is Account Takeover", line))
                aip.append(_bool(row[i_aip], "Is Attack IP", line) if i_aip is not None else False)
                atype.append(bool(row[i_type].strip()) if i_type is not None else False)
                if i_out is not None:
                    o = row[i_out].strip()
                    if o not in OUTCOMES:
                        raise FitInputError(f"line {line}: {OUTCOME_COLUMN!r} must be one of "
                                            f"{', '.join(x for x in OUTCOMES if x)} or empty, got {o[:40]!r}")
                    outc.append(o)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise FitInputError(f"{logins}: unreadable CSV ({exc})") from None
    if not ts:
        raise FitInputError(f"{logins}: no rows after the header")
    return LabelColumns(np.asarray(ts), np.asarray(ok), np.asarray(ato), np.asarray(aip), np.asarray(atype),
                        np.asarray(outc, dtype=object) if i_out is not None else None, index)


def labels(cols: LabelColumns, kind: str) -> np.ndarray:
    """Per row: 1.0 (bad), 0.0 (owner) or NaN (no label), for the label source ``kind`` (module docstring)."""
    if kind not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}")
    y = np.full(len(cols.ts), np.nan)
    if cols.outcome is not None:
        failed_stepup = cols.outcome == "stepup_failed"
        reported = np.isin(cols.outcome, ["reported", "confirmed"])
    else:
        failed_stepup = cols.ato & ~cols.ok
        reported = np.zeros(len(y), dtype=bool)
    y[cols.ok] = 0.0
    y[failed_stepup] = 1.0
    if kind == "attacks":
        y[cols.ato | cols.attack_ip | cols.attack_type | reported] = 1.0
    return y


class _Recorder:
    """Wraps the engine for replay(): scores with the v2 sum and keeps each row's terms as one row of floats."""

    def __init__(self, engine: RiskEngine, columns: Sequence[str]) -> None:
        self.engine = engine
        self.geo = engine.geo
        self.columns = list(columns)
        self._pos = {c: i for i, c in enumerate(self.columns)}
        self.rows: list[list[float]] = []
        self.v2: list[float] = []

    def fresh(self) -> "_Recorder":
        return _Recorder(RiskEngine(config=self.engine.config, geo=self.engine.geo), self.columns)

    def score_features(self, ctx: LoginContext, feats: Features) -> Decision:
        terms: dict[str, float] = {}
        d = self.engine._score(ctx, feats, terms)
        x = [0.0] * len(self.columns)
        for name, value in terms.items():
            i = self._pos.get(name)
            if i is None:
                raise RuntimeError(f"engine term {name!r} has no column (term_columns is out of date)")
            x[i] = 1.0 if name in FLAG_TERMS else value
        self.rows.append(x)
        self.v2.append(d.score)
        return d

    def learn(self, ctx: LoginContext, features: Features | None = None) -> None:
        self.engine.learn(ctx, features)


@dataclass
class Collected:
    columns: list[str]
    X: np.ndarray  # rows × columns, in file order (flag terms as 0/1)
    v2: np.ndarray  # the v2 score of each row
    index: list[str]
    ts: np.ndarray
    label_cols: LabelColumns
    config: RiskConfig

    @property
    def history(self) -> np.ndarray:
        return self.X[:, self.columns.index("no_history")] == 0.0


def collect(logins: str | Path, v2_scores: str | Path, *, config: RiskConfig | None = None,
            geo: GeoResolver | None = None, velocity: bool = True) -> Collected:
    """Check the file, replay it once with the v2 engine (writing its score file) and keep every row's terms."""
    from .replay import replay

    cols = check_input(logins)
    cfg = config or RiskConfig()
    if cfg.term_weights is not None:
        raise ValueError("collect() replays the v2 sum: give a config without term_weights")
    rec = _Recorder(RiskEngine(config=cfg, geo=geo), term_columns(cfg))
    holder: list[_Recorder] = []

    def fresh() -> _Recorder:  # replay() restarts on a sorted copy: keep the recorder that saw every row
        new = rec.fresh()
        holder.append(new)
        return new

    rec.fresh = fresh  # type: ignore[method-assign]
    stats = replay(logins, v2_scores, engine=rec, velocity=velocity)  # type: ignore[arg-type]
    used = holder[-1] if holder else rec
    X = np.asarray(used.rows, dtype=float)
    v2 = np.asarray(used.v2, dtype=float)
    if stats.resorted:  # rows were scored in time order: bring them back to file order
        order = np.argsort(cols.ts, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        X, v2 = X[inv], v2[inv]
    return Collected(used.columns, X, v2, cols.index, cols.ts, cols, cfg)


@dataclass
class FitResult:
    name: str  # e.g. lr_outcomes
    kind: str  # lr | hgb
    label_kind: str
    terms: dict[str, float] = field(default_factory=dict)  # lr only
    offset: float = 0.0
    intercept: float = 0.0  # the regression's own intercept (calibrated log-odds on the training labels)
    scores: np.ndarray | None = None
    n_train: int = 0
    n_pos: int = 0
    logloss_eval: float = float("nan")
    logloss_eval_unweighted: float = float("nan")  # v2 score + a fitted intercept (weights all 1)
    logloss_eval_platt: float = float("nan")  # a·v2 + b
    n_eval: int = 0
    zeroed: list[str] = field(default_factory=list)  # terms whose fitted weight came out negative: set to 0
    unfitted: list[str] = field(default_factory=list)  # terms the labels do not speak to: kept at their v2 value


def windows(ts: np.ndarray, warmup: float, split: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 <= warmup < split < 1.0:
        raise ValueError(f"need 0 ≤ warmup < split < 1, got warmup={warmup}, split={split}")
    lo, hi = float(ts.min()), float(ts.max())
    a, b = lo + warmup * (hi - lo), lo + split * (hi - lo)
    return (ts >= a) & (ts < b), ts >= b


def _logloss(y: np.ndarray, z: np.ndarray) -> float:
    """Mean log-loss of log-odds z (numerically stable)."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _intercept_only(y: np.ndarray, s: np.ndarray) -> float:
    """b minimising the log-loss of sigmoid(s + b): Newton on one parameter."""
    b = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(s + b)))
        g, h = float(np.sum(p - y)), float(np.sum(p * (1 - p)))
        if h <= 0:
            break
        step = g / h
        b -= step
        if abs(step) < 1e-10:
            break
    return b


def fit(data: Collected, label_kind: str, *, warmup: float = 0.25, split: float = 0.6, model: str = "lr",
        C: float = 1.0, seed: int = 0, min_support: int = 20) -> FitResult:
    """Fit on the training window's labelled rows with history; score every row; measure log-loss on the later
    window against an unweighted (v2 + intercept) and a Platt-scaled v2 baseline."""
    from sklearn.linear_model import LogisticRegression

    y_all = labels(data.label_cols, label_kind)
    train, later = windows(data.ts, warmup, split)
    hist = data.history
    labelled = ~np.isnan(y_all)
    tr = train & hist & labelled
    ev = later & hist & labelled
    y_tr, y_ev = y_all[tr], y_all[ev]
    if tr.sum() == 0 or len(np.unique(y_tr)) < 2:
        raise FitInputError(f"labels {label_kind!r}: the training window needs both owners' logins (0) and "
                            f"bad ones (1) on accounts with history; got {int(tr.sum())} labelled rows, "
                            f"{int(np.nansum(y_tr))} bad")
    # A term is fitted only if the labels speak to it: non-zero on at least `min_support` bad and as many owners'
    # training rows. The others keep their v2 value (no entry in the weights file): no_history here, terms a replay
    # cannot see (trusted_device, breached_password), and e.g. the velocity terms under owner-only labels, where a
    # failed step-up almost never comes with velocity evidence: the fit could only learn "no evidence", not "weight 0".
    Xtr = data.X[tr]
    bad, good = y_tr == 1.0, y_tr == 0.0
    use = [j for j, c in enumerate(data.columns) if c != "no_history"
           and int((Xtr[bad, j] != 0).sum()) >= min_support and int((Xtr[good, j] != 0).sum()) >= min_support]
    if not use:
        raise FitInputError(f"labels {label_kind!r}: no term is non-zero on {min_support} bad and {min_support} "
                            f"owners' training rows; nothing to fit")
    names = [data.columns[j] for j in use]
    res_unfitted = [c for c in data.columns if c not in names and c != "no_history"]
    res = FitResult(name=f"{model}_{label_kind}", kind=model, label_kind=label_kind, n_train=int(tr.sum()),
                    n_pos=int(y_tr.sum()), n_eval=int(ev.sum()))
    if model == "lr":
        # An attacker moves every term but the prior (a new network, an odd hour, more failures): a negative weight
        # would let them lower their score by looking *less* like the owner, so such a term is dropped (weight 0)
        # and the rest refitted, until no such weight is negative. The prior (a per-account shift) is free.
        free = list(range(len(names)))
        zeroed: list[str] = []
        while True:
            lr = LogisticRegression(C=C, max_iter=5000, tol=1e-8)
            lr.fit(Xtr[:, [use[k] for k in free]], y_tr)
            w = dict(zip([names[k] for k in free], lr.coef_[0]))
            neg = [n for n, c in w.items() if c < 0 and n != "prior"]
            if not neg:
                break
            worst = min(neg, key=lambda n: w[n])
            zeroed.append(worst)
            free = [k for k in free if names[k] != worst]
        res.intercept = float(lr.intercept_[0])
        res.zeroed = zeroed
        # Round as the weights file will, so that the scores written here are the ones the engine computes.
        res.terms = {n: round(float(w.get(n, 0.0)), 6) for n in names}
        wv = np.array([res.terms[n] for n in names])
        z_hist = data.X[:, use] @ wv  # the fitted terms alone: the regression's log-odds minus its intercept
        legit_tr = tr & (y_all == 0.0)
        # Same owners' friction as v2 at the step-up threshold on the training window (the whole score: fitted
        # terms plus the ones kept at their v2 value).
        t = data.config.step_up_threshold
        f = float(np.mean(data.v2[legit_tr] >= t))
        z0 = _fitted_all(data, names, wv, 0.0)
        zq = np.quantile(z0[legit_tr], 1.0 - f) if 0.0 < f < 1.0 else 0.0
        res.offset = round(float(t - zq), 6)
        z = np.where(data.history, z0 + res.offset, data.v2)  # first logins keep v2 (z0 has them as v2 already)
        res.logloss_eval = _logloss(y_ev, z_hist[ev] + res.intercept)
    elif model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        hgb = HistGradientBoostingClassifier(random_state=seed, max_iter=200, learning_rate=0.1)
        hgb.fit(Xtr[:, use], y_tr)
        dz = hgb.decision_function(data.X[:, use])  # HGB sees the fitted terms only, like the regression
        z = np.where(data.history, dz, data.v2)
        res.logloss_eval = _logloss(y_ev, dz[ev])
    else:
        raise ValueError("model must be lr or hgb")
    res.scores = z
    res.unfitted = res_unfitted
    b = _intercept_only(y_tr, data.v2[tr])
    res.logloss_eval_unweighted = _logloss(y_ev, data.v2[ev] + b)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(data.v2[tr].reshape(-1, 1), y_tr)
    res.logloss_eval_platt = _logloss(y_ev, platt.decision_function(data.v2[ev].reshape(-1, 1)))
    return res


def _fitted_all(data: Collected, names: list[str], wv: np.ndarray, offset: float) -> np.ndarray:
    """Every row's score as the engine computes it with the weights: fitted for accounts with history, v2 for
    first logins; terms without a weight keep weight 1 (engine.fitted_score)."""
    idx = {c: j for j, c in enumerate(data.columns)}
    z = np.full(len(data.v2), offset)
    fitted = set(names)
    for n, w in zip(names, wv):
        z += w * data.X[:, idx[n]]
    for c, j in idx.items():
        if c in fitted or c == "no_history":
            continue
        col = data.X[:, j]
        if c in FLAG_TERMS:  # present → its v2 amount
            amount = {"travel": data.config.impossible_travel_weight,
                      "trusted_device": data.config.trusted_device_weight,
                      "breached_password": data.config.breached_password_weight}[c]
            z += amount * col
        else:
            z += col
    return np.where(data.history, z, data.v2)


def decisions(scores: np.ndarray, cfg: RiskConfig) -> list[str]:
    return ["deny" if s >= cfg.deny_threshold else "step_up" if s >= cfg.step_up_threshold else "allow"
            for s in scores]


def write_scores(path: str | Path, index: Sequence[str], scores: np.ndarray, actions: Iterable[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SCORE_COLUMNS)
        w.writerows((i, f"{s:.4f}", a, "") for i, s, a in zip(index, scores, actions))


def save(result: FitResult, data: Collected, path: str | Path, *, source: str, warmup: float, split: float,
         engine_commit: str | None = None) -> RiskConfig:
    cfg = data.config
    doc = write_weights(path, result.terms, result.offset, cfg.step_up_threshold, cfg.deny_threshold, {
        "model": "LogisticRegression (scikit-learn), L2, C=1", "labels": result.label_kind,
        "source": os.path.basename(str(source)), "warmup": warmup, "split": split,
        "train_rows": result.n_train, "train_bad": result.n_pos, "eval_rows": result.n_eval,
        "intercept": round(result.intercept, 6),
        "logloss_eval": round(result.logloss_eval, 6),
        "logloss_eval_unweighted": round(result.logloss_eval_unweighted, 6),
        "engine_commit": engine_commit or "",
    })
    return weights_config(doc, cfg)
