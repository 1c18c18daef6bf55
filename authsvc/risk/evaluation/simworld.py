"""The simulator's world: countries, their ISPs / mobile carriers / hosting networks, and user-agent strings.

With real data (the ip-location-db ASN CSV + a country mmdb) every simulated IP lies in a real range of the ASN
written next to it, and that range geolocates to the country written next to it. Without data a synthetic,
deterministic world of fake ASNs with disjoint /16 blocks stands in, so the simulator always works.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..geo import AsnTable

__all__ = ["Network", "World", "build_world", "DeviceSpec", "new_device", "COUNTRY_WEIGHTS", "int_to_ip"]

# Home-country mix: NO 42 %, US 28 % as published; the remaining 30 % spread over plausible origins.
COUNTRY_WEIGHTS: dict[str, float] = {
    "NO": 0.42, "US": 0.28, "SE": 0.05, "DK": 0.03, "DE": 0.035, "GB": 0.035, "FR": 0.015, "PL": 0.015,
    "NL": 0.01, "ES": 0.01, "IT": 0.01, "FI": 0.01, "BR": 0.015, "IN": 0.015, "CA": 0.01, "AU": 0.005,
    "RU": 0.01, "TR": 0.005, "UA": 0.005, "CH": 0.005, "JP": 0.005, "BE": 0.005,
}
TRAVEL_WEIGHTS: dict[str, float] = {
    "ES": 0.18, "US": 0.1, "GB": 0.1, "DE": 0.1, "SE": 0.1, "DK": 0.08, "FR": 0.07, "IT": 0.07, "NO": 0.06,
    "TR": 0.05, "NL": 0.04, "PL": 0.03, "CH": 0.02,
}
# Residential-proxy and bot-net origins used by stuffing campaigns, besides the countries above.
ATTACK_COUNTRIES = ("US", "BR", "IN", "RU", "VN", "ID", "CN", "TR", "UA", "DE", "FR", "NL", "PL", "GB")
UTC_OFFSET: dict[str, float] = {
    "NO": 1, "SE": 1, "DK": 1, "DE": 1, "FR": 1, "PL": 1, "NL": 1, "ES": 1, "IT": 1, "CH": 1, "BE": 1, "GB": 0,
    "FI": 2, "UA": 2, "RU": 3, "TR": 3, "IN": 5.5, "JP": 9, "AU": 10, "BR": -3, "CA": -5, "US": -6,
    "VN": 7, "ID": 7, "CN": 8,
}

# Consumer ISPs and mobile carriers for the main countries (ASNs checked against the shipped data). Other
# countries take their largest non-hosting, non-institutional ASNs.
_CURATED: dict[str, tuple[list[int], list[int]]] = {
    "NO": ([2119, 25400, 29695, 2116, 15659], [2119, 25400]),
    "US": ([7922, 7018, 701, 20115, 11427, 22773, 209, 5650], [21928, 6167, 20057]),
    "SE": ([3301, 1257, 8434, 29518, 8473], [3301, 1257, 44034]),
    "DK": ([3292, 9158, 3308], [3292, 9158]),
    "DE": ([3320, 3209, 6805, 8881], [3320, 6805]),
    "GB": ([2856, 5089, 5607, 13285], [25135, 206067]),
}
_HOSTING_ASNS = frozenset({16509, 14618, 8075, 16276, 24940, 14061, 20473, 9009, 212238, 60068, 136787, 63949, 396982, 15169})
_HOSTING_WORDS = ("hosting", "cloud", "server", "datacenter", "data center", "vps", "colo", "amazon", "microsoft",
                  "google", "ovh", "hetzner", "digitalocean", "linode", "leaseweb", "m247", "datacamp", "akamai",
                  "oracle", "alibaba", "tencent", "choopa", "constant company", "packethub")
_INSTITUTION_WORDS = ("department", "dod ", "government", "ministry", "univers", "college", "school", "research",
                      "education", "ensino", "military", "army", "navy", "bank", "hospital", "ford", "apple", "ericsson",
                      "saab", "equinor", "region ", "state of", "county", "kunnskap", "sunet", "vetenskap",
                      "nrk", "rikskringkasting", "ibm", "hewlett", "oracle", "intel")


def int_to_ip(v: int) -> str:
    return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"


@dataclass
class Network:
    """One ASN's address space within one country."""

    asn: int
    org: str
    country: str
    kind: str  # "isp" | "mobile" | "hosting"
    starts: list[int] = field(default_factory=list)
    cum: list[int] = field(default_factory=list)  # cumulative range sizes, for size-weighted draws

    def add_range(self, start: int, end: int) -> None:
        self.starts.append(start)
        self.cum.append((self.cum[-1] if self.cum else 0) + end - start + 1)

    @property
    def size(self) -> int:
        return self.cum[-1] if self.cum else 0

    def draw(self, rng: random.Random) -> int:
        x = rng.randrange(self.size)
        i = bisect.bisect_right(self.cum, x)
        before = self.cum[i - 1] if i else 0
        return self.starts[i] + (x - before)

    def draw_near(self, ip: int, rng: random.Random, same_24: float = 0.5) -> int:
        """A new address for the same subscriber: often the same /24 (DHCP pool), else anywhere in the ASN."""
        if rng.random() < same_24:
            cand = (ip & ~0xFF) | rng.randrange(1, 255)
            i = bisect.bisect_right(self.starts, cand) - 1
            if i >= 0 and cand - self.starts[i] < self.cum[i] - (self.cum[i - 1] if i else 0):
                return cand
        return self.draw(rng)


