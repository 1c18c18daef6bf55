"""Freeman et al.'s likelihood-ratio model with hierarchical features, plus extra signals → a Decision.

Score (natural log, higher = riskier)::

    score = clip(log S_u(x)) + Σ signal terms
    log S_u(x) = log((N+1) / (U · (n_u+1))) + Σ_f log( p_A(f) / p_L(f|u) )   f ∈ {IP, UA}; v1: log(N/(U·n_u))

    p_A(f)   = Σ_l μ_l · p0(c_l, N, M_l)          c_l global count of the level-l value, N successful logins,
                                                  M_l distinct values at level l+1 (1 at the coarsest level)
    p0(c,N,M)= c/N · (1 − M/(N+M))  if c > 0,  else 1/(N+M)
    p_L(f|u) = Σ_l μ_l · c_{u,l} / n_u            the user's retained history, not smoothed
               and, when no level of f was ever seen for u, p_A(f) / 4

See docs/RISK.md for the signal terms and thresholds.
"""

from __future__ import annotations

import math
from typing import Sequence

from .config import IP_LEVELS, UA_LEVELS, RiskConfig
from .context import ACTIONS, Decision, LoginContext, Reason
from .geo import GeoResolver
from .signals import Features, extract_features, hour_term, impossible_travel_term, velocity_terms
from .store import HOUR_KEY, GlobalStats, InMemoryRiskStore, RiskStore, UserProfile

__all__ = ["RiskEngine", "NullRiskEngine", "p0", "hierarchical_global", "hierarchical_local", "FeatureScore",
           "FLAG_TERMS", "fitted_score"]

_ALL_LEVELS = IP_LEVELS + UA_LEVELS
# Global hour counts are read for a ±1 h window: precomputed (level, value) keys per hour.
_HOUR_WINDOW_KEYS = tuple([(HOUR_KEY, str((h + d) % 24)) for d in (-1, 0, 1)] for h in range(24))


# Terms that are a fixed amount when present: a fitted weight multiplies their presence (1), not their v2 amount.
FLAG_TERMS = frozenset({"no_history", "trusted_device", "breached_password", "travel"})


def fitted_score(terms: dict[str, float], cfg: RiskConfig) -> float:
    """``term_offset + Σ w_k · x_k`` with x_k the term (1 for a flag term); a term without a fitted weight keeps
    weight 1 on its v2 value (e.g. the trusted-device cookie and breached password, which a replay cannot see)."""
    weights = dict(cfg.term_weights or ())
    total = cfg.term_offset
    for name, value in terms.items():
        w = weights.get(name)
        if w is None:
            total += value
        else:
            total += w * (1.0 if name in FLAG_TERMS else value)
    return total


def _neg_weight(r: Reason) -> float:
    return -r.weight


def p0(c: int, n: int, m: int) -> float:
    """Smoothed global likelihood of a value seen c times among n, with m unseen-value slots."""
    m = max(m, 1)
    if c > 0:
        return (c / n) * (1.0 - m / (n + m))
    return 1.0 / (n + m)


def hierarchical_global(counts: Sequence[int], n: int, m: Sequence[int], mu: Sequence[float]) -> float:
    total = 0.0
    for w, c, mm in zip(mu, counts, m):  # explicit loop: this runs 2x per login in replay
        mm = mm if mm > 0 else 1
        total += w * ((c / n) * (1.0 - mm / (n + mm)) if c > 0 else 1.0 / (n + mm))
    return total


def hierarchical_local(counts: Sequence[int], n_user: int, mu: Sequence[float]) -> float:
    if n_user <= 0:
        return 0.0
    total = 0.0
    for w, c in zip(mu, counts):
        total += w * c
    return total / n_user


def level_globals(counts: Sequence[int], n: int, m: Sequence[int], smoothing: int) -> list[float]:
    """Global probability of each level's value: Freeman's p0 (smoothing 0) or add-one (c+1)/(N+10) (1)."""
    if smoothing == 1:
        n10 = n + 10.0
        return [(c + 1) / n10 for c in counts]
    out = []
    for c, mm in zip(counts, m):
        mm = mm if mm > 0 else 1
        out.append((c / n) * (1.0 - mm / (n + mm)) if c > 0 else 1.0 / (n + mm))
    return out


