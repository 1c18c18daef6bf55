"""The report's bootstrap: attacks of one campaign are resampled together, and files without campaigns keep the
plain row bootstrap."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from authsvc.risk.evaluation.report import Loaded, evaluate, evaluate_paired, format_paired, load
from authsvc.risk.evaluation.schema import ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN, COLUMNS, format_timestamp


def _loaded(campaigns: bool, *, second_model_shift: float = 0.0) -> Loaded:
    """200 owners with 10 logins each, N(0, 1) scores; six stuffing campaigns of 500 rows, three scoring far above
    every owner and three far below — so half the attacks are caught, and *which* half depends on six draws."""
    rng = np.random.default_rng(7)
    n_l, n_camp, per = 2000, 6, 500
    legit = rng.normal(0, 1, n_l)
    attack = np.concatenate([rng.normal(8 if c % 2 == 0 else -8, 0.5, per) for c in range(n_camp)])
    scores = np.concatenate([legit, attack])
    n = len(scores)
    cluster = np.arange(n)
    if campaigns:
        cluster[n_l:] = -1 - np.repeat(np.arange(n_camp), per)
    second = scores + np.where(np.arange(n) >= n_l, second_model_shift, 0.0)
    return Loaded(
        scores=scores, history=np.full(n, 5), user=np.concatenate([np.repeat(np.arange(200), 10), np.full(len(attack), 999)]),
        legit=np.arange(n) < n_l, attack_type=np.array([""] * n_l + ["stuffing"] * len(attack), dtype=object),
        evaluated=np.ones(n, dtype=bool), clone=np.zeros(n, dtype=bool), all_scores=[scores, second],
        all_decisions=None, cluster=cluster)


def _tpr_ci(results, bucket="all"):
    cell = next(r for r in results if r.bucket == bucket)
    return cell.point["tpr@1%fpr"], cell.ci["tpr@1%fpr"], cell


def test_a_few_campaigns_give_a_wide_interval_where_rows_would_give_a_narrow_one() -> None:
    by_row = evaluate(_loaded(campaigns=False), bootstrap=300)
    by_campaign = evaluate(_loaded(campaigns=True), bootstrap=300)
    p_row, (lo_r, hi_r), cell_r = _tpr_ci(by_row)
    p_camp, (lo_c, hi_c), cell_c = _tpr_ci(by_campaign)
    assert p_row == p_camp == pytest.approx(0.5, abs=0.01)  # the point estimate does not depend on the unit
    assert hi_r - lo_r < 0.06  # 3,000 "independent" rows: a falsely precise ±0.02
    assert hi_c - lo_c > 0.4  # six campaigns: anything from one to five of them caught
    assert lo_c <= 0.25 and hi_c >= 0.75
    assert (cell_r.n_clusters, cell_c.n_clusters) == (3000, 6)


def test_the_paired_difference_is_resampled_by_campaign_too() -> None:
    # The second model scores every attack 0.1 lower: the paired difference is ~0 for any draw, and the interval of
    # each model alone is wide under the campaign bootstrap.
    res = evaluate_paired(_loaded(campaigns=True, second_model_shift=-0.1), bootstrap=200)
    cell = next(r for r in res if r.bucket == "all")
    lo, hi = cell.ci[0]["tpr@1%fpr"]
    assert hi - lo > 0.4 and cell.n_clusters == 6
    dlo, dhi = cell.diff_ci["tpr@1%fpr"]
    assert -0.01 <= dlo <= dhi <= 0.01
    assert "3000 (6 campaigns)" in format_paired(res, ["a", "b"])


def test_without_campaigns_every_row_is_its_own_unit() -> None:
    data = _loaded(campaigns=False)
    with_ids = evaluate_paired(data, bootstrap=50, seed=3)
    data.cluster = None
    without = evaluate_paired(data, bootstrap=50, seed=3)
    assert [(r.ci, r.diff_ci) for r in with_ids] == [(r.ci, r.diff_ci) for r in without]
    assert "campaigns" not in format_paired(without, ["a", "b"])


def _write(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow((*COLUMNS, ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN))
        for i, (t, user, ok, kind, camp) in enumerate(rows):
            w.writerow((i, format_timestamp(1.6e9 + t), user, "", "10.0.0.1", "DE", "-", "-", 3320, "UA", "b", "o",
                        "desktop", ok, bool(kind), False, kind, camp))


def test_load_reads_campaign_ids_and_ignores_them_on_rows_that_are_not_attacks(tmp_path: Path) -> None:
    logins, scores = tmp_path / "l.csv", tmp_path / "s.csv"
    rows = [(0, "u1", True, "", ""), (1, "u1", True, "", "stuffing:9"),  # a stray id on an owner row: not a campaign
            (2, "u1", False, "stuffing", "stuffing:1"), (3, "u1", False, "stuffing", "stuffing:1"),
            (4, "u1", False, "stuffing", "stuffing:2"), (5, "u1", False, "naive", "")]
    _write(logins, rows)
    with open(scores, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("index", "score", "decision", "reasons"))
        for i in range(len(rows)):
            w.writerow((i, float(i), "allow", ""))
    c = load(logins, scores, warmup=0).cluster
    assert c[2] == c[3] != c[4]  # one campaign, one unit
    assert len({c[0], c[1], c[2], c[4], c[5]}) == 5  # owners and probes stand alone


def test_a_cell_of_too_few_campaigns_says_so() -> None:
    data = _loaded(campaigns=True)
    data.cluster[2000:] = -1  # every attack row in one campaign: resampling it cannot see campaign-to-campaign spread
    res = evaluate_paired(data, bootstrap=20)
    assert "3000 (1 campaign; too few to resample)" in format_paired(res, ["a", "b"])


def test_without_resamples_the_table_shows_points_not_nan() -> None:
    res = evaluate_paired(_loaded(campaigns=True), bootstrap=0)
    table = format_paired(res, ["a", "b"])
    assert "nan" not in table and "| 0.500 | 0.500 | +0.000 |" in table  # AUC of both models, and their difference