@dataclass
class World:
    isps: dict[str, list[Network]]
    isp_weights: dict[str, list[float]]
    mobile: dict[str, list[Network]]
    hosting: list[Network]
    real_data: bool
    asn_table: AsnTable | None = None  # the full table, when built from real data (tests check IPs against it)

    def countries(self) -> list[str]:
        return list(self.isps)

    def isp(self, country: str, rng: random.Random) -> Network:
        return rng.choices(self.isps[country], self.isp_weights[country])[0]

    def carrier(self, country: str, rng: random.Random) -> Network:
        return rng.choice(self.mobile[country])


def build_world(geoip_dir: str | Path | None, seed: int = 0) -> World:
    if geoip_dir is not None:
        d = Path(geoip_dir).resolve()
        csv_path, mmdb_path = d / "asn-ipv4-num.csv.gz", d / "geo-whois-asn-country.mmdb"
        if csv_path.exists() and mmdb_path.exists():
            return _real_world(csv_path, mmdb_path)
    return _synthetic_world(seed)


@lru_cache(maxsize=2)
def _real_world(csv_path: Path, mmdb_path: Path) -> World:
    """Cached: loading and geolocating 400k ranges takes seconds, and the result is read-only."""
    return _load_real_world(csv_path, mmdb_path)


def _all_countries() -> list[str]:
    return sorted(set(COUNTRY_WEIGHTS) | set(TRAVEL_WEIGHTS) | set(ATTACK_COUNTRIES))


def _load_real_world(csv_path: Path, mmdb_path: Path) -> World:
    import maxminddb

    wanted = set(_all_countries())
    table = AsnTable.from_csv(csv_path)
    nets: dict[tuple[str, int], Network] = {}
    with maxminddb.open_database(str(mmdb_path)) as reader:
        for start, end, asn, org in table.ranges(4):
            rec = reader.get(int_to_ip(start))
            country = rec.get("country_code") if isinstance(rec, dict) else None
            if country not in wanted:
                continue
            net = nets.get((country, asn))
            if net is None:
                net = nets[(country, asn)] = Network(asn, org, country, "isp")
            net.add_range(start, end)
    world = _assemble(nets, real=True)
    world.asn_table = table
    return world


