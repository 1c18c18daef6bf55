"""The durable delivery core (authsvc/signals/outbox.py): rows written in the audit transaction, a worker with retries,
exponential backoff, leases, give-up, no dependency on Redis, backlog in /metrics. Real SQL, real Redis."""

from __future__ import annotations


import re

import pytest
from sqlalchemy import func, select

from authsvc.models import OutboxItem, SecurityEvent


def _listen(svc, app, kind="test"):
    """An audit listener that enqueues one row per ``demo:*`` event, as SSF and BCL do for theirs."""
    from authsvc.signals import signals

    sig = signals(app)

    def listener(ev, session):
        if ev.tag.startswith("demo:"):
            sig.enqueue(session, kind, f"target-{ev.subject_id}", {"event": ev.tag, "audit_id": ev.id})

    svc.audit.on_record(listener)
    return sig


def _rows(db):
    return list(db.session.execute(select(OutboxItem).order_by(OutboxItem.id)).scalars())


def test_outbox_row_commits_and_rolls_back_with_its_audit_event(app, svc):
    from authsvc.extensions import db

    _listen(svc, app)
    svc.audit.record("demo:thing", "success", subject_id=7)
    rows = _rows(db)
    assert len(rows) == 1 and rows[0].kind == "test" and rows[0].target == "target-7"
    assert '"audit_id":1' in rows[0].payload and rows[0].next_attempt_at is not None and rows[0].attempts == 0
    # A caller's transaction that fails after the audit append: neither the event nor its delivery survives.
    svc.audit.record("demo:other", "success", subject_id=8, commit=False)
    db.session.rollback()
    assert len(_rows(db)) == 1
    assert db.session.execute(select(func.count()).select_from(SecurityEvent)).scalar_one() == 1
    # Tags nobody listens for enqueue nothing.
    svc.audit.record("account:login:failure", "failure", subject_id=7)
    assert len(_rows(db)) == 1


def test_a_failing_listener_aborts_the_append(app, svc):
    from authsvc.extensions import db

    def broken(ev, session):
        raise RuntimeError("outbox write failed")

    svc.audit.on_record(broken)
    with pytest.raises(RuntimeError):
        svc.audit.record("demo:thing", "success")
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(SecurityEvent)).scalar_one() == 0
    assert svc.audit.verify().ok


def test_worker_delivers_once_retries_with_backoff_then_gives_up(app, svc):
    from authsvc.extensions import db

    sig = _listen(svc, app)
    seen, fail = [], {"n": 2}

    def handler(item):
        seen.append(item.jti)
        if fail["n"]:
            fail["n"] -= 1
            raise ConnectionError("receiver down")

    sig.register_handler("test", handler)
    svc.audit.record("demo:thing", "success", subject_id=1)
    r = sig.worker.run_once()
    assert (r.claimed, r.retried) == (1, 1)
    row = _rows(db)[0]
    db.session.expire_all()
    row = _rows(db)[0]
    assert row.attempts == 1 and row.delivered_at is None and "ConnectionError: receiver down" in row.last_error
    first_wait = (row.next_attempt_at - svc.clock.now()).total_seconds()
    assert 1.5 <= first_wait <= 2.5  # base 2 s ± 20 %
    assert sig.worker.run_once().claimed == 0  # not due yet
    svc.clock.advance(3)
    assert sig.worker.run_once().retried == 1
    db.session.expire_all()
    row = _rows(db)[0]
    second_wait = (row.next_attempt_at - svc.clock.now()).total_seconds()
    assert 3.0 <= second_wait <= 5.0  # doubled
    svc.clock.advance(6)
    assert sig.worker.run_once().delivered == 1
    db.session.expire_all()
    row = _rows(db)[0]
    assert row.delivered_at is not None and row.next_attempt_at is None and row.attempts == 3
    assert len(seen) == 3 and len(set(seen)) == 1  # the same jti on every attempt
    svc.clock.advance(10_000)
    assert sig.worker.run_once().claimed == 0  # delivered: never again


def test_gives_up_after_max_attempts_and_on_drop(make_app):
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals
    from authsvc.signals.outbox import Drop

    app = make_app(signals_max_attempts=3)
    with app.app_context():
        svc = services()
        sig = _listen(svc, app)

        def handler(item):
            if item.target == "target-2":
                raise Drop("410 Gone")
            raise TimeoutError("hangs")

        sig.register_handler("test", handler)
        svc.audit.record("demo:a", "success", subject_id=1)
        svc.audit.record("demo:b", "success", subject_id=2)
        r = sig.worker.run_once()
        assert (r.retried, r.failed) == (1, 1)
        for _ in range(3):
            svc.clock.advance(100)
            sig.worker.run_once()
        db.session.expire_all()
        a, b = _rows(db)
        assert a.failed_at is not None and a.attempts == 3 and a.last_error.startswith("gave up after 3 attempts")
        assert b.failed_at is not None and b.attempts == 1 and "410 Gone" in b.last_error
        assert a.next_attempt_at is None and b.next_attempt_at is None


