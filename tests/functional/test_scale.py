"""Bounded work (issue 20): exports stream in flat memory and end with a trailer, so a cut-off download never looks
complete; the queries behind the admin pages use indexes; the dashboard's numbers are counted in SQL and its chain
check resumes from a stored, signed checkpoint. Real SQL (SQLite or PostgreSQL) and real Redis; big tables are filled
with bulk SQL, never one request per row. No timing assertions."""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
import tracemalloc

import pytest
from sqlalchemy import insert, text

from tests.conftest import PASSWORD, create_user
from tests.functional.admin_helpers import admin_client, audit_rows
from tests.functional.helpers import login

EMAIL = "alice@example.com"


# --- helpers -------------------------------------------------------------------------------------------------------
def _api_token(client, email=EMAIL):
    r = client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_json()["session_token"]

def _statements(app, request) -> list[str]:
    """The SQL statements ``request()`` sent (the app's engine, captured at the cursor)."""
    from sqlalchemy import event

    from authsvc.extensions import db

    with app.app_context():
        engine = db.engine
    seen = []
    listener = lambda conn, cursor, statement, *a: seen.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        request()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return seen



def _receipts(app, uid: int, n: int) -> None:
    """``n`` login receipts for ``uid`` in one executemany (what 100 k sign-ins over the years leave behind)."""
    from authsvc.extensions import db
    from authsvc.models import LoginEvent

    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    reasons = json.dumps([{"code": "new_country", "text": "First sign-in from Iceland"}])
    rows = [{"user_id": uid, "occurred_at": base + dt.timedelta(minutes=i), "outcome": "success",
             "method": "password", "ip": f"198.51.100.{i % 250}", "user_agent": "Mozilla/5.0 bulk",
             "country": "IS", "asn": "AS1", "score": 1.5, "decision": "allow", "reasons": reasons,
             "session_id": f"{i:064x}"} for i in range(n)]
    with app.app_context():
        for i in range(0, n, 5000):
            db.session.execute(insert(LoginEvent.__table__), rows[i:i + 5000])
        db.session.commit()


def _audit_events(app, n: int, tag="account:login:failure", subject=None) -> None:
    """``n`` audit events appended through the real chain writer (record_many: one head bump, one INSERT per batch),
    so the chain stays valid."""
    from authsvc.services import services

    with app.app_context():
        for i in range(0, n, 5000):
            services().audit.record_many([{"tag": tag, "outcome": "failure", "subject_id": subject,
                                           "ip": "203.0.113.9", "reason": "bad_password"}
                                          for _ in range(min(5000, n - i))])


def _drain(resp, keep=True, measure=False):
    """Consume a streamed response chunk by chunk (as a WSGI server does); optionally keep nothing and measure the
    Python heap's peak meanwhile. Returns (text or "", number of chunks, peak bytes or None)."""
    assert resp.is_streamed, "the body must be a generator, not a pre-built string"
    got, chunks, peak = [], 0, None
    if measure:
        gc.collect()
        tracemalloc.start()
    try:
        for chunk in resp.response:
            chunks += 1
            if keep:
                got.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if measure:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        if measure:
            tracemalloc.stop()
        resp.close()
    return "".join(got), chunks, peak


# --- 1. exports: streamed, with a trailer, flat memory --------------------------------------------------------------
def test_a_cut_off_audit_export_never_looks_complete(app):
    """Attacker-first: the worker's timeout (or a dropped link) cuts the file after the 200 header. The partial file
    must lack the last line, and the full file's last line must count its rows exactly."""
    _audit_events(app, 2500)
    admin = admin_client(app)
    r = admin.get("/admin/audit/export.jsonl?tag=account:login:failure")
    assert r.status_code == 200 and r.is_streamed
    it = iter(r.response)
    partial = "".join(next(it).decode() for _ in range(1200))  # stop reading half-way, as a timeout does
    r.close()
    assert all(json.loads(line).get("complete") is None for line in partial.splitlines())
    body, _, _ = _drain(admin.get("/admin/audit/export.jsonl?tag=account:login:failure"))
    *rows, trailer = [json.loads(line) for line in body.splitlines()]
    assert trailer["complete"] is True and trailer["rows"] == len(rows) == 2500
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # id order, no page repeated or skipped
    assert len({r["id"] for r in rows}) == 2500