def _assemble(nets: dict[tuple[str, int], Network], real: bool) -> World:
    isps: dict[str, list[Network]] = {}
    weights: dict[str, list[float]] = {}
    mobile: dict[str, list[Network]] = {}
    hosting: list[Network] = []
    for c in _all_countries():
        here = {asn: n for (cc, asn), n in nets.items() if cc == c}
        for asn, n in here.items():
            low = n.org.lower()
            if asn in _HOSTING_ASNS or any(w in low for w in _HOSTING_WORDS):
                if n.size >= 1024:
                    n.kind = "hosting"
                    hosting.append(n)
        chosen, mob = [], []
        if c in _CURATED:
            isp_asns, mob_asns = _CURATED[c]
            chosen = [here[a] for a in isp_asns if a in here]
            mob = [here[a] for a in mob_asns if a in here]
        if not chosen:
            cands = [n for n in here.values() if n.kind != "hosting"
                     and not any(w in n.org.lower() for w in _INSTITUTION_WORDS)]
            cands.sort(key=lambda n: -n.size)
            chosen, mob = cands[:6], cands[:2]
        if not chosen:
            continue
        isps[c] = chosen
        # Market share grows slower than address space (big ISPs hoard legacy blocks): weight by size^0.5.
        weights[c] = [max(n.size, 1) ** 0.5 for n in chosen]
        mobile[c] = mob or chosen[:1]
        for n in mob:
            if n.kind == "isp":
                n.kind = "mobile"
    return World(isps, weights, mobile, hosting, real)


def _synthetic_world(seed: int) -> World:
    rng = random.Random(seed)
    # Disjoint /16 blocks from public-looking space; ASNs from the private-use range so they cannot be mistaken
    # for real ones.
    blocks = [(a << 24) | (b << 16) for a in range(11, 224) for b in range(0, 256, 7) if a not in (100, 127, 169, 172, 192, 198, 203)]
    rng.shuffle(blocks)
    nets: dict[tuple[str, int], Network] = {}
    asn = 64512
    for c in _all_countries():
        for kind, count in (("isp", 5), ("hosting", 2)):
            for k in range(count):
                org = f"{c} {'Telecom' if kind == 'isp' else 'Hosting'} {k + 1}"
                net = Network(asn, org if kind == "isp" else org + " cloud", c, kind)
                for _ in range(4 if kind == "isp" else 1):
                    start = blocks.pop()
                    net.add_range(start, start + 0xFFFF)
                nets[(c, asn)] = net
                asn += 1
    return _assemble(nets, real=False)


# ----------------------------------------------------------------------------------------------------------------
# User agents. Browser versions follow the 2020–21 release cadence so that strings age realistically: a user's
# UA changes every few weeks even on the same device, which is exactly what the UA hierarchy has to absorb.

_ANDROID_MODELS = ("SM-G991B", "SM-A515F", "SM-G973F", "SM-A125F", "Pixel 4a", "Pixel 5", "SM-N986B", "Redmi Note 8 Pro",
                   "ONEPLUS A6013", "moto g(8)", "HUAWEI P30", "SM-A715F", "Nokia 7.2", "SM-G960F", "CPH2021")
_ANDROID_TABLETS = ("SM-T510", "SM-T860", "Lenovo TB-X606F", "SM-P610")
_IOS_RELEASES = ((0, 13, 3), (84, 13, 4), (140, 13, 5), (197, 13, 6), (260, 14, 0), (310, 14, 2), (349, 14, 3), (391, 14, 4), (480, 14, 5))
_BOT_UAS = ("python-requests/2.{v}.0", "curl/7.{v}.0", "Go-http-client/1.1", "okhttp/4.{v}.0")


def _chrome(day: float) -> int:
    return 80 + int(max(day - 34, 0) / 45)  # days since 2020-01-01


def _firefox(day: float) -> int:
    return 72 + int(day / 30)


def _ios(day: float) -> tuple[int, int]:
    major, minor = 13, 3
    for d, ma, mi in _IOS_RELEASES:
        if day >= d:
            major, minor = ma, mi
    return major, minor


