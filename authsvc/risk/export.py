"""`authsvc risk export`: the service's own login history with the outcome labels it records, in the RBA schema.

Input for `authsvc risk fit` (docs/RISK.md, "Learning from outcomes"). One row per sign-in attempt, from the
``login_events`` receipts, in time order; the 16 RBA columns (those the service does not know are empty) plus
``Outcome``:

| Outcome | from | Login Successful | Is Account Takeover |
|---|---|---|---|
| ``allowed`` | a ``success`` receipt the engine allowed | True | False |
| ``stepup_passed`` | a ``success`` receipt whose decision was a step-up (the owner met it) | True | False |
| ``stepup_failed`` | an ``mfa_required`` receipt with no ``success`` of the same account within ``stepup_window`` | False | False |
| ``reported`` | the last successful sign-in at or before a used "this wasn't me" link was minted (the link is sent with it) | True | True |
| ``confirmed`` | a receipt id the operator names with ``--confirmed`` (an admin-confirmed takeover) | as recorded | True |
| ``denied`` / ``failed`` | ``denied``; ``failed``, ``unverified``, ``throttled`` | False | False |

An ``mfa_required`` receipt followed by the account's success is the same sign-in: only the success is written.
Accounts are exported by their numeric id; e-mail addresses are never written.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .evaluation.fit import OUTCOME_COLUMN
from .evaluation.schema import ATTACK_TYPE_COLUMN, COLUMNS, format_timestamp

__all__ = ["export_labels", "EXPORT_COLUMNS"]

EXPORT_COLUMNS = (*COLUMNS, ATTACK_TYPE_COLUMN, OUTCOME_COLUMN)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _ts(when: dt.datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - _EPOCH).total_seconds()


def export_labels(session: Session, output: str | Path, *, stepup_window: float = 900.0,
                  confirmed: Iterable[int] = ()) -> Counter:
    from authsvc.models import EmailToken
    from authsvc.models.activity import LoginEvent

    events = session.execute(
        select(LoginEvent.id, LoginEvent.user_id, LoginEvent.occurred_at, LoginEvent.outcome, LoginEvent.ip,
               LoginEvent.user_agent, LoginEvent.country, LoginEvent.asn, LoginEvent.decision)
        .order_by(LoginEvent.occurred_at, LoginEvent.id)
    ).all()
    confirmed_ids = set(confirmed)
    unknown = confirmed_ids - {e.id for e in events}
    if unknown:
        raise ValueError(f"--confirmed: no login receipt with id {', '.join(map(str, sorted(unknown)))}")
    successes: dict[int, list[tuple[float, int]]] = defaultdict(list)  # user → [(time, receipt id)]
    for e in events:
        if e.outcome == "success" and e.user_id is not None:
            successes[e.user_id].append((_ts(e.occurred_at), e.id))
    # "This wasn't me": the link was minted with the sign-in it reports, so that sign-in is the account's last
    # success at or before the token's creation.
    reported: set[int] = set()
    tokens = session.execute(select(EmailToken.user_id, EmailToken.created_at)
                             .where(EmailToken.purpose == "notme", EmailToken.used_at.is_not(None))).all()
    for user_id, created in tokens:
        t = _ts(created) + 1.0  # the receipt and the token are written in the same request
        before = [rid for ts, rid in successes.get(user_id, ()) if ts <= t]
        if before:
            reported.add(before[-1])

    counts: Counter = Counter()
    with open(output, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(EXPORT_COLUMNS)
        for e in events:
            ts = _ts(e.occurred_at)
            ok = e.outcome == "success"
            if e.outcome == "mfa_required":
                later = successes.get(e.user_id, ()) if e.user_id is not None else ()
                if any(ts <= s <= ts + stepup_window for s, _ in later):
                    continue  # the same sign-in, finished by its second step: the success row stands for it
                outcome = "stepup_failed"
            elif ok:
                outcome = "stepup_passed" if e.decision == "step_up" else "allowed"
            elif e.outcome == "denied":
                outcome = "denied"
            else:
                outcome = "failed"
            if e.id in reported:
                outcome = "reported"
            if e.id in confirmed_ids:
                outcome = "confirmed"
            takeover = outcome in ("reported", "confirmed")
            asn = e.asn or ""
            w.writerow([e.id, format_timestamp(ts), e.user_id if e.user_id is not None else "", "", e.ip or "",
                         e.country or "", "", "", asn, e.user_agent or "", "", "", "", ok, False, takeover, "",
                         outcome])
            counts[outcome] += 1
    return counts
