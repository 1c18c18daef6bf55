"""Exports and the chain check as background jobs (issue 20): attacker's tests first, then the happy path. Real SQL,
real Redis, the real outbox worker (``run_once``)."""

import gzip
import hashlib
import json
from pathlib import Path

from sqlalchemy import select, update

from tests.conftest import create_user, csrf_token
from tests.functional.admin_helpers import admin_client, audit_rows
from tests.functional.helpers import login


def _work(app):
    from authsvc.signals import signals

    with app.app_context():
        return signals(app).worker.run_once()


def _request(client):
    page = client.get("/account/data").get_data(as_text=True)
    return client.post("/account/data/export-job", data={"csrf_token": csrf_token(page)})


def _job(app, **where):
    from authsvc.extensions import db
    from authsvc.models.jobs import ExportJob

    with app.app_context():
        return db.session.execute(select(ExportJob).filter_by(**where).order_by(ExportJob.id.desc())).scalars().first()


def test_export_job_link_is_the_owners_only_and_works_once(app, client):
    create_user(app)
    login(client)
    assert _request(client).status_code == 302
    job = _job(app, kind="data_export")
    url = f"/account/data/export-job/{job.token}"
    assert client.get(url).status_code == 404  # not finished: no link, no file
    assert 'data-job-status="queued"' in client.get("/account/data").get_data(as_text=True)
    assert _work(app).delivered == 1
    mallory = app.test_client()
    create_user(app, email="mallory@example.com")
    login(mallory, email="mallory@example.com")
    assert mallory.get(url).status_code == 404  # another user's link
    admin = admin_client(app)
    assert admin.get(url).status_code == 404 and admin.get(f"/admin/jobs/{job.token}/download").status_code == 404
    page = client.get("/account/data").get_data(as_text=True)
    assert 'data-job-status="done"' in page and url in page
    r = client.get(url)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_data()
    job = _job(app, kind="data_export")
    assert hashlib.sha256(body).hexdigest() == job.sha256 and len(body) == job.size
    data = json.loads(gzip.decompress(body))
    assert data["profile"]["email"] == "alice@example.com" and data["complete"]["done"] is True
    assert client.get(url).status_code == 404  # replayed one-time link
    assert [e.outcome for e in audit_rows(app, "account:data:export")] == ["success"]


def test_export_job_link_expires_and_retention_deletes_the_file(app, client):
    from authsvc import jobs
    from authsvc.services import services

    create_user(app)
    login(client)
    _request(client)
    _work(app)
    job = _job(app, kind="data_export")
    with app.app_context():
        folder = jobs.export_dir()
        assert (folder / job.file_name).is_file()
        services().clock.advance(25 * 3600)
        assert jobs.sweep() == 1
        assert not (folder / job.file_name).exists()
        assert jobs.claim_download(job.user_id, job.token, "data_export") is None  # the link is gone too


