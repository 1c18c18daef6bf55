"""The plain Freeman reference of issue 16 on a hand-computed example, and its replay / side-by-side report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from authsvc.risk.cli import risk
from authsvc.risk.context import LoginContext
from authsvc.risk.evaluation.reference import ReferenceModel
from authsvc.risk.signals import Features
from authsvc.risk.ua import UAInfo

_UA = UAInfo("B 1", "O 1", "mobile", "B")


def _f(ip: tuple[str, str, str, str], ua: tuple[str, str, str, str]) -> Features:
    return Features(ip_values=ip, ua_values=ua, hour=0, country=ip[3], lat=None, lon=None, ua=_UA)


IP1 = ("1.2.3.4", "1.2.3.0/24", "AS1", "NO")
IP2 = ("1.2.3.9", "1.2.3.0/24", "AS1", "NO")  # same /24, ASN, country; new address
IP3 = ("5.6.7.8", "5.6.7.0/24", "AS2", "SE")
UA1 = ("ua-one", "B 1", "O 1", "mobile")
UA3 = ("ua-three", "C 2", "P 2", "desktop")


def _ctx(user: str) -> LoginContext:
    return LoginContext(user, "0.0.0.0", "", 0.0)


def _score(m: ReferenceModel, user: str, ip: tuple, ua: tuple) -> float:  # type: ignore[type-arg]
    return m.score_features(_ctx(user), _f(ip, ua)).score


def test_reference_by_hand() -> None:
    m = ReferenceModel()
    # Nothing learned (N = 0): every level has p_global = 1/10; the user share is 0, so p_user = p_global / 4;
    # score = log 4 + log 4 + log((0 + 1) / (0 + 1)).
    assert _score(m, "u", IP1, UA1) == pytest.approx(2 * math.log(4))
    m.learn(_ctx("u"), _f(IP1, UA1))  # N = 1, u has one login
    # The same context again: every level (1 + 1) / (1 + 10) = 2/11, the user's share 1 at every level:
    # log(2/11) twice, prior log((1 + 1) / (1 + 1)) = 0.
    assert _score(m, "u", IP1, UA1) == pytest.approx(2 * math.log(2 / 11))
    # New address in the same /24: IP p_global = 0.5·1/11 + (0.25 + 0.17 + 0.08)·2/11 = 1.5/11, p_user = 0.5.
    assert _score(m, "u", IP2, UA1) == pytest.approx(math.log(1.5 / 11 / 0.5) + math.log(2 / 11))
    # Everything new: p_global = 1/11 on both sides, share 0 → ÷ 4 → log 4 each.
    assert _score(m, "u", IP3, UA3) == pytest.approx(2 * math.log(4))
    # A user without history: log 4 + log 4 + log((1 + 1) / (0 + 1)).
    assert _score(m, "v", IP1, UA1) == pytest.approx(2 * math.log(4) + math.log(2))
    m.learn(_ctx("u"), _f(IP3, UA1))  # N = 2, u: IP1 once, IP3 once, UA1 twice
    # IP1 for u: p_global = 2/12 at every IP level; p_user = weighted share 1/2 at every level.
    # UA1: p_global = 3/12, p_user = 1. Prior log((2 + 1) / (2 + 1)) = 0.
    assert _score(m, "u", IP1, UA1) == pytest.approx(math.log((2 / 12) / 0.5) + math.log(3 / 12))
    # v still has no history; the prior is now log(3 / 1).
    assert _score(m, "v", IP1, UA1) == pytest.approx(2 * math.log(4) + math.log(3))


def test_reference_learns_only_what_it_is_told() -> None:
    m = ReferenceModel()
    before = _score(m, "u", IP1, UA1)
    m.score_features(_ctx("u"), _f(IP1, UA1))  # scoring never changes the state
    assert _score(m, "u", IP1, UA1) == before
    assert m.n == 0 and not m.users


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_replay_reference_and_side_by_side_report(tmp_path: Path) -> None:
    runner = CliRunner()
    logins = tmp_path / "logins.csv"
    res = runner.invoke(risk, ["simulate", "--users", "600", "--days", "60", "--seed", "5", "-o", str(logins),
                               "--probe-rate", "0.3"], env={"AUTHSVC_GEOIP_DIR": None})
    assert res.exit_code == 0, res.output
    a, b = tmp_path / "a.csv", tmp_path / "ref.csv"
    assert runner.invoke(risk, ["replay", str(logins), "-o", str(a)]).exit_code == 0
    res = runner.invoke(risk, ["replay", str(logins), "--model", "reference", "-o", str(b)])
    assert res.exit_code == 0, res.output
    rows, ref = _read(logins)[1:], _read(b)[1:]
    assert len(ref) == len(rows)
    # Every row is scored, and rows of accounts without history get exactly log 4 + log 4 + log(N + 1).
    n, seen = 0, set()
    for r, s in zip(rows, ref):
        if r[2] not in seen:
            assert float(s[1]) == pytest.approx(2 * math.log(4) + math.log(n + 1), abs=1e-4)
        if r[13] == "True":
            seen.add(r[2])
            n += 1
    res = runner.invoke(risk, ["report", str(logins), str(a), str(b), "--name", "authsvc", "--name", "reference",
                               "--bootstrap", "10", "--warmup", "0.1", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "| AUC authsvc | AUC reference | ΔAUC |" in res.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["models"] == ["authsvc", "reference"]
    for cell in out["results"]:
        assert cell["diff"]["auc"] == pytest.approx(cell["point"][0]["auc"] - cell["point"][1]["auc"])
        lo, hi = cell["diff_ci"]["auc"]
        assert lo <= hi
    assert 0.0 <= out["friction"]["authsvc"]["with_history: share of logins challenged"] <= 1.0
    # The reference always answers "allow": no owner is challenged.
    assert out["friction"]["reference"]["with_history: share of logins challenged"] == 0.0


def test_report_rejects_names_that_do_not_match(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("index\n")
    res = CliRunner().invoke(risk, ["report", str(f), str(f), str(f), "--name", "only-one"])
    assert res.exit_code != 0 and "--name" in res.output


def test_engine_configured_as_reference_scores_like_it(tmp_path: Path) -> None:
    from authsvc.risk.evaluation.ablate import run_ablations

    logins = tmp_path / "logins.csv"
    res = CliRunner().invoke(risk, ["simulate", "--users", "300", "--days", "40", "--seed", "9", "-o", str(logins),
                                    "--world", "b"], env={"AUTHSVC_GEOIP_DIR": None})
    assert res.exit_code == 0, res.output
    eng, ref = run_ablations(logins, tmp_path / "abl", ["v1_as_reference", "reference"])
    rows, a, b = _read(logins)[1:], _read(eng)[1:], _read(ref)[1:]
    seen: set[str] = set()
    compared = 0
    for r, x, y in zip(rows, a, b):
        if r[2] in seen:  # the engine replaces the LR of accounts without history by no_history_log_lr
            assert float(x[1]) == pytest.approx(float(y[1]), abs=2e-4)
            compared += 1
        if r[13] == "True":
            seen.add(r[2])
    assert compared > 500


def test_ablate_command_prints_one_row_per_variant(tmp_path: Path) -> None:
    logins = tmp_path / "logins.csv"
    runner = CliRunner()
    res = runner.invoke(risk, ["simulate", "--users", "800", "--days", "60", "--seed", "2", "-o", str(logins),
                               "--probe-rate", "0.3"], env={"AUTHSVC_GEOIP_DIR": None})
    assert res.exit_code == 0, res.output
    res = runner.invoke(risk, ["ablate", str(logins), "-o", str(tmp_path / "abl"), "--variant", "v1",
                               "--variant", "v2", "--variant", "reference", "--warmup", "0.1"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines()
            if line.startswith(("| v1 ", "| v2 ", "| reference "))]
    assert [r.split("|")[1].strip() for r in rows] == ["v1", "v2", "reference"]
    assert "naive all" in res.output
    naive_auc = float(rows[1].split("|")[2].split("/")[0])
    assert 0.5 < naive_auc <= 1.0
    assert sorted(p.name for p in (tmp_path / "abl").iterdir()) == ["reference.csv", "v1.csv", "v2.csv"]
    res = runner.invoke(risk, ["ablate", str(logins), "-o", str(tmp_path / "x"), "--variant", "nope"])
    assert res.exit_code != 0 and "unknown variant" in res.output
