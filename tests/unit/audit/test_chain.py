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
