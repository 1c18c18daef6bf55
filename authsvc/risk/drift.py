"""Continuous session risk: is this use of a session still the browser that signed in?

A session remembers the context it was born in (network prefix, ASN, country, browser family + OS); every use is
compared with it and with the previous use. This is the risk engine's judgement applied after the login, with the
same plain-words reasons as the login receipts. Pure function, no I/O: the session check gathers the fields in the
one Redis round trip it already makes.

Decisions (most severe wins):

| what | action | why |
|---|---|---|
| another browser family or OS than the session was born in | ``end`` | a cookie copied into another browser (infostealer loot); a browser update keeps family and OS |
| ``PARALLEL_SWITCHES`` changes of network within ``PARALLEL_WINDOW`` seconds | ``end`` | two places taking turns: owner + thief (a phone leaving and re-joining Wi-Fi makes one or two) |
| a new ASN within ``AITM_WINDOW`` seconds of the sign-in, to or from a hosting network | ``reauth`` | the phishing-proxy signature: the proxy (a cloud host) logs in, the attacker replays the cookie from elsewhere minutes later; a phone moving between Wi-Fi and its carrier is not it |
| a country other than the session's birth country | ``reauth`` | a session stolen and used abroad; the owner travelling signs in again once |

``reauth`` is the step-up: a session is suspended in place until its owner re-proves the account's strongest factor
(authsvc.sessions.StepUpRequired, the /mfa/resume page; RFC 9470's challenge for bearer uses). A refresh family has no
step-up short of signing in again, so there ``reauth`` refuses. ``end`` is a takeover signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

AITM_WINDOW = 15 * 60
PARALLEL_WINDOW = 120
PARALLEL_SWITCHES = 3

ALLOW, REAUTH, END = "allow", "reauth", "end"
_RANK = {ALLOW: 0, REAUTH: 1, END: 2}


@dataclass(frozen=True)
class Birth:
    prefix: str = ""
    browser: str = ""  # "Chrome|Windows": family and OS family, no versions
    asn: str = ""
    country: str = ""
    created: float = 0.0
    hosting: bool = False  # born on a cloud/hosting network (where phishing proxies run)


@dataclass(frozen=True)
class Use:
    prefix: str = ""
    browser: str = ""
    asn: str = ""  # filled by the caller only when the prefix differs from the birth prefix (the rare path)
    country: str = ""
    now: float = 0.0
    switches: int = 0  # changes of network within the current PARALLEL_WINDOW, this use included
    hosting: bool = False


@dataclass(frozen=True)
class DriftReason:
    code: str
    text: str


@dataclass(frozen=True)
class Drift:
    action: str
    reasons: tuple[DriftReason, ...] = ()


def assess(birth: Birth, use: Use) -> Drift:
    reasons: list[tuple[str, DriftReason]] = []
    if birth.browser and use.browser != birth.browser:  # no user agent at all, when the sign-in had one, counts too
        was = birth.browser.replace("|", " on ")
        now = use.browser.replace("|", " on ") if use.browser else "a client that sends no browser name"
        reasons.append((END, DriftReason("browser_changed",
                                         f"the session was signed in with {was} and then used from {now}")))
    if use.switches >= PARALLEL_SWITCHES:
        reasons.append((END, DriftReason("two_networks",
                                         "the session was used from two networks at the same time")))
    moved = bool(use.prefix and birth.prefix and use.prefix != birth.prefix)
    if (moved and birth.asn and use.asn and use.asn != birth.asn and use.now - birth.created <= AITM_WINDOW
            and (birth.hosting or use.hosting)):
        minutes = max(1, int((use.now - birth.created) // 60))
        reasons.append((REAUTH, DriftReason(
            "new_network_soon", f"the session moved to another provider's network {minutes} min after sign-in")))
    if moved and birth.country and use.country and use.country != birth.country:
        reasons.append((REAUTH, DriftReason(
            "new_country", f"the session was signed in from {birth.country} and then used from {use.country}")))
    if not reasons:
        return Drift(ALLOW)
    action = max((a for a, _ in reasons), key=_RANK.__getitem__)
    return Drift(action, tuple(r for _, r in reasons))


# Cloud and hosting networks (a heuristic: well-known ASNs and words in the operator's ASN file's organisation names).
_HOSTING_ASNS = frozenset({"AS16509", "AS14618", "AS8075", "AS16276", "AS24940", "AS14061", "AS20473", "AS9009",
                           "AS212238", "AS60068", "AS136787", "AS63949", "AS396982", "AS15169", "AS13335",
                           "AS47583", "AS51167", "AS31898", "AS45102", "AS37963"})
_HOSTING_WORDS = ("hosting", "cloud", "server", "datacenter", "data center", "vps", "colo", "amazon", "microsoft",
                  "digitalocean", "ovh", "hetzner", "linode", "vultr", "contabo", "m247", "leaseweb")


def is_hosting(asn: str | None, org: str | None) -> bool:
    if asn and asn in _HOSTING_ASNS:
        return True
    low = (org or "").lower()
    return any(w in low for w in _HOSTING_WORDS)


@lru_cache(maxsize=65_536)
def browser_key(user_agent: str | None) -> str:
    """Browser family and OS family of a user agent (versions left out: updates must not look like theft)."""
    if not user_agent:
        return ""
    from authsvc.risk.ua import parse_ua

    info = parse_ua(user_agent[:512])
    os_family = info.os.split(" ")[0] if info.os else "Other"
    return f"{info.browser_family}|{os_family}"


@lru_cache(maxsize=65_536)
def network_of(ip: str | None) -> str:
    """The /24 or /48 of an address ("" if none), memoised: the hot path sees the same addresses again and again."""
    from authsvc.defense import prefix_of

    return (prefix_of(ip) or "") if ip else ""


# --- refresh-token families (public clients) ---------------------------------------------------------------------
# A public client's refresh family remembers the network it was born on (the request that redeemed the code or the
# device code), packed in one short string kept with the grant: in SQL (``oauth_grants.birth``), in the grant's Redis
# twin and in each access token's record, so the refresh and introspection paths read it with what they already read.
# The browser family is not part of it: a native app's user agent is its HTTP library, not a browser.
_PACK_VERSION = "1"


def pack_birth(prefix: str, asn: str, country: str, created: float, hosting: bool) -> str:
    """"1|<prefix>|<asn>|<country>|<unix time>|<h>": the birth network of a refresh family ("" without a prefix)."""
    if not prefix:
        return ""
    return "|".join((_PACK_VERSION, prefix, asn or "", country or "", str(int(created)), "1" if hosting else ""))


def unpack_birth(packed: str | None) -> Birth | None:
    parts = (packed or "").split("|")
    if len(parts) != 6 or parts[0] != _PACK_VERSION or not parts[1]:
        return None
    try:
        created = float(parts[4])
    except ValueError:
        return None
    return Birth(prefix=parts[1], asn=parts[2], country=parts[3], created=created, hosting=parts[5] == "1")


def assess_token_use(packed: str | None, ip: str | None, now: float, geo_of) -> Drift:
    """Drift of one use (refresh, forwarded introspection) of a token family born at ``packed``: the same
    :func:`assess`, with no browser and no parallel-use count (a token has neither). ``geo_of(ip)`` (GeoInfo or
    None) is called only when the use's network prefix differs from the birth prefix: the owner's own refreshes from
    the network they signed in on cost no lookup."""
    birth = unpack_birth(packed)
    prefix = network_of(ip)
    if birth is None or not prefix or prefix == birth.prefix:
        return Drift(ALLOW)
    asn = country = ""
    hosting = False
    g = geo_of(ip) if geo_of is not None else None
    if g:
        asn, country, hosting = str(g.asn or ""), g.country or "", is_hosting(g.asn, g.org)
    return assess(birth, Use(prefix=prefix, asn=asn, country=country, now=now, hosting=hosting))
