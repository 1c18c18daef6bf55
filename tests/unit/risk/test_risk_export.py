"""`risk export`: the service's receipts and the labels it records, in the schema `risk fit` reads (real SQL)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from authsvc.risk.evaluation.fit import check_input, labels
from authsvc.risk.export import EXPORT_COLUMNS, export_labels
from tests.conftest import create_user


def _receipt(db, user_id, when, outcome, decision=None, ip="198.51.100.7", ua="Mozilla/5.0 (X11) Firefox/121.0"):
    from authsvc.models.activity import LoginEvent

    ev = LoginEvent(user_id=user_id, occurred_at=when, outcome=outcome, method="password", ip=ip, user_agent=ua,
                    decision=decision, score=0.0)
    db.session.add(ev)
    db.session.commit()
    return ev.id


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_export_labels_outcomes_from_what_the_service_records(app, svc, tmp_path: Path) -> None:
    from authsvc.extensions import db

    alice = create_user(app, "alice@example.com")
    bob = create_user(app, "bob@example.com")
    t0 = svc.clock.now()
    m = dt.timedelta(minutes=1)
    ids = {
        "allowed": _receipt(db, alice, t0, "success", "allow"),
        "mfa_then_ok": _receipt(db, alice, t0 + 10 * m, "mfa_required", "step_up"),
        "stepup_passed": _receipt(db, alice, t0 + 12 * m, "success", "step_up"),
        "stepup_failed": _receipt(db, alice, t0 + 60 * m, "mfa_required", "step_up", ip="203.0.113.9"),
        "failed": _receipt(db, bob, t0 + 70 * m, "failed", ua="bob@example.com <script>"),
        "unknown_account": _receipt(db, None, t0 + 71 * m, "failed"),
        "reported": _receipt(db, bob, t0 + 80 * m, "success", "allow", ip="203.0.113.50"),
    }
    # The alert for that sign-in carries the "this wasn't me" link; Bob uses it (the real token service).
    svc.clock.advance(80 * 60 + 30)
    token = svc.tokens.issue("notme", bob, 7 * 86400)
    svc.clock.advance(3600)
    assert svc.tokens.consume("notme", token) is not None
    ids["denied"] = _receipt(db, alice, t0 + 200 * m, "denied", "deny")
    ids["confirmed"] = _receipt(db, alice, t0 + 300 * m, "success", "allow", ip="192.0.2.66")

    out = tmp_path / "export.csv"
    with pytest.raises(ValueError, match="no login receipt with id 999999"):
        export_labels(db.session, out, confirmed=[999999])
    counts = export_labels(db.session, out, confirmed=[ids["confirmed"]])
    rows = _read(out)
    assert tuple(rows[0].keys()) == EXPORT_COLUMNS
    by_id = {r["index"]: r for r in rows}
    assert str(ids["mfa_then_ok"]) not in by_id  # the same sign-in as the success that finished it
    expect = {"allowed": ("allowed", "True", "False"), "stepup_passed": ("stepup_passed", "True", "False"),
              "stepup_failed": ("stepup_failed", "False", "False"), "failed": ("failed", "False", "False"),
              "unknown_account": ("failed", "False", "False"), "reported": ("reported", "True", "True"),
              "denied": ("denied", "False", "False"), "confirmed": ("confirmed", "True", "True")}
    for name, (outcome, ok, ato) in expect.items():
        r = by_id[str(ids[name])]
        assert (r["Outcome"], r["Login Successful"], r["Is Account Takeover"]) == (outcome, ok, ato), name
    assert counts["reported"] == 1 and counts["stepup_failed"] == 1
    assert [r["Login Timestamp"] for r in rows] == sorted(r["Login Timestamp"] for r in rows)
    assert not any("alice@" in v for r in rows for k, v in r.items() if k != "User Agent String")

    # What `risk fit` reads from it: outcomes never use the takeover reports, attacks do.
    cols = check_input(out)
    order = [r["index"] for r in rows]
    y_out, y_att = labels(cols, "outcomes"), labels(cols, "attacks")
    at = {name: order.index(str(ids[name])) for name in expect}
    assert y_out[at["stepup_failed"]] == 1 and y_att[at["stepup_failed"]] == 1
    assert y_out[at["stepup_passed"]] == 0 and y_out[at["allowed"]] == 0
    assert y_out[at["reported"]] == 0 and y_att[at["reported"]] == 1  # owner-only labels cannot know it
    assert y_att[at["confirmed"]] == 1
    assert np.isnan(y_out[at["failed"]]) and np.isnan(y_out[at["denied"]])


def test_export_command_refuses_an_unknown_receipt_without_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from authsvc.risk.cli import risk

    res = CliRunner().invoke(risk, ["export", "-o", str(tmp_path / "x.csv"), "--confirmed", "abc"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "--confirmed" in res.output
    res = CliRunner().invoke(risk, ["export", "-o", str(tmp_path / "x.csv"), "--stepup-window", "5"])
    assert res.exit_code == 2 and "--stepup-window" in res.output
