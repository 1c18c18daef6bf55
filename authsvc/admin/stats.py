"""Numbers for the operator dashboard and the attacks page, from real data: ``login_events`` (receipts), the audit
log and the Redis throttle marks. Queries are portable (SQLite and PostgreSQL) and bounded in time."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from sqlalchemy import func, select

from authsvc.defense import prefix_of
from authsvc.models import LoginEvent, SecurityEvent, User

OUTCOMES = (("success", "allowed", "bar-allowed"), ("mfa_required", "stepped up", "bar-stepup"),
            ("denied", "denied", "bar-denied"), ("failed", "failed", "bar-failed"))
SCORE_EDGES = (-4, -2, 0, 2, 4, 6, 8)


def logins_per_hour(db, now: dt.datetime, hours: int = 24) -> tuple[list[str], dict[str, list[int]]]:
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours - 1)
    labels, series = [], {o: [0] * hours for o, _, _ in OUTCOMES}
    rows = db.session.execute(
        select(LoginEvent.occurred_at, LoginEvent.outcome).where(LoginEvent.occurred_at >= start)
        .execution_options(yield_per=2000))
    for at, outcome in rows:
        i = int((at - start).total_seconds() // 3600)
        if 0 <= i < hours and outcome in series:
            series[outcome][i] += 1
    for i in range(hours):
        labels.append((start + dt.timedelta(hours=i)).strftime("%H:00"))
    return labels, series


def score_distribution(db, since: dt.datetime) -> tuple[list[str], dict[str, list[int]]]:
    """Risk scores of the period in bins, split by the decision taken."""
    labels = [f"< {SCORE_EDGES[0]}"] + [f"{a}…{b}" for a, b in zip(SCORE_EDGES, SCORE_EDGES[1:])] + \
             [f"≥ {SCORE_EDGES[-1]}"]
    by = {d: [0] * len(labels) for d in ("allow", "step_up", "deny")}
    rows = db.session.execute(select(LoginEvent.score, LoginEvent.decision).where(
        LoginEvent.occurred_at >= since, LoginEvent.score.is_not(None)).execution_options(yield_per=2000))
    for score, decision in rows:
        i = sum(1 for e in SCORE_EDGES if score >= e)
        by.setdefault(decision or "allow", [0] * len(labels))[i] += 1
    return labels, by


def top_sources(db, since: dt.datetime, n: int = 10) -> dict:
    """Failing sources: IPs and /24 or /48 prefixes from ``account:login:failure`` audit rows (they cover unknown
    accounts too), denied logins and ASNs from the receipts."""
    ips: Counter = Counter()
    unknown: Counter = Counter()
    for ip, reason in db.session.execute(
            select(SecurityEvent.ip, SecurityEvent.reason).where(
                SecurityEvent.tag == "account:login:failure", SecurityEvent.occurred_at >= since,
                SecurityEvent.ip.is_not(None)).execution_options(yield_per=2000)):
        ips[ip] += 1
        if reason == "unknown_user":
            unknown[ip] += 1
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


def breached_hits(db, since: dt.datetime) -> int:
    return count_tag(db, "account:password:breached", since)


def reasons_of(raw: str | None) -> list[dict]:
    return json.loads(raw) if raw else []
