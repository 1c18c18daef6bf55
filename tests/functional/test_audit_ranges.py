"""Audit date ranges become id ranges (issue 20): the audit page's and the export's since/until are resolved to the
first event id at or after each bound (one probe of ix_security_events_occurred_at), and the query walks a primary-key
range. Same rows as the time filter; EXPLAIN shows both shapes on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from tests.functional.admin_helpers import admin_client

HOUR = 3600


def _spread(app, days=6, per_day=30):
    """Events over ``days`` days, through the real chain writer; returns the day boundaries (UTC midnights)."""
    from authsvc.services import services

    clock = app.extensions["authsvc"].clock
    with app.app_context():
        audit = services().audit
        start = clock.now()
        for _ in range(days):
            audit.record_many([{"tag": "account:login:failure", "outcome": "failure", "subject_id": 3,
                                "ip": "203.0.113.9"} for _ in range(per_day)])
            clock.advance(24 * HOUR)
        return start


def _ids_by_time(app, since=None, until=None):
    from authsvc.extensions import db

    with app.app_context():
        q = "SELECT id FROM security_events WHERE tag = 'account:login:failure'"
        params = {}
        if since:
            q += " AND occurred_at >= :s"
            params["s"] = since
        if until:
            q += " AND occurred_at < :u"
            params["u"] = until
        return [r[0] for r in db.session.execute(text(q + " ORDER BY id"), params)]


def _export_ids(admin, **args):
    qs = "&".join(f"{k}={v}" for k, v in args.items())
    r = admin.get(f"/admin/audit/export.jsonl?tag=account:login:failure&{qs}")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    lines = [json.loads(x) for x in r.get_data(as_text=True).splitlines()]
    assert lines[-1]["complete"] is True
    return [x["id"] for x in lines[:-1]]


def test_hostile_bounds_are_refused_with_a_400(app):
    admin = admin_client(app)
    for bad in ("2026-13-45", "yesterday", "2026-01-01T25:00", "' OR 1=1 --", "9" * 200, "2026-01-01%00"):
        r = admin.get(f"/admin/audit/export.jsonl?since={bad}")
        assert r.status_code == 400, (bad, r.status_code)
        assert "Traceback" not in r.get_data(as_text=True)
        page = admin.get(f"/admin/audit?until={bad}")
        assert page.status_code == 200 and "use YYYY-MM-DD" in page.get_data(as_text=True)


def test_id_ranges_return_exactly_the_rows_of_the_time_range(app):
    start = _spread(app)
    admin = admin_client(app)  # after the clock moved: a fresh admin session
    day = lambda n: (start + dt.timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    t = lambda n: start + dt.timedelta(days=n)  # noqa: E731
    cases = [({"since": day(2)}, (t(2), None)), ({"until": day(3)}, (None, t(3))),
             ({"since": day(1), "until": day(4)}, (t(1), t(4))),
             ({"since": day(30)}, (t(30), None)),  # after everything: nothing
             ({"until": day(-30)}, (None, t(-30))),  # before everything: nothing
             ({"since": day(4), "until": day(2)}, (t(4), t(2)))]  # reversed: nothing
    for args, (since, until) in cases:
        expected = _ids_by_time(app, since, until)
        assert _export_ids(admin, **args) == expected, args
    assert _ids_by_time(app, t(30)) == [] and len(_ids_by_time(app, t(1), t(4))) == 90


def _plan(conn, stmt) -> str:
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE security_events"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    return "\n".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))


def test_explain_the_probe_uses_the_time_index_and_the_page_a_primary_key_range(app):
    from authsvc.admin import _time_as_id
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    start = _spread(app, days=4, per_day=500)
    with app.test_request_context(), app.app_context():
        conn = db.session.connection()
        pg = conn.dialect.name == "postgresql"
        probe = (select(SecurityEvent.id).where(SecurityEvent.occurred_at >= start + dt.timedelta(days=1))
                 .order_by(SecurityEvent.occurred_at, SecurityEvent.id).limit(1))
        plan = _plan(conn, probe)
        assert "ix_security_events_occurred_at" in plan, plan
        page = (select(SecurityEvent).where(_time_as_id(start + dt.timedelta(days=1), "ge"),
                                            _time_as_id(start + dt.timedelta(days=2), "lt"))
                .order_by(SecurityEvent.id.desc()).limit(101))
        plan = _plan(conn, page)
        if pg:
            assert "Index Scan Backward using pk_security_events" in plan and "Index Cond: ((id >=" in plan, plan
        else:
            assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan
        assert "occurred_at" not in plan  # the page itself filters on ids only
        db.session.rollback()
