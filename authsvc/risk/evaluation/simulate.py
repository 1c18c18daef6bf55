"""Synthetic logins in the RBA dataset schema, calibrated to the published statistics (see docs/RISK.md).

Legitimate users have a home country, a home ISP with a slowly changing IP, a mobile carrier whose IPs churn
on every login, one to three devices whose browser versions age with the real 2020–21 release cadence, trips
abroad (roaming phones keep their home carrier IP), and a few use a VPN. Attacks are written as extra rows:

* ATO probes per Wiefling et al. (the attacker knows the password): ``naive`` (a random other user's IP and
  UA), ``vpn`` (an IP from the victim's country, a random UA), ``targeted`` (an IP in the victim's own ASN and a
  UA of the victim's device type, platform and browser family, current version).
* ``stuffing`` campaigns (datacenter or residential-proxy IPs, mostly unknown usernames) and low-and-slow
  ``spraying`` (few IPs, existing accounts, weeks long).

Labels: ``Is Attack IP`` for every attack row, ``Is Account Takeover`` for attack rows whose password is right,
an extra ``Attack Type`` column after the 16 schema columns, and a ``Campaign`` column naming the stuffing or spraying
campaign of a row (``stuffing:3``; empty elsewhere: each ATO probe is its own draw). ATO probes are written with
``Login Successful = False``: they model the attempt being challenged and failing the step-up, so a replay never
learns from them - the same as Wiefling's protocol, where attacks never enter the training history.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .schema import ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN, COLUMNS, format_timestamp
from .simworld import (
    ATTACK_COUNTRIES,
    COUNTRY_WEIGHTS,
    TRAVEL_WEIGHTS,
    UTC_OFFSET,
    DeviceSpec,
    Network,
    World,
    build_world,
    int_to_ip,
    new_device,
)
from ..ua import parse_ua

__all__ = ["SimParams", "simulate", "logins_per_user", "WORLDS"]

# 2020-02-03 00:00 UTC, the first day of the RBA dataset. Day numbers for browser versions count from 2020-01-01.
START_TS = 1580688000.0
_DAY0_OFFSET = 33
DAY = 86_400.0

# Published per-user login counts: 39.7 % once, median 2, p90 9, p99 28. Piecewise log-linear CDF through those
# points (plus a tail to 150; p90/p99 anchored a hair inside so sampling noise cannot tip them), sampled by
# inversion, so the calibration holds by construction.
_COUNT_CDF = ((1, 0.397), (2, 0.52), (9, 0.902), (28, 0.9905), (60, 0.999), (150, 1.0))


def logins_per_user(u: float) -> int:
    prev_k, prev_f = 1, 0.0
    for k, f in _COUNT_CDF:
        if u <= f:
            if k == prev_k:
                return k
            frac = (u - prev_f) / (f - prev_f)
            return min(k, max(prev_k + 1, math.ceil(prev_k * (k / prev_k) ** frac)))
        prev_k, prev_f = k, f
    return _COUNT_CDF[-1][0]


@dataclass(frozen=True)
class SimParams:
    users: int = 10_000
    days: int = 180
    seed: int = 1
    success_share: float = 0.401  # of all rows
    attack_ip_share: float = 0.099  # of all rows
    unknown_account_share: float = 0.45  # of all rows: failures on accounts that do not exist
    probe_rate: float = 0.05  # per successful login with earlier history: an ATO probe against that user
    spraying_share: float = 0.2  # of campaign rows (the rest is stuffing)
    stuffing_unknown_share: float = 0.85
    stuffing_success: float = 0.015  # reused passwords that work
    spraying_success: float = 0.003
    # Rows per campaign, on average (campaign sizes are lognormal around it). Fewer, larger campaigns are the
    # calibrated default; smaller ones give the report enough campaigns to resample (docs/RISK.md, v3.1).
    stuffing_campaign_rows: int = 4000
    spraying_campaign_rows: int = 2500
    trips_per_year: float = 2.5
    vpn_user_share: float = 0.03
    vpn_use: float = 0.3
    home_ip_change: float = 0.02  # per login: DHCP re-assignment
    device_replace: float = 0.004  # per login: new phone / laptop
    device_mix: tuple[float, float, float, float] = (0.655, 0.27, 0.055, 0.02)  # legit mobile/desktop/tablet/bot
    # World knobs (issue 16: a second, independently parameterised world). The defaults are world "a", the
    # calibrated world above; WORLDS["b"] changes all of them. Defaults reproduce world "a" byte for byte.
    ua_diversity: float = 0.0  # > 0: many more device models, per-device build patches, in-app browser tokens
    mobile_carrier_share: float = 0.6  # phone logins through the carrier (else home Wi-Fi / elsewhere)
    carrier_sticky: float = 0.0  # share of carrier logins from the user's few sticky CGNAT /24s (else anywhere)
    carrier_pool: int = 3  # sticky /24s per user, when carrier_sticky > 0
    roaming_share: float = 0.5  # abroad, phones exit through the home carrier
    trip_days: tuple[float, float] = (2.0, 12.0)
    vpn_countries: tuple[str, ...] = ("NL", "SE", "US", "DE", "GB", "CH")  # empty: any hosting network
    hour_uniform: float = 0.15  # logins at a uniformly random hour
    hour_spread: tuple[float, float] = (1.5, 4.0)  # per-user Gaussian spread of the login hour
    # Whom ATO probes target: "logins" = a probe follows a login of its victim (attacks ∝ activity, as when each
    # legitimate login is replayed with attacker features); "users" = the victim is drawn uniformly among accounts
    # with history (a leaked credential list does not favour active accounts). Freeman's prior p(u|A)/p(u|L)
    # assumes the second.
    probe_victims: str = "logins"

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be ≥ 1")


# Named worlds. "b" is parameterised independently of "a" (the calibrated one): far more UA strings (device models,
# build patches, in-app browsers), phones mostly on the carrier but with sticky CGNAT /24s, twice the travel with
# mostly roaming phones and short trips, more VPN users using it more and through any hosting country, more
# desktops, flatter login hours. Attack definitions are the protocol's and do not change.
WORLDS: dict[str, dict[str, object]] = {
    "a": {},
    "b": {
        "ua_diversity": 1.0, "mobile_carrier_share": 0.75, "carrier_sticky": 0.6, "carrier_pool": 4,
        "roaming_share": 0.8, "trip_days": (1.0, 6.0), "trips_per_year": 5.0, "vpn_user_share": 0.08,
        "vpn_use": 0.5, "vpn_countries": (), "hour_uniform": 0.3, "hour_spread": (2.0, 6.0),
        "home_ip_change": 0.05, "device_mix": (0.5, 0.4, 0.08, 0.02), "probe_victims": "users",
    },
}


Row = tuple  # (ts, user, ip, country, asn, ua, success, attack_ip, ato, attack_type[, campaign])


@dataclass
class _User:
    uid: str
    country: str
    tz: float
    home: Network
    home_ip: int
    carrier: Network
    devices: list[DeviceSpec]
    device_w: list[float]
    work: Network | None
    work_ip: int
    vpn: bool
    hour_center: float
    hour_spread: float
    carrier_ips: list[int] | None = None  # sticky CGNAT addresses (carrier_sticky > 0 only)


class _Sim:
    def __init__(self, p: SimParams, world: World) -> None:
        self.p = p
        self.w = world
        self.rng = random.Random(p.seed)
        self.uids: set[str] = set()
        countries = [c for c in COUNTRY_WEIGHTS if c in world.isps]
        self.countries = countries
        self.cweights = [COUNTRY_WEIGHTS[c] for c in countries]
        self.travel = [c for c in TRAVEL_WEIGHTS if c in world.isps]
        self.tweights = [TRAVEL_WEIGHTS[c] for c in self.travel]
        self.vpn_nets = [n for n in world.hosting if n.country in p.vpn_countries] or world.hosting
        self.end = p.days * DAY

    def new_uid(self) -> str:
        while True:
            uid = str(self.rng.getrandbits(63) - (1 << 62))
            if uid not in self.uids:
                self.uids.add(uid)
                return uid

    def day(self, t: float) -> float:
        return t / DAY + _DAY0_OFFSET

    # -- users ---------------------------------------------------------------------------------------------------
    def make_user(self) -> _User:
        rng, w = self.rng, self.w
        country = rng.choices(self.countries, self.cweights)[0]
        tz = UTC_OFFSET.get(country, 0) + (rng.choice((0, -1, -2)) if country in ("US", "CA", "BR", "RU") else 0)
        home = w.isp(country, rng)
        n_dev = rng.choices((1, 2, 3), (0.55, 0.35, 0.10))[0]
        kinds = rng.choices(("mobile", "desktop", "tablet", "bot"), self.p.device_mix, k=n_dev)
        devices = [new_device(k, rng, diversity=self.p.ua_diversity) for k in kinds]
        device_w = [rng.uniform(0.2, 1.0) for _ in devices]
        device_w[0] += 1.0  # a primary device
        has_work = any(d.kind == "desktop" for d in devices) and rng.random() < 0.35
        work = w.isp(country, rng) if has_work else None
        u = _User(
            uid=self.new_uid(), country=country, tz=tz, home=home, home_ip=home.draw(rng),
            carrier=w.carrier(country, rng), devices=devices, device_w=device_w, work=work,
            work_ip=work.draw(rng) if work else 0, vpn=rng.random() < self.p.vpn_user_share,
            hour_center=rng.gauss(15.0, 3.5), hour_spread=rng.uniform(*self.p.hour_spread),
        )
        if self.p.carrier_sticky > 0:
            u.carrier_ips = [u.carrier.draw(rng) for _ in range(self.p.carrier_pool)]
        return u

    def login_times(self, u: _User, n: int) -> list[float]:
        rng = self.rng
        a, b = sorted((rng.uniform(0, self.end), rng.uniform(0, self.end)))
        days = [a] if n == 1 else sorted(rng.uniform(a, b) for _ in range(n))
        out = []
        for d in days:
            local = rng.uniform(0, 24) if rng.random() < self.p.hour_uniform else rng.gauss(u.hour_center, u.hour_spread)
            utc_hour = (local - u.tz) % 24
            t = math.floor(d / DAY) * DAY + utc_hour * 3600 + rng.uniform(0, 60)
            out.append(min(max(t, 0.0), self.end - 1))
        out.sort()
        return out

    def user_logins(self, u: _User, n: int) -> Iterator[Row]:
        rng, p = self.rng, self.p
        times = self.login_times(u, n)
        span_years = (times[-1] - times[0]) / (365 * DAY)
        trips = []
        for _ in range(_poisson(rng, p.trips_per_year * span_years)):
            start = rng.uniform(times[0], times[-1])
            trips.append((start, start + rng.uniform(*p.trip_days) * DAY, rng.choices(self.travel, self.tweights)[0]))
        for t in times:
            if rng.random() < p.device_replace:
                i = rng.randrange(len(u.devices))
                u.devices[i] = new_device(u.devices[i].kind, rng, diversity=p.ua_diversity)
            dev = rng.choices(u.devices, u.device_w)[0]
            if rng.random() < p.home_ip_change:
                u.home_ip = u.home.draw_near(u.home_ip, rng)
            trip = next((tr for tr in trips if tr[0] <= t < tr[1] and tr[2] != u.country), None)
            net, ip = self._network(u, dev, trip)
            yield (t, u.uid, int_to_ip(ip), net.country, net.asn, dev.ua(self.day(t)), True, False, False, "")

    def _network(self, u: _User, dev: DeviceSpec, trip: tuple[float, float, str] | None) -> tuple[Network, int]:
        rng, w = self.rng, self.w
        if u.vpn and rng.random() < self.p.vpn_use:
            net = rng.choice(self.vpn_nets)
            return net, net.draw(rng)
        mobile_like = dev.kind in ("mobile", "bot")
        if trip is not None:
            if mobile_like and rng.random() < self.p.roaming_share:
                return u.carrier, self._carrier_ip(u)  # roaming: traffic exits through the home carrier
            net = w.isp(trip[2], rng)
            return net, net.draw(rng)
        r = rng.random()
        if mobile_like:
            if r < self.p.mobile_carrier_share:
                return u.carrier, self._carrier_ip(u)  # carrier-grade NAT: a new address almost every login
            if r < 0.97:
                return u.home, u.home_ip
        elif dev.kind == "desktop":
            if u.work is not None and r < 0.3:
                return u.work, u.work_ip
            if r < 0.95:
                return u.home, u.home_ip
        elif r < 0.95:
            return u.home, u.home_ip
        net = w.isp(u.country, rng)  # café, friend's Wi-Fi
        return net, net.draw(rng)

    def _carrier_ip(self, u: _User) -> int:
        rng = self.rng
        if u.carrier_ips and rng.random() < self.p.carrier_sticky:
            return u.carrier.draw_near(rng.choice(u.carrier_ips), rng, same_24=1.0)
        return u.carrier.draw(rng)

    # -- attacks -------------------------------------------------------------------------------------------------
    def probes(self, legit: list[Row], users: dict[str, _User]) -> list[Row]:
        rng, p = self.rng, self.p
        by_country: dict[str, list[int]] = {}
        for i, r in enumerate(legit):
            by_country.setdefault(r[3], []).append(i)
        seen: set[str] = set()
        seen_list: list[str] = []
        out: list[Row] = []
        for r in legit:
            uid = r[1]
            if uid not in seen:
                seen.add(uid)
                seen_list.append(uid)
                continue  # the victim needs earlier history for the probe to be evaluable
            if rng.random() >= p.probe_rate:
                continue
            t = r[0] + rng.expovariate(1 / (2 * DAY))
            if t >= self.end:
                continue
            if p.probe_victims == "users":
                uid = seen_list[rng.randrange(len(seen_list))]
            victim = users[uid]
            kind = rng.choice(("naive", "vpn", "targeted"))
            if kind == "naive":
                src = self._other(legit, range(len(legit)), uid)
                ip, country, asn, ua = src[2], src[3], src[4], src[5]
            elif kind == "vpn":
                src = self._other(legit, by_country[victim.country], uid)
                ip, country, asn = src[2], src[3], src[4]
                ua = self._other(legit, range(len(legit)), uid)[5]
            else:
                primary = victim.devices[max(range(len(victim.devices)), key=victim.device_w.__getitem__)]
                net = victim.carrier if primary.kind in ("mobile", "bot") else victim.home
                ip, country, asn = int_to_ip(net.draw(rng)), net.country, net.asn
                copy = new_device(primary.kind, rng, platform=primary.platform, browser=primary.browser,
                                  diversity=p.ua_diversity)
                if copy.kind == "bot":
                    copy = primary
                ua = copy.ua(self.day(t))
            out.append((t, uid, ip, country, asn, ua, False, True, True, kind))
        return out

    def _other(self, legit: list[Row], pool, uid: str) -> Row:  # type: ignore[no-untyped-def]
        for _ in range(20):
            r = legit[pool[self.rng.randrange(len(pool))]]
            if r[1] != uid:
                return r
        return r

    def campaigns(self, kind: str, total_rows: int, legit: list[Row], user_ids: list[str]) -> list[Row]:
        rng, w, p = self.rng, self.w, self.p
        out: list[Row] = []
        if total_rows <= 0:
            return out
        per = p.stuffing_campaign_rows if kind == "stuffing" else p.spraying_campaign_rows
        n_camp = max(1, round(total_rows / max(per, 1)))
        sizes = [rng.lognormvariate(0, 0.8) for _ in range(n_camp)]
        scale = total_rows / sum(sizes)
        for number, s in enumerate(sizes, 1):
            campaign = f"{kind}:{number}"  # no random draw: the same seed writes the same rows as before the column
            rows = max(1, round(s * scale))
            if kind == "stuffing":
                dur = rng.uniform(1, 12) * 3600
                residential = rng.random() < 0.6
                n_ips = max(1, rows // 3) if residential else rng.randint(5, 40)
                bot_ua = None if residential or rng.random() < 0.4 else new_device("bot", rng).ua(0)
            else:
                dur = rng.uniform(14, 42) * DAY
                residential = rng.random() < 0.5
                n_ips = rng.randint(3, 10)
                bot_ua = None
            start = rng.uniform(0, max(self.end - dur, 1))
            ips = []
            for _ in range(n_ips):
                if residential:
                    net = w.isp(rng.choice([c for c in ATTACK_COUNTRIES if c in w.isps]), rng)
                else:
                    net = rng.choice(w.hosting)
                ips.append((int_to_ip(net.draw(rng)), net.country, net.asn))
            ua_pool = [legit[rng.randrange(len(legit))][5] for _ in range(10)]
            unknown_pool: list[str] = []
            for _ in range(rows):
                t = start + rng.uniform(0, dur)
                ip, country, asn = rng.choice(ips)
                ua = bot_ua or (rng.choice(ua_pool) if not residential else legit[rng.randrange(len(legit))][5])
                if kind == "stuffing" and rng.random() < p.stuffing_unknown_share:
                    if unknown_pool and rng.random() < 0.1:
                        uid = rng.choice(unknown_pool)
                    else:
                        uid = self.new_uid()
                        unknown_pool.append(uid)
                    ok = False
                else:
                    uid = rng.choice(user_ids)
                    ok = rng.random() < (p.stuffing_success if kind == "stuffing" else p.spraying_success)
                out.append((t, uid, ip, country, asn, ua, ok, True, ok, kind, campaign))
        return out

    def benign_failures(self, legit: list[Row], n_typos: int, n_unknown: int) -> list[Row]:
        rng = self.rng
        out: list[Row] = []
        # Typos: the same user and context, seconds before one of their successful logins.
        for _ in range(n_typos):
            r = legit[rng.randrange(len(legit))]
            out.append((max(r[0] - rng.uniform(5, 120), 0.0), r[1], r[2], r[3], r[4], r[5], False, False, False, ""))
        # Unknown usernames typed by ordinary visitors: a benign context, an account that does not exist.
        recent: list[str] = []
        for _ in range(n_unknown):
            r = legit[rng.randrange(len(legit))]
            if recent and rng.random() < 0.3:
                uid = rng.choice(recent)
            else:
                uid = self.new_uid()
                recent.append(uid)
                if len(recent) > 1000:
                    recent.pop(0)
            t = min(max(r[0] + rng.uniform(-DAY, DAY), 0.0), self.end - 1)
            out.append((t, uid, r[2], r[3], r[4], r[5], False, False, False, ""))
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; lam is small (trips per user).
    if lam <= 0:
        return 0
    k, prod, limit = 0, rng.random(), math.exp(-lam)
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


@dataclass(frozen=True)
class SimSummary:
    rows: int
    users: int
    by_type: dict[str, int]
    success_share: float
    attack_ip_share: float
    unknown_share: float
    real_geo: bool


def simulate(params: SimParams, out: str | Path, geoip_dir: str | Path | None = None) -> SimSummary:
    world = build_world(geoip_dir, seed=params.seed)
    sim = _Sim(params, world)
    rng = sim.rng
    users: dict[str, _User] = {}
    legit: list[Row] = []
    for _ in range(params.users):
        u = sim.make_user()
        users[u.uid] = u
        legit.extend(sim.user_logins(u, logins_per_user(rng.random())))
    legit.sort()
    probes = sim.probes(legit, users)

    s = len(legit)
    total = s / params.success_share
    campaign_rows = max(params.attack_ip_share * total - len(probes), 0.0)
    spray = round(campaign_rows * params.spraying_share)
    stuff = round(campaign_rows) - spray
    unknown = max(round(params.unknown_account_share * total - stuff * params.stuffing_unknown_share), 0)
    typos = max(round(total - s - len(probes) - stuff - spray - unknown), 0)
    user_ids = list(users)
    rows = legit + probes
    rows += sim.campaigns("stuffing", stuff, legit, user_ids)
    rows += sim.campaigns("spraying", spray, legit, user_ids)
    rows += sim.benign_failures(legit, typos, unknown)
    rows.sort(key=lambda r: r[0])

    by_type: dict[str, int] = {}
    n_ok = n_attack = n_unknown = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow((*COLUMNS, ATTACK_TYPE_COLUMN, CAMPAIGN_COLUMN))
        for i, (t, uid, ip, country, asn, ua, ok, attack, ato, kind, *campaign) in enumerate(rows):
            info = parse_ua(ua)
            rtt = str(int(rng.lognormvariate(6.2, 0.6))) if rng.random() < 0.6 else ""
            writer.writerow((i, format_timestamp(START_TS + t), uid, rtt, ip, country, "-", "-", asn, ua, info.browser,
                             info.os, info.device_type, ok, attack, ato, kind, campaign[0] if campaign else ""))
            by_type[kind or "benign"] = by_type.get(kind or "benign", 0) + 1
            n_ok += ok
            n_attack += attack
            n_unknown += uid not in users
    n = len(rows)
    return SimSummary(n, len(users), by_type, n_ok / n, n_attack / n, n_unknown / n, world.real_data)
