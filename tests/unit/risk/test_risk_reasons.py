"""Reasons are true, specific and in plain words, or not shown (issue #12, newcomer walk)."""

from __future__ import annotations

from types import SimpleNamespace

from authsvc.risk import LoginContext, RiskConfig, RiskEngine
from authsvc.risk.context import Decision
from authsvc.risk.live import LiveRiskScorer
from authsvc.risk.model import device_type_text

from risk_testdata import IPHONE, WIN_CHROME

DAY = 86_400.0
T12 = 1_600_041_600.0 + 12 * 3600  # 2020-09-14 12:00 UTC
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 "
            "Safari/537.36")


def login(user="u", ip="10.0.0.1", ua=WIN_CHROME, ts=T12, country="NO", asn="AS1") -> LoginContext:
    return LoginContext(user=user, ip=ip, user_agent=ua, timestamp=ts, country=country, asn=asn)


class _Fixed:
    """An engine that returns one given decision (what LiveRiskScorer adds to it is under test)."""

    def __init__(self, decision):
        self.decision = decision

    def score(self, ctx):
        return Decision(self.decision.action, self.decision.score, list(self.decision.reasons))


_CTX = SimpleNamespace(ip="203.0.113.5", user_agent="Firefox/120", device_id=None)
_USER = SimpleNamespace(id=1)


def test_no_looks_different_reason_for_a_negative_score():
    # Step-up threshold below 0: a sign-in that looks *like* the owner's can still be challenged; calling it
    # "different from your usual ones" would be false.
    scorer = LiveRiskScorer(_Fixed(Decision("step_up", -0.4, [])))
    assert scorer.score(_USER, _CTX, breached=False).reasons == []


def test_looks_different_reason_only_when_the_combination_scores_above_zero():
    scorer = LiveRiskScorer(_Fixed(Decision("step_up", 1.2, [])))
    (reason,) = scorer.score(_USER, _CTX, breached=False).reasons
    assert reason.code == "unusual_context" and reason.text == "this sign-in looks different from your usual ones"


def test_device_type_reason_in_plain_words_never_usually_bot():
    text = device_type_text("desktop", "bot")
    assert "bot" not in text.split() and "usually bot" not in text
    assert text == ("new device type: a computer (you usually sign in from an automated program or headless "
                    "browser)")
    assert device_type_text("mobile", "desktop") == "new device type: a phone (you usually sign in from a computer)"
    # An unrecognised usual type says nothing about it rather than "usually unknown".
    assert device_type_text("mobile", "unknown") == "new device type: a phone"


def test_headless_history_then_a_phone_reads_in_plain_words():
    eng = RiskEngine()
    for d in range(3):
        eng.learn(login(ua=HEADLESS, ts=T12 + d * DAY))
    eng.learn(login(user="o", ip="20.0.0.1", ua=WIN_CHROME, country="SE", asn="AS2"))
    d = eng.score(login(ua=IPHONE, ts=T12 + 4 * DAY))
    texts = [r.text for r in d.reasons]
    assert not any("usually bot" in t for t in texts)
    assert "new device type: a phone (you usually sign in from an automated program or headless browser)" in texts


def test_no_unusual_hour_minutes_after_four_logins_at_the_same_hour():
    eng = RiskEngine(config=RiskConfig())
    eng.learn(login(ts=T12 - 9 * 3600))  # one login at 03:00
    for m in range(4):  # four at 12:0x
        eng.learn(login(ts=T12 + m * 120))
    for i in range(40):  # everyone else signs in around noon too: the global window is busier than the user's
        eng.learn(login(user=f"o{i}", ip=f"20.0.{i}.1", ts=T12 + i * 30, country="SE", asn="AS2"))
    d = eng.score(login(ts=T12 + 15 * 60))
    assert "unusual_hour" not in d.codes


def test_unusual_hour_reason_when_the_user_rarely_signs_in_then():
    eng = RiskEngine()
    for d in range(6):
        eng.learn(login(ts=T12 + d * DAY))
    eng.learn(login(user="o", ip="20.0.0.1", ts=T12 - 9 * 3600, country="SE", asn="AS2"))
    d = eng.score(login(ts=T12 + 7 * DAY - 9 * 3600))  # 03:00
    reason = next(r for r in d.reasons if r.code == "unusual_hour")
    assert reason.text == "unusual time of day: 03:00 UTC, an hour you rarely sign in at"
