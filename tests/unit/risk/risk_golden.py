"""Deterministic synthetic logins scored by the engine with a pinned v2 config; the hash of every score (float.hex)
and action. test_risk_fit checks it against the value main@3fff4d5 (before terms()) produced."""
import hashlib, random
from authsvc.risk import LoginContext, RiskEngine
from authsvc.risk.config import RiskConfig, VelocityRule

def pinned_config():
    rules = (
        VelocityRule("account_failures", 3, 1.0, "account_failures", "{value:.0f}"),
        VelocityRule("ip_failures", 10, 1.5, "ip_failures", "{value:.0f}"),
        VelocityRule("prefix_failures", 20, 1.0, "prefix_failures", "{value:.0f}"),
        VelocityRule("asn_failures", 200, 0.5, "asn_failures", "{value:.0f}"),
        VelocityRule("ip_distinct_users", 5, 1.5, "ip_many_accounts", "{value:.0f}"),
        VelocityRule("ip_unknown_user_share", 0.5, 1.5, "ip_unknown_users", "{value:.0%}", cap=1.0),
        VelocityRule("password_spray_accounts", 5, 2.0, "password_spray", "{value:.0f}"),
    )
    return RiskConfig(mu_ip=(0.5, 0.25, 0.17, 0.08), mu_ua=(0.5387, 0.2680, 0.1882, 0.0051), unseen_divisor=4.0,
                      history_max_entries=200, history_max_age_days=183.0, log_lr_clip=(-25.0, 25.0),
                      prior_weight=1.0, no_history_log_lr=0.0, step_up_threshold=-1.0, deny_threshold=7.0,
                      trusted_device_weight=-4.0, breached_password_weight=3.0, impossible_travel_weight=1.5,
                      min_country_change_hours=2.0, hour_weight=1.0, hour_cap=3.0, hour_min_history=5,
                      velocity_rules=rules, global_smoothing=0, user_smoothing=0.0, prior_form=2,
                      velocity_alone_max_action="deny")  # the decisions of main@3fff4d5 (stop 26 changed the default)

UAS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
       "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
       "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
       "python-requests/2.31.0"]

def rows(n=4000, seed=7):
    rnd = random.Random(seed)
    t = 1_600_000_000.0
    for _ in range(n):
        t += rnd.expovariate(1 / 300.0)
        user = str(rnd.randrange(150))
        home = int(user) % 20
        if rnd.random() < 0.8:
            ip = f"10.{home}.{rnd.randrange(3)}.{rnd.randrange(4)}"; country = "NO" if home % 3 else "SE"
            ua = UAS[int(user) % 4]
        else:
            ip = f"172.{rnd.randrange(32)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
            country = rnd.choice(["NO", "SE", "US", "BR", "DE"]); ua = rnd.choice(UAS)
        vel = {}
        if rnd.random() < 0.2:
            vel = {"account_failures": rnd.randrange(8), "ip_failures": rnd.randrange(40),
                   "prefix_failures": rnd.randrange(60), "asn_failures": rnd.randrange(500),
                   "ip_distinct_users": rnd.randrange(12), "ip_unknown_user_share": rnd.random(),
                   "password_spray_accounts": rnd.randrange(9)}
        yield (LoginContext(user, ip, ua, t, trusted_device=rnd.random() < 0.1, breached_password=rnd.random() < 0.05,
                            velocity=vel, country=country, asn=f"AS{64512 + home}"), rnd.random() < 0.7)

def golden(engine_factory=lambda: RiskEngine(config=pinned_config())):
    engine = engine_factory()
    h = hashlib.sha256()
    for ctx, ok in rows():
        d = engine.score(ctx)
        h.update(f"{d.score.hex()} {d.action}\n".encode())
        if ok:
            engine.learn(ctx)
    return h.hexdigest()

if __name__ == "__main__":
    print(golden())
