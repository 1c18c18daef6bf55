"""simulate → replay → report through click's CliRunner, plus the replay's contract."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from authsvc.risk.cli import risk
from authsvc.risk.evaluation.schema import ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN, COLUMNS, SCORE_COLUMNS
from authsvc.risk.evaluation.simulate import logins_per_user
from authsvc.risk.evaluation.simworld import build_world


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    d = tmp_path_factory.mktemp("risk_cli")
    logins, scores = d / "logins.csv", d / "scores.csv"
    runner = CliRunner()
    res = runner.invoke(risk, ["simulate", "--users", "1000", "--days", "90", "--seed", "3", "-o", str(logins),
                               "--probe-rate", "0.3"], env={"AUTHSVC_GEOIP_DIR": None})
    assert res.exit_code == 0, res.output
    res = runner.invoke(risk, ["replay", str(logins), "-o", str(scores)])
    assert res.exit_code == 0, res.output
    assert "rows/s" in res.output
    return logins, scores, res.output


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def _write(path: Path, header: list[str], rows, errors: str = "strict") -> Path:
    with open(path, "w", newline="", encoding="utf-8", errors=errors) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def test_simulated_file_has_the_dataset_schema_first(simulated: tuple[Path, Path, str]) -> None:
    header, rows = _read(simulated[0])
    assert tuple(header[:16]) == COLUMNS
    assert header[16] == ATTACK_TYPE_COLUMN
    ts = [r[1] for r in rows]
    assert ts == sorted(ts)
    assert [r[0] for r in rows] == [str(i) for i in range(len(rows))]
    kinds = {r[16] for r in rows}
    assert {"", "naive", "vpn", "targeted", "stuffing", "spraying"} <= kinds
    # Every stuffing / spraying row names its campaign, nothing else does; campaigns are few and many rows long.
    assert header[17] == CAMPAIGN_COLUMN
    assert all(r[17].startswith(r[16] + ":") for r in rows if r[16] in ("stuffing", "spraying"))
    assert all(r[17] == "" for r in rows if r[16] not in ("stuffing", "spraying"))
    campaigns = {r[17] for r in rows if r[17]}
    assert 2 <= len(campaigns) < sum(1 for r in rows if r[17]) / 10
    success = sum(r[13] == "True" for r in rows) / len(rows)
    attack_ip = sum(r[14] == "True" for r in rows) / len(rows)
    assert success == pytest.approx(0.401, abs=0.03)
    assert attack_ip == pytest.approx(0.099, abs=0.03)


def test_replay_output_and_attacks_score_higher(simulated: tuple[Path, Path, str]) -> None:
    logins, scores, _ = simulated
    _, rows = _read(logins)
    header, out = _read(scores)
    assert tuple(header) == SCORE_COLUMNS
    assert len(out) == len(rows)
    assert {r[2] for r in out} <= {"allow", "step_up", "deny"}
    score = {r[0]: float(r[1]) for r in out}
    seen: set[str] = set()
    legit, attacks = [], []
    for r in rows:
        if r[2] in seen:
            if r[16] in ("naive", "vpn", "targeted"):
                attacks.append(score[r[0]])
            elif r[16] == "" and r[13] == "True":
                legit.append(score[r[0]])
        if r[13] == "True":
            seen.add(r[2])
    assert len(attacks) > 50 and len(legit) > 500
    assert sum(attacks) / len(attacks) > sum(legit) / len(legit) + 2.0


def test_report_table(simulated: tuple[Path, Path, str], tmp_path: Path) -> None:
    logins, scores, _ = simulated
    res = CliRunner().invoke(risk, ["report", str(logins), str(scores), "--bootstrap", "20", "--warmup", "0.1",
                                    "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "| attacker | history |" in res.output
    assert "| naive | 1-3 |" in res.output
    assert "reuse the victim's own ASN and exact UA string" in res.output
    import json

    results = json.loads((tmp_path / "r.json").read_text())
    naive = [r for r in results if r["attack"] == "naive"]
    assert naive and all(0.5 < r["point"]["auc"] <= 1.0 for r in naive)
    for r in results:
        lo, hi = r["ci"]["auc"]
        assert lo <= hi


def test_replay_ignores_labels(simulated: tuple[Path, Path, str], tmp_path: Path) -> None:
    logins, scores, _ = simulated
    header, rows = _read(logins)
    # wipe Is Attack IP / Is Account Takeover / Attack Type
    flipped = _write(tmp_path / "flipped.csv", header, (r[:14] + ["False", "False", ""] for r in rows[:3000]))
    out = tmp_path / "flipped_scores.csv"
    assert CliRunner().invoke(risk, ["replay", str(flipped), "-o", str(out)]).exit_code == 0
    assert _read(out)[1] == _read(scores)[1][:3000]


def test_replay_sorts_unsorted_input(simulated: tuple[Path, Path, str], tmp_path: Path) -> None:
    logins, scores, _ = simulated
    header, rows = _read(logins)
    shuffled = _write(tmp_path / "shuffled.csv", header, reversed(rows[:2000]))
    out = tmp_path / "s.csv"
    res = CliRunner().invoke(risk, ["replay", str(shuffled), "-o", str(out)])
    assert res.exit_code == 0 and "sorted in memory" in res.output
    got = {r[0]: r[1] for r in _read(out)[1]}
    want = {r[0]: r[1] for r in _read(scores)[1][:2000]}
    # rows with equal timestamps may swap order; all others must score exactly as in the sorted replay
    same = sum(got[k] == v for k, v in want.items())
    assert same >= 0.99 * len(want)


def test_login_count_calibration() -> None:
    import random

    rng = random.Random(0)
    counts = sorted(logins_per_user(rng.random()) for _ in range(100_000))
    once = sum(c == 1 for c in counts) / len(counts)
    assert once == pytest.approx(0.397, abs=0.01)
    assert counts[len(counts) // 2] == 2
    assert counts[int(0.9 * len(counts)) - 1] == 9  # p90: smallest k with F(k) ≥ 0.9
    assert counts[int(0.99 * len(counts)) - 1] == 28


def test_simulated_ips_match_real_asns(geoip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.csv"
    res = CliRunner().invoke(risk, ["simulate", "--users", "200", "--days", "30", "-o", str(out),
                                    "--geoip-dir", str(geoip_dir)])
    assert res.exit_code == 0, res.output
    assert "real IP/ASN data" in res.output
    table = build_world(geoip_dir).asn_table  # cached by the simulate run above: same real ranges
    assert table is not None and len(table) > 400_000
    _, rows = _read(out)
    mismatches = [r for r in rows if (table.lookup(r[4]) or (None,))[0] != int(r[8])]
    assert not mismatches
    assert build_world(None).real_data is False


def test_replay_turns_the_cyclic_collector_back_on_after_a_pass_and_after_a_failure(
        simulated: tuple[Path, Path, str], tmp_path: Path) -> None:
    """The replay switches the cyclic GC off for its pass (a quarter of its time, docs/BENCHMARKS.md): it must be on
    again afterwards — after a normal pass, after the unsorted-input restart, and after a file that breaks mid-way —
    and the scores must be the same as with the collector on."""
    import gc

    from authsvc.risk.evaluation.replay import ReplayInputError, replay

    logins, scores, _ = simulated
    header, rows = _read(logins)
    short = _write(tmp_path / "short.csv", header, rows[:1500])
    assert gc.isenabled()
    replay(short, tmp_path / "a.csv")
    assert gc.isenabled()
    assert _read(tmp_path / "a.csv")[1] == _read(scores)[1][:1500]
    assert replay(_write(tmp_path / "reversed.csv", header, reversed(rows[:300])), tmp_path / "r.csv").resorted
    assert gc.isenabled()
    broken = _write(tmp_path / "broken.csv", header, [*rows[:200], rows[200][:3]])  # a truncated row: the pass fails
    with pytest.raises(ReplayInputError, match="data row 201"):
        replay(broken, tmp_path / "b.csv")
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        replay(short, tmp_path / "c.csv")
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("content, says", [
    (b"", "empty file"),
    (b"a,b\n1,2\n", "missing column(s) 'index'"),
    (bytes(range(128, 256)) * 3, "not a UTF-8 CSV file"),
    ("\ufeffindex\n".encode(), "missing column"),
    (None, "data row 2: Invalid isoformat string"),           # a bad timestamp in the second data row
    ("short", "data row 3"),                                   # a truncated row
    ("\udcff", "'utf-8' codec can't decode"),                  # a lone surrogate escape: the byte 0xff in a row
])
def test_replay_report_and_ablate_explain_a_bad_file_in_one_line(simulated, tmp_path, content, says) -> None:
    """Hostile or broken login files get one clear line and exit 1 — never a traceback — and no partial score
    file is left to be mistaken for a whole one."""
    logins, scores, _ = simulated
    header, rows = _read(logins)
    bad = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        body = [list(r) for r in rows[:5]]
        if content is None:
            body[1][1] = "not-a-time"
        elif content == "short":
            body[2] = body[2][:3]
        else:
            body[0][0] = content
        _write(bad, header, body, errors="surrogateescape")
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(risk, ["replay", str(bad), "-o", str(out)])
    assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output, res.output
    assert not out.exists()
    res = CliRunner().invoke(risk, ["report", str(bad), str(scores)])
    assert res.exit_code == 1 and "Traceback" not in res.output and res.output.startswith("Error:"), res.output
    res = CliRunner().invoke(risk, ["ablate", str(bad), "-o", str(tmp_path / "abl"), "--variant", "reference"])
    assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output, res.output