def smoothed_local(ucounts: Sequence[int], n_user: int, mu: Sequence[float], p_levels: Sequence[float],
                   alpha: float) -> float:
    """User likelihood with every level backed off to the global one: Σ μ_l (c_{u,l} + α·p_l) / (n_u + α)."""
    total = 0.0
    for w, c, p in zip(mu, ucounts, p_levels):
        total += w * (c + alpha * p)
    return total / (n_user + alpha)


def log_prior(n_logins: int, n_users: int, n_user: int, form: int) -> float:
    """Freeman's log(p(u|A)/p(u|L)) = log(N/(U·n_u)) (form 0); the reference's log((N+1)/(n_u+1)) (form 1);
    form 2 = form 1 − log U = log((N+1)/(U·(n_u+1))): the reference's milder slope in n_u without its drift by
    log N as the service grows (a fixed threshold then keeps its meaning)."""
    if form == 1:
        return math.log((n_logins + 1.0) / (n_user + 1.0))
    if form == 2:
        return math.log((n_logins + 1.0) / (max(n_users, 1) * (n_user + 1.0)))
    return math.log(max(n_logins, 1) / (max(n_users, 1) * n_user))


class FeatureScore:
    """Per-feature detail, kept for reasons and tests."""

    __slots__ = ("p_global", "p_local", "log_lr", "user_counts", "unseen")

    def __init__(self, p_global: float, p_local: float, user_counts: list[int], unseen: bool) -> None:
        self.p_global = p_global
        self.p_local = p_local
        self.log_lr = math.log(p_global / p_local)
        self.user_counts = user_counts
        self.unseen = unseen


