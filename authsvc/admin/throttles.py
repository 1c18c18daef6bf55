"""Read the Redis throttle marks (``th:{<entity>}:<suffix>``, layout in authsvc/defense/redis_throttle.py) for the
operator: what is blocked or counting right now, with its counter and time left.

Reads are a SCAN (never KEYS) in batches with one pipeline per batch (HyperLogLogs too, except on a Cluster),
capped at ``limit`` keys, so the page stays cheap on a large Redis. Accounts and passwords appear only as keyed hashes; the panel shows them as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import has_request_context
from flask_babel import gettext
from redis.cluster import RedisCluster

from authsvc.i18n import N_

KEY = re.compile(r"^th:\{(?P<tag>[^}]*)\}(?::(?P<suffix>[a-z]+))?$")

KIND_TEXT = {"a": N_("account"), "p": N_("account × IP"), "ip": N_("IP address"), "pfx": N_("network prefix"),
             "asn": N_("ASN"), "pw": N_("password (keyed hash)"), "p32": N_("IPv6 /32 network"),
             "pk": N_("account × network, correct password stopped")}
SUFFIX_TEXT = {
    None: N_("failures (account × IP)"), "f": N_("failures"), "sf": N_("failures in spray window"),
    "u": N_("distinct accounts tried"), "x": N_("failures on unknown accounts"), "b": N_("blocked (spray)"),
    "c": N_("consecutive failures"), "fu": N_("failures from unfamiliar places"),
    "ff": N_("failures from familiar places"), "lu": N_("locked (unfamiliar places)"),
    "lf": N_("locked (familiar places)"), "known": N_("familiar places (not a block)"),
}
BLOCK_SUFFIXES = {"b", "lu", "lf"}

# The limiter named in a 429 (``Throttled.scope``), in words for the dashboard's refusals table.
SCOPE_TEXT = {
    "account_ip": N_("account × IP failures"), "ip": N_("IP address failures"), "pfx": N_("network prefix failures"),
    "asn": N_("ASN failures"), "ip_spray": N_("spray from an IP"), "pfx_spray": N_("spray from a network"),
    "asn_spray": N_("spray from an ASN"), "password_spray": N_("one password across accounts"),
    "account": N_("account lock (growing delay)"),
    "account_failure_cap": N_("consecutive-failure cap (reset required)"),
    "global_unfamiliar": N_("service-wide budget for unfamiliar attempts"), "oauth": N_("OAuth client quota"),
}


def _shown(text: str) -> str:
    """A marked text in the viewer's language (in a request), else as written. Unknown codes stay as they are."""
    return gettext(text) if has_request_context() else text


def kind_text(kind: str) -> str:
    return _shown(KIND_TEXT[kind]) if kind in KIND_TEXT else kind


def scope_texts() -> dict[str, str]:
    """SCOPE_TEXT in the viewer's language (the dashboard's refusals table)."""
    return {k: _shown(v) for k, v in SCOPE_TEXT.items()}


@dataclass(frozen=True)
class Mark:
    key: str
    kind: str
    entity: str
    suffix: str | None
    value: int
    ttl: int

    @property
    def kind_text(self) -> str:
        return kind_text(self.kind)

    @property
    def what(self) -> str:
        return _shown(SUFFIX_TEXT[self.suffix]) if self.suffix in SUFFIX_TEXT else (self.suffix or "")

    @property
    def tag(self) -> str:
        return f"{self.kind}:{self.entity}"


def parse_key(key: str) -> tuple[str, str, str | None] | None:
    m = KEY.match(key)
    if not m or ":" not in m.group("tag"):
        return None
    kind, entity = m.group("tag").split(":", 1)
    return kind, entity, m.group("suffix")


def scan(redis, *, limit: int = 2000) -> list[Mark]:
    marks: list[Mark] = []
    batch: list[str] = []

    def flush():
        if not batch:
            return
        pipe = redis.pipeline(transaction=False)
        for k in batch:
            pipe.type(k)
            pipe.ttl(k)
        res = pipe.execute()
        pipe = redis.pipeline(transaction=False)
        for i, k in enumerate(batch):
            t = res[2 * i]
            if t == "set":
                pipe.scard(k)
            elif t == "string":
                pipe.get(k)
            else:
                pipe.exists(k)
        values = pipe.execute()
        for i, k in enumerate(batch):
            parsed = parse_key(k)
            if parsed is None:
                continue
            try:
                value = int(values[i] or 0)
            except (TypeError, ValueError):
                value = 0
            ttl = int(res[2 * i + 1])
            if ttl == -2:  # expired between SCAN and TTL
                continue
            marks.append(Mark(k, parsed[0], parsed[1], parsed[2], value, ttl))
        batch.clear()

    hlls: list[str] = []

    def flush_hlls():
        """HyperLogLogs (a string to TYPE, but their value is a count): PFCOUNT and TTL of a batch in one pipeline;
        on a Redis Cluster, whose pipelines refuse PFCOUNT, two plain calls per key."""
        if not hlls:
            return
        if isinstance(redis, RedisCluster):
            res = [x for k in hlls for x in (redis.pfcount(k), redis.ttl(k))]
        else:
            pipe = redis.pipeline(transaction=False)
            for k in hlls:
                pipe.pfcount(k)
                pipe.ttl(k)
            res = pipe.execute()
        for i, k in enumerate(hlls):
            parsed, n, ttl = parse_key(k), res[2 * i], res[2 * i + 1]
            if parsed and ttl != -2:
                marks.append(Mark(k, parsed[0], parsed[1], parsed[2], int(n), int(ttl)))
        hlls.clear()

    for key in redis.scan_iter(match="th:*", count=500):
        (hlls if key.endswith(":u") else batch).append(key)
        if len(batch) >= 200:
            flush()
        if len(hlls) >= 200:
            flush_hlls()
        if len(marks) + len(batch) + len(hlls) >= limit:
            break
    flush()
    flush_hlls()
    return marks


def in_force(marks: list[Mark], settings) -> list[Mark]:
    """Marks that refuse logins now: block keys, and counters at or over their limit."""
    limits = {("p", None): settings.throttle_pair_limit, ("ip", "f"): settings.throttle_ip_limit,
              ("pfx", "f"): settings.throttle_prefix_limit, ("asn", "f"): settings.throttle_asn_limit,
              ("a", "c"): settings.account_failure_cap, ("p32", "f"): settings.throttle_prefix32_limit,
              ("pk", None): settings.throttle_proven_limit}
    out = []
    for m in marks:
        if m.suffix in BLOCK_SUFFIXES:
            out.append(m)
            continue
        limit = limits.get((m.kind, m.suffix))
        if limit is not None and m.value >= limit:
            out.append(m)
    return sorted(out, key=lambda m: -m.ttl)


def unblock(redis, tag: str) -> int:
    """Delete every mark of one entity (``ip:1.2.3.4``, ``a:<hash>`` …) except the familiar-places set."""
    if not tag or "}" in tag or "*" in tag or "?" in tag or "[" in tag:
        return 0
    keys = [k for k in redis.scan_iter(match=f"th:{{{tag}}}*", count=500) if not k.endswith(":known")]
    return redis.delete(*keys) if keys else 0