def test_a_cut_off_data_export_never_looks_complete_and_is_audited(app, client):
    """Attacker-first: someone with a stolen session starts the data export and drops it mid-way (or the worker is
    stopped). What they got is not a complete document, and the export is still audited — as a failure
    ("interrupted"), never silently and never as a success."""
    uid = create_user(app)
    _receipts(app, uid, 3000)
    token = _api_token(client)
    r = client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.is_streamed
    it = iter(r.response)
    partial = "".join((c.decode() if isinstance(c, bytes) else c) for c in (next(it) for _ in range(500)))
    r.close()
    assert '"complete"' not in partial
    with pytest.raises(ValueError):
        json.loads(partial)
    [ev] = audit_rows(app, "account:data:export")
    assert (ev.outcome, ev.reason, ev.subject_id) == ("failure", "interrupted", uid)
    # Read to the end, the document says it is complete and how many items each list holds.
    body, _, _ = _drain(client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"}))
    data = json.loads(body)
    assert list(data)[-1] == "complete"  # written last
    assert data["complete"] == {"done": True, "sessions": len(data["sessions"]),
                                "login_history": len(data["login_history"]), "audit_events": len(data["audit_events"])}
    assert data["complete"]["login_history"] == 3001  # 3,000 bulk receipts + the API sign-in
    ats = [e["at"] for e in data["login_history"]]
    assert ats == sorted(ats, reverse=True)  # newest first across page boundaries
    ev = audit_rows(app, "account:data:export")[-1]
    assert ev.outcome == "success" and json.loads(ev.details)["rows"]["login_history"] == 3001


def _export_peak(app, client, token, n_before: int, n_after: int, uid: int):
    _receipts(app, uid, n_after - n_before)
    body, chunks, peak = _drain(client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"}),
                                keep=False, measure=True)
    return chunks, peak


def test_data_export_of_20k_receipts_streams_in_flat_memory(app, client):
    uid = create_user(app)
    token = _api_token(client)
    _drain(client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"}), keep=False)  # warm-up
    small_chunks, small = _export_peak(app, client, token, 0, 5000, uid)
    big_chunks, big = _export_peak(app, client, token, 5000, 20000, uid)
    assert big_chunks > 3 * small_chunks  # it did write 4× the rows …
    # … without 4× the memory: the old export held the whole document (and every ORM row) at once.
    assert big < 2 * small + 2_000_000, (small, big)
    body, _, _ = _drain(client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"}))
    assert json.loads(body)["complete"]["login_history"] == 20001


def test_audit_export_of_20k_rows_streams_in_flat_memory(app):
    admin = admin_client(app)
    _drain(admin.get("/admin/audit/export.jsonl"), keep=False)  # warm-up
    _audit_events(app, 5000)
    small_chunks, small = _drain(admin.get("/admin/audit/export.jsonl"), keep=False, measure=True)[1:]
    _audit_events(app, 15000)
    big_chunks, big = _drain(admin.get("/admin/audit/export.jsonl"), keep=False, measure=True)[1:]
    assert big_chunks > 3 * small_chunks
    assert big < 2 * small + 2_000_000, (small, big)
    body, _, _ = _drain(admin.get("/admin/audit/export.jsonl"))
    lines = body.splitlines()
    trailer = json.loads(lines[-1])
    assert trailer["complete"] is True and trailer["rows"] == len(lines) - 1 >= 20000
    assert trailer["last_id"] == json.loads(lines[-2])["id"]


# --- 3. the dashboard's chain check: resumed from a signed checkpoint, bounded per request ---------------------------
def _new_worker(app):
    """A fresh AuditLog as a newly started worker has it: no checkpoint in memory, the app's store."""
    from authsvc.audit import AuditLog
    from authsvc.extensions import db
    from authsvc.services import services

    fresh = AuditLog(db, services().clock)
    fresh.checkpoint_store = services().audit.checkpoint_store
    return fresh


def test_a_new_worker_resumes_from_the_stored_checkpoint_not_from_genesis(app):
    from authsvc.services import services

    _audit_events(app, 3000)
    with app.app_context():
        first = services().audit.verify_incremental()
        assert first.ok and first.since_id == 0 and first.hashed >= 3000  # the one pass from row 1
        _audit_events(app, 5)
        report = _new_worker(app).verify_incremental()
        assert report.ok and report.since_id == first.checked and report.hashed == 6  # checkpoint row + 5 new
        assert report.full_verified_at == first.full_verified_at


def test_a_forged_checkpoint_is_ignored_and_a_genuine_one_catches_a_rewrite(app):
    """Attacker-first: someone who can write the database and Redis edits an old event, recomputes every hash after
    it and the head (the full verify() cannot tell), and plants a checkpoint naming the new head. Without SECRET_KEY
    their checkpoint's MAC is wrong, so a new worker ignores it; with the genuine one still there, it catches the
    rewrite at the checkpoint row."""
    from authsvc.audit import CheckpointStore, _digest
    from authsvc.extensions import db
    from authsvc.models import AuditHead, SecurityEvent
    from authsvc.services import services

    _audit_events(app, 20)
    with app.app_context():
        assert services().audit.verify_incremental().ok  # genuine checkpoint at 20 (+ the earlier events)
        r = services().sessions.redis
        genuine = r.get(CheckpointStore.KEY)
        top = db.session.execute(text("SELECT max(id) FROM security_events")).scalar()
        prev = db.session.get(SecurityEvent, 1).hash
        for i in range(2, top + 1):
            ev = db.session.get(SecurityEvent, i)
            if i == 2:
                ev.reason = "forged"
            ev.prev_hash = prev
            ev.hash = prev = _digest(prev, ev)
        db.session.get(AuditHead, 1).last_hash = prev
        db.session.commit()
        assert services().audit.verify().ok  # a consistent rewrite: the full pass cannot tell
        forged = CheckpointStore(lambda: r, b"not the server's key")
        from authsvc.audit import _Checkpoint

        forged.save(_Checkpoint(top, prev, None))
        report = _new_worker(app).verify_incremental()
        assert report.since_id == 0  # the forged checkpoint was not trusted: a pass from row 1
        r.set(CheckpointStore.KEY, genuine)
        report = _new_worker(app).verify_incremental()
        assert not report.ok and report.first_bad_id == top and "rewritten" in report.problem


def test_dashboard_chain_check_is_bounded_per_request(app, monkeypatch):
    """A first load with a long unchecked log (a fresh deploy, Redis emptied) hashes at most CHAIN_STEP rows; the
    following loads catch up, and only the load that reaches the head records the full pass."""
    import authsvc.admin as admin_mod
    import authsvc.audit as audit_mod

    monkeypatch.setattr(admin_mod, "CHAIN_STEP", 100)
    admin = admin_client(app)
    _audit_events(app, 350)
    with app.app_context():
        from authsvc.audit import CheckpointStore
        from authsvc.services import services

        services().sessions.redis.delete(CheckpointStore.KEY)
        services().audit._checkpoint = None
    seen, real = [], audit_mod._digest

    def counting(prev_hash, ev):
        seen.append(ev.id)
        return real(prev_hash, ev)

    monkeypatch.setattr(audit_mod, "_digest", counting)
    loads = 0
    while True:
        seen.clear()
        html = admin.get("/admin/").get_data(as_text=True)
        loads += 1
        assert len(seen) <= 101, len(seen)  # the checkpoint row + at most CHAIN_STEP rows
        assert "BROKEN" not in html
        if "still to check" not in html:
            break
        assert "full check" not in html  # not claimed before the walk from row 1 reached the head
        assert loads < 10
    assert loads >= 4 and '<span class="tile-n">Intact</span>' in html and "full check" in html


# --- 2. indexes and query shapes, shown by the database's own plan ---------------------------------------------------
# Each entry: (what, the statement the code runs — same shape and predicates —, its parameters, the index it must use).
PLANS = [
    ("users list, newest first", "SELECT id FROM users ORDER BY created_at DESC LIMIT 100", {}, "ix_users_created_at"),
    ("users search by IP (sessions)", "SELECT user_id FROM user_sessions WHERE ip = :ip", {"ip": "198.51.100.7"},
     "ix_user_sessions_ip"),
    ("users search by IP (receipts)", "SELECT user_id FROM login_events WHERE ip = :ip", {"ip": "198.51.100.7"},
     "ix_login_events_ip"),
    ("a user's receipts by time", "SELECT id FROM login_events WHERE user_id = :u ORDER BY occurred_at DESC LIMIT 50",
     {"u": 1}, "ix_login_events_user_time"),
    ("security center places", "SELECT session_id, country, user_id FROM login_events WHERE session_id IN (:a, :b)",
     {"a": "0" * 64, "b": "1" * 64}, "ix_login_events_session_id"),
    ("audit tag filter", "SELECT id FROM security_events WHERE tag IN (:t1, :t2) ORDER BY id DESC LIMIT 101",
     {"t1": "admin:audit:export", "t2": "admin:audit:verify"}, "ix_security_events_tag"),
    ("audit tag list step", "SELECT min(tag) FROM security_events WHERE tag > :t", {"t": "admin:"},
     "ix_security_events_tag"),
    ("dashboard last 24 h", "SELECT outcome, count(*) FROM login_events WHERE occurred_at >= :t GROUP BY outcome",
     {"t": dt.datetime(2025, 1, 1)}, "ix_login_events_occurred_at"),
]


@pytest.mark.parametrize("what,sql,params,index", PLANS, ids=[p[0] for p in PLANS])
def test_the_query_uses_its_index(app, what, sql, params, index):
    """EXPLAIN on the database under test. PostgreSQL: with sequential scans discouraged (the test tables are tiny,
    so the planner would rightly scan them), the plan must name the index — it exists and fits the query's shape.
    SQLite: its planner picks the index by itself."""
    from authsvc.extensions import db

    _receipts(app, create_user(app), 2000)
    _audit_events(app, 2000)  # a common tag: the filter below asks for rare ones, as an operator's filter does
    with app.app_context():
        conn = db.session.connection()
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))
        else:
            plan = "\n".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql), params))
        db.session.rollback()
    assert index in plan, f"{what}: {plan}"


