"""Each extra signal produces its score term and reason; decision thresholds; Null engine."""

from __future__ import annotations

import math

import pytest

from authsvc.risk import LoginContext, NullRiskEngine, RiskConfig, RiskEngine
from authsvc.risk.config import DEFAULT_VELOCITY_RULES
from authsvc.risk.signals import Features, LastLogin, haversine_km, impossible_travel_term, velocity_terms
from authsvc.risk.ua import parse_ua

from risk_testdata import ANDROID, IPHONE, WIN_CHROME

DAY = 86_400.0
T9 = 1_600_041_600.0  # 2020-09-14 00:00 UTC; + 9 h below → 09:00 UTC


def login(user: str = "u", ip: str = "10.0.0.1", ua: str = WIN_CHROME, ts: float = T9 + 9 * 3600,
          country: str = "NO", asn: str = "AS1", **kw) -> LoginContext:  # type: ignore[no-untyped-def]
    return LoginContext(user=user, ip=ip, user_agent=ua, timestamp=ts, country=country, asn=asn, **kw)


@pytest.fixture()
def trained() -> RiskEngine:
    """User u: ten logins at 09:00 UTC over ten days from home; a few other users for global statistics."""
    eng = RiskEngine()
    for d in range(10):
        eng.learn(login(ts=T9 + d * DAY + 9 * 3600))
    for i, (c, ua) in enumerate((("SE", IPHONE), ("DE", ANDROID), ("NO", IPHONE))):
        for h in (3, 12, 20):
            eng.learn(login(user=f"o{i}", ip=f"20.0.{i}.1", ua=ua, ts=T9 + h * 3600, country=c, asn=f"AS{10 + i}"))
    return eng


def test_familiar_login_allowed_without_reasons(trained: RiskEngine) -> None:
    d = trained.score(login(ts=T9 + 11 * DAY + 9 * 3600))
    assert d.action == "allow"
    assert d.reasons == []


def test_breached_password_reason_and_floor(trained: RiskEngine) -> None:
    base = trained.score(login(ts=T9 + 11 * DAY + 9 * 3600))
    d = trained.score(login(ts=T9 + 11 * DAY + 9 * 3600, breached_password=True))
    assert d.score == pytest.approx(base.score + RiskConfig().breached_password_weight)
    assert ("breached_password", "password found in breaches") in [(r.code, r.text) for r in d.reasons]
    # even when the score alone would allow it, a breached password is never silently accepted
    assert d.action == "step_up"


def test_trusted_device_lowers_score_and_hides_device_reason(trained: RiskEngine) -> None:
    new_ua = ANDROID
    plain = trained.score(login(ua=new_ua, ts=T9 + 11 * DAY + 9 * 3600))
    trusted = trained.score(login(ua=new_ua, ts=T9 + 11 * DAY + 9 * 3600, trusted_device=True))
    assert "new_device_type" in plain.codes
    assert not {"new_device", "new_device_type"} & set(trusted.codes)
    assert trusted.score <= plain.score + RiskConfig().trusted_device_weight + 1e-9


def test_new_device_reason_text(trained: RiskEngine) -> None:
    # Same device type (desktop), new browser *and* OS: "device never seen"
    mac = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/17.1 Safari/605.1.15")
    d = trained.score(login(ua=mac, ts=T9 + 11 * DAY + 9 * 3600))
    reason = next(r for r in d.reasons if r.code == "new_device")
    assert reason.text == "device never seen (Safari 17 on Mac OS X 10.15)"
    # A new browser on the user's own OS and device type is *less* surprising than the population at large
    # (p_L = μ_os + μ_type = 0.1933 beats the global mixture), so it is not reported as a risk reason.
    firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
    assert not {"new_device", "new_device_type"} & set(trained.score(login(ua=firefox, ts=T9 + 11 * DAY + 9 * 3600)).codes)


def test_unusual_hour_reason(trained: RiskEngine) -> None:
    usual = trained.score(login(ts=T9 + 11 * DAY + 9 * 3600))
    odd = trained.score(login(ts=T9 + 11 * DAY + 3 * 3600))
    reason = next(r for r in odd.reasons if r.code == "unusual_hour")
    assert reason.text == "unusual time of day: 03:00 UTC, an hour you rarely sign in at"
    # by hand: user window 0 of 10 → (0+1)/(10+8); global window (hours 2,3,4) holds 3 of 19 → (3+1)/(19+8)
    expected = trained.config.hour_weight * math.log((4 / 27) / (1 / 18))
    assert reason.weight == pytest.approx(expected)
    assert odd.score - usual.score == pytest.approx(expected)


