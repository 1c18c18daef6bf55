"""Read the Redis throttle marks (``th:{<entity>}:<suffix>``, layout in authsvc/defense/redis_throttle.py) for the
operator: what is blocked or counting right now, with its counter and time left.

Reads are a SCAN (never KEYS) in batches with one pipeline per batch (HyperLogLogs too, except on a Cluster),
capped at ``limit`` keys, so the page stays cheap on a large Redis. Accounts and passwords appear only as keyed hashes; the panel shows them as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis.cluster import RedisCluster

KEY = re.compile(r"^th:\{(?P<tag>[^}]*)\}(?::(?P<suffix>[a-z]+))?$")

KIND_TEXT = {"a": "account", "p": "account × IP", "ip": "IP address", "pfx": "network prefix", "asn": "ASN",
             "pw": "password (keyed hash)", "p32": "IPv6 /32 network",
             "pk": "account × network, correct password stopped"}
SUFFIX_TEXT = {
    None: "failures (account × IP)", "f": "failures", "sf": "failures in spray window", "u": "distinct accounts tried",
    "x": "failures on unknown accounts", "b": "blocked (spray)", "c": "consecutive failures",
    "fu": "failures from unfamiliar places", "ff": "failures from familiar places", "lu": "locked (unfamiliar places)",
    "lf": "locked (familiar places)", "known": "familiar places (not a block)",
}
BLOCK_SUFFIXES = {"b", "lu", "lf"}

# The limiter named in a 429 (``Throttled.scope``), in words for the dashboard's refusals table.
SCOPE_TEXT = {
    "account_ip": "account × IP failures", "ip": "IP address failures", "pfx": "network prefix failures",
    "asn": "ASN failures", "ip_spray": "spray from an IP", "pfx_spray": "spray from a network",
    "asn_spray": "spray from an ASN", "password_spray": "one password across accounts",
    "account": "account lock (growing delay)", "account_failure_cap": "consecutive-failure cap (reset required)",
    "global_unfamiliar": "service-wide budget for unfamiliar attempts", "oauth": "OAuth client quota",
}


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
        return KIND_TEXT.get(self.kind, self.kind)

    @property
    def what(self) -> str:
        return SUFFIX_TEXT.get(self.suffix, self.suffix or "")

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
