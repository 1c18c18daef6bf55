"""The dashboard's 24-hour numbers as 24 hourly pieces: an hour that has ended never changes, so its piece is counted
once and kept (Redis, ``ROLLUP_TTL``); a load computes only the hour in progress (and any ended hour it does not hold
yet). A cold dashboard therefore reads one hour of receipts and audit rows, not a whole day's (at 1 M users and
10 M receipts the three 24-hour scans cost ~0.4 s; docs/BENCHMARKS.md).

An hour counts as ended ``ROLLUP_GRACE`` after its last second: a sign-in whose receipt is committed a moment after
the hour turned (a slow request) still lands in it. A receipt written later than that with an older time (an
import) is not in the kept piece until the piece expires; nothing in authsvc writes such receipts.

Each piece is exact for its counts (outcomes, score bins, breached-password hits, failed sign-ins); the per-source
lists keep the ``TOP_PER_HOUR`` busiest sources of the hour, so a source that is below that rank in every hour it
appears is left out of the day's top ten (its failures are still in the total). Without Redis every hour is counted
from SQL, as before: the numbers are never wrong, only slower.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from sqlalchemy import case, func, select

from authsvc.defense import prefix_of
from authsvc.models import LoginEvent, SecurityEvent

from . import stats

HOUR = dt.timedelta(hours=1)
ROLLUP_GRACE = dt.timedelta(minutes=2)
ROLLUP_TTL = 26 * 3600  # a piece outlives the 24 hours it is shown in
TOP_PER_HOUR = 500
KEY = "admin:rollup:{dash}:h:"  # one hash tag: the 23 pieces are one MGET on a Redis Cluster too (one slot)


def hour_piece(db, start: dt.datetime) -> dict:
    """Everything the dashboard shows about [start, start + 1 h), counted by the database with range predicates on
    the ``occurred_at`` indexes (portable: SQLite and PostgreSQL). JSON-shaped."""
    end = start + HOUR
    in_hour_r = (LoginEvent.occurred_at >= start, LoginEvent.occurred_at < end)
    in_hour_a = (SecurityEvent.occurred_at >= start, SecurityEvent.occurred_at < end)
    outcomes = {o: n for o, n in db.session.execute(
        select(LoginEvent.outcome, func.count()).where(*in_hour_r).group_by(LoginEvent.outcome))}
    binned = case(*[(LoginEvent.score < e, i) for i, e in enumerate(stats.SCORE_EDGES)],
                  else_=len(stats.SCORE_EDGES)).label("b")
    scores: dict[str, list[int]] = {}
    for i, decision, n in db.session.execute(select(binned, LoginEvent.decision, func.count()).where(
            *in_hour_r, LoginEvent.score.is_not(None)).group_by(binned, LoginEvent.decision)):
        scores.setdefault(decision or "allow", [0] * (len(stats.SCORE_EDGES) + 1))[int(i)] += n
    failed_ips = {ip: [n, int(unk or 0)] for ip, n, unk in db.session.execute(
        select(SecurityEvent.ip, func.count(), func.sum(case((SecurityEvent.reason == "unknown_user", 1), else_=0)))
        .where(SecurityEvent.tag == "account:login:failure", *in_hour_a, SecurityEvent.ip.is_not(None))
        .group_by(SecurityEvent.ip))}
    denied_ips = {ip: n for ip, n in db.session.execute(
        select(LoginEvent.ip, func.count()).where(LoginEvent.outcome == "denied", *in_hour_r,
                                                  LoginEvent.ip.is_not(None)).group_by(LoginEvent.ip))}
    asns = {a: n for a, n in db.session.execute(
        select(LoginEvent.asn, func.count()).where(LoginEvent.outcome.in_(("failed", "denied")), *in_hour_r,
                                                   LoginEvent.asn.is_not(None)).group_by(LoginEvent.asn))}
    breached = db.session.execute(select(func.count()).select_from(SecurityEvent).where(
        SecurityEvent.tag == "account:password:breached", *in_hour_a)).scalar_one()
    failures = sum(v[0] for v in failed_ips.values()) + sum(denied_ips.values())
    # The prefixes are counted before the per-IP lists are cut, so a /24 of many small sources is still seen.
    prefixes: Counter = Counter()
    for ip, (n, _) in failed_ips.items():
        prefixes[prefix_of(ip) or ip] += n
    for ip, n in denied_ips.items():
        prefixes[prefix_of(ip) or ip] += n
    return {"outcomes": outcomes, "scores": scores, "breached": breached, "failures": failures,
            "failed_ips": dict(sorted(failed_ips.items(), key=lambda kv: -kv[1][0])[:TOP_PER_HOUR]),
            "denied_ips": dict(Counter(denied_ips).most_common(TOP_PER_HOUR)),
            "asns": dict(Counter(asns).most_common(TOP_PER_HOUR)),
            "prefixes": dict(prefixes.most_common(TOP_PER_HOUR))}


def hour_starts(now: dt.datetime, hours: int = 24) -> list[dt.datetime]:
    """The hours shown at ``now``, oldest first; the last one is in progress."""
    top = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return [top - HOUR * (hours - 1 - i) for i in range(hours)]


def pieces(db, redis, now: dt.datetime, hours: int = 24) -> list[dict]:
    """One piece per hour: ended hours from Redis (counted and kept on a miss), the others counted now. ``redis``
    None or failing: everything counted now."""
    starts = hour_starts(now, hours)
    ended = [s for s in starts if s + HOUR + ROLLUP_GRACE <= now]
    kept: list = [None] * len(ended)
    if redis is not None and ended:
        try:
            kept = redis.mget([KEY + s.strftime("%Y%m%d%H") for s in ended])
        except Exception:  # noqa: BLE001 - the numbers are worth more than the cache
            redis = None
    out = []
    for s in starts:
        raw = kept[ended.index(s)] if s in ended else None
        if raw:
            out.append(json.loads(raw))
            continue
        piece = hour_piece(db, s)
        if s in ended and redis is not None:
            try:
                redis.set(KEY + s.strftime("%Y%m%d%H"), json.dumps(piece), ex=ROLLUP_TTL)
            except Exception:  # noqa: BLE001
                redis = None
        out.append(piece)
    return out


def keep_ended_hours(db, redis, now: dt.datetime) -> int:
    """Count and keep the pieces of the ended hours that are not kept yet; returns how many it counted. The outbox
    worker runs this every minute (``init_app``), so a dashboard load finds every ended hour kept — after a deploy or
    a Redis flush included — and counts only the hour in progress."""
    ended = [s for s in hour_starts(now) if s + HOUR + ROLLUP_GRACE <= now]
    have = redis.mget([KEY + s.strftime("%Y%m%d%H") for s in ended])
    counted = 0
    for s, raw in zip(ended, have):
        if not raw:
            redis.set(KEY + s.strftime("%Y%m%d%H"), json.dumps(hour_piece(db, s)), ex=ROLLUP_TTL)
            counted += 1
    db.session.rollback()
    return counted


def init_app(app) -> None:
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals

    def keep_dashboard_hours():
        svc = services()
        keep_ended_hours(db, svc.sessions.redis, svc.clock.now())

    signals(app).worker.register_tick(60, keep_dashboard_hours)


def day_numbers(db, redis, now: dt.datetime, n: int = 10) -> dict:
    """The dashboard's last-24-hours numbers (per-hour chart, score bins, failing sources, breached hits) from the
    hourly pieces; the same shapes ``stats.logins_per_hour`` / ``score_distribution`` / ``top_sources`` return."""
    starts = hour_starts(now)
    ps = pieces(db, redis, now)
    series = {o: [p["outcomes"].get(o, 0) for p in ps] for o, _, _ in stats.OUTCOMES}
    labels = [s.strftime("%H:00") for s in starts]
    s_labels = stats.score_labels()
    s_by = {d: [0] * len(s_labels) for d in ("allow", "step_up", "deny")}
    ips: Counter = Counter()
    unknown: Counter = Counter()
    asns: Counter = Counter()
    prefixes: Counter = Counter()
    for p in ps:
        for d, bins in p["scores"].items():
            row = s_by.setdefault(d, [0] * len(s_labels))
            for i, v in enumerate(bins):
                row[i] += v
        for ip, (c, unk) in p["failed_ips"].items():
            ips[ip] += c
            unknown[ip] += unk
        ips.update(p["denied_ips"])
        asns.update(p["asns"])
        prefixes.update(p["prefixes"])
    sources = {"ips": [(ip, c, unknown[ip]) for ip, c in ips.most_common(n)], "prefixes": prefixes.most_common(n),
               "asns": asns.most_common(n), "failures": sum(p["failures"] for p in ps)}
    return {"labels": labels, "series": series, "s_labels": s_labels, "s_by": s_by, "sources": sources,
            "breached": sum(p["breached"] for p in ps)}
