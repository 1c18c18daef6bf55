"""The engine's input (:class:`LoginContext`) and output (:class:`Decision`, :class:`Reason`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

__all__ = ["LoginContext", "Reason", "Decision", "Action", "ACTIONS"]

Action = Literal["allow", "step_up", "deny"]
ACTIONS: tuple[Action, ...] = ("allow", "step_up", "deny")


@dataclass(frozen=True, slots=True)
class LoginContext:
    """Everything the engine may know about one login attempt, after the password check.

    ``timestamp`` is UNIX seconds (UTC). ``country``/``asn`` may be supplied when the caller already knows them
    (a CDN header, or the columns of a replayed dataset); otherwise the engine resolves them from the IP.
    ``velocity`` holds counters computed by the defense layer (see ``RiskConfig.velocity_rules`` for names).
    """

    user: str
    ip: str
    user_agent: str
    timestamp: float
    trusted_device: bool = False
    breached_password: bool = False
    velocity: Mapping[str, float] | None = None
    country: str | None = None
    asn: str | None = None
    # The defense layer's "familiar": the account fully signed in (or confirmed its address) from this network
    # (/24, /48) before, or the request carries its trusted device. Velocity alone never denies such a login
    # (RiskConfig.velocity_alone_max_action).
    familiar_place: bool = False


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # stable, machine readable: "new_country", "new_device", "breached_password", ...
    text: str  # short human text: "new country: NO→BR"
    weight: float = 0.0  # contribution to the score, so callers can rank or hide minor reasons


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    score: float
    reasons: list[Reason] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]
