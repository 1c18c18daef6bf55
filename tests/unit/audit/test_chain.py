import threading

from sqlalchemy import text

from authsvc.extensions import db


def _fill(svc, n=5):
    for i in range(n):
        svc.audit.record("account:login:failure", "failure", subject_id=i, ip="192.0.2.1", user_agent="ua",
                         reason="bad_password")


def test_intact_chain_verifies(svc):
    _fill(svc)
    report = svc.audit.verify()
    assert report.ok and report.checked == 5


def test_edit_is_detected(svc):
    _fill(svc)
    db.session.execute(text("UPDATE security_events SET reason = 'harmless' WHERE id = 3"))
    db.session.commit()
    report = svc.audit.verify()
    assert not report.ok and report.first_bad_id == 3 and "edited" in report.problem


def test_deleting_a_middle_row_is_detected(svc):
    _fill(svc)
    db.session.execute(text("DELETE FROM security_events WHERE id = 2"))
    db.session.commit()
    report = svc.audit.verify()
    assert not report.ok and report.first_bad_id == 3


def test_deleting_the_newest_rows_is_detected(svc):
    _fill(svc)
    db.session.execute(text("DELETE FROM security_events WHERE id >= 4"))
    db.session.commit()
    assert not svc.audit.verify().ok


def test_recomputed_hash_without_head_is_still_detected(svc):
    # An attacker who edits a row and fixes its own hash still breaks the next row's prev_hash link.
    from authsvc.audit import _digest
    from authsvc.models import SecurityEvent

    _fill(svc)
    ev = db.session.get(SecurityEvent, 2)
    ev.reason = "forged"
    ev.hash = _digest(ev.prev_hash, ev)
    db.session.commit()
    report = svc.audit.verify()
    assert not report.ok and report.first_bad_id == 3


def test_cli_verify_exit_codes(app, svc):
    _fill(svc, 3)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "3 events verified" in ok.output
    db.session.execute(text("UPDATE security_events SET ip = '203.0.113.9' WHERE id = 1"))
    db.session.commit()
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and "TAMPERED at event 1" in bad.output


def test_concurrent_writers_build_one_chain(app):
    from authsvc.services import services

    errors = []

    def worker(k):
        try:
            with app.app_context():
                for i in range(10):
                    services().audit.record("test:chain:append", "info", subject_id=k * 100 + i)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.app_context():
        report = services().audit.verify()
    assert report.ok and report.checked == 40


def test_verify_record_verify_in_one_session(svc):
    """The head read by verify() must never be a stale copy left in the session's identity map."""
    _fill(svc, 2)
    assert svc.audit.verify().ok
    _fill(svc, 2)
    report = svc.audit.verify()
    assert report.ok and report.checked == 4


def test_record_many_is_one_chain_step_and_verifies(svc):
    """Several events appended together (a login writes its MFA note and its success at once) get consecutive ids,
    chain onto each other in order, and interleave correctly with single appends."""
    _fill(svc, 2)
    evs = svc.audit.record_many([dict(tag="mfa:stepup:unavailable", outcome="info", subject_id=7, reason="new place"),
                                 dict(tag="account:login:success", outcome="success", actor_id=7, subject_id=7)])
    _fill(svc, 1)
    assert [e.id for e in evs] == [3, 4] and evs[1].prev_hash == evs[0].hash
    report = svc.audit.verify()
    assert report.ok and report.checked == 5
    rows = db.session.execute(text("SELECT id, tag FROM security_events ORDER BY id")).all()
    assert [r.tag for r in rows][2:4] == ["mfa:stepup:unavailable", "account:login:success"]
    assert svc.audit.record_many([]) == []


# --- the dashboard's incremental check ----------------------------------------------------------------------------
def _hashed_ids(monkeypatch):
    """Record the id of every row the verifier hashes (each row read by verify_incremental is hashed once)."""
    import authsvc.audit as audit_mod

    seen, real = [], audit_mod._digest

    def counting(prev_hash, ev):
        seen.append(ev.id)
        return real(prev_hash, ev)

    monkeypatch.setattr(audit_mod, "_digest", counting)
    return seen


def test_incremental_passes_on_an_intact_chain_and_moves_the_checkpoint(svc):
    first = svc.audit.verify_incremental()  # nothing remembered yet: a full pass
    assert first.ok and first.checked == 0 and first.since_id == 0 and first.full_verified_at is not None
    _fill(svc, 3)
    full = svc.audit.verify_incremental()
    assert full.ok and full.checked == 3 and full.hashed == 3 and full.since_id == 0  # checkpoint 0: full again
    _fill(svc, 2)
    report = svc.audit.verify_incremental()
    assert report.ok and report.checked == 5 and report.since_id == 3 and report.hashed == 3  # checkpoint + 2 new
    assert report.full_verified_at == full.full_verified_at
    again = svc.audit.verify_incremental()  # nothing new: only the checkpoint row is re-read
    assert again.ok and again.checked == 5 and again.since_id == 5 and again.hashed == 1
    assert svc.audit.verify().ok  # the full check is unchanged