@dataclass
class DeviceSpec:
    kind: str  # mobile | desktop | tablet | bot
    platform: str  # android | ios | windows | mac | linux | cros | ipad | atab | bot
    browser: str  # chrome | samsung | firefox | safari | crios | edge | bot
    model: str = ""
    android: int = 10
    lag: int = 0  # how many releases behind the newest this device runs
    mac_patch: int = 7
    bot_template: str = ""
    ios_patch: int = 0  # iOS point releases (14.4.1, 14.4.2) show up in the UA string
    # UA diversity knobs (world "b"); the defaults give world "a"'s strings unchanged.
    patch_salt: int = 0  # Chrome build patch differs per device (staged roll-outs, channels)
    inapp: str = ""  # "fb" | "ig": an in-app browser token appended (Facebook / Instagram webviews)
    winver: str = "10.0"  # Windows NT version

    def family(self) -> tuple[str, str, str]:
        return self.kind, self.platform, self.browser

    def ua(self, day: float) -> str:
        base = self._ua(day)
        if self.inapp == "fb":
            return f"{base} [FBAN/FB4A;FBAV/{290 + int(day / 14)}.0.0.{(self.patch_salt % 40) + 10}.120;]"
        if self.inapp == "ig":
            return f"{base} Instagram {160 + int(day / 10)}.0.0.{(self.patch_salt % 30) + 5}.120"
        return base

    def _ua(self, day: float) -> str:
        cv = max(_chrome(day) - self.lag, 70)
        fv = max(_firefox(day) - self.lag, 60)
        build = 3987 + 50 * (cv - 80)
        patch = (cv * 37 + self.patch_salt) % 200
        chrome_tok = f"Chrome/{cv}.0.{build}.{patch}"
        ma, mi = _ios(day - 20 * self.lag)
        p = self.platform
        if p == "android":
            base = f"Mozilla/5.0 (Linux; Android {self.android}; {self.model}) AppleWebKit/537.36 (KHTML, like Gecko)"
            if self.browser == "samsung":
                return f"{base} SamsungBrowser/{11 + int(day / 120) - min(self.lag, 1)}.0 Chrome/{cv - 4}.0.{build - 200}.{patch} Mobile Safari/537.36"
            if self.browser == "firefox":
                return f"Mozilla/5.0 (Android {self.android}; Mobile; rv:{fv}.0) Gecko/{fv}.0 Firefox/{fv}.0"
            return f"{base} {chrome_tok} Mobile Safari/537.36"
        if p == "atab":
            return f"Mozilla/5.0 (Linux; Android {self.android}; {self.model}) AppleWebKit/537.36 (KHTML, like Gecko) {chrome_tok} Safari/537.36"
        if p in ("ios", "ipad"):
            dev = "iPhone; CPU iPhone OS" if p == "ios" else "iPad; CPU OS"
            ver = (f"{ma}_{mi}" if mi or self.ios_patch else f"{ma}") + (f"_{self.ios_patch}" if self.ios_patch else "")
            if self.browser == "crios":
                return f"Mozilla/5.0 ({dev} {ver} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{cv}.0.{build}.{patch} Mobile/15E148 Safari/604.1"
            return f"Mozilla/5.0 ({dev} {ver} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{ma}.{mi} Mobile/15E148 Safari/604.1"
        if p == "windows":
            if self.browser == "firefox":
                return f"Mozilla/5.0 (Windows NT {self.winver}; Win64; x64; rv:{fv}.0) Gecko/20100101 Firefox/{fv}.0"
            tail = f" Edg/{cv}.0.{700 + cv}.{patch % 90}" if self.browser == "edge" else ""
            return f"Mozilla/5.0 (Windows NT {self.winver}; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) {chrome_tok} Safari/537.36{tail}"
        if p == "mac":
            osv = f"10_15_{self.mac_patch}"
            if self.browser == "safari":
                sv = "14.0.3" if day > 260 else "13.1.2"
                return f"Mozilla/5.0 (Macintosh; Intel Mac OS X {osv}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{sv} Safari/605.1.15"
            if self.browser == "firefox":
                return f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{fv}.0) Gecko/20100101 Firefox/{fv}.0"
            return f"Mozilla/5.0 (Macintosh; Intel Mac OS X {osv}) AppleWebKit/537.36 (KHTML, like Gecko) {chrome_tok} Safari/537.36"
        if p == "linux":
            return f"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{fv}.0) Gecko/20100101 Firefox/{fv}.0"
        if p == "cros":
            return f"Mozilla/5.0 (X11; CrOS x86_64 {13000 + 100 * (cv - 80)}.0.0) AppleWebKit/537.36 (KHTML, like Gecko) {chrome_tok} Safari/537.36"
        return self.bot_template


