"""Numbers for the operator dashboard and the attacks page, from real data: ``login_events`` (receipts), the audit
log and the Redis throttle marks. Queries are portable (SQLite and PostgreSQL) and bounded in time."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from sqlalchemy import case, func, select, text

from authsvc.defense import prefix_of
from authsvc.models import LoginEvent, SecurityEvent, User

OUTCOMES = (("success", "allowed", "bar-allowed"), ("mfa_required", "stepped up", "bar-stepup"),
            ("denied", "denied", "bar-denied"), ("failed", "failed", "bar-failed"))
SCORE_EDGES = (-4, -2, 0, 2, 4, 6, 8)


def _hour_bucket(db, col):
    """The hour a timestamp falls in, computed by the database: ``date_trunc`` on PostgreSQL, ``strftime`` on
    SQLite (both on the naive UTC the column stores)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", col)
    return func.strftime("%Y-%m-%d %H:00:00", col)


def _as_hour(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def logins_per_hour(db, now: dt.datetime, hours: int = 24) -> tuple[list[str], dict[str, list[int]]]:
    """Receipts per hour and outcome, counted by the database (GROUP BY the hour): one row per (hour, outcome),
    never one per receipt."""
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours - 1)
    labels, series = [], {o: [0] * hours for o, _, _ in OUTCOMES}
    bucket = _hour_bucket(db, LoginEvent.occurred_at).label("hour")
    rows = db.session.execute(
        select(bucket, LoginEvent.outcome, func.count()).where(LoginEvent.occurred_at >= start)
        .group_by(bucket, LoginEvent.outcome))
    for hour, outcome, count in rows:
        i = int((_as_hour(hour) - start).total_seconds() // 3600)
        if 0 <= i < hours and outcome in series:
            series[outcome][i] += count
    for i in range(hours):
        labels.append((start + dt.timedelta(hours=i)).strftime("%H:00"))
    return labels, series


def score_labels() -> list[str]:
    return [f"< {SCORE_EDGES[0]}"] + [f"{a}…{b}" for a, b in zip(SCORE_EDGES, SCORE_EDGES[1:])] + \
        [f"≥ {SCORE_EDGES[-1]}"]


def score_distribution(db, since: dt.datetime) -> tuple[list[str], dict[str, list[int]]]:
    """Risk scores of the period in bins, split by the decision taken; binned and counted by the database (a CASE
    over SCORE_EDGES, the portable ``width_bucket``)."""
    labels = score_labels()
    by = {d: [0] * len(labels) for d in ("allow", "step_up", "deny")}
    # bin i = number of edges <= score (the same rule as before: sum(1 for e in SCORE_EDGES if score >= e))
    binned = case(*[(LoginEvent.score < e, i) for i, e in enumerate(SCORE_EDGES)], else_=len(SCORE_EDGES)).label("b")
    rows = db.session.execute(select(binned, LoginEvent.decision, func.count()).where(
        LoginEvent.occurred_at >= since, LoginEvent.score.is_not(None)).group_by(binned, LoginEvent.decision))
    for i, decision, count in rows:
        by.setdefault(decision or "allow", [0] * len(labels))[int(i)] += count
    return labels, by


def top_sources(db, since: dt.datetime, n: int = 10) -> dict:
    """Failing sources: IPs and /24 or /48 prefixes from ``account:login:failure`` audit rows (they cover unknown
    accounts too), denied logins and ASNs from the receipts. Counted by the database (GROUP BY ip): one row per
    source address, not one per failure."""
    ips: Counter = Counter()
    unknown: Counter = Counter()
    for ip, count, unk in db.session.execute(
            select(SecurityEvent.ip, func.count(),
                   func.sum(case((SecurityEvent.reason == "unknown_user", 1), else_=0))).where(
                SecurityEvent.tag == "account:login:failure", SecurityEvent.occurred_at >= since,
                SecurityEvent.ip.is_not(None)).group_by(SecurityEvent.ip)):
        ips[ip] += count
        if unk:
            unknown[ip] += int(unk)
    for ip, count in db.session.execute(
            select(LoginEvent.ip, func.count()).where(LoginEvent.outcome == "denied", LoginEvent.occurred_at >= since,
                                                      LoginEvent.ip.is_not(None)).group_by(LoginEvent.ip)):
        ips[ip] += count
    prefixes: Counter = Counter()
    for ip, count in ips.items():
        prefixes[prefix_of(ip) or ip] += count
    asns = Counter({asn: c for asn, c in db.session.execute(
        select(LoginEvent.asn, func.count()).where(LoginEvent.outcome.in_(("failed", "denied")),
                                                   LoginEvent.occurred_at >= since, LoginEvent.asn.is_not(None))
        .group_by(LoginEvent.asn))})
    return {"ips": [(ip, c, unknown[ip]) for ip, c in ips.most_common(n)], "prefixes": prefixes.most_common(n),
            "asns": asns.most_common(n), "failures": sum(ips.values())}


def count_tag(db, tag: str, since: dt.datetime | None = None) -> int:
    q = select(func.count()).select_from(SecurityEvent).where(SecurityEvent.tag == tag)
    if since is not None:
        q = q.where(SecurityEvent.occurred_at >= since)
    return db.session.execute(q).scalar_one()


def mfa_adoption(db) -> tuple[int, int] | None:
    """(users with a second factor, active users); None when the MFA tables are not there."""
    try:
        from authsvc.models import TotpCredential, WebAuthnCredential
    except ImportError:  # pragma: no cover
        return None
    total = db.session.execute(select(func.count()).select_from(User).where(User.status == "active")).scalar_one()
    with_factor = db.session.execute(select(func.count(func.distinct(User.id))).where(
        User.status == "active",
        User.id.in_(select(TotpCredential.user_id).union(select(WebAuthnCredential.user_id))))).scalar_one()
    return with_factor, total


ESTIMATE_FROM = 100_000  # rows: above this, PostgreSQL's own estimate of a table's size is shown (marked ≈)


def users_total(db) -> tuple[int, bool]:
    """(number of accounts, exact?). On PostgreSQL a table past ESTIMATE_FROM rows is not counted (``count(*)`` reads
    the whole table: ~55 ms at 1 M users, warm) — the planner's estimate (``pg_class.reltuples``, kept by ANALYZE and
    autovacuum) is shown instead; SQLite and small tables are counted exactly."""
    if db.session.get_bind().dialect.name == "postgresql":
        est = db.session.execute(text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass")).scalar()
        if est is not None and est >= ESTIMATE_FROM:
            return int(est), False
    return db.session.execute(select(func.count()).select_from(User)).scalar_one(), True


def breached_hits(db, since: dt.datetime) -> int:
    return count_tag(db, "account:password:breached", since)


def reasons_of(raw: str | None) -> list[dict]:
    return json.loads(raw) if raw else []


TAG_CAP = 1000
# A loose index scan ("skip scan") over ix_security_events_tag: each step asks the index for the smallest tag
# greater than the last one, so the cost is one index probe per distinct tag (a few dozen), not a pass over the
# log like SELECT DISTINCT tag. Plain SQL that SQLite and PostgreSQL both run; the counter bounds it.
_TAGS = text("""
WITH RECURSIVE t(tag, n) AS (
  SELECT (SELECT min(tag) FROM security_events), 1
  UNION ALL
  SELECT (SELECT min(e.tag) FROM security_events e WHERE e.tag > t.tag), t.n + 1 FROM t
  WHERE t.tag IS NOT NULL AND t.n < :cap
)
SELECT tag FROM t WHERE tag IS NOT NULL
""")


def audit_tags(db, cap: int = TAG_CAP) -> tuple[list[str], bool]:
    """The distinct audit tags, sorted, and whether the list is complete (False: more than ``cap`` tags)."""
    tags = list(db.session.execute(_TAGS, {"cap": cap + 1}).scalars())
    return tags[:cap], len(tags) <= cap