def test_incremental_reads_only_rows_after_the_checkpoint(svc, monkeypatch):
    _fill(svc, 50)
    assert svc.audit.verify_incremental().ok  # checkpoint at 50
    _fill(svc, 3)
    seen = _hashed_ids(monkeypatch)
    report = svc.audit.verify_incremental()
    assert report.ok and report.checked == 53
    assert seen == [50, 51, 52, 53] and report.hashed == 4  # the checkpoint row, then only the new ones
    seen.clear()
    assert svc.audit.verify().ok and len(seen) == 53  # the full check still hashes every row


def test_incremental_detects_an_edit_after_the_checkpoint(svc):
    _fill(svc, 3)
    assert svc.audit.verify_incremental().ok
    _fill(svc, 3)
    db.session.execute(text("UPDATE security_events SET reason = 'harmless' WHERE id = 5"))
    db.session.commit()
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 5 and "edited" in report.problem
    # the checkpoint did not move: the failure is reported again, not forgotten
    assert not svc.audit.verify_incremental().ok


def test_incremental_detects_deleted_newest_rows_by_the_head(svc):
    _fill(svc, 3)
    assert svc.audit.verify_incremental().ok
    _fill(svc, 3)
    db.session.execute(text("DELETE FROM security_events WHERE id >= 5"))
    db.session.commit()
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 5 and "head mismatch" in report.problem


def test_incremental_detects_the_head_rewound_past_the_checkpoint(svc):
    from authsvc.models import SecurityEvent

    _fill(svc, 3)
    assert svc.audit.verify_incremental().ok
    _fill(svc, 1)
    two = db.session.get(SecurityEvent, 2)
    db.session.execute(text("DELETE FROM security_events WHERE id >= 3"))
    db.session.execute(text("UPDATE audit_head SET last_id = 2, last_hash = :h"), {"h": two.hash})
    db.session.commit()
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 3 and "deleted" in report.problem


def test_incremental_detects_an_edited_checkpoint_row(svc):
    _fill(svc, 3)
    assert svc.audit.verify_incremental().ok  # checkpoint at 3
    db.session.execute(text("UPDATE security_events SET ip = '203.0.113.9' WHERE id = 3"))
    db.session.commit()
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 3 and "edited" in report.problem


def test_incremental_detects_a_rewritten_chain_through_the_checkpoint(svc):
    """Edit an old row and recompute every hash after it and the head: verify() cannot tell (the chain is
    consistent), but the remembered hash of the checkpoint row no longer matches."""
    from authsvc.audit import _digest
    from authsvc.models import AuditHead, SecurityEvent

    _fill(svc, 4)
    assert svc.audit.verify_incremental().ok  # checkpoint at 4
    prev = db.session.get(SecurityEvent, 1).hash
    for i in (2, 3, 4):
        ev = db.session.get(SecurityEvent, i)
        if i == 2:
            ev.reason = "forged"
        ev.prev_hash = prev
        ev.hash = prev = _digest(prev, ev)
    db.session.get(AuditHead, 1).last_hash = prev
    db.session.commit()
    assert svc.audit.verify().ok
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 4 and "rewritten" in report.problem


def test_incremental_detects_a_row_planted_beyond_the_head(svc):
    from authsvc.audit import _COLUMNS
    from authsvc.models import SecurityEvent

    _fill(svc, 2)
    assert svc.audit.verify_incremental().ok
    last = db.session.get(SecurityEvent, 2)
    row = {c: getattr(last, c) for c in _COLUMNS} | {"id": 3, "reason": "planted"}
    db.session.execute(SecurityEvent.__table__.insert(), [row])
    db.session.commit()
    report = svc.audit.verify_incremental()
    assert not report.ok and report.first_bad_id == 3 and "beyond the chain head" in report.problem


def test_an_edit_before_the_checkpoint_needs_the_full_check(svc):
    """The trade-off, pinned: the incremental check does not re-read old rows; verify() (the CLI) still does."""
    _fill(svc, 4)
    assert svc.audit.verify_incremental().ok
    _fill(svc, 1)
    db.session.execute(text("UPDATE security_events SET reason = 'harmless' WHERE id = 2"))
    db.session.commit()
    assert svc.audit.verify_incremental().ok
    full = svc.audit.verify()
    assert not full.ok and full.first_bad_id == 2


def test_chain_hashes_the_stored_form_whatever_the_caller_passes(app, svc):
    """Issue 12 item 4: ids given as strings (a uid read back from Redis), a timestamp in another zone or with
    sub-microsecond noise, and details with non-JSON values must hash to what the row stores and reads back."""
    import datetime as dt

    class ZonedClock:
        def now(self):
            return dt.datetime.now(dt.timezone(dt.timedelta(hours=2)))

    svc.audit.record("oauth:token:revoke", "success", actor_id="1", subject_id="1", ip="192.0.2.1",
                     details={"client_id": "c", "n": 1})
    svc.audit.record("oauth:token:revoke", "success", actor_id=True, subject_id=2, ip="x" * 80,
                     user_agent="ua\x00with nul", details={"when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    saved = svc.audit.clock
    svc.audit.clock = ZonedClock()
    try:
        svc.audit.record("test:chain:zone", "info", actor_id="7")
    finally:
        svc.audit.clock = saved
    report = svc.audit.verify()
    assert report.ok and report.checked == 3, report
    runner = app.test_cli_runner()
    out = runner.invoke(args=["audit", "verify"])
    assert out.exit_code == 0 and "3 events verified" in out.output, out.output
