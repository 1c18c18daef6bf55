"""Throttle correctness, second pass (issues 12 and 19): the spray detector is no existence oracle, the password-spray
limit sees NFKC twins, a correct password stopped at risk-deny or MFA is throttled and the owner told, IPv4-mapped
IPv6 clients are keyed as IPv4, IPv6 has a /32 tier, and several ASN files can be configured.

Real SQL and a real Redis, like every functional test.
"""

import gzip
import os

import pytest

from authsvc.passwords import PasswordHasherService
from tests.conftest import PASSWORD, create_user

WRONG = "a wrong password, long enough"
GEOIP = "/work/shared/data/geoip"


class CountingHasher(PasswordHasherService):
    calls = 0

    def verify(self, stored, password):
        CountingHasher.calls += 1
        return super().verify(stored, password)


def counting(app):
    from authsvc.services import services

    with app.app_context():
        services().login.hasher = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)


def attempt(app, email, password, ip):
    return app.test_client().post("/api/v1/login", json={"email": email, "password": password},
                                  environ_base={"REMOTE_ADDR": ip})


def mails(app, to, subject_part):
    from authsvc.services import services

    with app.app_context():
        return [m for m in services().outbox.messages(to=to) if subject_part in m.subject]


# --- issue 12 item 6: the spray detector must not tell whether an address is registered -------------------------------

@pytest.mark.parametrize("own,ghosts", [(2, 1), (1, 1), (3, 0), (0, 3), (4, 2)])
def test_spray_detector_is_not_an_account_existence_oracle(make_app, own, ghosts):
    """The attacker's probe: fill a source's spray counters with failures on their own (real) account and on random
    (unregistered) addresses, so that one more unknown address would tip the unknown-account share; then try the
    target once and watch whether the source gets blocked. A real target and an unregistered one must give exactly the
    same sequence of answers, whatever the mix."""
    app = make_app(spray_min_accounts=1000, spray_min_failures=own + ghosts + 1, spray_unknown_share=0.5,
                   throttle_pair_limit=1000, account_lockout_threshold=1000, password_spray_accounts=1000)
    create_user(app, email="attacker@example.com")
    create_user(app, email="victim@example.com")

    def probe(target, net):
        seen = []
        for i in range(own):
            seen.append(attempt(app, "attacker@example.com", f"{WRONG} {i}", f"{net}.1").status_code)
        for i in range(ghosts):
            seen.append(attempt(app, f"ghost{i}-{net}@example.com", f"{WRONG} g{i}", f"{net}.1").status_code)
        seen.append(attempt(app, target, f"{WRONG} t", f"{net}.1").status_code)
        # The observation: does the source still get in to the attacker's own account?
        seen.append(attempt(app, "attacker@example.com", PASSWORD, f"{net}.1").status_code)
        seen.append(attempt(app, "attacker@example.com", PASSWORD, f"{net}.2").status_code)  # same /24
        return seen

    real = probe("victim@example.com", "198.51.100")
    unregistered = probe("nobody@example.com", "203.0.113")
    assert real == unregistered


def test_spray_from_a_stuffing_list_is_still_blocked_whether_the_accounts_exist_or_not(make_app):
    app = make_app(spray_min_accounts=1000, spray_min_failures=6, spray_unknown_share=0.5)
    for i in range(3):
        create_user(app, email=f"real{i}@example.com")
    create_user(app)
    emails = [f"real{i}@example.com" for i in range(3)] + [f"ghost{i}@example.com" for i in range(3)]
    for i, email in enumerate(emails):  # one try per address: a list, not a typo
        assert attempt(app, email, f"{WRONG} {i}", "198.51.100.7").status_code == 401
    assert attempt(app, "alice@example.com", PASSWORD, "198.51.100.7").status_code == 429
    # A user mistyping the one address over and over is not a list: no spray block (the account lockout is its limit).
    app2_ip = "203.0.113.7"
    for i in range(6):
        attempt(app, "alice@exmaple.com", f"{WRONG} {i}", app2_ip)
    assert attempt(app, "alice@example.com", PASSWORD, app2_ip).status_code == 200


# --- issue 12 item 6: one password across accounts, NFKC twins ---------------------------------------------------------