def test_export_job_names_cannot_traverse_paths(app, client):
    create_user(app)
    login(client)
    for bad in ("..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "A" * 31 + "%00", "A" * 200, "ä" * 32):
        assert client.get(f"/account/data/export-job/{bad}").status_code == 404, bad


def test_export_job_asked_again_while_queued_is_the_same_job(app, client):
    from authsvc.extensions import db
    from authsvc.models.jobs import ExportJob

    create_user(app)
    login(client)
    for _ in range(3):
        assert _request(client).status_code == 302
    with app.app_context():
        assert len(db.session.execute(select(ExportJob)).all()) == 1
    _work(app)
    for _ in range(4):
        _request(client)
        _work(app)
    assert _request(client).status_code == 429  # the per-user daily limit (5)


def test_export_job_of_a_disabled_account_never_produces_a_file(app, client):
    from authsvc.extensions import db
    from authsvc.models import User

    uid = create_user(app)
    login(client)
    _request(client)
    with app.app_context():
        db.session.execute(update(User).where(User.id == uid).values(status="disabled"))
        db.session.commit()
    _work(app)
    job = _job(app, kind="data_export")
    assert job.status == "failed" and job.file_name is None


def test_export_job_whose_worker_died_is_finished_by_another(app, client):
    from authsvc import jobs
    from authsvc.extensions import db
    from authsvc.models.jobs import ExportJob
    from authsvc.services import services

    create_user(app)
    login(client)
    _request(client)
    with app.app_context():
        now = services().clock.now()
        # A worker claimed it, wrote a partial file and died (its lease is still live).
        job = db.session.execute(select(ExportJob)).scalar_one()
        db.session.execute(update(ExportJob).values(status="running", claimed_by="dead", claimed_until=now
                                                    + jobs.JOB_LEASE))
        db.session.commit()
        (jobs.export_dir() / f".part-{job.token}-dead").write_bytes(b"\x1f\x8b partial")
    assert _work(app).deferred == 1  # a live lease: not started twice
    assert client.get(f"/account/data/export-job/{job.token}").status_code == 404
    with app.app_context():
        services().clock.advance(jobs.JOB_LEASE.total_seconds() + 30)
    assert _work(app).delivered == 1
    job = _job(app, kind="data_export")
    assert job.status == "done" and job.attempts == 1
    body = client.get(f"/account/data/export-job/{job.token}").get_data()
    assert json.loads(gzip.decompress(body))["complete"]["done"] is True
    with app.app_context():
        assert jobs.sweep() == 1  # the dead worker's partial file
        assert list(jobs.export_dir().iterdir()) == []  # the downloaded file was deleted at once


def test_admin_jobs_need_a_recent_reauth(app):
    from authsvc.services import services

    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    with app.app_context():
        services().clock.advance(3 * 3600)
    r = admin.post("/admin/audit/verify-job", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and "/admin/jobs" not in r.headers["Location"]
    assert _job(app, kind="audit_verify") is None


def test_audit_export_job_file_is_complete_with_its_trailer(app):
    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    r = admin.post("/admin/audit/export-job?tag=admin:", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/jobs")
    _work(app)
    job = _job(app, kind="audit_export")
    r = admin.get(f"/admin/jobs/{job.token}/download")
    lines = gzip.decompress(r.get_data()).decode().splitlines()
    trailer = json.loads(lines[-1])
    assert trailer["complete"] is True and trailer["rows"] == len(lines) - 1 == job.rows
    assert all(json.loads(x)["tag"].startswith("admin:") for x in lines[:-1])
    assert admin.get(f"/admin/jobs/{job.token}/download").status_code == 404


def test_audit_verify_job_finds_an_edited_row_and_resumes_from_its_signed_cursor(app):
    from authsvc import jobs
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent
    from authsvc.models.jobs import ExportJob

    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    admin.post("/admin/audit/verify-job", data={"csrf_token": csrf_token(page)})
    jobs.VERIFY_STEP, step = 2, jobs.VERIFY_STEP
    try:
        _work(app)
    finally:
        jobs.VERIFY_STEP = step
    job = _job(app, kind="audit_verify")
    assert job.status == "done" and json.loads(job.result)["ok"] is True
    assert "none edited or deleted" in admin.get("/admin/jobs").get_data(as_text=True)
    with app.app_context():
        db.session.execute(update(SecurityEvent).where(SecurityEvent.id == 1).values(ip="10.9.9.9"))
        db.session.commit()
    admin.post("/admin/audit/verify-job", data={"csrf_token": csrf_token(page)})
    with app.app_context():  # a forged cursor (past the edited row) is ignored: the check starts over
        db.session.execute(update(ExportJob).where(ExportJob.status == "queued").values(
            cursor=json.dumps({"body": json.dumps([5, "0" * 64, 1, 4]), "mac": "0" * 64})))
        db.session.commit()
    _work(app)
    result = json.loads(_job(app, kind="audit_verify").result)
    assert result["ok"] is False and result["first_bad_id"] == 1
    assert audit_rows(app, "admin:audit:verify")[-1].outcome == "failure"


# --- attack2 (black-box findings) ------------------------------------------------------------------------------------
def test_export_job_head_request_does_not_use_up_the_one_time_link(app, client):
    """Found black-box (attack2): ``HEAD /account/data/export-job/<token>`` (a link checker, a proxy, a mail or chat
    preview, ``curl -I``) answered 200 and marked the file downloaded, so the owner's GET then got 404. A HEAD now
    says whether the link is ready without using it; only a GET uses it. Same for the admin's audit export."""
    create_user(app)
    login(client)
    _request(client)
    _work(app)
    url = f"/account/data/export-job/{_job(app, kind='data_export').token}"
    head = client.head(url)
    assert head.status_code == 200 and head.headers["Cache-Control"] == "no-store" and not head.get_data()
    assert _job(app, kind="data_export").downloaded_at is None
    r = client.get(url)
    assert r.status_code == 200 and json.loads(gzip.decompress(r.get_data()))["complete"]["done"] is True
    assert client.head(url).status_code == 404 and client.get(url).status_code == 404  # used: gone for both
    mallory = app.test_client()
    create_user(app, email="mallory@example.com")
    login(mallory, email="mallory@example.com")
    _request(mallory)
    _work(app)
    theirs = f"/account/data/export-job/{_job(app, kind='data_export').token}"
    assert client.head(theirs).status_code == 404  # another user's link: not even its existence

    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    admin.post("/admin/audit/export-job", data={"csrf_token": csrf_token(page)})
    _work(app)
    url = f"/admin/jobs/{_job(app, kind='audit_export').token}/download"
    assert admin.head(url).status_code == 200 and _job(app, kind="audit_export").downloaded_at is None
    assert admin.get(url).status_code == 200 and admin.get(url).status_code == 404


def test_export_job_that_the_worker_gave_up_on_does_not_block_new_exports(app, client):
    """Found reading the code behind a black-box run (attack2): a job whose every attempt failed (here the export
    folder is not a folder) stayed ``running`` with its ``active_key`` after the outbox gave its row up, so every
    later "Prepare my data file" returned that dead job — the owner could never export again. The last attempt now
    marks the job failed, and a new request starts a new job."""
    from authsvc.services import services
    from authsvc.signals import signals

    create_user(app)
    login(client)
    blocker = Path(app.instance_path) / "not-a-folder"
    blocker.write_text("x")
    app.config["AUTHSVC_EXPORT_DIR"] = str(blocker)
    try:
        _request(client)
        with app.app_context():
            worker = signals(app).worker
            for _ in range(worker.max_attempts):
                assert _work(app).delivered == 0
                services().clock.advance(2 * worker.backoff_max)  # past the retry's backoff
    finally:
        app.config["AUTHSVC_EXPORT_DIR"] = None
    job = _job(app, kind="data_export")
    assert job.status == "failed" and job.file_name is None
    login(client)  # the clock moved on by hours: the session timed out
    assert 'data-job-status="failed"' in client.get("/account/data").get_data(as_text=True)
    assert _request(client).status_code == 302
    assert _work(app).delivered == 1
    fresh = _job(app, kind="data_export")
    assert fresh.token != job.token and fresh.status == "done"



def test_erasing_the_account_deletes_its_export_files_at_once(app, client):
    """Found black-box (attack2): after ``POST /account/delete`` the finished data export — the profile, every
    sign-in with its IP, the audit events — stayed in the export folder until the next retention sweep (up to a day,
    or never when retention runs from a cron job that is not set up), though its row was erased. Erasure now deletes
    the account's export files, finished and partial, and leaves other users' files alone."""
    from authsvc import jobs
    from tests.conftest import PASSWORD
    from tests.functional.helpers import form_post

    create_user(app)
    create_user(app, email="bob@example.com")
    bob = app.test_client()
    login(bob, email="bob@example.com")
    _request(bob)
    _work(app)
    login(client)
    _request(client)
    _work(app)
    mine = _job(app, kind="data_export", status="done")
    with app.app_context():
        folder = jobs.export_dir()
        (folder / f".part-{mine.token}-deadworker").write_bytes(b"\x1f\x8b partial")  # a dead worker's leftovers
        before = {p.name for p in folder.iterdir()}
    assert mine.file_name in before and len(before) == 3
    assert form_post(client, "/account/delete", {"password": PASSWORD, "confirm": "y"}).status_code == 302
    with app.app_context():
        left = [p for p in folder.iterdir()]
    assert len(left) == 1 and b"alice@example.com" not in gzip.decompress(left[0].read_bytes())
    assert b"bob@example.com" in gzip.decompress(left[0].read_bytes())  # another user's file stays


def test_a_downloaded_export_file_is_deleted_at_once(app, client):
    """Found black-box (attack2): after the one-time download the file stayed in the export folder for the rest of
    its 24 hours, though no link could ever reach it again — a copy of the account's data kept for nothing (a backup
    of the folder, a later bug in the download view). The file is deleted once it has been handed to the download."""
    from authsvc import jobs

    create_user(app)
    login(client)
    _request(client)
    _work(app)
    job = _job(app, kind="data_export")
    with app.app_context():
        path = jobs.export_dir() / job.file_name
    assert path.is_file()
    body = client.get(f"/account/data/export-job/{job.token}").get_data()
    assert hashlib.sha256(body).hexdigest() == job.sha256  # the whole file was sent
    assert not path.exists()


def test_audit_export_asked_with_other_filters_while_one_runs_is_not_audited_as_started(app):
    """Found reading the code behind a black-box run (attack2): while an audit export job with ``tag=admin:`` was
    queued, ``POST /admin/audit/export-job?tag=account:`` got the running job back (one per operator) but wrote
    ``admin:audit:export`` *success* with ``tag=account:`` and that job's id — the log said one set of events was
    exported while the file held another. Such a request is now audited as a failure (another export is running)
    and the job keeps its own filters."""
    admin = admin_client(app)
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert admin.post("/admin/audit/export-job?tag=admin:", data={"csrf_token": csrf_token(page)}).status_code == 302
    r = admin.post("/admin/audit/export-job?tag=account:", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/jobs")
    job = _job(app, kind="audit_export")
    assert json.loads(job.params) == {"tag": "admin:"}
    rows = [(e.outcome, e.reason, json.loads(e.details)) for e in audit_rows(app, "admin:audit:export")]
    assert rows == [("success", None, {"tag": "admin:", "job": job.token[:8]}),
                    ("failure", "another_export_running", {"tag": "account:", "job": job.token[:8]})]
    _work(app)
    lines = gzip.decompress(admin.get(f"/admin/jobs/{job.token}/download").get_data()).decode().splitlines()
    assert all(json.loads(x)["tag"].startswith("admin:") for x in lines[:-1])


def test_head_on_the_streamed_audit_export_writes_no_export_event(app):
    """Found black-box (attack2): ``HEAD /admin/audit/export.jsonl`` (a link checker, ``curl -I``) wrote
    ``admin:audit:export`` *success* although no event left the server (a HEAD has no body). A HEAD now answers the
    headers only and records nothing; the GET still records its export."""
    admin = admin_client(app)
    r = admin.head("/admin/audit/export.jsonl?tag=admin:")
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson" and not r.get_data()
    assert audit_rows(app, "admin:audit:export") == []
    assert admin.get("/admin/audit/export.jsonl?tag=admin:").status_code == 200
    assert [e.outcome for e in audit_rows(app, "admin:audit:export")] == ["success"]
    assert admin.head("/admin/audit/export.jsonl?since=not-a-date").status_code == 400  # same checks as the GET


def test_export_files_are_readable_by_the_service_user_only(app, client, tmp_path):
    """An export holds the user's whole history: its file is 0600 whatever the umask, in the folder the operator
    chose too (a shared one with 0755 included)."""
    import os
    import stat

    shared = tmp_path / "shared-exports"
    shared.mkdir(mode=0o755)
    app.config["AUTHSVC_EXPORT_DIR"] = str(shared)
    old = os.umask(0o022)
    try:
        create_user(app)
        login(client)
        assert _request(client).status_code == 302
        _work(app)
    finally:
        os.umask(old)
    files = [p for p in shared.iterdir() if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), [oct(p.stat().st_mode) for p in files]
