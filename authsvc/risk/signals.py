"""Turn a :class:`LoginContext` into model features, and the non-LR signals into score terms.

Every signal function returns ``(term, Reason | None)`` so the engine can add terms and keep reasons in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .config import RiskConfig, VelocityRule
from .context import LoginContext, Reason
from .geo import GeoResolver, ip_network_fallback, ip_prefix
from .ua import UAInfo, parse_ua

__all__ = [
    "Features",
    "LastLogin",
    "extract_features",
    "hour_term",
    "impossible_travel_term",
    "velocity_terms",
    "haversine_km",
]

UNKNOWN_COUNTRY = "??"


@dataclass(slots=True)  # not frozen: built once per login on the hot path, frozen init is ~2x slower
class Features:
    ip_values: tuple[str, str, str, str]  # ip, /24|/48 prefix, ASN (or /16|/32 fallback), country
    ua_values: tuple[str, str, str, str]  # full UA string, browser+major, OS+version, device type
    hour: int  # UTC hour of day; a user's hours are compared with their own history, so UTC is enough
    country: str | None
    lat: float | None
    lon: float | None
    ua: UAInfo


@dataclass(slots=True)
class LastLogin:
    """What impossible travel needs from the previous successful login."""

    timestamp: float
    country: str | None
    lat: float | None
    lon: float | None


def extract_features(ctx: LoginContext, geo: GeoResolver | None) -> Features:
    info = geo.lookup(ctx.ip) if geo is not None and geo.configured else None
    asn = ctx.asn or (info.asn if info else None) or ip_network_fallback(ctx.ip)
    country = ctx.country or (info.country if info else None)
    ua = parse_ua(ctx.user_agent)
    # Hour from the epoch directly: cheaper than datetime and timezone-free.
    hour = int(ctx.timestamp // 3600) % 24
    return Features(
        ip_values=(ctx.ip, ip_prefix(ctx.ip), asn, country or UNKNOWN_COUNTRY),
        ua_values=(ctx.user_agent, ua.browser, ua.os, ua.device_type),
        hour=hour,
        country=country,
        lat=info.lat if info else None,
        lon=info.lon if info else None,
        ua=ua,
    )


def hour_term(
    hour: int, user_hours: Sequence[int], n_user: int, global_window: int, n_global: int, cfg: RiskConfig
) -> tuple[float, Reason | None]:
    """Unusual time of day for this user, relative to how common the hour is overall.

    Uses a ±1 h window (3 of 24 hours) with add-one smoothing over the 8 such windows, so one login at 09:00
    does not make 10:00 look alien. term = hour_weight · clip(log(p_global / p_user), 0, hour_cap).
    """
    if n_user < cfg.hour_min_history:
        return 0.0, None
    local = user_hours[hour - 1] + user_hours[hour] + user_hours[(hour + 1) % 24]  # hour-1 wraps via index -1
    if local * 8 >= n_user:
        # The user signs in around this hour at least as often as around any hour on average (3 of 24 hours):
        # whatever the global counts say, "unusual time" would be false (issue #12: four logins at 12:0x, then
        # "unusual time of day: 12:00").
        return 0.0, None
    p_user = (local + 1.0) / (n_user + 8.0)
    p_global = (global_window + 1.0) / (n_global + 8.0)
    ratio = math.log(p_global / p_user)
    if ratio <= 0:
        return 0.0, None
    term = cfg.hour_weight * min(ratio, cfg.hour_cap)
    return term, Reason("unusual_hour", f"unusual time of day: {hour:02d}:00 UTC, an hour you rarely sign in at",
                        term)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 6371.0 * 2 * math.asin(min(1.0, math.sqrt(a)))


def impossible_travel_term(
    feats: Features, ts: float, last: LastLogin | None, cfg: RiskConfig
) -> tuple[float, Reason | None]:
    """Compare with the previous successful login.

    With coordinates (a City-level mmdb): speed over max_travel_speed_kmh across at least min_travel_distance_km.
    Without (country-only data, or a replayed dataset): a country change within min_country_change_hours.
    The country rule cannot tell Oslo→Stockholm from Oslo→Sydney; that coarse limit is documented in docs/RISK.md.
    """
    if last is None or last.country is None or feats.country is None or last.country == feats.country:
        return 0.0, None
    hours = max(ts - last.timestamp, 0.0) / 3600.0
    if None not in (last.lat, last.lon, feats.lat, feats.lon):
        dist = haversine_km(last.lat, last.lon, feats.lat, feats.lon)  # type: ignore[arg-type]
        if dist < cfg.min_travel_distance_km or dist <= cfg.max_travel_speed_kmh * hours:
            return 0.0, None
        text = f"impossible travel: {last.country}→{feats.country}, {dist:.0f} km in {_fmt_hours(hours)}"
    else:
        if hours >= cfg.min_country_change_hours:
            return 0.0, None
        text = f"impossible travel: {last.country}→{feats.country} in {_fmt_hours(hours)}"
    w = cfg.impossible_travel_weight
    return w, Reason("impossible_travel", text, w)


def _fmt_hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h"


def velocity_terms(counters: Mapping[str, float] | None, rules: Sequence[VelocityRule]) -> tuple[float, list[Reason]]:
    if not counters:
        return 0.0, []
    total = 0.0
    reasons: list[Reason] = []
    grouped: dict[str, tuple[float, VelocityRule, float]] | None = None
    for rule in rules:
        value = counters.get(rule.counter)
        if value is None or value < rule.threshold or rule.threshold <= 0:
            continue
        term = rule.weight * min(rule.cap, 1.0 + math.log2(value / rule.threshold))
        if rule.group:  # only the largest term of a group counts; the first rule wins a tie
            if grouped is None:
                grouped = {}
            best = grouped.get(rule.group)
            if best is None or term > best[0]:
                grouped[rule.group] = (term, rule, value)
            continue
        total += term
        reasons.append(Reason(rule.code, rule.text.format(value=value), term))
    if grouped:
        for term, rule, value in grouped.values():
            total += term
            reasons.append(Reason(rule.code, rule.text.format(value=value), term))
    return total, reasons

