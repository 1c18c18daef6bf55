"""Background export jobs (issue 20, migration 0011_exportjobs_jobs): one row per requested export or full chain
check, run by the outbox worker (authsvc.jobs)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models.base import Base, UTCDateTime, utcnow


class ExportJob(Base):
    """A data export, an audit export or a full audit-chain check, requested by ``user_id`` (the owner: only this user
    sees it and downloads its file).

    ``token`` is the public handle (random, in the download URL); ``active_key`` is ``"<user>:<kind>"`` while the job
    is queued or running and NULL after, and is unique: two requests racing for the same export end with one job.
    ``claimed_by``/``claimed_until`` is the job's own lease, renewed while it runs; a worker that died leaves a lease
    that runs out and another worker starts the job again. ``file_name`` is set only in the same UPDATE that marks
    the job ``done``, after the file is complete and renamed into place: a link never points at a half-written file.
    """

    __tablename__ = "export_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # data_export | audit_export | audit_verify
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    params: Mapped[str | None] = mapped_column(Text)  # JSON (the audit export's filters)
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(8), default="queued")  # queued | running | done | failed
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    downloaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[int] = mapped_column(BigInteger, default=0)  # rows written / events checked so far
    total: Mapped[int | None] = mapped_column(BigInteger)  # expected, when known (the chain check)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)  # bytes of the gzip file
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the gzip file, as downloaded
    file_name: Mapped[str | None] = mapped_column(String(128))
    cursor: Mapped[str | None] = mapped_column(Text)  # the chain check's signed resume point
    result: Mapped[str | None] = mapped_column(Text)  # JSON: the chain check's report, or the error
