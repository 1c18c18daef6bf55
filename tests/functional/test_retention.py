"""Retention (issue 20): `authsvc retention` prunes receipts, ended sessions, expired/used e-mail tokens (decoys too)
and old audit events in bounded batches; the audit chain then starts at a signed anchor, so `audit verify` and the
dashboard verify from the oldest kept row — and a deletion nobody signed still fails them. Real SQL and real Redis;
time moves with the app's clock. Attacker tests first."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, text

from tests.conftest import create_user
from tests.functional.admin_helpers import admin_client
from tests.functional.helpers import login

DAY = 86400
EMAIL = "alice@example.com"


def _fill(svc, n, tag="account:login:failure"):
    svc.audit.record_many([{"tag": tag, "outcome": "failure", "subject_id": 7, "ip": "203.0.113.9",
                            "reason": "bad_password"} for _ in range(n)])


def _retention(app, **policy):
    from authsvc.retention import for_app

    r = for_app(app)
    if policy:
        import dataclasses

        r.policy = dataclasses.replace(r.policy, **policy)
    return r


def _old_chain(app, svc, old=30, new=10):
    """``old`` events 500 days ago, then ``new`` events now (the clock moved forward in between)."""
    clock = app.extensions["authsvc"].clock
    _fill(svc, old)
    clock.advance(500 * DAY)
    _fill(svc, new)
    return old + 1  # the first event inside the 400-day default


def _scalar(sql, **params):
    from authsvc.extensions import db

    return db.session.execute(text(sql), params).scalar()


def _exec(sql, **params):
    from authsvc.extensions import db

    db.session.execute(text(sql), params)
    db.session.commit()


# --- attacker tests ------------------------------------------------------------------------------------------------
def test_deleting_the_oldest_audit_rows_is_not_passed_off_as_retention(app, svc):
    _old_chain(app, svc)
    _exec("DELETE FROM security_events WHERE id <= 12")  # an attacker with SQL access, no SECRET_KEY
    report = svc.audit.verify()
    assert not report.ok and report.first_bad_id == 13
    assert "no signed retention checkpoint" in report.problem
    inc = svc.audit.verify_incremental()
    assert not inc.ok


def test_a_forged_retention_anchor_is_refused(app, svc):
    from authsvc.audit import AnchorSigner
    from authsvc.models import SecurityEvent

    _old_chain(app, svc)
    prev = _scalar("SELECT prev_hash FROM security_events WHERE id = 13")
    _exec("DELETE FROM security_events WHERE id < 13")
    for mac in ("0" * 64, AnchorSigner(b"not-the-secret-key").mac(13, prev)):
        _exec("DELETE FROM audit_anchor")
        _exec("INSERT INTO audit_anchor (id, first_id, prev_hash, pruned_at, mac) VALUES (1, 13, :p, :t, :m)",
              p=prev, t=dt.datetime(2026, 1, 1), m=mac)
        report = svc.audit.verify()
        assert not report.ok and "signature" in report.problem
        svc.audit._checkpoint = None
        assert not svc.audit.verify_incremental().ok
    assert svc.audit.anchor_signer.valid(13, prev, svc.audit.anchor_signer.mac(13, prev))  # the real key would pass
    assert svc.audit.db.session.get(SecurityEvent, 13) is not None


def test_rows_deleted_after_a_genuine_anchor_are_detected(app, svc):
    first = _old_chain(app, svc)
    _retention(app).run()
    assert svc.audit.verify().ok
    _exec("DELETE FROM security_events WHERE id IN (:a, :b)", a=first, b=first + 1)  # the oldest kept rows
    report = svc.audit.verify()
    assert not report.ok and report.first_bad_id == first + 2 and "oldest kept" in report.problem
    svc.audit._checkpoint = None
    svc.audit.checkpoint_store = None
    assert not svc.audit.verify_incremental().ok


def test_an_older_genuine_anchor_put_back_does_not_hide_a_later_deletion(app, svc):
    clock = app.extensions["authsvc"].clock
    first = _old_chain(app, svc)
    _retention(app).run()
    old_anchor = svc.audit.db.session.execute(text("SELECT first_id, prev_hash, mac FROM audit_anchor")).first()
    clock.advance(300 * DAY)
    _fill(svc, 5)
    clock.advance(150 * DAY)  # now the first batch of "new" events is old too
    _retention(app).run()
    assert svc.audit.start().first_id > first and svc.audit.verify().ok
    _exec("UPDATE audit_anchor SET first_id = :f, prev_hash = :p, mac = :m", f=old_anchor.first_id,
          p=old_anchor.prev_hash, m=old_anchor.mac)
    report = svc.audit.verify()
    assert not report.ok and f"row {first}" in report.problem


def test_retention_refuses_to_prune_over_a_tampered_chain_and_audits_it(app, svc):
    from authsvc.audit import ChainBroken

    _old_chain(app, svc)
    _exec("UPDATE security_events SET reason = 'harmless' WHERE id = 5")  # tampering inside the part to prune
    with pytest.raises(ChainBroken):
        _retention(app).run()
    assert _scalar("SELECT count(*) FROM security_events WHERE id < 31") == 30  # nothing pruned: evidence kept
    assert _scalar("SELECT count(*) FROM audit_anchor") == 0
    tag, outcome, reason = svc.audit.db.session.execute(text(
        "SELECT tag, outcome, reason FROM security_events ORDER BY id DESC LIMIT 1")).first()
    assert (tag, outcome, reason) == ("system:retention:prune", "failure", "chain_broken")
    runner = app.test_cli_runner()
    res = runner.invoke(args=["retention"])
    assert res.exit_code == 1 and "does not verify" in res.output


def test_a_deleted_gap_inside_the_pruned_part_is_not_laundered(app, svc):
    from authsvc.audit import ChainBroken

    _old_chain(app, svc)
    _exec("DELETE FROM security_events WHERE id BETWEEN 3 AND 6")
    with pytest.raises(ChainBroken):
        _retention(app).run()
    assert _scalar("SELECT min(id) FROM security_events") == 1


def test_a_live_session_and_a_live_token_are_never_pruned(app, client, svc):
    create_user(app, EMAIL)
    login(client, EMAIL)
    live = svc.tokens.issue("reset", None, 1800)
    tokens = _scalar("SELECT count(*) FROM email_tokens")
    assert live and tokens >= 1
    _retention(app, sessions_days=1, tokens_days=1, receipts_days=1).run()
    assert _scalar("SELECT count(*) FROM user_sessions") == 1
    assert _scalar("SELECT count(*) FROM email_tokens") == tokens
    assert client.get("/account").status_code == 200  # still signed in


def test_a_held_lock_skips_the_run(app, svc):
    from authsvc.extensions import get_redis

    _old_chain(app, svc)
    get_redis().set("retention:lock", "someone-else", ex=60)
    report = _retention(app).run()
    assert report.skipped == "locked"
    assert _scalar("SELECT min(id) FROM security_events") == 1


# --- happy path ----------------------------------------------------------------------------------------------------
def test_retention_prunes_everything_by_age_and_the_chain_verifies_from_the_anchor(app, client, svc):
    from authsvc.extensions import db

    clock = app.extensions["authsvc"].clock
    create_user(app, EMAIL)
    login(client, EMAIL)  # a session, a receipt, audit rows
    svc.tokens.replace("reset", None, 1800)  # a decoy: born used and expired
    svc.tokens.issue("verify", None, 1800)
    _fill(svc, 20)
    assert svc.audit.verify_incremental().ok  # a checkpoint that retention will prune away
    clock.advance(500 * DAY)
    _fill(svc, 5)
    keep = _scalar("SELECT max(id) FROM security_events") - 4
    before = {t: _scalar(f"SELECT count(*) FROM {t}") for t in ("login_events", "user_sessions", "email_tokens")}
    assert all(before.values())
    assert _retention(app).pending()["audit_events"] == keep - 1
    report = _retention(app).run()
    after = {t: _scalar(f"SELECT count(*) FROM {t}") for t in ("login_events", "user_sessions", "email_tokens")}
    assert after == {"login_events": 0, "user_sessions": 0, "email_tokens": 0}
    assert report.counts["receipts"] == before["login_events"] and report.counts["email_tokens"] == before["email_tokens"]
    assert report.audit_first_id == keep and report.counts["audit_events"] == keep - 1
    assert _scalar("SELECT min(id) FROM security_events") == keep
    full = svc.audit.verify()
    assert full.ok and full.checked == 6  # the 5 kept + the run's own system:retention:prune event
    # the dashboard's check in this worker (checkpoint older than the anchor) and in a new worker both pass
    inc = svc.audit.verify_incremental()
    assert inc.ok and inc.since_id == keep - 1 and inc.full_verified_at is not None
    svc.audit._checkpoint = None
    svc.audit.checkpoint_store = None
    assert svc.audit.verify_incremental().ok
    last = db.session.execute(text("SELECT tag, outcome, details FROM security_events ORDER BY id DESC")).first()
    assert last.tag == "system:retention:prune" and last.outcome == "success" and '"audit_first_id"' in last.details
    res = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert res.exit_code == 0 and "6 events verified" in res.output


def test_pruning_runs_in_bounded_batches(app, svc):
    from authsvc.extensions import db

    _old_chain(app, svc, old=450, new=3)
    commits = []

    def count(conn):
        commits.append(1)

    event.listen(db.engine, "commit", count)
    try:
        report = _retention(app, batch=100).run()
    finally:
        event.remove(db.engine, "commit", count)
    assert report.counts["audit_events"] == 450
    assert len(commits) >= 5  # ≥ 450/100 delete transactions, not one
    assert svc.audit.verify().ok


def test_an_interrupted_run_leaves_a_verifiable_chain_and_the_next_run_finishes(app, svc):
    first = _old_chain(app, svc)
    svc.audit.prune_before(first, batch=10_000)
    # a run cut off after signing the anchor and before deleting: rows below the anchor are still there
    _exec("INSERT INTO security_events (id, occurred_at, tag, outcome, prev_hash, hash) "
          "VALUES (1, :t, 'x', 'info', 'a', 'b')", t=dt.datetime(2024, 1, 1))
    assert svc.audit.verify().ok
    assert _retention(app).run().counts["audit_events"] == 1
    assert _scalar("SELECT min(id) FROM security_events") == first


def test_cli_dry_run_counts_and_run_prunes(app, svc):
    _old_chain(app, svc)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["retention", "--dry-run"])
    assert dry.exit_code == 0 and "audit_events: 30 to prune" in dry.output
    assert _scalar("SELECT count(*) FROM security_events") == 40
    res = runner.invoke(args=["retention"])
    assert res.exit_code == 0 and "audit chain starts at event 31" in res.output, res.output
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_dashboard_chain_tile_after_retention(app, svc):
    _old_chain(app, svc)
    _retention(app).run()
    admin = admin_client(app)
    html = admin.get("/admin/").get_data(as_text=True)
    assert "Intact" in html and "BROKEN" not in html
    assert svc.audit.verify_incremental().ok


def test_retention_settings_are_validated():
    from authsvc.config import ConfigError, Settings

    for bad in ({"retention_audit_days": 5}, {"retention_batch": 10}, {"retention_interval": 5},
                {"retention_receipts_days": -1}, {"session_max_per_user": 1}):
        with pytest.raises(ConfigError):
            Settings(**bad).validate()
    assert Settings().validate().retention_audit_days == 400
