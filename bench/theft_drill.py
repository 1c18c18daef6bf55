"""Theft drill: owners sign in and go about their day; thieves replay their cookies from other contexts.

Reports, per theft scenario, the share of stolen sessions contained (the thief refused or the session ended) and how
many of the thief's requests got through first, next to the share of owners whose own ordinary day was interrupted
(their session ended or sent back to sign-in). Three configurations in one run, on the same app code:

* ``bearer``: continuous session risk and DBSC off — what authsvc did before (the baseline);
* ``drift``: continuous session risk on (authsvc.risk.drift);
* ``drift+dbsc``: the owners' browsers also bind their sessions with DBSC (tests/dbsc_client.py plays the browser).

A second part does the same for a public client's refresh tokens (an SPA or native app, through the deployed lean
refresh path): owners' apps refresh through their day; thieves replay a stolen refresh token from other contexts.
Modes ``bearer`` (drift scoring off: only the refresh-reuse detection) and ``drift`` (the family's birth network is
scored on every refresh).

Real parts: the app with its real Redis (the embedded one unless BENCH_REDIS_URL) and SQL (SQLite in a temp folder
unless BENCH_DATABASE_URL), real IP→ASN/country data (BENCH_GEOIP, default ../shared/data/geoip next to the repo).
Time is simulated with the app clock; the client address comes through a trusted proxy's X-Forwarded-For.

    .venv/bin/python bench/theft_drill.py [--owners 120] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PASSWORD = "correct horse battery staple"
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/{v}.0.0.0 Safari/537.36")
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/{v}.0 Mobile/15E148 Safari/604.1")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/{v}.0.0.0 Mobile Safari/537.36")
DESKTOP = [(CHROME_WIN, 141), (FIREFOX_LINUX, 140)]
PHONE = [(SAFARI_IOS, 18), (CHROME_ANDROID, 141)]

# Real networks (resolved from the data files at start and printed): two /24s of one home provider, a second home
# provider, a mobile carrier, an office provider, a hosting network (phishing proxy), and abroad.
HOME_A = ["84.128.{}.{}", "84.129.{}.{}"]  # AS3320 DE
HOME_B = ["62.214.{}.{}"]  # AS8881 DE
MOBILE = ["92.72.{}.{}", "109.40.{}.{}"]  # AS3209 DE (carrier)
OFFICE = ["81.2.{}.{}"]  # AS20712 GB... used as a second fixed-line provider abroad? no: see ABROAD
OFFICE_DE = ["87.160.{}.{}"]  # AS3320 DE: an office on the same big provider
HOSTING = ["104.131.{}.{}"]  # AS14061 US (a proxy's cloud host)
ABROAD = ["177.20.{}.{}", "81.2.{}.{}"]  # BR, GB


def ip(templates, rnd):
    return rnd.choice(templates).format(rnd.randrange(1, 254), rnd.randrange(1, 254))


class Browser:
    def __init__(self, app, ua: str, addr: str):
        self.client = app.test_client()
        self.move(addr, ua)

    def move(self, addr: str, ua: str | None = None):
        self.client.environ_base["HTTP_X_FORWARDED_FOR"] = addr
        if ua:
            self.client.environ_base["HTTP_USER_AGENT"] = ua

    def use(self) -> str:
        """One page: "ok", "stepup" (the session is suspended: sent to /mfa/resume) or "out" (sent to sign in)."""
        r = self.client.get("/account")
        if r.status_code == 200:
            return "ok"
        return "stepup" if r.status_code == 302 and r.location.startswith("/mfa/resume") else "out"

    def get(self) -> bool:
        return self.use() == "ok"

    def step_up(self, app, email: str) -> bool:
        """The owner re-proves on the step-up page (drill accounts have no second factor: the password, then the
        code mailed to the address, read from the outbox)."""
        import re

        from tests.functional.helpers import form_post

        r = form_post(self.client, "/mfa/resume", {"method": "password", "password": PASSWORD})
        if r.status_code != 302 or not r.location.startswith("/mfa/resume"):
            return False
        with app.app_context():
            codes = [m.group(1) for msg in app.extensions["authsvc"].outbox.messages(to=email)
                     for m in [re.search(r"sign-in code is (\d{8})\b", msg.body)] if m]
        if not codes:
            return False
        r = form_post(self.client, r.location, {"method": "email", "email_code": codes[-1]})
        return r.status_code == 302 and not r.location.startswith(("/mfa/resume", "/login"))


def build_app(mode: str, folder: str, geoip: str, *, drift: bool | None = None, dbsc: bool | None = None):
    from authsvc import create_app
    from tests.conftest import FAST_ARGON2

    cfg = dict(FAST_ARGON2, instance_path=os.path.join(folder, mode), secret_key="drill", TESTING=True,
               trusted_proxies=("127.0.0.1/32",), risk_asn_file=os.path.join(geoip, "asn-ipv4-num.csv.gz"),
               risk_country_file=os.path.join(geoip, "geo-whois-asn-country.mmdb"),
               # The drill measures what happens after the login; the login's own step-up is another bench (P6).
               risk_step_up_threshold=1000.0, risk_deny_threshold=2000.0, throttle_enabled=False,
               session_drift_enabled=(mode != "bearer") if drift is None else drift,
               dbsc_enabled=(mode == "drift+dbsc") if dbsc is None else dbsc,
               session_idle_timeout=86400, session_absolute_timeout=86400 * 2)
    if os.environ.get("BENCH_DATABASE_URL"):
        cfg["database_url"] = os.environ["BENCH_DATABASE_URL"]
    if os.environ.get("BENCH_REDIS_URL"):
        cfg["redis_url"] = os.environ["BENCH_REDIS_URL"]
    app = create_app(cfg)
    with app.app_context():
        from authsvc.cli import upgrade_database
        from authsvc.extensions import db, get_redis
        from authsvc.models import Base

        if cfg.get("database_url"):
            with db.engine.begin() as conn:
                Base.metadata.drop_all(conn)
                conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade_database()
        get_redis().flushdb()
    return app


def sign_in(app, email: str, ua: str, addr: str, bind: bool) -> Browser:
    from tests.dbsc_client import DbscAgent
    from tests.functional.helpers import form_post

    b = Browser(app, ua, addr)
    resp = form_post(b.client, "/login", {"email": email, "password": PASSWORD})
    assert resp.status_code == 302, resp.status_code
    if bind:
        agent = DbscAgent(b.client, app.config["AUTHSVC"].session_cookie_name)
        assert agent.register_from(resp).status_code == 200
        b.agent = agent
    return b


def steal(app, victim: Browser, addr: str, ua: str, with_short_cookie: bool) -> Browser:
    """A copy of the victim's cookie jar in another browser. An infostealer takes every cookie, the short-lived DBSC
    one too, but not the key (it cannot be exported)."""
    t = Browser(app, ua, addr)
    for name in (app.config["AUTHSVC"].session_cookie_name, app.config["AUTHSVC"].session_cookie_name + "-bound"):
        c = victim.client.get_cookie(name)
        if c is not None and (with_short_cookie or not name.endswith("-bound")):
            t.client.set_cookie(name, c.value, domain="localhost")
    return t


def refresh_if_bound(b: Browser) -> None:
    agent = getattr(b, "agent", None)
    if agent is not None:
        agent.refresh()


OWNER_DAYS = {  # name: share of owners
    "home_only": 0.40, "dhcp_same_provider": 0.15, "commuter": 0.20, "phone_wifi_and_cellular": 0.15,
    "browser_update": 0.05, "traveller": 0.05,
}
THEFTS = ["other_browser", "same_provider_same_browser", "other_provider_later", "phishing_proxy_timing",
          "abroad", "parallel_use", "quick_replay_same_provider"]
THIEF_REQUESTS, THIEF_PACE = 30, 30  # the thief tries for 15 minutes, a request every 30 s


def owner_day(app, clock, rnd, email, kind, bind):
    """Returns "ok" (uninterrupted), "stepped_up" (asked to confirm it was them at least once, and carried on in
    the same session) or "interrupted" (the session ended: sent back to sign in)."""
    phone = kind == "phone_wifi_and_cellular"
    tmpl, v = rnd.choice(PHONE if phone else DESKTOP)
    ua = tmpl.format(v=v)
    b = sign_in(app, email, ua, ip(HOME_A, rnd), bind)
    steps = day_steps(kind, rnd, tmpl, v)
    outcome = "ok"

    def visit():
        nonlocal outcome
        if outcome == "interrupted":
            return
        state = b.use()
        if state == "stepup":
            outcome = "stepped_up" if b.step_up(app, email) and b.get() else "interrupted"
        elif state == "out":
            outcome = "interrupted"

    visit()
    for wait, addr, new_ua in steps:
        clock.advance(wait)
        if addr or new_ua:
            b.move(addr or b.client.environ_base["HTTP_X_FORWARDED_FOR"], new_ua)
        refresh_if_bound(b)
        visit()
    return outcome


def theft(app, clock, rnd, email, kind, bind):
    """Returns (contained, thief requests that got through before containment, seconds until contained)."""
    tmpl, v = rnd.choice(DESKTOP)
    ua = tmpl.format(v=v)
    login_ip = ip(HOSTING, rnd) if kind == "phishing_proxy_timing" else ip(HOME_A, rnd)
    victim = sign_in(app, email, ua, login_ip, bind)
    victim.get()
    if kind == "phishing_proxy_timing":
        clock.advance(rnd.randrange(60, 600))
        thief = steal(app, victim, ip(HOME_B, rnd), ua, True)
    elif kind == "other_browser":
        clock.advance(rnd.randrange(60, 7200))
        other = FIREFOX_LINUX if "Chrome" in ua else CHROME_WIN
        thief = steal(app, victim, ip(HOME_B, rnd), other.format(v=140), True)
    elif kind == "same_provider_same_browser":
        clock.advance(rnd.randrange(1800, 7200))
        thief = steal(app, victim, ip(HOME_A, rnd), ua, True)
    elif kind == "other_provider_later":
        clock.advance(rnd.randrange(1800, 7200))
        thief = steal(app, victim, ip(HOME_B, rnd), ua, True)
    elif kind == "quick_replay_same_provider":  # an infostealer's operator replays within minutes, like for like
        clock.advance(rnd.randrange(60, 300))
        thief = steal(app, victim, ip(HOME_A, rnd), ua, True)
    elif kind == "abroad":
        clock.advance(rnd.randrange(60, 7200))
        thief = steal(app, victim, ip(ABROAD, rnd), ua, True)
    else:  # parallel_use: owner and thief both active, minutes apart
        clock.advance(rnd.randrange(1800, 7200))
        thief = steal(app, victim, ip(HOME_B, rnd), ua, True)
    through = elapsed = 0
    for i in range(THIEF_REQUESTS):
        if kind == "parallel_use":
            refresh_if_bound(victim)
            victim.get()
            clock.advance(20)
            elapsed += 20
        if not thief.get():
            return True, through, elapsed
        through += 1
        clock.advance(THIEF_PACE)
        elapsed += THIEF_PACE
    return False, through, elapsed


def day_steps(kind, rnd, tmpl, v):
    """An owner's ordinary day after the sign-in: (seconds later, new address or None, new user agent or None)."""
    if kind == "home_only":
        return [(rnd.randrange(60, 3600), None, None) for _ in range(6)]
    if kind == "dhcp_same_provider":
        return [(600, None, None), (rnd.randrange(120, 1800), ip(HOME_A, rnd), None), (3600, None, None)]
    if kind == "commuter":
        return [(900, None, None), (rnd.randrange(3600, 4 * 3600), ip(OFFICE_DE, rnd), None),
                (1800, None, None), (6 * 3600, ip(HOME_A, rnd), None)]
    if kind == "phone_wifi_and_cellular":
        return [(rnd.randrange(60, 600), ip(MOBILE, rnd), None), (rnd.randrange(30, 900), ip(HOME_A, rnd), None),
                (rnd.randrange(600, 3600), ip(MOBILE, rnd), None), (1200, None, None)]
    if kind == "browser_update":
        return [(1800, None, None), (3600, None, tmpl.format(v=v + 1)), (600, None, None)]
    return [(1800, None, None), (10 * 3600, ip(ABROAD, rnd), None), (600, None, None)]  # traveller