def test_users_list_last_sign_in_walks_the_index_back_to_the_newest_success(app):
    """The users list shows each account's last *successful* sign-in. It is read per listed account as the newest
    success on the (user_id, occurred_at) index, walked backwards and stopped at the first success — not a max() over
    every receipt of the listed accounts (557 ms cold at 200 k users / 2 M receipts; docs/BENCHMARKS.md)."""
    from authsvc.extensions import db
    from authsvc.models import LoginEvent

    admin = admin_client(app)
    ok_then_failed = create_user(app)
    only_failed = create_user(app, email="bob@example.com")
    _receipts(app, ok_then_failed, 50)  # successes, the newest at 2025-01-01 00:49 ...
    with app.app_context():
        db.session.execute(insert(LoginEvent), [  # ... then failures after it, which must not count
            {"user_id": uid, "occurred_at": dt.datetime(2025, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
             "outcome": "failed", "method": "password", "ip": "192.0.2.1"} for uid in (ok_then_failed, only_failed)
            for i in range(30)])
        db.session.commit()
        conn = db.session.connection()
        sql = ("SELECT u.id, (SELECT le.occurred_at FROM login_events le WHERE le.user_id = u.id AND "
               "le.outcome = 'success' ORDER BY le.occurred_at DESC LIMIT 1) FROM users u WHERE u.id = :u")
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), {"u": ok_then_failed}))
            assert "Index Scan Backward using ix_login_events_user_time" in plan, plan
        db.session.rollback()
    pages = []
    seen = _statements(app, lambda: pages.append(admin.get("/admin/users").get_data(as_text=True)))
    html = pages[0]
    receipts_sql = [q for q in seen if "login_events" in q]
    assert receipts_sql and all("max(" not in q.lower() for q in receipts_sql), receipts_sql
    assert any("ORDER BY login_events.occurred_at DESC" in q and "LIMIT" in q for q in receipts_sql), receipts_sql

    def row(email):
        start = html.index(f">{email}</a>")
        return html[start:html.index("</tr>", start)]

    assert 'datetime="2025-01-01T00:49' in row("alice@example.com"), row("alice@example.com")  # not the failures
    assert "never" in row("bob@example.com") and "datetime=\"2025-03" not in row("bob@example.com")