def test_a_claimed_row_is_not_taken_by_another_worker_until_its_lease_runs_out(app, svc):
    """Two workers: the second one skips what the first one holds; a worker that died holding a row (lease not
    released) loses it to the other after the lease, which delivers the same jti."""
    from authsvc.extensions import db
    from authsvc.signals.outbox import OutboxWorker

    sig = _listen(svc, app)
    svc.audit.record("demo:thing", "success", subject_id=1)
    dead = OutboxWorker(app, db, svc.clock, lease_seconds=60)
    dead.register_handler("test", lambda item: None)
    claimed = dead._claim()  # claims, then "dies" before delivering or releasing
    assert len(claimed) == 1
    got = []
    sig.register_handler("test", lambda item: got.append(item.jti))
    assert sig.worker.run_once().claimed == 0
    svc.clock.advance(61)
    assert sig.worker.run_once().delivered == 1
    assert got == [claimed[0].jti]
    # The dead worker's late outcome (it comes back) does not touch a row it no longer holds.
    dead._finish(claimed[0], "retried", "late")
    db.session.expire_all()
    row = _rows(db)[0]
    assert row.delivered_at is not None and row.last_error is None


def test_worker_needs_no_redis(make_app, private_redis):
    """Delivery state is in SQL only: with Redis stopped the worker still claims, delivers and records."""
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals

    app = make_app(redis_url=private_redis.url)
    with app.app_context():
        svc = services()
        sig = _listen(svc, app)
        svc.audit.record("demo:thing", "success", subject_id=1)
        got = []
        sig.register_handler("test", lambda item: got.append(item.payload))
        private_redis.stop()
        assert sig.worker.run_once().delivered == 1
        assert got == [{"audit_id": 1, "event": "demo:thing"}]
        db.session.expire_all()
        assert _rows(db)[0].delivered_at is not None


def test_backlog_is_in_metrics_and_cli(app, svc, client):
    sig = _listen(svc, app, kind="ssf_push")
    for i in range(3):
        svc.audit.record("demo:thing", "success", subject_id=i)
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'^authsvc_signals_outbox_backlog\{kind="ssf_push"\} 3\.0$', text, re.M), text[:500]
    sig.register_handler("ssf_push", lambda item: None)
    sig.worker.run_once()
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'^authsvc_signals_outbox_backlog\{kind="ssf_push"\} 0\.0$', text, re.M)
    out = app.test_cli_runner().invoke(args=["signals", "status"])
    assert out.exit_code == 0 and "failed: 0" in out.output


def test_enqueue_refuses_a_duplicate_jti(app, svc):
    """jti is unique in SQL: the same event can never be queued twice under one id."""
    from sqlalchemy.exc import IntegrityError

    from authsvc.extensions import db
    from authsvc.signals import signals

    sig = signals(app)
    sig.enqueue(db.session, "test", "t", {"a": 1}, jti="same")
    db.session.commit()
    with pytest.raises(IntegrityError):
        sig.enqueue(db.session, "test", "t", {"a": 2}, jti="same")
        db.session.commit()
    db.session.rollback()
    assert len(_rows(db)) == 1


def test_signals_settings_are_validated(make_app):
    from authsvc.config import ConfigError

    with pytest.raises(ConfigError, match="AUTHSVC_SIGNALS_MAX_ATTEMPTS"):
        make_app(signals_max_attempts="many")
    with pytest.raises(ConfigError, match="AUTHSVC_SIGNALS_LEASE_SECONDS"):
        make_app(signals_lease_seconds=5, signals_push_timeout=5)





def test_admin_dashboard_shows_the_backlog(app):
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals
    from tests.functional.admin_helpers import admin_client

    admin = admin_client(app)
    with app.app_context():
        sig = signals(app)
        for i in range(2):
            sig.enqueue(db.session, "ssf_push", f"s{i}", {"i": i})
        sig.enqueue(db.session, "bcl", "c1", "token")
        db.session.commit()
        services()
    html = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'tile-n">3</span><span class="tile-l">signals waiting to be delivered; bcl 1, ssf_push 2; '
                     r'0 given up', html), html
