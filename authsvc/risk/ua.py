"""User-agent string → the hierarchy used by the model: browser+major, OS+version, device type.

Parsing uses ``ua-parser`` 1.x (``ua_parser.parse``), whose pure-Python resolver costs ~2 ms per new string,
so results are memoised: real traffic has a heavy-tailed but small set of distinct strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ua_parser

__all__ = ["UAInfo", "parse_ua", "DEVICE_TYPES"]

DEVICE_TYPES = ("mobile", "desktop", "tablet", "bot", "unknown")

# Families ua-parser reports for HTTP libraries and automation, which the RBA dataset counts as "bot".
_BOT_FAMILIES = frozenset(
    {
        "Python Requests", "python-requests", "curl", "Wget", "Go-http-client", "okhttp", "Java",
        "Apache-HttpClient", "HeadlessChrome", "PhantomJS", "Python-urllib", "aiohttp", "libwww-perl",
        "node-fetch", "axios", "Scrapy", "PostmanRuntime", "Electron",
    }
)
_BOT_WORDS = ("bot", "crawler", "spider", "headless", "scrapy", "python", "curl/", "wget/")
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS", "Firefox OS"})
_DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian"})


@dataclass(frozen=True, slots=True)
class UAInfo:
    browser: str  # "Chrome Mobile 90" - family + major, the dataset's "Browser Name and Version" granularity
    os: str  # "Android 11", "iOS 14.4", "Windows 10"
    device_type: str  # one of DEVICE_TYPES
    browser_family: str  # "Chrome Mobile" - used by the simulator's targeted attacker and in reason texts


def _version(*parts: str | None) -> str:
    out = []
    for p in parts:
        if p is None or p == "":
            break
        out.append(p)
    return ".".join(out)


@lru_cache(maxsize=65_536)
def parse_ua(ua: str) -> UAInfo:
    """Parse a user-agent string. Never raises; unknown parts come back as "Other"/"unknown"."""
    if not ua:
        return UAInfo("Other", "Other", "unknown", "Other")
    res = ua_parser.parse(ua)
    agent, os_, device = res.user_agent, res.os, res.device
    family = agent.family if agent else "Other"
    browser = f"{family} {agent.major}" if agent and agent.major else family
    os_family = os_.family if os_ else "Other"
    os_version = _version(os_.major, os_.minor) if os_ else ""
    os_name = f"{os_family} {os_version}" if os_version else os_family
    return UAInfo(browser, os_name, _device_type(ua, family, os_family, device), family)


def _device_type(ua: str, family: str, os_family: str, device: ua_parser.Device | None) -> str:
    low = ua.lower()
    if (device is not None and device.family == "Spider") or family in _BOT_FAMILIES:
        return "bot"
    if any(w in low for w in _BOT_WORDS):
        return "bot"
    brand = (device.brand or "") if device else ""
    dfam = device.family if device else ""
    if dfam == "iPad" or "Tablet" in brand or "tablet" in low or dfam.startswith("Kindle"):
        return "tablet"
    if os_family == "Android" and "mobile" not in low:
        # Android browsers drop the "Mobile" token on tablets - Google's documented convention.
        return "tablet"
    if os_family in _MOBILE_OS:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "unknown"
