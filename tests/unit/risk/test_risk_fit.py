"""Issue 16, "learn from outcomes": RiskEngine.terms(), `risk fit`, the weights file and the live engine reading it."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from authsvc.risk import LoginContext, RiskEngine
from authsvc.risk.cli import risk
from authsvc.risk.evaluation.fit import FitInputError, check_input, collect, fit, labels, term_columns
from authsvc.risk.evaluation.replay import replay
from authsvc.risk.model import FLAG_TERMS
from authsvc.risk.weights import FORMAT, WeightsError, load_weights, weights_config

from risk_golden import golden, pinned_config, rows

# risk_golden.golden() run against main@3fff4d5, the engine before terms() existed (the same pinned config).
GOLDEN_BEFORE_TERMS = "3738116751f8b7ce35e365d76647afc5f5d25e71931c14776926b6553ed0659f"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("risk_fit")
    logins = d / "logins.csv"
    res = CliRunner().invoke(risk, ["simulate", "--users", "1500", "--days", "120", "--seed", "5", "-o", str(logins)],
                             env={"AUTHSVC_GEOIP_DIR": None})
    assert res.exit_code == 0, res.output
    return logins


@pytest.fixture(scope="module")
def collected(small: Path, tmp_path_factory: pytest.TempPathFactory):
    return collect(small, tmp_path_factory.mktemp("v2") / "v2.csv")


# --- terms() ------------------------------------------------------------------------------------------------------

def test_v2_scores_are_byte_identical_to_the_engine_before_terms() -> None:
    assert golden() == GOLDEN_BEFORE_TERMS


def test_terms_sum_to_the_score_on_every_row() -> None:
    engine = RiskEngine(config=pinned_config())
    seen: set[str] = set()
    columns = set(term_columns(engine.config))
    for ctx, ok in rows():
        d = engine.score(ctx)
        t = engine.terms(ctx)
        assert math.isclose(sum(t.values()), d.score, rel_tol=0, abs_tol=1e-9), (t, d.score)
        assert set(t) <= columns
        seen |= set(t)
        if ok:
            engine.learn(ctx)
    # The synthetic rows exercise every kind of term (the clip binds nowhere: ±25 is far).
    assert {"prior", "ip_lr", "ua_lr", "hour", "travel", "no_history", "trusted_device", "breached_password",
            "v:ip_failures", "v:password_spray"} <= seen


def test_terms_do_not_change_the_replayed_scores(small: Path, tmp_path: Path) -> None:
    plain, recorded = tmp_path / "plain.csv", tmp_path / "recorded.csv"
    replay(small, plain)
    collect(small, recorded)  # the recording replay writes the v2 score file too
    assert plain.read_bytes() == recorded.read_bytes()


# --- fit ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["outcomes", "attacks"])
def test_fit_is_deterministic_and_beats_the_unweighted_sum_on_its_later_window(collected, kind: str) -> None:
    a = fit(collected, kind)
    b = fit(collected, kind)
    assert a.terms == b.terms and a.offset == b.offset
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.n_train > 1000 and a.n_pos > 50 and a.n_eval > 1000
    assert a.logloss_eval < a.logloss_eval_unweighted
    # No weight an attacker could exploit: every term but the prior is ≥ 0.
    assert all(w >= 0 for n, w in a.terms.items() if n != "prior")


def test_outcome_labels_never_read_attack_labels(small: Path) -> None:
    cols = check_input(small)
    y_out, y_att = labels(cols, "outcomes"), labels(cols, "attacks")
    # outcomes: failed step-ups (right password, not successful) are bad, successes are owners'.
    assert np.all(y_out[cols.ok & ~cols.ato] == 0) and np.all(y_out[cols.ato & ~cols.ok] == 1)
    assert np.isnan(y_out[cols.attack_ip & ~cols.ato]).all()  # stuffing/spraying attempts: no outcome label
    assert np.all(y_att[cols.attack_ip | cols.attack_type] == 1)


def test_first_logins_keep_the_v2_score(collected) -> None:
    res = fit(collected, "outcomes")
    first = ~collected.history
    assert first.any()
    np.testing.assert_array_equal(res.scores[first], collected.v2[first])


# --- the weights file -----------------------------------------------------------------------------------------

def test_weights_file_round_trips_into_the_engine(small: Path, tmp_path: Path) -> None:
    weights, scores_dir = tmp_path / "w.json", tmp_path / "scores"
    res = CliRunner().invoke(risk, ["fit", str(small), "-o", str(weights), "--labels", "outcomes",
                                    "--scores-dir", str(scores_dir)])
    assert res.exit_code == 0, res.output
    assert "lr_outcomes" in res.output
    doc = json.loads(weights.read_text())
    assert doc["format"] == FORMAT and doc["fitted"]["labels"] == "outcomes"
    replayed = tmp_path / "replayed.csv"
    res = CliRunner().invoke(risk, ["replay", str(small), "-o", str(replayed), "--weights", str(weights)])
    assert res.exit_code == 0, res.output

    def read(p: Path) -> dict[str, tuple[float, str]]:
        with open(p, newline="") as fh:
            return {r["index"]: (float(r["score"]), r["decision"]) for r in csv.DictReader(fh)}

    live, offline = read(replayed), read(scores_dir / "lr_outcomes.csv")
    assert live.keys() == offline.keys()
    diff = max(abs(live[k][0] - offline[k][0]) for k in live)
    assert diff <= 2e-4  # both are printed with 4 decimals
    same = sum(live[k][1] == offline[k][1] for k in live)
    assert same >= len(live) - 2  # a decision may flip only for a score within rounding of a threshold
    v2 = read(scores_dir / "v2.csv")
    assert sum(v2[k][0] != live[k][0] for k in live) > len(live) // 4  # the weights did change the scores


def test_engine_scores_history_accounts_with_the_fitted_weights() -> None:
    doc = {"format": FORMAT, "terms": {"ip_lr": 2.0, "ua_lr": 0.5, "prior": 0.0, "travel": 4.0},
           "offset": -3.0, "step_up_threshold": 0.5, "deny_threshold": 9.0}
    cfg = weights_config(doc, pinned_config())
    plain, fitted = RiskEngine(config=pinned_config()), RiskEngine(config=cfg)
    checked = 0
    for ctx, ok in rows(n=1500):
        t = plain.terms(ctx)
        d = fitted.score(ctx)
        if "no_history" in t:
            assert d.score == plain.score(ctx).score
        else:
            expect = -3.0 + sum(
                {"ip_lr": 2.0, "ua_lr": 0.5, "prior": 0.0}.get(k, 1.0) * v if k != "travel" else 4.0
                for k, v in t.items())
            assert d.score == pytest.approx(expect, abs=1e-9)
            assert d.action == ("deny" if d.score >= 9 else "step_up" if d.score >= 0.5 or ctx.breached_password
                                else "allow")
            checked += 1
        if ok:
            plain.learn(ctx)
            fitted.learn(ctx)
    assert checked > 1000


@pytest.mark.parametrize("doc, problem", [
    ({"terms": {"ip_lr": 1}}, "format"),
    ({"format": FORMAT, "terms": {}}, "terms"),
    ({"format": FORMAT, "terms": {"ip_lr": "1"}, "step_up_threshold": -1, "deny_threshold": 7}, "finite number"),
    ({"format": FORMAT, "terms": {"ip_lr": float("nan")}, "step_up_threshold": -1, "deny_threshold": 7}, "finite"),
    ({"format": FORMAT, "terms": {"ip_lr": True}, "step_up_threshold": -1, "deny_threshold": 7}, "finite number"),
    ({"format": FORMAT, "terms": {"IP LR<script>": 1}, "step_up_threshold": -1, "deny_threshold": 7}, "term name"),
    ({"format": FORMAT, "terms": {"ip_lr": 1}, "deny_threshold": 7}, "step_up_threshold"),
    ({"format": FORMAT, "terms": {"ip_lr": 1}, "step_up_threshold": 8, "deny_threshold": 7}, "deny_threshold"),
    ([1, 2], "JSON object"),
])
def test_bad_weights_are_refused_with_the_reason(doc, problem: str) -> None:
    with pytest.raises(WeightsError, match=problem):
        weights_config(doc)


def test_bad_weights_files(tmp_path: Path) -> None:
    for name, body in [("not.json", b"{nope"), ("latin1.json", b"\xff\xfe"), ("big.json", b" " * 70_000)]:
        p = tmp_path / name
        p.write_bytes(body)
        with pytest.raises(WeightsError, match=name):
            load_weights(p)
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(tmp_path / "missing.json")


def test_the_app_loads_the_weights_file_and_refuses_a_bad_one(make_app, tmp_path: Path) -> None:
    from authsvc.config import ConfigError
    from authsvc.services import services

    good = tmp_path / "w.json"
    good.write_text(json.dumps({"format": FORMAT, "terms": {"ip_lr": 0.9, "v:ip_failures": 0.3}, "offset": -0.5,
                                "step_up_threshold": -0.5, "deny_threshold": 6.0}))
    app = make_app(risk_weights_file=str(good))
    with app.app_context():
        cfg = services().login.risk.engine.config
    assert dict(cfg.term_weights) == {"ip_lr": 0.9, "v:ip_failures": 0.3}
    assert (cfg.term_offset, cfg.step_up_threshold, cfg.deny_threshold) == (-0.5, -0.5, 6.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "x"}')
    with pytest.raises(ConfigError, match="AUTHSVC_RISK_WEIGHTS_FILE"):
        make_app(risk_weights_file=str(bad))


# --- bad input files: clear errors, no tracebacks ------------------------------------------------------------------

HEADER = ["index", "Login Timestamp", "User ID", "IP Address", "User Agent String", "Login Successful",
          "Is Account Takeover"]
ROW = ["0", "2020-02-03 12:00:00.000", "7", "10.0.0.1", "Mozilla/5.0", "True", "False"]


def _write(path: Path, header: list[str] | None, body: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(body)
    return path


@pytest.mark.parametrize("header, body, problem", [
    (None, [], "empty file"),
    (HEADER, [], "no rows"),
    (HEADER[:-1], [ROW[:-1]], "missing column(s) 'Is Account Takeover'"),
    ([h for h in HEADER if h != "Login Timestamp"], [ROW[:1] + ROW[2:]], "'Login Timestamp'"),
    (HEADER, [ROW[:5] + ["maybe", "False"]], "line 2: 'Login Successful' must be True or False"),
    (HEADER, [ROW[:1] + ["yesterday"] + ROW[2:]], "line 2: 'Login Timestamp' is not a timestamp"),
    (HEADER, [ROW, ROW], "line 3: 'index' must be unique"),
    (HEADER, [ROW[:4]], "line 2: 4 fields"),
    (HEADER + ["Outcome"], [ROW + ["pwned"]], "'Outcome' must be one of"),
])
def test_bad_input_gives_a_clear_error(tmp_path: Path, header, body, problem: str) -> None:
    path = _write(tmp_path / "in.csv", header, body)
    with pytest.raises(FitInputError) as info:
        check_input(path)
    assert problem in str(info.value)
    res = CliRunner().invoke(risk, ["fit", str(path), "-o", str(tmp_path / "w.json")])
    assert res.exit_code == 1
    assert problem in res.output and "Traceback" not in res.output
    assert not (tmp_path / "w.json").exists()


def test_binary_input_and_labels_without_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    res = CliRunner().invoke(risk, ["fit", str(p), "-o", str(tmp_path / "w.json")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    ok = _write(tmp_path / "ok.csv", HEADER, [[str(i), f"2020-02-03 12:{i:02d}:00.000", "7", "10.0.0.1",
                                               "Mozilla/5.0", "True", "False"] for i in range(50)])
    res = CliRunner().invoke(risk, ["fit", str(ok), "-o", str(tmp_path / "w.json")])
    assert res.exit_code == 1 and "needs both owners' logins (0) and bad ones (1)" in res.output
    res = CliRunner().invoke(risk, ["fit", str(ok), "-o", str(tmp_path / "w.json"), "--warmup", "0.7",
                                    "--split", "0.6"])
    assert res.exit_code == 2 and "--split" in res.output


def test_flag_terms_are_the_fixed_amount_terms() -> None:
    assert FLAG_TERMS == {"no_history", "trusted_device", "breached_password", "travel"}