def test_the_tag_list_is_a_skip_scan_and_the_prefix_filter_is_exact(app):
    """The audit page's tag list (stats.audit_tags) visits one index entry per distinct tag; the tag prefix filter
    keeps LIKE's meaning (prefix of the tag, '_' and '%' literal) while using the index."""
    from authsvc.admin import stats
    from authsvc.extensions import db

    admin = admin_client(app)
    _audit_events(app, 3000)
    _audit_events(app, 3, tag="admin_x:odd:tag")
    with app.app_context():
        tags, complete = stats.audit_tags(db)
        distinct = sorted(db.session.execute(text("SELECT DISTINCT tag FROM security_events")).scalars())
        assert complete and tags == distinct
        assert stats.audit_tags(db, cap=2) == (distinct[:2], False)
    body = _drain(admin.get("/admin/audit/export.jsonl?tag=admin_"))[0]
    assert {json.loads(x).get("tag") for x in body.splitlines()[:-1]} == {"admin_x:odd:tag"}  # '_' is literal
    body = _drain(admin.get("/admin/audit/export.jsonl?tag=account:login:fail"))[0]
    assert json.loads(body.splitlines()[-1])["rows"] == 3000
    html = admin.get("/admin/audit?tag=nothing:like:this").get_data(as_text=True)
    assert "account:login:failure</td>" not in html