BASE = "Summer2026!Summer2026!"


@pytest.mark.parametrize("twins,then", [
    # fullwidth letters and digits: NFKC folds them to ASCII
    (["\uff33ummer2026!Summer2026!", "Summer\uff12\uff10\uff12\uff16!Summer2026!", "\uff33\uff55mmer2026!Summer2026!"],
     BASE),
    # composed é (U+00E9) against e + combining acute (U+0301): NFKC composes both the same way
    (["Caf\u0065\u0301-Summer2026!!"] * 3, "Caf\u00e9-Summer2026!!"),
    (["Caf\u00e9-Summer2026!!"] * 3, "Caf\u0065\u0301-Summer2026!!"),
])
def test_password_spray_limit_sees_nfkc_twins(make_app, twins, then):
    app = make_app(password_spray_accounts=3)
    for i, pw in enumerate(twins):  # the "same" wrong password (to the hasher) against three accounts, three networks
        assert attempt(app, f"u{i}@example.com", pw, f"192.0.{i + 2}.1").status_code == 401
    create_user(app, email="victim@example.com")
    counting(app)
    before = CountingHasher.calls
    assert attempt(app, "victim@example.com", then, "198.18.0.1").status_code == 429
    assert CountingHasher.calls == before


# --- issue 19: correct password, but denied or stopped at MFA ----------------------------------------------------------

def _count_rows(app, user_id):
    from sqlalchemy import func, select

    from authsvc.extensions import db
    from authsvc.models import LoginEvent, SecurityEvent as AuditEvent

    with app.app_context():
        receipts = db.session.execute(select(func.count()).select_from(LoginEvent)
                                      .where(LoginEvent.user_id == user_id)).scalar_one()
        audits = db.session.execute(select(func.count()).select_from(AuditEvent)
                                    .where(AuditEvent.subject_id == user_id,
                                           AuditEvent.tag.in_(["account:login:denied",
                                                               "account:login:mfa_required"]))).scalar_one()
        return receipts, audits


def test_correct_password_denied_is_throttled_per_account_and_source_and_the_owner_is_told(make_app):
    # Every login is denied by the risk engine (deny threshold below any score): the attacker has the password.
    app = make_app(risk_step_up_threshold=-1000, risk_deny_threshold=-999, throttle_proven_limit=3)
    uid = create_user(app)
    counting(app)
    for _ in range(3):
        r = attempt(app, "alice@example.com", PASSWORD, "198.51.100.7")
        assert r.status_code == 403 and r.json["error"] == "denied"
    before = CountingHasher.calls
    rows = _count_rows(app, uid)
    for _ in range(20):  # the flood: refused before hashing, and nothing more written to SQL
        r = attempt(app, "alice@example.com", PASSWORD, "198.51.100.8")  # same /24
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert CountingHasher.calls == before
    # Bounded writes: the 20 refusals leave at most the one "attempt refused" receipt the owner's activity page shows
    # per 10 minutes (defense/refusals.py), and no more deny/MFA audit rows.
    assert rows == (3, 3) and _count_rows(app, uid) == (4, 3)
    # Another account from the same source is not affected; the owner elsewhere is not refused by this limit.
    create_user(app, email="bob@example.com")
    assert attempt(app, "bob@example.com", PASSWORD, "198.51.100.7").status_code == 403
    assert attempt(app, "alice@example.com", PASSWORD, "203.0.113.5").status_code == 403
    # The owner is told once that someone has the password, naming where it was used from, with a way to act.
    notices = mails(app, "alice@example.com", "password was used")
    assert len(notices) == 1
    body = notices[0].body
    assert "198.51.100.7" in body and "/not-me/" in body and "change" in body.lower()


