"""The likelihood-ratio model on hand-computed cases, hierarchy mixing and history bounds."""

from __future__ import annotations

import math

import pytest

from authsvc.risk import InMemoryRiskStore, LoginContext, RiskConfig, RiskEngine
from authsvc.risk.model import hierarchical_global, hierarchical_local, p0

from risk_testdata import ANDROID, IPHONE, WIN_CHROME

DAY = 86_400.0
T0 = 1_600_000_000.0  # 2020-09-13 12:26:40 UTC → hour 12


def ctx(user: str, ip: str, ua: str, ts: float, country: str, asn: str, **kw) -> LoginContext:  # type: ignore[no-untyped-def]
    return LoginContext(user=user, ip=ip, user_agent=ua, timestamp=ts, country=country, asn=asn, **kw)


def test_p0_smoothing_by_hand() -> None:
    # seen: c/N · (1 − M/(N+M)) = 3/10 · (1 − 2/12) = 0.25 ; unseen: 1/(N+M) = 1/12
    assert p0(3, 10, 2) == pytest.approx(0.25)
    assert p0(0, 10, 2) == pytest.approx(1 / 12)
    # M = 0 (nothing at the next level yet) is treated as one slot, never a division by zero
    assert p0(0, 0, 0) == pytest.approx(1.0)


def test_hierarchy_mixes_levels_with_mu() -> None:
    mu = (0.45, 0.15, 0.30, 0.10)
    # counts (0, 2, 2, 2) of N=3, M per level (2, 2, 2, 1): 0.45·1/5 + 0.15·0.4 + 0.3·0.4 + 0.1·0.5
    assert hierarchical_global((0, 2, 2, 2), 3, (2, 2, 2, 1), mu) == pytest.approx(0.32)
    # the local side is not smoothed: Σ μ_l c_l / n
    assert hierarchical_local((0, 2, 2, 2), 2, mu) == pytest.approx(0.55)
    assert hierarchical_local((0, 0, 0, 0), 0, mu) == 0.0


# The hand computations below use the v1 likelihood settings (Freeman's prior, v1 μ_IP); v2's defaults are
# checked against the same primitives in test_v2_prior_and_smoothing_by_hand.
V1 = RiskConfig(mu_ip=(0.45, 0.15, 0.30, 0.10), prior_form=0, hour_weight=0.5, impossible_travel_weight=3.0)