# --- refresh tokens of a public client ------------------------------------------------------------------------------
TOKEN_THEFTS = ["same_provider_later", "other_provider_later", "phishing_proxy_timing", "abroad", "parallel_use"]


def app_signin(app, cid, email, ua, addr):
    """The owner signs in to the app on their device: (browser, refresh token). The code is redeemed from ``addr``."""
    from tests.functional.oauth_helpers import get_code, token

    b = sign_in(app, email, ua, addr, False)
    code, verifier = get_code(b.client, cid, scope="openid offline_access")
    r = token(b.client, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                         "redirect_uri": "https://rp.example/cb", "client_id": cid})
    assert r.status_code == 200, r.get_json()
    return b, r.get_json()["refresh_token"]


def app_refresh(app, cid, rt, addr):
    """One refresh from ``addr`` through the app as deployed (the lean path): the new refresh token, or None."""
    r = app.test_client().post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                                      "client_id": cid},
                               environ_base={"HTTP_X_FORWARDED_FOR": addr, "REMOTE_ADDR": "127.0.0.1"})
    return r.get_json()["refresh_token"] if r.status_code == 200 else None


def owner_app_day(app, clock, rnd, cid, email, kind):
    phone = kind == "phone_wifi_and_cellular"
    tmpl, v = rnd.choice(PHONE if phone else DESKTOP)
    addr = ip(HOME_A, rnd)
    _, rt = app_signin(app, cid, email, tmpl.format(v=v), addr)
    for wait, new_addr, _ua in day_steps(kind, rnd, tmpl, v):
        clock.advance(wait)
        addr = new_addr or addr
        rt = app_refresh(app, cid, rt, addr)
        if rt is None:
            return False
    return True