class RiskEngine:
    def __init__(
        self, store: RiskStore | None = None, config: RiskConfig | None = None, geo: GeoResolver | None = None
    ) -> None:
        self.config = config or RiskConfig()
        # `is None`, not `or`: an empty store has len() 0 and is falsy.
        self.store: RiskStore = store if store is not None else InMemoryRiskStore(
            max_entries=self.config.history_max_entries, max_age_days=self.config.history_max_age_days
        )
        self.geo = geo

    # -- public --------------------------------------------------------------------------------------------------
    def score(self, ctx: LoginContext) -> Decision:
        return self.score_features(ctx, extract_features(ctx, self.geo))

    def learn(self, ctx: LoginContext, features: Features | None = None) -> None:
        """Call after a login has fully succeeded (password and any step-up), never for failed ones."""
        self.store.learn(ctx.user, features or extract_features(ctx, self.geo), ctx.timestamp)

    def terms(self, ctx: LoginContext, features: Features | None = None) -> dict[str, float]:
        """The score's terms kept separate, in the order they are added (docs/RISK.md, "Learning from outcomes").

        Keys: ``prior``, ``ip_lr``, ``ua_lr`` (after the trusted-device cap), ``lr_clip`` (only when the clip binds),
        ``hour``, ``travel`` (only when they fire), ``no_history`` (accounts without retained history),
        ``trusted_device``, ``breached_password``, and ``v:<code>`` per velocity rule that fired. Their sum is
        the v2 score (up to float rounding: the engine adds the LR part as one clipped sum). Scored with fitted
        weights (``RiskConfig.term_weights``) the engine still returns these unweighted terms.
        """
        out: dict[str, float] = {}
        self._score(ctx, features or extract_features(ctx, self.geo), out)
        return out

    # -- internals -----------------------------------------------------------------------------------------------
    def score_features(self, ctx: LoginContext, feats: Features) -> Decision:
        if self.config.term_weights is None:
            return self._score(ctx, feats, None)
        terms: dict[str, float] = {}
        decision = self._score(ctx, feats, terms)
        if "no_history" in terms:
            return decision  # first logins keep the v2 score and decision (docs/RISK.md, "Learning from outcomes")
        score = fitted_score(terms, self.config)
        context = fitted_score({k: v for k, v in terms.items() if not k.startswith("v:")}, self.config)
        return Decision(action=self._action(score, ctx.breached_password, context, ctx.familiar_place), score=score,
                        reasons=decision.reasons)

    def _score(self, ctx: LoginContext, feats: Features, terms: dict[str, float] | None) -> Decision:
        """The v2 score; with ``terms`` given, each term is also recorded there (the sum is unchanged)."""
        cfg = self.config
        h = feats.hour
        prefetch = getattr(self.store, "prefetch", None)
        if prefetch is not None:
            # A networked store fetches everything a score may need in one round trip (see live.RedisRiskStore).
            prefetch(ctx.user, list(zip(_ALL_LEVELS, feats.ip_values + feats.ua_values)) + list(_HOUR_WINDOW_KEYS[h]))
        profile = self.store.user_profile(ctx.user, ctx.timestamp)
        reasons: list[Reason] = []
        score = 0.0
        if profile.n > 0:
            # Global look-ups only for accounts with history: the LR is not used otherwise (about half of all
            # attempts are unknown accounts or first logins, so this halves the store traffic).
            stats = self.store.global_stats()
            keys = list(zip(_ALL_LEVELS, feats.ip_values + feats.ua_values))
            if profile.n >= cfg.hour_min_history:
                keys += _HOUR_WINDOW_KEYS[h]
            gcounts = self.store.global_counts(keys)
            ip_fs = self._feature(feats.ip_values, IP_LEVELS, cfg.mu_ip, gcounts[0:4], profile, stats)
            ua_fs = self._feature(feats.ua_values, UA_LEVELS, cfg.mu_ua, gcounts[4:8], profile, stats)
            ua_log = ua_fs.log_lr
            if ctx.trusted_device:
                # The cookie proves it is a known device, so a changed UA string (browser update) is not evidence.
                ua_log = min(ua_log, 0.0)
            prior = log_prior(stats.n_logins, stats.n_users, profile.n, cfg.prior_form)
            log_s = cfg.prior_weight * prior + ip_fs.log_lr + ua_log
            lo, hi = cfg.log_lr_clip
            clipped = min(max(log_s, lo), hi)
            score += clipped
            if terms is not None:
                terms["prior"] = cfg.prior_weight * prior
                terms["ip_lr"] = ip_fs.log_lr
                terms["ua_lr"] = ua_log
                if clipped != log_s:
                    terms["lr_clip"] = clipped - log_s
            self._location_reason(feats, ip_fs, profile, reasons)
            if not ctx.trusted_device:
                self._device_reason(feats, ua_fs, profile, reasons)
            if len(gcounts) > 8:
                term, reason = hour_term(h, profile.hours, profile.n, sum(gcounts[8:11]), stats.n_logins, cfg)
                score += term
                if terms is not None and term:
                    terms["hour"] = term
                if reason:
                    reasons.append(reason)
            term, reason = impossible_travel_term(feats, ctx.timestamp, profile.last, cfg)
            score += term
            if terms is not None and reason is not None:
                terms["travel"] = term
            if reason:
                reasons.append(reason)
        else:
            score += cfg.no_history_log_lr
            if terms is not None:
                terms["no_history"] = cfg.no_history_log_lr
            reasons.append(Reason("no_history", "no previous logins for this account", cfg.no_history_log_lr))

        if ctx.trusted_device:
            score += cfg.trusted_device_weight
            if terms is not None:
                terms["trusted_device"] = cfg.trusted_device_weight
        if ctx.breached_password:
            score += cfg.breached_password_weight
            if terms is not None:
                terms["breached_password"] = cfg.breached_password_weight
            reasons.append(Reason("breached_password", "password found in breaches", cfg.breached_password_weight))
        vterm, vreasons = velocity_terms(ctx.velocity, cfg.velocity_rules)
        score += vterm
        reasons.extend(vreasons)
        if terms is not None:
            for r in vreasons:
                terms["v:" + r.code] = r.weight

        action = self._action(score, ctx.breached_password, score - vterm, ctx.familiar_place)
        if len(reasons) > 1:
            reasons.sort(key=_neg_weight)
        return Decision(action=action, score=score, reasons=reasons)

    def _feature(
        self,
        values: tuple[str, ...],
        levels: tuple[str, ...],
        mu: Sequence[float],
        gcounts: Sequence[int],
        profile: UserProfile,
        stats: GlobalStats,
    ) -> FeatureScore:
        distinct = stats.distinct
        m = [distinct[lvl] for lvl in levels[1:]]
        m.append(1)  # the coarsest level has no next level: one unseen slot
        counts = profile.counts
        ucounts = [counts[lvl].get(v, 0) for lvl, v in zip(levels, values)]
        cfg = self.config
        if cfg.global_smoothing == 0 and cfg.user_smoothing <= 0:
            p_global = hierarchical_global(gcounts, stats.n_logins, m, mu)
            p_local = hierarchical_local(ucounts, profile.n, mu)
        else:
            p_levels = level_globals(gcounts, stats.n_logins, m, cfg.global_smoothing)
            p_global = sum(w * p for w, p in zip(mu, p_levels))
            if cfg.user_smoothing > 0:
                p_local = smoothed_local(ucounts, profile.n, mu, p_levels, cfg.user_smoothing)
                return FeatureScore(p_global, p_local, ucounts, not any(ucounts))
            p_local = hierarchical_local(ucounts, profile.n, mu)
        unseen = p_local == 0.0
        if unseen:
            p_local = p_global / cfg.unseen_divisor
        return FeatureScore(p_global, p_local, ucounts, unseen)

    def _action(self, score: float, breached: bool, context: float | None = None, familiar: bool = False) -> str:
        """``context``: the score without the velocity terms; ``familiar``: the defense layer's "this account signed
        in from here before" (see RiskConfig.velocity_alone_max_action)."""
        cfg = self.config
        if score >= cfg.deny_threshold:
            action = "deny"
            if (context is not None and cfg.velocity_alone_max_action == "step_up"
                    and (context < cfg.step_up_threshold or (familiar and context < cfg.deny_threshold))):
                action = "step_up"
        elif score >= cfg.step_up_threshold:
            action = "step_up"
        else:
            action = "allow"
        if breached and ACTIONS.index(cfg.breached_password_min_action) > ACTIONS.index(action):  # type: ignore[arg-type]
            action = cfg.breached_password_min_action
        return action

    @staticmethod
    def _usual(counts: dict[str, int]) -> str:
        return max(counts.items(), key=lambda kv: kv[1])[0] if counts else "?"

    def _location_reason(self, feats: Features, fs: FeatureScore, profile: UserProfile, out: list[Reason]) -> None:
        if fs.log_lr <= 0:
            return  # the location made the login look *more* like the user: nothing to explain
        ip, prefix, asn, country = feats.ip_values
        c_ip, c_prefix, c_asn, c_country = fs.user_counts
        w = fs.log_lr
        if c_country == 0:
            out.append(Reason("new_country", f"new country: {self._usual(profile.counts['country'])}→{country}", w))
        elif c_asn == 0:
            out.append(Reason("new_network", f"new network: {asn} (usually {self._usual(profile.counts['asn'])})", w))
        elif c_prefix == 0:
            out.append(Reason("new_ip_range", f"new IP range: {prefix}", w))
        elif c_ip == 0:
            out.append(Reason("new_ip", f"new IP address: {ip}", w))

    def _device_reason(self, feats: Features, fs: FeatureScore, profile: UserProfile, out: list[Reason]) -> None:
        if fs.log_lr <= 0 or fs.user_counts[0] > 0:
            return
        ua = feats.ua
        w = fs.log_lr
        if fs.user_counts[3] == 0:
            usual = self._usual(profile.counts["device_type"])
            out.append(Reason("new_device_type", device_type_text(ua.device_type, usual), w))
        else:
            out.append(Reason("new_device", f"device never seen ({ua.browser} on {ua.os})", w))


# Device types (ua.DEVICE_TYPES) in plain words. "bot" is what the UA parser calls HTTP libraries, scripts and
# headless browsers: to a person that is "an automated program", never "a bot" (issue #12: "usually bot").
_DEVICE_WORDS = {"mobile": "a phone", "desktop": "a computer", "tablet": "a tablet",
                 "bot": "an automated program or headless browser"}


def device_type_text(now: str, usual: str) -> str:
    """"new device type: a phone (you usually sign in from a computer)"; the usual part only when it is known."""
    text = f"new device type: {_DEVICE_WORDS.get(now, 'a device we could not recognise')}"
    if usual in _DEVICE_WORDS:
        text += f" (you usually sign in from {_DEVICE_WORDS[usual]})"
    return text


class NullRiskEngine:
    """Risk scoring switched off: every login is allowed, nothing is stored."""

    def score(self, ctx: LoginContext) -> Decision:
        return Decision(action="allow", score=0.0, reasons=[])

    def learn(self, ctx: LoginContext, features: Features | None = None) -> None:
        return None
