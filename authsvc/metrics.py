"""Prometheus metrics (prometheus-client) for operators' dashboards and alerts, served at ``GET /metrics``.

What an ATO-defense service should let an operator alert on: login outcomes (a stuffing wave is a jump in
``invalid_credentials`` and ``throttled``), which limiter refused (``scope``), the risk engine's decisions, correct
passwords found in the breach corpus, refresh-token replays (stolen tokens), and answers of 503 because a store was
away. Counters only on paths that already cost milliseconds (logins, token issue); the per-request hot paths (session
check, introspection) are not instrumented — their volume is what a reverse proxy or ``wrk`` already measures.

Several gunicorn workers: prometheus-client's multiprocess mode, where each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and the scrape adds them up. ``authsvc serve`` sets that folder (inside the instance
folder, emptied at start); an operator running gunicorn directly sets it too, or each scrape sees one worker only.
The variable must be set before prometheus_client is imported, which is why ``serve`` passes it through the workers'
environment.

Access: the peer address (never X-Forwarded-For) must be in ``metrics_allow`` (default: loopback), or the request
carries ``Authorization: Bearer <metrics_token>``. Anyone else gets 404: the endpoint is not advertised.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)

LOGINS = Counter("authsvc_logins_total", "Password login attempts by outcome "
                 "(success, mfa_required, invalid_credentials, email_unverified, denied, throttled)", ["outcome"])
THROTTLED = Counter("authsvc_login_throttled_total", "Login attempts refused before hashing, by the limiter that "
                    "refused (account_ip, ip, pfx, asn, *_spray, password_spray, global_unfamiliar, ...)", ["scope"])
RISK = Counter("authsvc_risk_decisions_total", "Risk decisions on correct passwords (allow, step_up, deny)",
               ["action"])
BREACHED = Counter("authsvc_breached_password_logins_total",
                   "Correct passwords found in the breached-password corpus at login")
LOGIN_SECONDS = Histogram("authsvc_login_duration_seconds", "Time spent in the login pipeline (argon2 included)",
                          buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0))
TOKENS = Counter("authsvc_oauth_tokens_total", "OAuth access tokens issued, by grant type", ["grant_type"])
REFRESH_REUSE = Counter("authsvc_oauth_refresh_reuse_total",
                        "Rotated refresh tokens presented again (family revoked: possible theft)")
UNAVAILABLE = Counter("authsvc_dependency_unavailable_total", "Requests answered 503 because a store was away",
                      ["dependency"])
# The service-wide budget for unfamiliar attempts (authsvc/defense/budget.py). Every worker computes the same figure
# from Redis; in multi-process mode the most recent worker's value is the one shown.
BUDGET_RATE = Gauge("authsvc_unfamiliar_budget_per_second", "Service-wide budget of password checks per second for "
                    "unfamiliar attempts (explicit setting, or share × capacity of live hosts; the floor until one is measured)",
                    multiprocess_mode="mostrecent")
BUDGET_HOSTS = Gauge("authsvc_unfamiliar_budget_live_hosts", "Hosts whose heartbeat is live and whose measured "
                     "hashing capacity the budget sums", multiprocess_mode="mostrecent")
BUDGET_CAPACITY = Gauge("authsvc_hashing_capacity_per_second", "Sum of live hosts' measured argon2 hashes per second",
                        multiprocess_mode="mostrecent")
BUDGET_REFUSALS = Counter("authsvc_unfamiliar_budget_refusals_total",
                          "Unfamiliar login attempts refused (429) because the service-wide budget was spent")

# Shared Signals / Back-Channel Logout delivery (authsvc/signals/outbox.py). The backlog is read from SQL at scrape
# time (any process can answer it); the outcomes are counted by the worker process.
OUTBOX_BACKLOG = Gauge("authsvc_signals_outbox_backlog", "Deliveries waiting in the SQL outbox, by kind "
                       "(ssf_push, ssf_poll, bcl...)", ["kind"], multiprocess_mode="mostrecent")
OUTBOX_FAILED = Gauge("authsvc_signals_outbox_failed", "Deliveries given up (refused, or out of attempts)",
                      multiprocess_mode="mostrecent")
OUTBOX_OUTCOMES = Counter("authsvc_signals_deliveries_total", "Delivery attempts by kind and outcome "
                          "(delivered, retried, failed)", ["kind", "outcome"])


def refresh_outbox() -> None:
    """Bring the outbox gauges up to date at scrape time. Best effort, like refresh_budget."""
    try:
        from authsvc.extensions import db
        from authsvc.signals.outbox import backlog, failed_count

        counts = backlog(db.session)
        for kind in set(counts) | {"ssf_push", "ssf_poll", "bcl"}:
            OUTBOX_BACKLOG.labels(kind=kind).set(counts.get(kind, 0))
        OUTBOX_FAILED.set(failed_count(db.session))
    except Exception:  # noqa: BLE001 - the database away: the other metrics still get scraped
        pass


def dependency_of(exc: BaseException) -> str:
    """The label for a store error: "redis" or "database"."""
    return "redis" if type(exc).__module__.startswith("redis") else "database"


def render() -> tuple[bytes, str]:
    """The exposition text: every worker's values when running multi-process, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def refresh_budget() -> None:
    """Bring the budget gauges up to date at scrape time (the heartbeat script, at most every few seconds), so
    /metrics shows the budget even when no login came in lately. Best effort: a scrape never fails on it."""
    try:
        from authsvc.services import services

        budget = getattr(services().throttle, "budget", None)
        if budget is not None:
            budget.snapshot()
    except Exception:  # noqa: BLE001 - Redis away: the other counters still get scraped (and count the 503s)
        pass


def allowed(peer: str | None, authorization: str | None, allow: tuple[str, ...], token: str | None) -> bool:
    scheme, _, presented = (authorization or "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return True
    try:
        ip = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in allow)