def token_theft(app, clock, rnd, cid, email, kind):
    """(contained, thief refreshes that got through before containment, seconds until contained)."""
    tmpl, v = rnd.choice(PHONE)
    owner_addr = ip(HOSTING if kind == "phishing_proxy_timing" else HOME_A, rnd)
    _, rt = app_signin(app, cid, email, tmpl.format(v=v), owner_addr)
    if kind == "phishing_proxy_timing":
        clock.advance(rnd.randrange(60, 600))
        thief_addr = ip(HOME_B, rnd)
    elif kind == "same_provider_later":
        clock.advance(rnd.randrange(1800, 7200))
        thief_addr = ip(HOME_A, rnd)
    elif kind == "abroad":
        clock.advance(rnd.randrange(60, 7200))
        thief_addr = ip(ABROAD, rnd)
    else:  # other_provider_later, parallel_use
        clock.advance(rnd.randrange(1800, 7200))
        thief_addr = ip(HOME_B, rnd)
    owner_rt, thief_rt = rt, rt
    through = elapsed = 0
    for _ in range(THIEF_REQUESTS):
        thief_rt = app_refresh(app, cid, thief_rt, thief_addr)
        if thief_rt is None:
            return True, through, elapsed
        through += 1
        if kind == "parallel_use" and owner_rt is not None:  # the owner's app refreshes too, with its own copy
            owner_rt = app_refresh(app, cid, owner_rt, owner_addr)
            clock.advance(20)
            elapsed += 20
        clock.advance(THIEF_PACE)
        elapsed += THIEF_PACE
    return False, through, elapsed