# --- 4. the security center reads the receipts of the sessions shown, not all of them -------------------------------
def test_session_places_reads_only_the_shown_sessions_and_only_the_users_own(app):
    """20k receipts of the user's past do not enter the page; a receipt of another account that names the same
    session id (forged or colliding) does not lend its country to this user's session."""
    from sqlalchemy import event

    from authsvc.extensions import db
    from authsvc.models import LoginEvent
    from authsvc.web.center import session_places

    uid = create_user(app)
    mallory = create_user(app, email="mallory@example.com")
    _receipts(app, uid, 20000)
    sid = f"{7:064x}"  # receipt 7 of the bulk set
    with app.app_context():
        db.session.execute(insert(LoginEvent.__table__), [{"user_id": mallory, "occurred_at": dt.datetime.now(dt.UTC),
                                                           "outcome": "success", "method": "password",
                                                           "country": "KP", "session_id": "f" * 64}])
        db.session.execute(text("UPDATE login_events SET session_id = :s WHERE user_id = :m"), {"s": sid, "m": mallory})
        db.session.commit()
        user = db.session.get(__import__("authsvc.models", fromlist=["User"]).User, uid)
        fetched = []

        def count_rows(conn, cursor, statement, parameters, context, executemany):
            if "FROM login_events" in statement:
                fetched.append(cursor.rowcount)

        event.listen(db.engine, "after_cursor_execute", count_rows)
        try:
            with app.test_request_context():
                places = session_places(user, [sid, "e" * 64])
        finally:
            event.remove(db.engine, "after_cursor_execute", count_rows)
    assert places == {sid: "IS"}  # the user's own receipt; not mallory's "KP"
    assert len(fetched) == 1


