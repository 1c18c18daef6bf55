"""Exports and the full audit-chain check as background jobs (issue 20).

A request inserts an ``export_jobs`` row and, in the same transaction, an outbox row of kind ``export_job``
(authsvc.signals.outbox): the worker ``authsvc serve`` already runs claims it like any delivery and calls ``run``.
No second scheduler: the outbox gives durability (the row is committed with the request), retries with backoff and
crash recovery (its lease); the job row adds what a long job needs on top:

* its own lease (``claimed_by``/``claimed_until``, ``JOB_LEASE``), renewed while the job runs, so a job longer than the
  outbox lease is not started twice: a second worker that gets the outbox row while the lease is live is told to come
  back later (``Defer``); a worker that died stops renewing, the lease runs out, the next attempt starts over;
* output written to ``<export dir>/.part-<token>-<run>``, gzip, SHA-256 over the compressed bytes, then fsync and
  rename to ``<token>-<run>.gz``; the UPDATE that marks the job ``done`` and sets ``file_name`` is conditional on
  still holding the lease. A link is shown only for a ``done`` job, so a half-written file is never reachable, and a
  worker that lost its lease deletes its own file instead;
* ``active_key`` (unique, ``"<user>:<kind>"`` while queued or running): asking again returns the running job;
* ``MAX_PER_DAY`` jobs per user and kind; files expire after ``LINK_HOURS`` and are deleted by ``sweep`` (retention);
* download: ``claim_download`` marks the file downloaded in one conditional UPDATE (owner, done, not expired, not yet
  downloaded): another user's token, an expired or an already used link all look the same — not found. A HEAD is
  answered by ``peek_download`` (read-only): a link checker or a preview never uses the link up;
* the attempt after which the outbox gives its row up marks the job ``failed`` (``active_key`` freed): a job that can
  never finish does not hand itself to every later request of its owner.

The chain check (``audit_verify``) writes no file: it walks the chain in steps (``AuditLog.verify_step``), records
its progress and an HMAC-signed resume point (``cursor``) after each step, and a worker that takes over resumes from
a cursor whose signature holds (and from the start otherwise).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from authsvc.models.jobs import ExportJob
from authsvc.signals.outbox import Defer, Drop

KIND = "export_job"  # the outbox kind
KINDS = ("data_export", "audit_export", "audit_verify")
JOB_LEASE = dt.timedelta(seconds=60)
HEARTBEAT_ROWS = 5000  # rows between lease renewals (and progress updates)
VERIFY_STEP = 50_000  # chain rows per verify step
LINK_HOURS = 24
MAX_PER_DAY = 5
KEEP_ROWS_DAYS = 30  # finished job rows are kept this long (the owner's history), their files only LINK_HOURS
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_T = ExportJob.__table__


class LostLease(Exception):
    """Another worker took the job over (this one was too slow or paused): stop and leave it the result."""


class TooMany(Exception):
    """The per-user daily limit of jobs of this kind is reached."""


@dataclass(frozen=True)
class Job:
    token: str
    kind: str
    status: str
    progress: int
    total: int | None
    rows: int | None
    size: int | None
    sha256: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    downloaded_at: dt.datetime | None
    result: dict | None
    params: dict | None = None  # what the job was asked with (the audit export's filters)

    @property
    def ready(self) -> bool:
        return self.status == "done" and self.size is not None and self.downloaded_at is None

    @classmethod
    def of(cls, row) -> "Job":
        return cls(row.token, row.kind, row.status, row.progress or 0, row.total, row.rows, row.size, row.sha256,
                   row.created_at, row.expires_at, row.downloaded_at, json.loads(row.result) if row.result else None,
                   json.loads(row.params) if row.params else None)


def _svc():
    from authsvc.services import services

    return services()


def _db():
    from authsvc.extensions import db

    return db


def export_dir(app=None) -> Path:
    app = app or current_app
    path = Path(app.config.get("AUTHSVC_EXPORT_DIR") or os.path.join(app.instance_path, "exports"))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# --- requests (web process) ----------------------------------------------------------------------------------------
def request_job(user_id: int, kind: str, params: dict | None = None) -> Job:
    """The user's queued or running job of this kind, or a new one (committed with its outbox row)."""
    if kind not in KINDS:
        raise ValueError(kind)
    db, now = _db(), _svc().clock.now()
    key = f"{user_id}:{kind}"
    running = db.session.execute(select(_T).where(_T.c.active_key == key)).first()
    if running is not None:
        return Job.of(running)
    recent = db.session.execute(select(func.count()).select_from(_T).where(
        _T.c.user_id == user_id, _T.c.kind == kind, _T.c.created_at > now - dt.timedelta(days=1))).scalar_one()
    if recent >= MAX_PER_DAY:
        db.session.rollback()
        raise TooMany()
    token = secrets.token_urlsafe(24)
    try:
        db.session.execute(_T.insert().values(
            token=token, kind=kind, user_id=user_id, params=json.dumps(params or {}, sort_keys=True), active_key=key,
            status="queued", created_at=now, attempts=0, progress=0))
        from authsvc.signals import signals

        signals().enqueue(db.session, KIND, token, {"job": token})
        db.session.commit()
    except IntegrityError:  # a concurrent request of the same user won the unique active_key: return its job
        db.session.rollback()
        running = db.session.execute(select(_T).where(_T.c.active_key == key)).first()
        if running is None:
            raise
        return Job.of(running)
    try:
        signals().worker.wakeup.set()  # a worker in this process (tests, `signals worker` in-process) looks now
    except Exception:  # noqa: BLE001
        pass
    return Job.of(db.session.execute(select(_T).where(_T.c.token == token)).one())


