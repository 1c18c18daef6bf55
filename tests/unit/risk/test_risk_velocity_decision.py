"""Velocity terms describe the network, not the person (RiskConfig.velocity_alone_max_action, stop 26).

An attacker who makes many accounts fail from a shared IP (an office NAT, a carrier's CGNAT address) must not be able
to get its people *denied*: a login whose own context (IP and UA history, hour, travel, flags) scores below the
step-up threshold is at most stepped up. A login from an unfamiliar context on the same IP is still denied."""

from __future__ import annotations

import dataclasses

import pytest

from authsvc.risk import LoginContext, RiskEngine
from authsvc.risk.config import RiskConfig

T0 = 1_700_000_000.0
OWNER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
SPRAY = {"ip_failures": 400, "ip_distinct_users": 400, "ip_accounts_day": 400, "ip_accounts_week": 400,
         "prefix_failures": 400, "asn_failures": 4000, "ip_unknown_user_share": 1.0, "password_spray_accounts": 400}


def _engine(**cfg) -> RiskEngine:
    engine = RiskEngine(config=dataclasses.replace(RiskConfig(), **cfg)) if cfg else RiskEngine()
    for u in range(40):  # a population
        for k in range(3):
            engine.learn(LoginContext(user=f"p{u}", ip=f"198.51.100.{u + 1}", user_agent=f"Mozilla/5.0 Firefox/{100 + u % 7}.0",
                                      timestamp=T0 - 86400 * (k + 2) + u * 60))
    for k in range(15):  # the owner: the office, one browser, working hours
        engine.learn(LoginContext(user="owner", ip="203.0.113.50", user_agent=OWNER_UA, timestamp=T0 - 86400 * (k + 1)))
    return engine


def _at_office(user="owner", ua=OWNER_UA, **kw) -> LoginContext:
    return LoginContext(user=user, ip="203.0.113.50", user_agent=ua, timestamp=T0, **kw)


def test_every_velocity_rule_at_once_steps_the_owner_up_but_never_denies():
    assert RiskConfig().velocity_alone_max_action == "step_up"  # the default
    engine = _engine()
    quiet = engine.score(_at_office())
    assert quiet.action == "allow" and quiet.score < engine.config.step_up_threshold
    d = engine.score(_at_office(velocity=SPRAY))
    assert d.score >= engine.config.deny_threshold  # the score says what it says (reports rank by it)…
    assert d.action == "step_up"                     # …the decision does not lock the owner out
    assert {"ip_failures", "ip_many_accounts", "ip_many_accounts_day"} <= {r.code for r in d.reasons}


def test_an_unfamiliar_context_on_the_sprayed_ip_is_still_denied():
    engine = _engine()
    # p3 signs in from elsewhere: at the office IP, with p3's own browser or another, the context alone is a step-up
    for ua in ("python-requests/2.32", "Mozilla/5.0 Firefox/103.0"):
        assert engine.score(_at_office(user="p3", ua=ua)).action == "step_up"
        assert engine.score(_at_office(user="p3", ua=ua, velocity=SPRAY)).action == "deny"
    nobody = engine.score(_at_office(user="new-account", velocity=SPRAY))  # no history: context score ≥ step-up
    assert nobody.action == "deny"
    # The owner's own network with a browser never seen is what the engine calls the owner's (−1.9 here): the spray
    # makes it a step-up, which a stranger there cannot pass without the second factor.
    assert engine.score(_at_office(ua="python-requests/2.32", velocity=SPRAY)).action == "step_up"


def test_the_cap_applies_with_a_breached_password_and_with_fitted_weights():
    engine = _engine()
    assert engine.score(_at_office(velocity=SPRAY, breached_password=True)).action == "step_up"
    fitted = _engine(term_weights=(("ip_lr", 1.0), ("ua_lr", 1.0), ("v:ip_failures", 2.0)), term_offset=0.0)
    assert fitted.score(_at_office(velocity=SPRAY)).action == "step_up"
    assert fitted.score(_at_office(user="p3", ua="python-requests/2.32", velocity=SPRAY)).action == "deny"


def test_the_operator_can_restore_deny_and_nothing_else_is_accepted():
    assert _engine(velocity_alone_max_action="deny").score(_at_office(velocity=SPRAY)).action == "deny"
    for bad in ("allow", "", "DENY", None):
        with pytest.raises(ValueError, match="velocity_alone_max_action"):
            RiskConfig(velocity_alone_max_action=bad)


def test_a_familiar_place_is_stepped_up_not_denied_unless_its_context_alone_denies():
    """The defense layer's "this account fully signed in from this network before" (LoginContext.familiar_place):
    a context in the step-up band (p3 at the office, −0.68) is stepped up with the spray, not denied; a context that
    denies on its own (a breached password is not enough; a wholly foreign login with travel is) still denies."""
    engine = _engine()
    ctx = _at_office(user="p3", ua="Mozilla/5.0 Firefox/103.0", velocity=SPRAY)
    assert engine.score(ctx).action == "deny"
    assert engine.score(dataclasses.replace(ctx, familiar_place=True)).action == "step_up"
    assert engine.score(dataclasses.replace(ctx, familiar_place=True, velocity=None)).action == "step_up"
    # context ≥ deny on its own: the familiar flag does not soften it
    strict = _engine(deny_threshold=-0.9, step_up_threshold=-1.0)
    d = strict.score(dataclasses.replace(ctx, familiar_place=True, velocity=None))
    assert d.score >= -0.9 and d.action == "deny"
    assert strict.score(dataclasses.replace(ctx, familiar_place=True)).action == "deny"
    # and the operator's "deny" keeps the old rule for familiar places too
    old = _engine(velocity_alone_max_action="deny")
    assert old.score(dataclasses.replace(ctx, familiar_place=True)).action == "deny"