# --- the users search at size: bounded reads, index-backed e-mail search ----------------------------------------------
def test_users_search_by_email_contains_prefix_and_literal_wildcards(app):
    admin = admin_client(app)
    for email in ("alice@example.com", "malice@example.org", "al_x@example.net", "bob@example.com"):
        create_user(app, email=email)

    def found(q):
        html = admin.get("/admin/users", query_string={"q": q}).get_data(as_text=True)
        assert "Traceback" not in html
        return {e for e in ("alice@example.com", "malice@example.org", "al_x@example.net", "bob@example.com")
                if f">{e}</a>" in html}

    assert found("lice") == {"alice@example.com", "malice@example.org"}  # three or more: anywhere in the address
    assert found("ALICE@") == {"alice@example.com", "malice@example.org"}  # addresses are stored lower-case
    assert found("al") == {"alice@example.com", "al_x@example.net"}  # shorter: the start only ("malice" is not)
    assert found("al_") == {"al_x@example.net"}  # '_' and '%' are literal, not wildcards
    assert found("ALICE@example.COM") == {"alice@example.com"}  # a whole address: that account (unique index)
    assert found("lice@example.com") == set()  # ... and only that one, not the addresses containing it
    assert found("%") == set() and found("%%%") == set()
    for hostile in ("\x00", "a\x00b@x", "é" * 300, "x" * 10000):
        assert admin.get("/admin/users", query_string={"q": hostile}).status_code in (200, 400)
    assert admin.get("/admin/users?q=%ED%A0%80%FF").status_code in (200, 400)  # a lone surrogate, invalid UTF-8


def test_users_search_by_email_uses_the_trigram_index_on_postgresql(app):
    from sqlalchemy import event

    from authsvc.extensions import db

    admin = admin_client(app)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the trigram index is PostgreSQL's (SQLite deployments are small; the search reads the table)")
        db.session.execute(insert(__import__("authsvc.models", fromlist=["User"]).User), [
            {"email": f"user{i}@example.com", "password_hash": "x", "status": "active"} for i in range(3000)])
        db.session.commit()
        engine = db.engine
    seen = []
    listener = lambda conn, cursor, statement, params, *a: seen.append((statement, params))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert admin.get("/admin/users?q=user2999@").status_code == 200  # a rare address: the index, not a walk
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    statement, params = next((s, p) for s, p in seen if "FROM users" in s and "LIKE" in s)
    with app.app_context():
        conn = db.session.connection()
        conn.execute(text("ANALYZE users"))
        # A few thousand rows: the planner would rightly walk the newest accounts instead. With plain scans off, what
        # is left is the bitmap scan of an index that fits the LIKE — it must be the trigram one.
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
        db.session.rollback()
    assert re.search(r"Bitmap Index Scan on ix_users_email_trgm\b", plan), plan


def test_users_search_by_ip_reads_a_bounded_number_of_receipts(app, monkeypatch):
    """A carrier's NAT address can sit on millions of receipts: the search reads at most IP_SEARCH_ROWS of them (and
    of sessions) and fetches the accounts by id."""
    import authsvc.admin as admin_views
    from authsvc.extensions import db
    from authsvc.models import LoginEvent

    admin = admin_client(app)
    uids = [create_user(app, email=f"nat{i}@example.com") for i in range(6)]
    with app.app_context():
        db.session.execute(insert(LoginEvent), [
            {"user_id": uid, "occurred_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
             "outcome": "failed", "method": "password", "ip": "100.64.7.7"} for i, uid in enumerate(uids * 5)])
        db.session.commit()
    html = admin.get("/admin/users?q=100.64.7.7").get_data(as_text=True)
    assert all(f">nat{i}@example.com</a>" in html for i in range(6))
    monkeypatch.setattr(admin_views, "IP_SEARCH_ROWS", 3)
    html = admin.get("/admin/users?q=100.64.7.7").get_data(as_text=True)
    assert 1 <= sum(f">nat{i}@example.com</a>" in html for i in range(6)) <= 3  # bounded, never every receipt
    assert "No account matches" in admin.get("/admin/users?q=100.64.7.8").get_data(as_text=True)


def test_attacks_page_aggregates_are_cached_like_the_dashboards(app):
    """The attacks page's failing-source aggregations (1 h and 24 h GROUP BYs over receipts and audit rows) are SQL
    work that grows with the day's traffic: a reload within the cache window runs none of them; the throttle marks
    (Redis) stay live."""
    admin = admin_client(app)
    assert admin.get("/admin/attacks").status_code == 200
    statuses = []
    seen = _statements(app, lambda: statuses.append(admin.get("/admin/attacks").status_code))
    assert statuses == [200]
    assert not [q for q in seen if "GROUP BY" in q], seen