def latest(user_id: int, kind: str) -> Job | None:
    row = _db().session.execute(select(_T).where(_T.c.user_id == user_id, _T.c.kind == kind)
                                .order_by(_T.c.id.desc()).limit(1)).first()
    return Job.of(row) if row else None


def find(user_id: int, token: str) -> Job | None:
    """The job ``token`` if ``user_id`` owns it; None for anyone else (the caller answers 404 either way)."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return None
    row = _db().session.execute(select(_T).where(_T.c.token == token, _T.c.user_id == user_id)).first()
    return Job.of(row) if row else None


def _download_cond(user_id: int, token: str, kind: str, now) -> tuple:
    return (_T.c.token == token, _T.c.user_id == user_id, _T.c.kind == kind, _T.c.status == "done",
            _T.c.file_name.is_not(None), _T.c.downloaded_at.is_(None), _T.c.expires_at > now)


def peek_download(user_id: int, token: str, kind: str) -> Job | None:
    """What ``claim_download`` would hand out, without using the link: the answer to a HEAD request (a link checker,
    a preview, ``curl -I``), which must not spend the one-time download (attack2)."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return None
    db = _db()
    row = db.session.execute(select(_T).where(*_download_cond(user_id, token, kind, _svc().clock.now()))).first()
    db.session.rollback()
    return Job.of(row) if row else None


def head_response(job: Job | None):
    """The HEAD answer for a download link: 200 with the file's headers while the link is unused, else 404."""
    from flask import Response, abort

    if job is None:
        abort(404)
    return Response(status=200, mimetype="application/gzip",
                    headers={"Cache-Control": "no-store", "X-Export-Rows": str(job.rows or 0)})


