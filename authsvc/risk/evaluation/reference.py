"""The plain Freeman reference model of issue 16, for side-by-side comparison with the engine (evaluation only).

Exactly as the issue specifies it::

    per user: counts of the values seen in the user's earlier successful logins (all of them, no ageing)
    IP features  [address, /24 (/48), ASN, country]            μ = 0.5 / 0.25 / 0.17 / 0.08
    UA features  [full string, browser+version, OS+version, device type]   μ = 0.54 / 0.27 / 0.18 / 0.01
    p_global(f) = Σ_l μ_l · (c_l + 1) / (N + 10)                N = successful logins learned so far
    p_user(f)   = Σ_l μ_l · c_{u,l} / n_u,   or p_global(f) / 4 where that share is 0
    score       = Σ_{f ∈ IP, UA} log(p_global(f) / p_user(f)) + log((N + 1) / (n_u + 1))

No clipping, no other signals, every row scored, learning only from successful rows. It duck-types the two
methods replay uses (``score_features``, ``learn``) and always answers ``allow``: only the score is compared.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

from ..context import Decision, LoginContext
from ..geo import GeoResolver
from ..signals import Features, extract_features

__all__ = ["ReferenceModel", "REF_MU_IP", "REF_MU_UA"]

REF_MU_IP = (0.5, 0.25, 0.17, 0.08)
REF_MU_UA = (0.54, 0.27, 0.18, 0.01)
_NO_REASONS: list = []


class ReferenceModel:
    def __init__(
        self,
        geo: GeoResolver | None = None,
        mu_ip: Sequence[float] = REF_MU_IP,
        mu_ua: Sequence[float] = REF_MU_UA,
    ) -> None:
        self.geo = geo
        self.config = None  # replay's re-sort path rebuilds the model from (config, geo)
        self.mu_ip = tuple(mu_ip)
        self.mu_ua = tuple(mu_ua)
        self.n = 0  # N: successful logins learned
        # global counts: one dict per level, IP levels 0-3 then UA levels 4-7
        self.glob: list[dict[str, int]] = [defaultdict(int) for _ in range(8)]
        # per user: [n_u, 8 dicts of value counts]
        self.users: dict[str, tuple[list[int], list[dict[str, int]]]] = {}

    def fresh(self) -> "ReferenceModel":
        """An untrained model with the same settings (replay restarts from scratch on unsorted input)."""
        return ReferenceModel(self.geo, self.mu_ip, self.mu_ua)

    def _side(self, values: Sequence[str], off: int, mu: Sequence[float], ucounts: list[dict[str, int]] | None,
              n_u: int) -> float:
        n10 = self.n + 10.0
        glob = self.glob
        pg = 0.0
        pu = 0.0
        for k in range(4):
            v = values[k]
            pg += mu[k] * (glob[off + k].get(v, 0) + 1) / n10
            if ucounts is not None:
                pu += mu[k] * ucounts[off + k].get(v, 0)
        pu = pu / n_u if n_u else 0.0
        if pu == 0.0:
            pu = pg / 4.0
        return math.log(pg / pu)

    def score_value(self, user: str, feats: Features) -> float:
        state = self.users.get(user)
        n_u, ucounts = (state[0][0], state[1]) if state is not None else (0, None)
        return (self._side(feats.ip_values, 0, self.mu_ip, ucounts, n_u)
                + self._side(feats.ua_values, 4, self.mu_ua, ucounts, n_u)
                + math.log((self.n + 1.0) / (n_u + 1.0)))

    def score_features(self, ctx: LoginContext, feats: Features) -> Decision:
        return Decision(action="allow", score=self.score_value(ctx.user, feats), reasons=_NO_REASONS)

    def score(self, ctx: LoginContext) -> Decision:
        return self.score_features(ctx, extract_features(ctx, self.geo))

    def learn(self, ctx: LoginContext, features: Features | None = None) -> None:
        feats = features or extract_features(ctx, self.geo)
        state = self.users.get(ctx.user)
        if state is None:
            state = self.users[ctx.user] = ([0], [defaultdict(int) for _ in range(8)])
        state[0][0] += 1
        ucounts = state[1]
        glob = self.glob
        for k, v in enumerate(feats.ip_values + feats.ua_values):
            ucounts[k][v] += 1
            glob[k][v] += 1
        self.n += 1