def test_correct_password_stopped_at_mfa_is_throttled_and_repeated_stops_notify_once(make_app):
    from tests.functional.mfa_helpers import enrol_totp

    app = make_app(throttle_proven_limit=5, proven_notice_after=3)
    uid = create_user(app)
    enrol_totp(app, uid)
    counting(app)
    for i in range(5):
        r = attempt(app, "alice@example.com", PASSWORD, "2001:db8:5::1")
        assert r.status_code == 403 and r.json["error"] == "mfa_required"
        # One stop is how every MFA login starts: no alarm for the first ones.
        assert len(mails(app, "alice@example.com", "password was used")) == (0 if i < 2 else 1)
    before = CountingHasher.calls
    r = attempt(app, "alice@example.com", PASSWORD, "2001:db8:5:1::1")  # same /48
    assert r.status_code == 429
    assert CountingHasher.calls == before
    receipts, audits = _count_rows(app, uid)
    assert audits == 5
    notices = mails(app, "alice@example.com", "password was used")
    assert len(notices) == 1 and "2001:db8:5::1" in notices[0].body


def test_the_owner_signing_in_with_mfa_is_not_alarmed(make_app):
    from tests.functional.mfa_helpers import current_code, enrol_totp, submit_totp
    from tests.functional.helpers import login

    app = make_app(proven_notice_after=3)
    uid = create_user(app)
    secret = enrol_totp(app, uid)
    from authsvc.services import services

    for _ in range(2):
        c = app.test_client()
        login(c)
        assert submit_totp(c, current_code(app, secret)).status_code in (302, 303)
        with app.app_context():
            services().clock.advance(30)
    assert mails(app, "alice@example.com", "password was used") == []


def test_throttle_for_proven_passwords_fails_closed_when_redis_is_down(make_app, private_redis):
    app = make_app(redis_url=private_redis.url, risk_step_up_threshold=-1000, risk_deny_threshold=-999)
    create_user(app)
    private_redis.stop()
    r = attempt(app, "alice@example.com", PASSWORD, "198.51.100.7")
    assert r.status_code == 503
    private_redis.start()


# --- issue 19: IPv4-mapped IPv6, an IPv6 /32 tier, several ASN files --------------------------------------------------

def test_ipv4_mapped_clients_are_keyed_as_their_ipv4_address(make_app):
    from authsvc.defense import prefix_of

    assert prefix_of("::ffff:198.51.100.7") == "198.51.100.0/24"
    assert prefix_of("::ffff:203.0.113.9") == "203.0.113.0/24"
    app = make_app(throttle_prefix_limit=3, spray_min_failures=1000, throttle_pair_limit=2)
    # Two different IPv4 networks behind a dual-stack socket are two prefixes, not one "::/48".
    for i in range(3):
        assert attempt(app, f"u{i}@example.com", f"{WRONG} {i}", f"::ffff:198.51.100.{i + 1}").status_code == 401
    assert attempt(app, "x@example.com", WRONG, "::ffff:198.51.100.99").status_code == 429
    assert attempt(app, "x@example.com", WRONG, "::ffff:203.0.113.9").status_code == 401
    # The mapped and the plain form of one address are one client: the pair limit counts them together.
    create_user(app)
    assert attempt(app, "alice@example.com", WRONG, "::ffff:192.0.2.1").status_code == 401
    assert attempt(app, "alice@example.com", WRONG, "192.0.2.1").status_code == 401
    assert attempt(app, "alice@example.com", PASSWORD, "::ffff:192.0.2.1").status_code == 429


def test_client_ip_unmaps_ipv4_mapped_peers_and_hops(make_app):
    app = make_app(trusted_proxies=("10.0.0.0/8",))
    from authsvc.web.http import client_ip

    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "::ffff:198.51.100.7"}):
        from flask import request

        assert client_ip(request, ("10.0.0.0/8",)) == "198.51.100.7"
    # A proxy reached over a dual-stack socket is still the trusted proxy; the hop it forwards is unmapped too.
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "::ffff:10.0.0.5"},
                                  headers={"X-Forwarded-For": "::ffff:203.0.113.9"}):
        from flask import request

        assert client_ip(request, ("10.0.0.0/8",)) == "203.0.113.9"