def claim_download(user_id: int, token: str, kind: str) -> tuple[Path, Job] | None:
    """One-time download: mark the file of a finished, unexpired, not yet downloaded job of ``user_id`` as
    downloaded and return its path; None in every other case (wrong owner, kind, token; expired; used)."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return None
    db, now = _db(), _svc().clock.now()
    row = db.session.execute(update(_T).where(*_download_cond(user_id, token, kind, now)).values(downloaded_at=now)
                             .returning(*_T.c)).first()
    if row is None:
        db.session.rollback()
        return None
    folder = export_dir()
    path = (folder / row.file_name).resolve()
    if path.parent != folder.resolve() or not path.is_file():  # never outside the folder (the name is ours anyway)
        db.session.rollback()
        return None
    db.session.commit()
    return path, Job.of(row)


def send(got: tuple[Path, "Job"], download_name: str):
    """The response for a claimed download: the gzip file as it was written, with its SHA-256 (RFC 9530
    ``Repr-Digest``) and the row count, so a client can tell a complete file from a cut-off one."""
    import base64

    from flask import send_file

    path, job = got
    resp = send_file(path, mimetype="application/gzip", as_attachment=True, download_name=download_name,
                     conditional=False, etag=False, max_age=0)
    resp.headers["Repr-Digest"] = "sha-256=:" + base64.b64encode(bytes.fromhex(job.sha256)).decode() + ":"
    resp.headers["X-Export-Rows"] = str(job.rows or 0)
    resp.headers["Cache-Control"] = "no-store"
    if not current_app.config.get("USE_X_SENDFILE"):
        # send_file has opened it: the response streams from the open file, and no link reaches it again, so the
        # copy goes now rather than at the sweep 24 h later (attack2).
        path.unlink(missing_ok=True)
    return resp


# --- the worker side -----------------------------------------------------------------------------------------------
class _Run:
    """One attempt at one job, holding its lease."""

    def __init__(self, row, clock, app):
        self.id, self.token, self.clock, self.app = row.id, row.token, clock, app
        self.tag = secrets.token_hex(6)

    def _update(self, **values) -> bool:
        """An UPDATE of this job, committed at once, only while the lease is ours."""
        session = _db().session
        res = session.execute(update(_T).where(_T.c.id == self.id, _T.c.claimed_by == self.tag).values(**values))
        session.commit()  # also ends the read transaction: the readers fetch whole pages, none is held across this
        return res.rowcount == 1

    def claim(self, now) -> bool:
        free = (_T.c.claimed_until.is_(None)) | (_T.c.claimed_until < now)
        session = _db().session
        res = session.execute(update(_T).where(_T.c.id == self.id, _T.c.status.in_(("queued", "running")), free)
                              .values(claimed_by=self.tag, claimed_until=now + JOB_LEASE, status="running",
                                      attempts=_T.c.attempts + 1, progress=0))
        session.commit()
        return res.rowcount == 1

    def heartbeat(self, progress: int, **values) -> None:
        if not self._update(claimed_until=self.clock.now() + JOB_LEASE, progress=progress, **values):
            raise LostLease(self.token)

    def finish(self, status: str, **values) -> bool:
        now = self.clock.now()
        return self._update(status=status, finished_at=now, active_key=None, claimed_by=None, claimed_until=None,
                            expires_at=now + dt.timedelta(hours=LINK_HOURS), **values)


class _Gzip:
    """A gzip file whose compressed bytes are hashed and counted as they are written."""

    def __init__(self, path: Path):
        # Owner-only from the first byte (O_EXCL: never an existing file): an export holds a user's whole history
        # or the audit log, and the folder's 0700 does not hold when an operator points AUTHSVC_EXPORT_DIR elsewhere.
        self.raw = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        self.sha = hashlib.sha256()
        self.size = 0
        self.gz = gzip.GzipFile(fileobj=self, mode="wb", mtime=0)

    def write(self, data: bytes) -> int:  # called by GzipFile with compressed bytes
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.gz.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()


def run(item) -> None:
    """The outbox handler for ``export_job`` rows: run (or resume, or skip) the job the item names."""
    token = (item.payload or {}).get("job") if isinstance(item.payload, dict) else None
    db, clock = _db(), _svc().clock
    row = db.session.execute(select(_T).where(_T.c.token == str(token))).first()
    db.session.rollback()
    if row is None or row.status in ("done", "failed"):
        return  # erased with its user, or finished by another worker: nothing to do
    now = clock.now()
    if row.claimed_until is not None and row.claimed_until >= now:
        raise Defer(max(1.0, (row.claimed_until - now).total_seconds() + 1))  # running elsewhere: look again later
    job = _Run(row, clock, current_app._get_current_object())
    if not job.claim(now):
        raise Defer(5)
    try:
        if row.kind == "audit_verify":
            _verify(job, row)
        else:
            _export(job, row)
    except LostLease:
        return  # the worker that took over finishes it
    except Drop as exc:
        job.finish("failed", result=json.dumps({"error": str(exc)}))
    except Exception as exc:
        db.session.rollback()
        from authsvc.signals import signals

        if item.attempts + 1 >= signals().worker.max_attempts:
            # The outbox gives the row up after this attempt: end the job too, or its active_key would hand this dead
            # job to every later request of the owner, who could never export again (attack2).
            job.finish("failed", result=json.dumps({"error": type(exc).__name__}))
            raise
        # Let the outbox retry (backoff); the job row stays "running" with a lease that runs out.
        job._update(claimed_until=None, claimed_by=None)
        raise


def _owner(row):
    from authsvc.models import User

    user = _db().session.get(User, row.user_id)
    if user is None or user.status != "active":
        raise Drop("the account is disabled or deleted")
    if row.kind != "data_export" and not user.is_admin:
        raise Drop("no longer an operator")
    return user


def _lines(row, user):
    """The text of the export, as the streamed download produces it (one code path for both)."""
    if row.kind == "data_export":
        from authsvc.web.center import consents_for, mfa_service, privacy

        counts: dict = {}
        chunks = privacy().export_stream(user, mfa=mfa_service(), oauth_consents=consents_for(user), counts=counts)
        return chunks, lambda: sum(v for k, v in counts.items() if isinstance(v, int))
    from authsvc.admin import audit_export_lines, audit_export_query

    query, upto = audit_export_query(json.loads(row.params or "{}"))
    stats: dict = {}
    return audit_export_lines(query, upto, stats), lambda: stats.get("rows", 0)


def _export(job: _Run, row) -> None:
    user = _owner(row)
    folder = export_dir(job.app)
    part = folder / f".part-{row.token}-{job.tag}"
    final = folder / f"{row.token}-{job.tag}.gz"
    out = _Gzip(part)
    ok = False
    try:
        chunks, counted = _lines(row, user)
        n = 0
        for text in chunks:
            out.gz.write(text.encode())
            n += 1
            if n % HEARTBEAT_ROWS == 0:
                job.heartbeat(n)
        out.close()
        os.replace(part, final)
        ok = job.finish("done", file_name=final.name, size=out.size, sha256=out.sha.hexdigest(), rows=counted(),
                        progress=n)
    finally:
        if not out.raw.closed:
            out.raw.close()
        if not ok:
            for p in (part, final):
                p.unlink(missing_ok=True)
    if ok:
        _audit_done(row, user, counted())


def _audit_done(row, user, rows: int) -> None:
    tag = "account:data:export" if row.kind == "data_export" else "admin:audit:export"
    _svc().audit.record(tag, "success", actor_id=user.id, subject_id=user.id if row.kind == "data_export" else None,
                        details={"rows": rows, "job": row.token[:8]})


# --- the chain check -----------------------------------------------------------------------------------------------
def _mac(token: str, body: str) -> str:
    key = hashlib.sha256(b"authsvc-job-cursor\0" + current_app.config["SECRET_KEY"].encode()).digest()
    return hmac.new(key, f"{token}\0{body}".encode(), hashlib.sha256).hexdigest()


def _load_cursor(row):
    try:
        data = json.loads(row.cursor or "null")
        body, mac = data["body"], data["mac"]
        if hmac.compare_digest(mac, _mac(row.token, body)):
            next_id, prev, first_id, checked = json.loads(body)
            return (int(next_id), str(prev), int(first_id)), int(checked)
    except (TypeError, ValueError, KeyError):
        pass
    return None, 0


def _verify(job: _Run, row) -> None:
    user = _owner(row)
    audit = _svc().audit
    db = _db()
    cursor, _ = _load_cursor(row)
    from authsvc.models import SecurityEvent

    head = db.session.execute(select(func.max(SecurityEvent.id))).scalar() or 0
    first = cursor[2] if cursor else audit.start().first_id
    total = max(0, head - first + 1)
    while True:
        report, cursor = audit.verify_step(cursor, VERIFY_STEP)
        db.session.rollback()  # no read transaction held across steps
        if report is not None:
            break
        body = json.dumps([*cursor, cursor[0] - cursor[2]])
        job.heartbeat(cursor[0] - cursor[2], total=max(total, cursor[0] - cursor[2]),
                      cursor=json.dumps({"body": body, "mac": _mac(row.token, body)}))
    result = {"ok": report.ok, "checked": report.checked, "first_bad_id": report.first_bad_id,
              "problem": report.problem}
    if job.finish("done", result=json.dumps(result), progress=report.checked, rows=report.checked, cursor=None):
        audit.record("admin:audit:verify", "success" if report.ok else "failure", actor_id=user.id,
                     reason=None if report.ok else f"event {report.first_bad_id}: {report.problem}"[:255],
                     details={"checked": report.checked, "job": row.token[:8]})


# --- retention ------------------------------------------------------------------------------------------------------
def sweep(app=None) -> int:
    """Delete the files of expired jobs (and stray files: a dead worker's ``.part-`` files, files of erased users'
    jobs), and job rows older than ``KEEP_ROWS_DAYS``. Returns the number of files deleted."""
    db, now = _db(), _svc().clock.now()
    folder = export_dir(app)
    live = set(db.session.execute(select(_T.c.file_name).where(_T.c.file_name.is_not(None),
                                                               _T.c.expires_at > now)).scalars())
    running = {t for (t,) in db.session.execute(select(_T.c.token).where(_T.c.status.in_(("queued", "running"))))}
    db.session.execute(update(_T).where(_T.c.file_name.is_not(None), _T.c.expires_at <= now).values(file_name=None))
    db.session.execute(_T.delete().where(_T.c.created_at < now - dt.timedelta(days=KEEP_ROWS_DAYS),
                                         _T.c.status.in_(("done", "failed"))))
    db.session.commit()
    deleted = 0
    for path in folder.iterdir():
        name = path.name
        if name in live or (name.startswith(".part-") and name[6:38] in running):
            continue
        if path.is_file():
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def erase_files(user) -> int:
    """``PrivacyService.erasure_listeners``: delete the files of every job ``user`` owns (finished and a dead worker's
    ``.part-`` files) before the rows go with the account — the data export holds the profile, every sign-in with
    its IP and the audit events, so it must not outlive the erasure until the next sweep (attack2). A worker still
    writing one loses its row, so its ``finish`` fails and it deletes its own file. Returns the files deleted."""
    tokens = _db().session.execute(select(_T.c.token).where(_T.c.user_id == user.id)).scalars().all()
    folder, deleted = export_dir(), 0
    for token in tokens:
        if not TOKEN.fullmatch(token or ""):  # ours are; never a glob pattern from elsewhere
            continue
        for path in [*folder.glob(f"{token}-*.gz"), *folder.glob(f".part-{token}-*")]:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def init_app(app) -> None:
    from authsvc.signals import signals

    signals(app).register_handler(KIND, run)
