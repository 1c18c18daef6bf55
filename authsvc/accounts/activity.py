"""Reading login history back as risk receipts (the user's "recent activity", the admin's user page, export)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select

from authsvc.i18n import N_
from authsvc.models import LoginEvent

# Stored and exported in English; pages translate them where they are shown (`_(receipt.outcome_text)`).
OUTCOME_TEXT = {
    "success": N_("Signed in"),
    "mfa_required": N_("Asked for a second factor"),
    "denied": N_("Blocked"),
    "failed": N_("Wrong password"),
    "unverified": N_("E-mail not yet confirmed"),
    "throttled": N_("Attempt refused for now: too many attempts (the password was not checked)"),
}


@dataclass(frozen=True)
class Receipt:
    at: dt.datetime
    outcome: str
    outcome_text: str
    ip: str | None
    user_agent: str | None
    country: str | None
    score: float | None
    decision: str | None
    reasons: list[dict]

    def as_dict(self) -> dict:
        return {"at": self.at.isoformat(), "outcome": self.outcome, "ip": self.ip, "user_agent": self.user_agent,
                "country": self.country, "score": self.score, "decision": self.decision, "reasons": self.reasons}


class ActivityService:
    def __init__(self, db):
        self.db = db

    def recent(self, user, limit: int = 50) -> list[Receipt]:
        rows = self.db.session.execute(
            select(LoginEvent).where(LoginEvent.user_id == user.id)
            .order_by(LoginEvent.occurred_at.desc(), LoginEvent.id.desc()).limit(limit)
        ).scalars()
        return [Receipt(e.occurred_at, e.outcome, OUTCOME_TEXT.get(e.outcome, e.outcome), e.ip, e.user_agent,
                        e.country, e.score, e.decision, json.loads(e.reasons) if e.reasons else [])
                for e in rows]
