"""GET /metrics: Prometheus counters an operator can alert on, readable only from allowed peers or with the token."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD, create_user

TOKEN = "m" * 40


def _value(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def _scrape(client, **kw) -> str:
    r = client.get("/metrics", **kw)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return r.get_data(as_text=True)


def test_login_outcomes_and_throttling_are_counted(app, client):
    create_user(app)
    before = _scrape(client)
    assert client.post("/api/v1/login", json={"email": "alice@example.com", "password": "wrong" * 4}).status_code == 401
    assert client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).status_code == 200
    after = _scrape(client)
    for outcome, delta in (("invalid_credentials", 1), ("success", 1)):
        assert _value(after, "authsvc_logins_total", outcome=outcome) - \
            _value(before, "authsvc_logins_total", outcome=outcome) == delta, outcome
    assert _value(after, "authsvc_login_duration_seconds_count") - \
        _value(before, "authsvc_login_duration_seconds_count") == 2
    decided = sum(_value(after, "authsvc_risk_decisions_total", action=a) - _value(before, "authsvc_risk_decisions_total",
                                                                                    action=a)
                  for a in ("allow", "step_up", "deny"))
    assert decided == 1  # only the correct password reaches the risk engine


def test_throttled_attempts_are_counted_by_limiter(app, client):
    create_user(app)
    before = _scrape(client)
    codes = [client.post("/api/v1/login", json={"email": "alice@example.com", "password": "wrong" * 4}).status_code
             for _ in range(12)]
    assert 429 in codes
    after = _scrape(client)
    refused = codes.count(429)
    assert _value(after, "authsvc_logins_total", outcome="throttled") - \
        _value(before, "authsvc_logins_total", outcome="throttled") == refused
    def total(text):
        return sum(float(v) for v in re.findall(r'^authsvc_login_throttled_total\{scope="[^"]+"\} (\S+)$', text, re.M))

    assert total(after) - total(before) == refused


def test_metrics_only_for_allowed_peers_or_the_token(make_app):
    app = make_app(metrics_token=TOKEN)
    client = app.test_client()
    outside = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    assert client.get("/metrics", **outside).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}, **outside).status_code == 404
    # X-Forwarded-For never grants access: the peer is what counts
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, **outside).status_code == 404
    assert "authsvc_logins_total" in _scrape(client, headers={"Authorization": f"Bearer {TOKEN}"}, **outside)
    assert "authsvc_logins_total" in _scrape(client)  # loopback is allowed by default


def test_metrics_token_must_be_long(make_app):
    import pytest

    from authsvc.config import ConfigError

    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        make_app(metrics_token="short")


def test_stuffing_budget_is_visible_in_metrics(make_app):
    """Issue #12 item 3: the current budget, the live hosts it sums and this limiter's refusals."""
    app = make_app(throttle_unfamiliar_per_second=0, throttle_unfamiliar_floor=3,
                   throttle_unfamiliar_burst_seconds=1)
    client = app.test_client()
    with app.app_context():
        from authsvc.extensions import get_redis
        from authsvc.services import services

        get_redis().set(services().throttle.budget.measurement_key(), "0.5")  # this host: CPUs ÷ 0.5 s per hash
        cpus = services().throttle.budget.cpus
    text = _scrape(client)  # a scrape refreshes the gauges: the host publishes its capacity
    # share × the measured capacity (the floor of 3/s does not raise a measured budget)
    assert _value(text, "authsvc_unfamiliar_budget_per_second") == pytest.approx(app.config["AUTHSVC"].throttle_unfamiliar_share * cpus / 0.5)
    assert _value(text, "authsvc_unfamiliar_budget_live_hosts") == 1
    assert _value(text, "authsvc_hashing_capacity_per_second") > 0
    before = _value(text, "authsvc_unfamiliar_budget_refusals_total")
    with app.app_context():
        services().throttle.budget.clock = lambda: 1_900_000_000.0  # no refill during the test
        burst = services().throttle.budget.snapshot(force=True).burst
    codes = [client.post("/api/v1/login", json={"email": f"u{i}@example.com", "password": f"wrong password {i}!"},
                         environ_base={"REMOTE_ADDR": f"10.{i}.1.1"}).status_code for i in range(int(burst) + 2)]
    assert codes.count(429) == 2
    after = _scrape(client)
    assert _value(after, "authsvc_unfamiliar_budget_refusals_total") - before == 2
    assert _value(after, "authsvc_login_throttled_total", scope="global_unfamiliar") >= 2
