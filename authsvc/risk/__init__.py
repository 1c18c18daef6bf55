"""Risk engine: Freeman et al.'s hierarchical likelihood ratio plus named signals → allow / step_up / deny.

Pure Python; no web framework imports. Entry points: :class:`RiskEngine` (``score`` → :class:`Decision`,
``learn``) and :class:`NullRiskEngine`. Evaluation tools (simulate, replay, reference, ablate, report) live in
:mod:`authsvc.risk.evaluation`, behind the ``risk`` command group of :mod:`authsvc.risk.cli`.
"""

from .config import RiskConfig, VelocityRule
from .context import Decision, LoginContext, Reason
from .geo import AsnTable, GeoInfo, GeoResolver
from .model import NullRiskEngine, RiskEngine
from .store import GlobalStats, InMemoryRiskStore, RiskStore, UserProfile

__all__ = [
    "AsnTable",
    "Decision",
    "GeoInfo",
    "GeoResolver",
    "GlobalStats",
    "InMemoryRiskStore",
    "LoginContext",
    "NullRiskEngine",
    "Reason",
    "RiskConfig",
    "RiskEngine",
    "RiskStore",
    "UserProfile",
    "VelocityRule",
]