def test_impossible_travel_country_level(trained: RiskEngine) -> None:
    last_ts = T9 + 9 * DAY + 9 * 3600
    d = trained.score(login(ip="50.0.0.1", country="BR", asn="AS99", ts=last_ts + 30 * 60))
    reason = next(r for r in d.reasons if r.code == "impossible_travel")
    assert reason.text == "impossible travel: NO→BR in 30 min"
    later = trained.score(login(ip="50.0.0.1", country="BR", asn="AS99", ts=last_ts + 5 * 3600))
    assert "impossible_travel" not in later.codes
    assert "new_country" in later.codes


def _feats(country: str, lat: float, lon: float) -> Features:
    ua = parse_ua(WIN_CHROME)
    return Features(("1.1.1.1", "1.1.1.0/24", "AS1", country), (WIN_CHROME, ua.browser, ua.os, ua.device_type),
                    9, country, lat, lon, ua)


def test_impossible_travel_with_coordinates() -> None:
    cfg = RiskConfig()
    oslo = LastLogin(0.0, "NO", 59.91, 10.75)
    new_york = _feats("US", 40.71, -74.01)
    dist = haversine_km(59.91, 10.75, 40.71, -74.01)
    assert 5800 < dist < 6000  # Oslo–New York great circle ≈ 5,900 km
    term, reason = impossible_travel_term(new_york, 3600.0, oslo, cfg)
    assert term == cfg.impossible_travel_weight and reason is not None and "km in 60 min" in reason.text
    term, reason = impossible_travel_term(new_york, 10 * 3600.0, oslo, cfg)
    assert term == 0.0 and reason is None  # 590 km/h: a flight
    stockholm = _feats("SE", 59.33, 18.07)
    assert impossible_travel_term(stockholm, 600.0, oslo, cfg) == (0.0, None)  # < 500 km: geolocation noise


@pytest.mark.parametrize(
    ("counters", "expected_term", "code"),
    [
        ({"ip_failures": 10}, 1.5, "ip_failures"),  # at threshold: one weight
        ({"ip_failures": 40}, 4.5, "ip_failures"),  # two doublings: 1.5·3, the cap
        ({"ip_failures": 1000}, 4.5, "ip_failures"),
        ({"account_failures": 6}, 2.0, "account_failures"),
        ({"ip_distinct_users": 5}, 1.5, "ip_many_accounts"),
        ({"ip_unknown_user_share": 0.9}, 1.5, "ip_unknown_users"),
        ({"password_spray_accounts": 5}, 2.0, "password_spray"),
    ],
)
def test_velocity_terms(counters: dict[str, float], expected_term: float, code: str) -> None:
    term, reasons = velocity_terms(counters, DEFAULT_VELOCITY_RULES)
    assert term == pytest.approx(expected_term)
    assert [r.code for r in reasons] == [code]


def test_velocity_below_threshold_is_silent(trained: RiskEngine) -> None:
    assert velocity_terms({"ip_failures": 9, "account_failures": 2}, DEFAULT_VELOCITY_RULES) == (0.0, [])
    d = trained.score(login(ts=T9 + 11 * DAY + 9 * 3600, velocity={"ip_failures": 80, "ip_distinct_users": 20}))
    assert {"ip_failures", "ip_many_accounts"} <= set(d.codes)
    assert d.reasons[0].weight >= d.reasons[-1].weight  # sorted by contribution


def test_decision_thresholds() -> None:
    def engine(step_up: float, deny: float) -> RiskEngine:
        eng = RiskEngine(config=RiskConfig(step_up_threshold=step_up, deny_threshold=deny))
        eng.learn(login())
        return eng

    # one learned login, same context again: score = log(N/(U·n)) + log(p_A/p_L) for both features
    probe = login(ts=T9 + DAY + 9 * 3600)
    score = engine(0, 1).score(probe).score
    assert engine(score + 0.01, score + 1).score(probe).action == "allow"
    assert engine(score - 0.01, score + 1).score(probe).action == "step_up"
    assert engine(score - 1, score).score(probe).action == "deny"  # thresholds are inclusive


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        RiskConfig(mu_ip=(0.5, 0.5, 0.5, 0.1))
    with pytest.raises(ValueError):
        RiskConfig(step_up_threshold=5, deny_threshold=1)


def test_null_engine() -> None:
    eng = NullRiskEngine()
    d = eng.score(login(breached_password=True))
    assert (d.action, d.score, d.reasons) == ("allow", 0.0, [])
    assert eng.learn(login()) is None
