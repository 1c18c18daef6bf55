"""Durable delivery: an outbox table in SQL and a worker that drains it (issue 15).

Writers call ``enqueue(session, kind, target, payload)`` *inside* the transaction that records the cause — usually
from an ``audit.on_record`` listener, so the audit event and its deliveries commit (or roll back) together. Nothing
goes through Redis: a Redis outage neither loses nor delays a delivery.

The worker (``OutboxWorker``) claims due rows of the kinds it has handlers for, calls ``handler(item)`` for each, and
records the outcome:

* the handler returns → ``delivered_at`` is set, the row leaves the backlog;
* it raises ``Drop`` → ``failed_at`` is set (permanent: the receiver refused it, the stream is gone...);
* it raises anything else → ``attempts`` + 1 and ``next_attempt_at`` = now + backoff (exponential, capped, with
  jitter); after ``max_attempts`` the row is given up (``failed_at``, ``last_error``).

Claims are leases (``claimed_by``, ``claimed_until``): a worker killed mid-delivery loses nothing — its lease runs out
and the row is delivered again, with the same ``jti``, so a receiver that dedupes by ``jti`` (RFC 8935 §2, RFC 8936
§2.4: it MUST) sees every event exactly once. On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP LOCKED``
so concurrent workers never wait on each other; on SQLite (one writer at a time) each claim is a conditional UPDATE
whose WHERE re-checks the lease, which is the same guarantee without row locks.

``run_once()`` does one pass (tests call it; time comes from the app's ``Clock``); ``run_forever(stop)`` loops.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from authsvc.models.signals import OutboxItem

log = logging.getLogger(__name__)
_T = OutboxItem.__table__


class Drop(Exception):
    """Raised by a handler: this item can never be delivered (give up now, no retry)."""


class Defer(Exception):
    """Raised by a handler: not now, and not a failure (e.g. the SSF stream is paused): look again in ``seconds``
    without counting an attempt."""

    def __init__(self, seconds: float):
        super().__init__(f"deferred {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Item:
    """What a handler gets: a detached copy of the row (no session needed to read it)."""

    id: int
    kind: str
    target: str
    payload: Any  # the JSON value stored, or the text when it is not JSON
    jti: str
    attempts: int  # attempts made before this one
    created_at: dt.datetime


def new_jti() -> str:
    return secrets.token_urlsafe(24)


def enqueue(session, kind: str, target: str, payload: Any, *, jti: str | None = None, now: dt.datetime,
            delay: float = 0.0) -> str:
    """Add one delivery to ``session``'s transaction (no commit). ``payload``: a JSON-able value, or a str stored
    as is (e.g. an already signed token). Returns the jti (given, or a fresh random one)."""
    jti = jti or new_jti()
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), sort_keys=True)
    session.execute(_T.insert().values(kind=kind, target=target[:128], payload=text, jti=jti, created_at=now,
                                       attempts=0, next_attempt_at=now + dt.timedelta(seconds=delay)))
    return jti


def enqueue_many(session, rows: list[tuple[str, str, Any, str]], *, now: dt.datetime) -> None:
    """Several deliveries ``(kind, target, payload, jti)`` in one INSERT (executemany): a fan-out to many streams
    inside the audit transaction costs one statement, not one per stream."""
    if not rows:
        return
    session.execute(_T.insert(), [
        {"kind": kind, "target": target[:128], "jti": jti, "created_at": now, "attempts": 0, "next_attempt_at": now,
         "payload": payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"),
                                                                         sort_keys=True)}
        for kind, target, payload, jti in rows])


def backlog(session) -> dict[str, int]:
    """Pending rows per kind (delivered and given-up rows excluded)."""
    rows = session.execute(select(_T.c.kind, func.count()).where(_T.c.next_attempt_at.is_not(None))
                           .group_by(_T.c.kind)).all()
    return {k: n for k, n in rows}


def failed_count(session) -> int:
    return session.execute(select(func.count()).select_from(_T).where(_T.c.failed_at.is_not(None))).scalar_one()


@dataclass
class PassResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0


class OutboxWorker:
    def __init__(self, app, db, clock, *, batch: int = 100, lease_seconds: float = 120.0, max_attempts: int = 10,
                 backoff_base: float = 2.0, backoff_max: float = 3600.0, concurrency: int = 8):
        self.app = app
        self.db = db
        self.clock = clock
        self.handlers: dict[str, Callable[[Item], Any]] = {}
        self.batch = batch
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = max(1, concurrency)
        self.name = "w-" + secrets.token_hex(6)  # this worker's lease owner tag
        self._pool: ThreadPoolExecutor | None = None
        self.wakeup = threading.Event()
        self.ticks: list[list] = []  # [every seconds, fn, next due (monotonic)]

    # --- interface --------------------------------------------------------------------------------------------------
    def register_handler(self, kind: str, fn: Callable[[Item], Any]) -> None:
        """``fn(item)`` delivers one item: return on success, raise ``Drop`` to give up, anything else to retry. It
        runs in a pool thread inside an app context; it must bound its own network time (timeouts) well under the
        lease (``lease_seconds``)."""
        if len(kind) > 16:
            raise ValueError("kind: at most 16 characters")
        self.handlers[kind] = fn

    def register_tick(self, every: float, fn: Callable[[], Any]) -> None:
        """``fn()`` runs in the worker's loop (inside an app context) every ``every`` seconds, the first time on the
        first loop: small upkeep that must not cost a request its time (the dashboard's hourly pieces). A failing tick
        is logged and tried again at its next turn; it never stops delivery."""
        self.ticks.append([float(every), fn, 0.0])

    def run_ticks(self) -> None:
        now = time.monotonic()
        for tick in self.ticks:
            if now >= tick[2]:
                tick[2] = now + tick[0]
                try:
                    with self.app.app_context():
                        tick[1]()
                        self.db.session.remove()
                except Exception:  # noqa: BLE001 - upkeep only
                    log.warning("outbox worker: periodic task %s failed", getattr(tick[1], "__name__", tick[1]),
                                exc_info=True)

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: base × 2^(attempts-1), capped, ±20 % jitter (no thundering herd
        of retries against a receiver that just came back)."""
        raw = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1)))
        return raw * random.uniform(0.8, 1.2)

    def run_once(self) -> PassResult:
        """Claim due items (up to ``batch``), deliver them (``concurrency`` at a time) and record the outcomes."""
        result = PassResult()
        if not self.handlers:
            return result
        items = self._claim()
        result.claimed = len(items)
        if not items:
            return result
        final = []

        def record(it, outcome):
            status = self._finish(it, *outcome)
            setattr(result, status, getattr(result, status) + 1)
            final.append((it.kind, status))

        if self.concurrency == 1 or len(items) == 1:
            for it in items:
                record(it, self._deliver(it))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="outbox")
            # Each outcome is recorded as soon as it is known: a worker killed while one receiver hangs loses only
            # the deliveries still in flight (sent again, same jti), not the ones already answered.
            futures = {self._pool.submit(self._deliver, it): it for it in items}
            for fut in as_completed(futures):
                record(futures[fut], fut.result())
        _count(final)
        return result

    def run_forever(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Drain until ``stop`` is set: a pass, then sleep ``interval`` (or less, when ``wakeup`` is set) unless the
        pass was full. Database errors are logged and retried after a pause — never fatal, never a lost row."""
        while not stop.is_set():
            try:
                with self.app.app_context():
                    got = self.run_once()
                    self.db.session.remove()
            except Exception:  # noqa: BLE001 - database away: try again shortly
                log.warning("outbox worker: pass failed, retrying", exc_info=True)
                got = PassResult()
                stop.wait(min(5.0, interval * 10))
            self.run_ticks()
            if got.claimed < self.batch:
                self.wakeup.wait(interval)
                self.wakeup.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # --- internals --------------------------------------------------------------------------------------------------
    def _claim(self) -> list[Item]:
        session = self.db.session
        now = self.clock.now()
        due = and_(_T.c.next_attempt_at.is_not(None), _T.c.next_attempt_at <= now, _T.c.kind.in_(list(self.handlers)),
                   or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < now))
        q = select(_T.c.id).where(due).order_by(_T.c.next_attempt_at, _T.c.id).limit(self.batch)
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            q = q.with_for_update(skip_locked=True)
        try:
            ids = [r for (r,) in session.execute(q)]
            if not ids:
                session.rollback()
                return []
            until = now + self.lease
            # The WHERE re-checks the lease: on SQLite another worker may have claimed a row between our SELECT and
            # this UPDATE (no row locks there), and then it is simply not ours.
            claimed = session.execute(
                update(_T).where(_T.c.id.in_(ids), due).values(claimed_by=self.name, claimed_until=until)
                .returning(_T.c.id, _T.c.kind, _T.c.target, _T.c.payload, _T.c.jti, _T.c.attempts, _T.c.created_at)
            ).all()
            session.commit()
        except Exception:
            session.rollback()
            raise
        out = []
        for r in sorted(claimed, key=lambda r: r.id):
            try:
                payload = json.loads(r.payload)
            except ValueError:
                payload = r.payload
            out.append(Item(r.id, r.kind, r.target, payload, r.jti, r.attempts, r.created_at))
        return out

    def _deliver(self, item: Item) -> tuple[str, str | None]:
        try:
            with self.app.app_context():
                try:
                    self.handlers[item.kind](item)
                finally:
                    self.db.session.remove()
            return "delivered", None
        except Drop as exc:
            return "failed", f"dropped: {exc}"[:255]
        except Defer as exc:
            return "deferred", str(exc.seconds)
        except Exception as exc:  # noqa: BLE001 - any failure is a retry, recorded on the row
            return "retried", f"{type(exc).__name__}: {exc}"[:255]

    def _finish(self, item: Item, status: str, error: str | None) -> str:
        session = self.db.session
        now = self.clock.now()
        mine = and_(_T.c.id == item.id, _T.c.claimed_by == self.name)
        attempts = item.attempts + 1
        if status == "deferred":
            session.execute(update(_T).where(mine).values(
                claimed_by=None, claimed_until=None,
                next_attempt_at=now + dt.timedelta(seconds=float(error or 1))))
            session.commit()
            return status
        if status == "retried" and attempts >= self.max_attempts:
            status = "failed"
            error = f"gave up after {attempts} attempts: {error}"[:255]
        if status == "delivered":
            values = dict(delivered_at=now, next_attempt_at=None, last_error=None)
        elif status == "failed":
            values = dict(failed_at=now, next_attempt_at=None, last_error=error)
        else:
            values = dict(next_attempt_at=now + dt.timedelta(seconds=self.backoff(attempts)), last_error=error)
        session.execute(update(_T).where(mine).values(attempts=attempts, claimed_by=None, claimed_until=None,
                                                       **values))
        session.commit()
        # A lease that ran out and was taken over: the other worker's outcome counts (same jti, receiver dedupes).
        return status


def _count(final) -> None:
    try:
        from authsvc.metrics import OUTBOX_OUTCOMES

        for kind, status in final:
            OUTBOX_OUTCOMES.labels(kind=kind, outcome=status).inc()
    except Exception:  # noqa: BLE001 - metrics never break delivery
        pass