def new_device(kind: str, rng: random.Random, *, platform: str | None = None, browser: str | None = None,
               diversity: float = 0.0) -> DeviceSpec:
    """A random device of the given kind; platform/browser can be pinned (the targeted attacker copies them).

    ``diversity`` > 0 (world "b") draws from a much larger model list, salts build patches per device and adds
    in-app browsers; 0 consumes exactly the random draws it always did.
    """
    dev = _new_device(kind, rng, platform, browser)
    if diversity > 0 and dev.kind != "bot":
        if rng.random() < diversity:
            dev.patch_salt = rng.randrange(1, 200)
        if dev.platform in ("android", "atab") and rng.random() < diversity:
            dev.model = rng.choice(_MANY_ANDROID_MODELS)
        if dev.kind == "mobile" and rng.random() < 0.25 * diversity:
            dev.inapp = rng.choice(("fb", "ig"))
        if dev.platform == "windows" and rng.random() < 0.3 * diversity:
            dev.winver = rng.choice(("6.1", "6.3"))
    return dev


# ~600 plausible Android model names for the diverse world (Samsung, Xiaomi, Oppo, Motorola, ... numbering).
_MANY_ANDROID_MODELS = tuple(
    [f"SM-{s}{n}{v}" for s in ("A", "G", "M", "N", "T") for n in range(100, 1000, 37) for v in ("F", "B", "U")]
    + [f"Redmi Note {n}{t}" for n in range(5, 12) for t in ("", " Pro", "S", "T")]
    + [f"M{y}{n:02d}J{m}G" for y in (19, 20, 21) for n in range(1, 13) for m in (15, 19, 20)]
    + [f"CPH{n}" for n in range(1900, 2300, 9)]
    + [f"moto {x}({g})" for x in ("g", "e", "g power", "g stylus") for g in range(6, 11)]
    + [f"Pixel {n}{t}" for n in range(2, 7) for t in ("", "a", " XL")]
)


def _new_device(kind: str, rng: random.Random, platform: str | None, browser: str | None) -> DeviceSpec:
    lag = rng.choices((0, 1, 2, 5), (0.6, 0.25, 0.1, 0.05))[0]
    if kind == "mobile":
        platform = platform or rng.choices(("android", "ios"), (0.5, 0.5))[0]
        if platform == "android":
            browser = browser or rng.choices(("chrome", "samsung", "firefox"), (0.75, 0.2, 0.05))[0]
            return DeviceSpec(kind, platform, browser, rng.choice(_ANDROID_MODELS), rng.choice((9, 10, 10, 11)), lag)
        browser = browser or rng.choices(("safari", "crios"), (0.9, 0.1))[0]
        return DeviceSpec(kind, platform, browser, "iPhone", lag=lag, ios_patch=rng.choices((0, 1, 2), (0.5, 0.35, 0.15))[0])
    if kind == "tablet":
        platform = platform or rng.choices(("ipad", "atab"), (0.65, 0.35))[0]
        if platform == "ipad":
            return DeviceSpec(kind, platform, browser or "safari", "iPad", lag=lag, ios_patch=rng.choice((0, 1)))
        return DeviceSpec(kind, platform, browser or "chrome", rng.choice(_ANDROID_TABLETS), rng.choice((9, 10, 11)), lag)
    if kind == "desktop":
        platform = platform or rng.choices(("windows", "mac", "linux", "cros"), (0.7, 0.2, 0.05, 0.05))[0]
        if platform == "windows":
            browser = browser or rng.choices(("chrome", "edge", "firefox"), (0.65, 0.2, 0.15))[0]
        elif platform == "mac":
            browser = browser or rng.choices(("safari", "chrome", "firefox"), (0.5, 0.4, 0.1))[0]
        elif platform == "linux":
            browser = "firefox"
        else:
            browser = "chrome"
        return DeviceSpec(kind, platform, browser, lag=lag, mac_patch=rng.choice((5, 6, 7, 7)))
    template = rng.choice(_BOT_UAS).replace("{v}", str(rng.randrange(20, 28)))
    return DeviceSpec("bot", "bot", "bot", bot_template=template)