def _stop_embedded(instance: str) -> None:
    """The app started a private redis-server in its instance folder; a bench must not leave it running."""
    from authsvc import embedded_redis

    if os.path.exists(instance):
        embedded_redis.stop(instance)


def run_tokens(mode, folder, geoip, owners, seed):
    from tests.conftest import create_user
    from tests.functional.oauth_helpers import register

    rnd = random.Random(seed)
    app = build_app("tokens-" + mode, folder, geoip, drift=mode != "bearer", dbsc=False)
    clock = app.extensions["authsvc"].clock
    cid, _ = register(app, name="Drill app", client_type="public")
    days = {k: [] for k in OWNER_DAYS}
    kinds = rnd.choices(list(OWNER_DAYS), weights=list(OWNER_DAYS.values()), k=owners)
    for i, kind in enumerate(kinds):
        email = f"owner{i}@example.com"
        create_user(app, email=email, password=PASSWORD)
        days[kind].append(owner_app_day(app, clock, rnd, cid, email, kind))
    thefts = {k: [] for k in TOKEN_THEFTS}
    for kind in TOKEN_THEFTS:
        for j in range(max(4, owners // 10)):
            email = f"victim-{kind}-{j}@example.com"
            create_user(app, email=email, password=PASSWORD)
            thefts[kind].append(token_theft(app, clock, rnd, cid, email, kind))
    return days, thefts


def run(mode, folder, geoip, owners, seed):
    rnd = random.Random(seed)
    app = build_app(mode, folder, geoip)
    clock = app.extensions["authsvc"].clock
    from tests.conftest import create_user

    bind = mode == "drift+dbsc"
    days = {k: [] for k in OWNER_DAYS}
    kinds = rnd.choices(list(OWNER_DAYS), weights=list(OWNER_DAYS.values()), k=owners)
    for i, kind in enumerate(kinds):
        email = f"owner{i}@example.com"
        create_user(app, email=email, password=PASSWORD)
        days[kind].append(owner_day(app, clock, rnd, email, kind, bind))
    thefts = {k: [] for k in THEFTS}
    per_kind = max(4, owners // 10)
    for kind in THEFTS:
        for j in range(per_kind):
            email = f"victim-{kind}-{j}@example.com"
            create_user(app, email=email, password=PASSWORD)
            thefts[kind].append(theft(app, clock, rnd, email, kind, bind))
    return days, thefts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--owners", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--part", choices=["all", "sessions", "tokens"], default="all")
    ap.add_argument("--geoip", default=os.environ.get("BENCH_GEOIP",
                                                      os.path.join(os.path.dirname(ROOT), "shared", "data", "geoip")))
    args = ap.parse_args(argv)
    if not os.path.exists(os.path.join(args.geoip, "asn-ipv4-num.csv.gz")):
        sys.exit(f"no IP→ASN data in {args.geoip}; set BENCH_GEOIP to a folder with asn-ipv4-num.csv.gz and "
                 "geo-whois-asn-country.mmdb")
    if args.part in ("all", "sessions"):
        sessions_part(args)
    if args.part in ("all", "tokens"):
        tokens_part(args)


def _table(title, kinds, modes, results):
    print(title)
    print(f"{'scenario':30}" + "".join(f"{m:>22}" for m in modes))
    for kind in kinds:
        cells = []
        for m in modes:
            rows = results[m][1][kind]
            caught = sum(1 for c, _, _ in rows if c) / len(rows)
            through = statistics.median(t for _, t, _ in rows)
            secs = statistics.median(e for c, _, e in rows if c) if caught else float("nan")
            cells.append(f"{caught:4.0%} {through:>3.0f} req {secs:>4.0f} s")
        print(f"{kind:30}" + "".join(f"{c:>22}" for c in cells))


def _ok(row) -> bool:
    return row is True or row == "ok"


def _owner_table(title, modes, results):
    """Owner rows are True/False (tokens) or "ok"/"stepped_up"/"interrupted" (sessions: interrupted + stepped up)."""
    print(title)
    print(f"{'owner day':30}" + "".join(f"{m:>22}" for m in modes))
    for kind in OWNER_DAYS:
        cells = []
        for m in modes:
            rows = results[m][0][kind]
            if any(isinstance(r, str) for r in rows):
                ended = sum(1 for r in rows if r == "interrupted") / len(rows)
                stepped = sum(1 for r in rows if r == "stepped_up") / len(rows)
                cells.append(f"{ended:4.0%} / {stepped:4.0%} (n={len(rows)})")
            else:
                cells.append(f"{(1 - sum(map(_ok, rows)) / len(rows)) if rows else 0:6.1%} (n={len(rows)})")
        print(f"{kind:30}" + "".join(f"{c:>22}" for c in cells))


def _summary(modes, results, label, interrupted, whom):
    for m in modes:
        rows = [ok for v in results[m][0].values() for ok in v]
        thefts = [c for v in results[m][1].values() for c, _, _ in v]
        line = (f"\n{label}{m}: contained {sum(thefts) / len(thefts):.0%} of thefts; "
                f"{interrupted} {1 - sum(map(_ok, rows)) / len(rows):.1%} of {whom}")
        if any(isinstance(r, str) for r in rows):
            ended = sum(1 for r in rows if r == "interrupted") / len(rows)
            line += f" (signed out {ended:.1%}, stepped up in-session {1 - ended - sum(map(_ok, rows)) / len(rows):.1%})"
        print(line)


def _run_modes(modes, runner, args, prefix=""):
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            try:
                results[mode] = runner(mode, folder, args.geoip, args.owners, args.seed)
            finally:
                _stop_embedded(os.path.join(folder, prefix + mode))
    return results


def tokens_part(args):
    modes = ["bearer", "drift"]
    results = _run_modes(modes, run_tokens, args, prefix="tokens-")
    print(f"\ntheft drill, refresh tokens of a public client: {args.owners} owners, seed {args.seed}\n")
    _table(f"stolen refresh tokens contained within {THIEF_REQUESTS} refreshes, {THIEF_PACE} s apart (thief refused); "
           "median thief refreshes that got through first, median seconds until contained", TOKEN_THEFTS, modes,
           results)
    _owner_table("\nowners whose app was signed out during their ordinary day (a refresh refused)", modes, results)
    _summary(modes, results, "tokens ", "signed out", "owners' apps")


def sessions_part(args):
    modes = ["bearer", "drift", "drift+dbsc"]
    results = _run_modes(modes, run, args)
    print(f"theft drill: {args.owners} owners, seed {args.seed}, same owners and thieves in every mode\n")
    _table(f"stolen sessions contained within {THIEF_REQUESTS * THIEF_PACE // 60} min (thief refused or session "
           "ended); median thief requests that got through first, median seconds until contained", THEFTS, modes,
           results)
    _owner_table("\nowners whose own day was interrupted: signed out (session ended) / stepped up in-session (confirmed "
                 "it was them on /mfa/resume — password + mailed code — and carried on)", modes, results)
    _summary(modes, results, "", "interrupted", "owners")


if __name__ == "__main__":
    main()