def test_ipv6_has_a_32_tier_above_the_48(make_app):
    app = make_app(throttle_prefix_limit=1000, throttle_prefix32_limit=4, spray_min_failures=1000)
    for i in range(4):  # four different /48s of one /32: each /48 stays far below its limit
        assert attempt(app, f"u{i}@example.com", f"{WRONG} {i}", f"2001:db8:{i + 1}::1").status_code == 401
    r = attempt(app, "x@example.com", WRONG, "2001:db8:99::1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert attempt(app, "x@example.com", WRONG, "2001:db9::1").status_code == 401  # the next /32
    # IPv4 has no such tier: four /24s in one /16 are not refused by it.
    for i in range(6):
        assert attempt(app, f"v{i}@example.com", f"{WRONG} v{i}", f"198.{i}.100.1").status_code == 401


def _slice(src, dst, want):
    """Copy the rows of a real range file that cover the addresses in ``want`` (keeps the test fast)."""
    import ipaddress

    keep = []
    with gzip.open(src, "rt") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(",")
            try:
                lo, hi = parts[0], parts[1]
                lo_i = int(lo) if lo.isdigit() else int(ipaddress.ip_address(lo))
                hi_i = int(hi) if hi.isdigit() else int(ipaddress.ip_address(hi))
            except ValueError:
                continue
            if any(lo_i <= int(ipaddress.ip_address(a)) <= hi_i for a in want):
                keep.append(line)
    assert keep, f"no rows for {want} in {src}"
    with gzip.open(dst, "wt") as fh:
        fh.writelines(keep)
    return str(dst)


@pytest.mark.skipif(not os.path.isdir(GEOIP), reason="real GeoIP test data not present")
def test_several_asn_files_ipv4_and_ipv6(make_app, tmp_path):
    v4_ip, v6_ip = "8.8.8.8", "2001:4860:4860::8888"
    v4 = _slice(f"{GEOIP}/asn-ipv4-num.csv.gz", tmp_path / "v4.csv.gz", [v4_ip])
    v6 = _slice(f"{GEOIP}/asn-ipv6.csv.gz", tmp_path / "v6.csv.gz", [v6_ip, "2001:4860:4860::8844"])
    app = make_app(risk_asn_file=f"{v4}, {v6}", throttle_asn_limit=2, throttle_prefix_limit=1000,
                   throttle_prefix32_limit=1000, spray_min_failures=1000)
    from authsvc.services import services

    with app.app_context():
        lookup = services().throttle.asn_lookup
        assert lookup(v4_ip) == "AS15169" and lookup(v6_ip) == "AS15169"
        assert lookup("::ffff:8.8.8.8") == "AS15169"  # mapped form: the IPv4 file answers
    # The per-ASN limit now holds for an IPv6 client too (the same AS over both families).
    assert attempt(app, "a@example.com", WRONG, "8.8.8.8").status_code == 401
    assert attempt(app, "b@example.com", WRONG + " b", "2001:4860:4860::8844").status_code == 401
    assert attempt(app, "c@example.com", WRONG + " c", "2001:4860:4860::8888").status_code == 429


def test_asn_file_list_with_a_missing_file_is_a_clear_config_error(tmp_path):
    from authsvc.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as exc:
        load_settings({"risk_asn_file": f"{tmp_path}/nope.csv.gz"}, environ={})
    assert exc.value.setting == "AUTHSVC_RISK_ASN_FILE" and "nope.csv.gz" in str(exc.value)


def test_admin_sees_and_unlocks_the_correct_password_block(make_app):
    from tests.functional.admin_helpers import admin_client, confirmed_post
    from tests.functional.helpers import form_post

    import dataclasses

    from authsvc.services import services

    app = make_app(throttle_proven_limit=2)
    admin = admin_client(app)
    with app.app_context():  # from now on the risk engine denies every sign-in (the admin is already in)
        engine = services().login.risk.engine
        engine.config = dataclasses.replace(engine.config, step_up_threshold=-1000, deny_threshold=-999)
    uid = create_user(app, email="bob@example.com")
    for _ in range(2):
        assert attempt(app, "bob@example.com", PASSWORD, "198.51.100.7").status_code == 403
    assert attempt(app, "bob@example.com", PASSWORD, "198.51.100.7").status_code == 429
    html = admin.get("/admin/attacks").get_data(as_text=True)
    assert "correct password stopped" in html
    r = confirmed_post(admin, f"/admin/users/{uid}", f"/admin/users/{uid}/unlock")
    assert r.status_code == 302
    assert attempt(app, "bob@example.com", PASSWORD, "198.51.100.7").status_code == 403  # counted afresh
