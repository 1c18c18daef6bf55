"""Tunable constants of the risk engine, in one frozen dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RiskConfig", "VelocityRule", "DEFAULT_VELOCITY_RULES", "IP_LEVELS", "UA_LEVELS"]

# Feature hierarchies, finest level first. The names double as storage keys, so never rename them.
IP_LEVELS = ("ip", "ip_prefix", "asn", "country")
UA_LEVELS = ("ua", "browser", "os", "device_type")


@dataclass(frozen=True, slots=True)
class VelocityRule:
    """One velocity counter turned into a score term.

    term = weight · min(cap, 1 + log2(value / threshold)) when value ≥ threshold, else 0:
    crossing the threshold costs ``weight``, every doubling beyond it one more ``weight``, up to ``cap``.
    Rules that share a ``group`` measure the same thing over different windows: only the largest term of a group
    counts (a busy IP's day and week do not add up).
    """

    counter: str
    threshold: float
    weight: float
    code: str
    text: str  # formatted with {value}
    cap: float = 3.0
    group: str = ""


DEFAULT_VELOCITY_RULES: tuple[VelocityRule, ...] = (
    # Per account: recent failures before this success suggest guessing (Microsoft counts 10 → lockout).
    VelocityRule("account_failures", 3, 1.0, "account_failures", "{value:.0f} recent failed logins on this account"),
    # Per source: stuffing/spraying infrastructure. Thresholds follow the spray rule in RISK.md (≥ 20 failures,
    # ≥ 10 accounts) scaled down so that a hit is visible before the campaign finishes.
    VelocityRule("ip_failures", 10, 1.5, "ip_failures", "{value:.0f} recent failed logins from this IP"),
    VelocityRule("prefix_failures", 20, 1.0, "prefix_failures", "{value:.0f} recent failed logins from this network"),
    VelocityRule("asn_failures", 200, 0.5, "asn_failures", "{value:.0f} recent failed logins from this provider"),
    VelocityRule("ip_distinct_users", 5, 1.5, "ip_many_accounts", "{value:.0f} accounts tried from this IP"),
    # Issue 16: accounts that failed from this IP in a day-long fixed window (the defense layer's Redis set; the
    # replay derives the same count). Low-and-slow spraying reuses a few IPs for weeks at < 1 attempt per IP per hour,
    # under every 1-hour counter (docs/RISK.md §6, "spraying").
    VelocityRule("ip_accounts_day", 5, 1.5, "ip_many_accounts_day", "{value:.0f} accounts failed from this IP today",
                 group="ip_accounts"),
    # v3.2: the same count over a week (``th:{ip:…}:uw``) at twice the accounts — slow campaigns of 1–7 failures per IP
    # a day stay under the day rule. One group with the day rule: a busy IP's day and week never add up (measured:
    # stacking them cost targeted AUC; docs/RISK.md §6 v3.2).
    VelocityRule("ip_accounts_week", 10, 1.5, "ip_many_accounts_week",
                 "{value:.0f} accounts failed from this IP this week", group="ip_accounts"),
    VelocityRule("ip_unknown_user_share", 0.5, 1.5, "ip_unknown_users", "{value:.0%} of recent attempts from this IP were for unknown accounts", cap=1.0),
    VelocityRule("password_spray_accounts", 5, 2.0, "password_spray", "this password failed on {value:.0f} other accounts"),
)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    # Hierarchy weights μ. IP: address / prefix / ASN / country as in the reference of issue 16; measured better
    # than v1's (0.45, 0.15, 0.30, 0.10) on targeted attackers in both simulated worlds (docs/RISK.md §6).
    mu_ip: tuple[float, float, float, float] = (0.5, 0.25, 0.17, 0.08)
    # UA: fitted on the RBA dataset by Wiefling et al. (as in RISK.md).
    mu_ua: tuple[float, float, float, float] = (0.5387, 0.2680, 0.1882, 0.0051)
    # Local likelihood of a value the user has never shown at any level = global / unseen_divisor (das-group).
    unseen_divisor: float = 4.0

    # Per-user history bounds (the user-side counts only ever see these entries).
    history_max_entries: int = 200
    history_max_age_days: float = 183.0

    # The Freeman log-LR is clipped so that one extreme feature cannot hide every other signal.
    log_lr_clip: tuple[float, float] = (-25.0, 25.0)
    # Weight of Freeman's user prior log(p(u|A)/p(u|L)) = log(N/(U·n_u)); 1.0 is the paper's model.
    prior_weight: float = 1.0
    # Used instead of the LR for an account without retained history: the LR would only say "unknown user".
    # 0.0 steps up every first login (step-up threshold −1). −2.0 would let a first login pass unless other signals
    # add ≥ 1 (docs/RISK.md §4); not the default because the app's MFA flows rely on the first-login step-up.
    no_history_log_lr: float = 0.0

    # Decision thresholds on the combined score (natural-log units; see docs/RISK.md for how they were chosen).
    step_up_threshold: float = -1.0
    deny_threshold: float = 7.0

    # Other signals (score terms, natural-log units like the LR).
    trusted_device_weight: float = -4.0
    breached_password_weight: float = 3.0
    breached_password_min_action: str = "step_up"  # a known-breached password never passes silently
    # Velocity terms describe the *network* (many accounts failing from this IP), not the person: a login whose own
    # context scores below the step-up threshold — the owner's network and browser — or that comes from a network the
    # account fully signed in from before (LoginContext.familiar_place; its context short of a deny on its own) is at
    # most stepped up however busy the network is. Otherwise 40 failures from an office NAT denied its people for the day (stop 26's test
    # tests/functional/test_live_velocity.py::test_failures_for_other_accounts_at_the_owners_own_network_do_not_deny_the_owner).
    velocity_alone_max_action: str = "step_up"
    impossible_travel_weight: float = 1.5  # v1: 3.0; the country rule fires on VPN toggling (docs/RISK.md §6)
    max_travel_speed_kmh: float = 1000.0  # airliner speed; below min distance, geolocation noise dominates
    min_travel_distance_km: float = 500.0
    min_country_change_hours: float = 2.0  # used when no coordinates are known: country-level only
    hour_weight: float = 1.0  # v1: 0.5; the hour term helps in both worlds (docs/RISK.md §6)
    hour_cap: float = 3.0
    hour_min_history: int = 5
    velocity_rules: tuple[VelocityRule, ...] = field(default=DEFAULT_VELOCITY_RULES)

    # -- likelihood variants (issue 16 ablations; see docs/RISK.md §6 for the measurements) ----------------------
    # Global side: 0 = Freeman's p0 (c/N·(1−M/(N+M)), 1/(N+M) unseen); 1 = add-one per level (c+1)/(N+10).
    global_smoothing: int = 0
    # User side: 0 = the das-group rule (share, or p_A/4 when no level was seen); α > 0 = every level backs off to
    # the global probability with α pseudo-logins: (c_{u,l} + α·p_A,l) / (n_u + α). An unseen value then costs
    # log((n_u+α)/α): more for a user with a long, consistent history than for a user with one login.
    user_smoothing: float = 0.0
    # Prior: 0 = Freeman's log(N / (U·n_u)); 1 = log((N+1) / (n_u+1)) (the reference of issue 16);
    # 2 = log((N+1) / (U·(n_u+1))): form 1 without its growth with log N.
    prior_form: int = 2  # v1: 0

    # -- fitted weights (`authsvc risk fit`; docs/RISK.md, "Learning from outcomes") -------------------------------
    # None = the v2 sum. Else ((term, weight), ...): an account with history scores term_offset + Σ w·term over
    # RiskEngine.terms() (flag terms count 1 when present; terms without a weight keep weight 1); first logins keep
    # the v2 score. Loaded from a weights file by authsvc.risk.weights.load_weights.
    term_weights: tuple[tuple[str, float], ...] | None = None
    term_offset: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mu_ip", "mu_ua"):
            total = sum(getattr(self, name))
            if abs(total - 1.0) > 1e-3:
                raise ValueError(f"{name} must sum to 1, got {total}")
        if self.deny_threshold < self.step_up_threshold:
            raise ValueError("deny_threshold must be ≥ step_up_threshold")
        if self.breached_password_min_action not in ("allow", "step_up", "deny"):
            raise ValueError("breached_password_min_action must be allow, step_up or deny")
        if self.velocity_alone_max_action not in ("step_up", "deny"):
            raise ValueError("velocity_alone_max_action must be step_up or deny")