@pytest.fixture()
def engine() -> RiskEngine:
    """alice: two logins from NO/AS1 on Windows Chrome; bob: one from SE/AS2 on an iPhone. N = 3, U = 2."""
    eng = RiskEngine(config=V1)
    eng.learn(ctx("alice", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1"))
    eng.learn(ctx("alice", "10.0.0.2", WIN_CHROME, T0 + DAY, "NO", "AS1"))
    eng.learn(ctx("bob", "20.0.0.1", IPHONE, T0 + DAY, "SE", "AS2"))
    return eng


def test_familiar_login_score_by_hand(engine: RiskEngine) -> None:
    d = engine.score(ctx("alice", "10.0.0.3", WIN_CHROME, T0 + 2 * DAY, "NO", "AS1"))
    # IP: p_A = 0.32 (see above: IP unseen, /24, ASN and country each seen twice); p_L = 0.55
    # UA: all four levels seen twice globally, M = 2,2,2,1: p_A = 0.4·(0.5387+0.2680+0.1882) + 0.0051·0.5
    #     p_L = Σμ·2/2 = 1
    ua_global = 0.4 * (0.5387 + 0.2680 + 0.1882) + 0.0051 * 0.5
    expected = math.log(3 / (2 * 2)) + math.log(0.32 / 0.55) + math.log(ua_global / 1.0)
    assert d.score == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(-1.7443, abs=1e-4)
    assert d.action == "allow"
    assert d.reasons == []


def test_unseen_values_use_global_over_four(engine: RiskEngine) -> None:
    d = engine.score(ctx("alice", "30.0.0.1", ANDROID, T0 + 2 * DAY, "BR", "AS3"))
    # Nothing of either feature was ever seen for alice: p_L = p_A / 4, so each feature contributes log 4,
    # whatever the global smoothing gives.
    assert d.score == pytest.approx(math.log(0.75) + 2 * math.log(4), abs=1e-9)
    assert d.action == "step_up"
    texts = {r.code: r.text for r in d.reasons}
    assert texts["new_country"] == "new country: NO→BR"
    assert texts["new_device_type"] == "new device type: a phone (you usually sign in from a computer)"


def test_value_seen_globally_but_not_for_user_is_still_global_over_four(engine: RiskEngine) -> None:
    d = engine.score(ctx("alice", "20.0.0.9", WIN_CHROME, T0 + 2 * DAY, "SE", "AS2"))
    ua_global = 0.4 * (0.5387 + 0.2680 + 0.1882) + 0.0051 * 0.5
    assert d.score == pytest.approx(math.log(0.75) + math.log(4) + math.log(ua_global), abs=1e-9)


def test_coarser_novelty_scores_higher(engine: RiskEngine) -> None:
    def s(ip: str, country: str, asn: str) -> float:
        return engine.score(ctx("alice", ip, WIN_CHROME, T0 + 2 * DAY, country, asn)).score

    same_ip = s("10.0.0.1", "NO", "AS1")
    same_prefix = s("10.0.0.9", "NO", "AS1")
    new_prefix = s("10.9.9.9", "NO", "AS1")
    new_asn = s("40.0.0.1", "NO", "AS7")
    new_country = s("50.0.0.1", "DE", "AS8")
    assert same_ip < same_prefix < new_prefix < new_asn < new_country


def test_history_is_bounded_by_count() -> None:
    store = InMemoryRiskStore(max_entries=3, max_age_days=1000)
    eng = RiskEngine(store=store)
    for i in range(5):
        eng.learn(ctx("u", f"10.0.0.{i}", WIN_CHROME, T0 + i, "NO", "AS1"))
    prof = store.user_profile("u", T0 + 10)
    assert prof.n == 3
    assert set(prof.counts["ip"]) == {"10.0.0.2", "10.0.0.3", "10.0.0.4"}
    assert prof.counts["country"] == {"NO": 3}
    assert sum(prof.hours) == 3
    # global counts are population statistics and are not bounded
    assert store.global_stats().n_logins == 5


def test_history_ages_out() -> None:
    eng = RiskEngine(config=RiskConfig(history_max_age_days=180))
    eng.learn(ctx("u", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1"))
    eng.learn(ctx("u", "10.0.0.2", WIN_CHROME, T0 + 100 * DAY, "NO", "AS1"))
    prof = eng.store.user_profile("u", T0 + 190 * DAY)
    assert prof.n == 1 and set(prof.counts["ip"]) == {"10.0.0.2"}
    assert eng.store.user_profile("u", T0 + 400 * DAY).n == 0
    # with all history aged out the account is scored as having none
    d = eng.score(ctx("u", "10.0.0.2", WIN_CHROME, T0 + 400 * DAY, "NO", "AS1"))
    assert d.codes == ["no_history"]


def test_no_history_is_neutral_and_labelled() -> None:
    d = RiskEngine().score(ctx("new", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1"))
    assert d.score == 0.0
    assert d.action == "step_up"  # default step-up threshold is below 0: a first login is challenged
    assert d.codes == ["no_history"]
    # no_history_log_lr = −2 (docs/RISK.md §4): a first login passes without other signals, not with them
    lenient = RiskEngine(config=RiskConfig(no_history_log_lr=-2.0))
    assert lenient.score(ctx("new", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1")).action == "allow"
    d = lenient.score(ctx("new", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1", velocity={"ip_distinct_users": 10}))
    assert d.action == "step_up" and "ip_many_accounts" in d.codes


def test_learning_changes_only_what_it_should(engine: RiskEngine) -> None:
    before = engine.score(ctx("bob", "20.0.0.1", IPHONE, T0 + 2 * DAY, "SE", "AS2")).score
    engine.learn(ctx("carol", "30.0.0.1", ANDROID, T0 + 2 * DAY, "BR", "AS3"))
    after = engine.score(ctx("bob", "20.0.0.1", IPHONE, T0 + 2 * DAY, "SE", "AS2")).score
    # more logins overall make bob's own values relatively rarer globally → an even more "bob-like" login
    assert after < before


def test_v2_prior_and_smoothing_by_hand() -> None:
    from authsvc.risk.model import level_globals, log_prior, smoothed_local

    # N = 9 logins, U = 3 users, n_u = 2
    assert log_prior(9, 3, 2, 0) == pytest.approx(math.log(9 / 6))
    assert log_prior(9, 3, 2, 1) == pytest.approx(math.log(10 / 3))
    assert log_prior(9, 3, 2, 2) == pytest.approx(math.log(10 / 9))
    # form 2 differs from form 1 by log U only: no drift with N for a fixed n_u and N/U
    assert log_prior(9000, 3000, 2, 2) == pytest.approx(math.log(9001 / 9000), abs=1e-3)
    assert level_globals((0, 3), 10, (2, 1), 1) == pytest.approx([1 / 20, 4 / 20])
    assert level_globals((0, 3), 10, (2, 1), 0) == pytest.approx([1 / 12, 0.3 * (1 - 1 / 11)])
    # (c + α p) / (n + α) per level, μ-mixed: 0.5·(0 + 1·0.1)/(2 + 1) + 0.5·(2 + 1·0.3)/(2 + 1)
    assert smoothed_local((0, 2), 2, (0.5, 0.5), (0.1, 0.3), 1.0) == pytest.approx(0.5 * 0.1 / 3 + 0.5 * 2.3 / 3)


def test_v2_defaults_score_a_familiar_login_by_hand() -> None:
    eng = RiskEngine()  # v2 defaults: μ_IP 0.5/0.25/0.17/0.08, prior log((N+1)/(U·(n_u+1)))
    eng.learn(ctx("alice", "10.0.0.1", WIN_CHROME, T0, "NO", "AS1"))
    eng.learn(ctx("bob", "20.0.0.1", IPHONE, T0, "SE", "AS2"))
    d = eng.score(ctx("alice", "10.0.0.1", WIN_CHROME, T0 + DAY, "NO", "AS1"))
    # N = 2, U = 2; every level of alice's IP and UA has global count 1; M: 2 prefixes, 2 ASNs, 2 countries, 1
    # for the IP side; UA side: 2 browsers, 2 OSes, 2 device types, 1.
    p_ip = sum(w * (1 / 2) * (1 - m / (2 + m)) for w, m in zip((0.5, 0.25, 0.17, 0.08), (2, 2, 2, 1)))
    p_ua = sum(w * (1 / 2) * (1 - m / (2 + m)) for w, m in zip((0.5387, 0.2680, 0.1882, 0.0051), (2, 2, 2, 1)))
    expected = math.log(p_ip / 1.0) + math.log(p_ua / 1.0) + math.log(3 / (2 * 2))
    assert d.score == pytest.approx(expected)
