"""IP → prefix → ASN → country, from operator-configured files.

Two sources are supported and both are optional:

* ASN ranges as CSV (optionally gzip): ``start,end,asn[,org]`` where start/end are either integers
  (the ip-location-db ``*-num.csv`` flavour) or textual IPv4/IPv6 addresses. Loaded once into sorted
  arrays and searched with :mod:`bisect` - a few hundred thousand ranges cost ~1 s and ~60 MB.
* MaxMind-DB ``.mmdb`` files read with :mod:`maxminddb`: a country database (GeoLite2-Country/City,
  DB-IP lite, ip-location-db ``{country_code}``) and/or an ASN database (GeoLite2-ASN).

When nothing is configured the resolver still returns usable, coarser hierarchy values: the ASN level
falls back to the /16 (IPv4) or /32 (IPv6) network and the country to ``None``. The engine never fails
because geo data is missing; it only loses resolution.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import ipaddress
import io
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["GeoInfo", "AsnTable", "GeoResolver", "ip_prefix", "ip_network_fallback"]


@dataclass(frozen=True, slots=True)
class GeoInfo:
    asn: str | None  # "AS2119" style, None if unknown
    country: str | None  # ISO 3166-1 alpha-2, None if unknown
    lat: float | None = None
    lon: float | None = None
    org: str | None = None


def _open_text(path: str | Path) -> io.TextIOBase:
    p = Path(path)
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


def _to_int(text: str) -> tuple[int, int]:
    """Return (version, integer value) of an address given as digits or as text."""
    if text.isdigit():
        value = int(text)
        return (4 if value < 2**32 else 6), value
    # inet_pton is ~10x faster than ipaddress for the hundred thousand rows of a range file
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text.strip()), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text.strip()), "big")
    except OSError as exc:
        raise ValueError(text) from exc


class AsnTable:
    """Sorted, non-overlapping IP ranges → ASN, searchable with bisect.

    Separate tables per IP version because IPv4 integers would otherwise collide with the low end of IPv6.
    """

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        self._asns: dict[int, list[int]] = {4: [], 6: []}
        self._orgs: dict[int, list[str]] = {4: [], 6: []}

    @classmethod
    def from_csv(cls, *paths: str | Path) -> "AsnTable":
        table = cls()
        for path in paths:
            with _open_text(path) as fh:
                table._load_rows(csv.reader(fh))
        table._finish()
        return table

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, str]]) -> "AsnTable":
        """Build from already parsed rows (tests, simulator)."""
        table = cls()
        table._load_rows(rows)
        table._finish()
        return table

    def _load_rows(self, rows: Iterable[Any]) -> None:
        for row in rows:
            if len(row) < 3 or not row[0] or row[0].startswith("#"):
                continue
            try:
                version, start = _to_int(row[0])
                _, end = _to_int(row[1])
                asn = int(row[2])
            except ValueError:
                continue  # header line or garbage: skip rather than refuse the whole file
            self._starts[version].append(start)
            self._ends[version].append(end)
            self._asns[version].append(asn)
            self._orgs[version].append(row[3] if len(row) > 3 else "")

    def _finish(self) -> None:
        for v in (4, 6):
            order = sorted(range(len(self._starts[v])), key=self._starts[v].__getitem__)
            if any(order[i] != i for i in range(len(order))):
                self._starts[v] = [self._starts[v][i] for i in order]
                self._ends[v] = [self._ends[v][i] for i in order]
                self._asns[v] = [self._asns[v][i] for i in order]
                self._orgs[v] = [self._orgs[v][i] for i in order]

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])

    def lookup_int(self, version: int, value: int) -> tuple[int, str] | None:
        starts = self._starts[version]
        i = bisect.bisect_right(starts, value) - 1
        if i >= 0 and value <= self._ends[version][i]:
            return self._asns[version][i], self._orgs[version][i]
        return None

    def lookup(self, ip: str) -> tuple[int, str] | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr.version == 6 and addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d is found in the IPv4 ranges
            addr = addr.ipv4_mapped
        return self.lookup_int(addr.version, int(addr))

    def ranges(self, version: int = 4) -> Iterator[tuple[int, int, int, str]]:
        """(start, end, asn, org) in address order - used by the simulator to draw consistent IPs."""
        return zip(self._starts[version], self._ends[version], self._asns[version], self._orgs[version])


def ip_prefix(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address; the address itself if it does not parse."""
    return _prefix(ip, 24, 48)


def ip_network_fallback(ip: str) -> str:
    """A coarse stand-in for the ASN when no ASN data is configured: /16 (IPv4) or /32 (IPv6)."""
    return "net:" + _prefix(ip, 16, 32)


@lru_cache(maxsize=262_144)
def _prefix(ip: str, v4_bits: int, v6_bits: int) -> str:
    # Fast path for the overwhelmingly common dotted-quad case; ipaddress is ~20x slower.
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        if v4_bits == 24:
            return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"
        if v4_bits == 16:
            return f"{parts[0]}.{parts[1]}.0.0/16"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6 and addr.ipv4_mapped is not None:  # IPv4-mapped: its IPv4 network, not "::/48"
        addr = addr.ipv4_mapped
    bits = v4_bits if addr.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def _mmdb_country(rec: dict[str, Any]) -> str | None:
    # ip-location-db uses a flat {country_code}; MaxMind/DB-IP use nested {country: {iso_code}}.
    code = rec.get("country_code")
    if code:
        return str(code)
    for key in ("country", "registered_country"):
        sub = rec.get(key)
        if isinstance(sub, dict) and sub.get("iso_code"):
            return str(sub["iso_code"])
    return None


class GeoResolver:
    """Resolve an IP to :class:`GeoInfo` from whatever files the operator configured."""

    def __init__(
        self,
        *,
        asn_csv: Iterable[str | Path] | str | Path | None = None,
        asn_mmdb: str | Path | None = None,
        country_mmdb: str | Path | None = None,
        asn_table: AsnTable | None = None,
        cache_size: int = 131_072,
    ) -> None:
        if isinstance(asn_csv, (str, Path)):
            asn_csv = [asn_csv]
        self.asn_table = asn_table or (AsnTable.from_csv(*asn_csv) if asn_csv else None)
        self._asn_reader = self._open_mmdb(asn_mmdb)
        self._country_reader = self._open_mmdb(country_mmdb)
        # Per-instance cache so two resolvers with different files never share answers.
        self.lookup = lru_cache(maxsize=cache_size)(self._lookup)  # type: ignore[method-assign]

    @staticmethod
    def _open_mmdb(path: str | Path | None) -> Any:
        if path is None:
            return None
        import maxminddb  # imported lazily: the engine works without geo files or the package

        return maxminddb.open_database(str(path))

    @property
    def configured(self) -> bool:
        return bool(self.asn_table or self._asn_reader or self._country_reader)

    def _lookup(self, ip: str) -> GeoInfo:
        asn: str | None = None
        org: str | None = None
        country: str | None = None
        lat = lon = None
        if self.asn_table is not None:
            hit = self.asn_table.lookup(ip)
            if hit:
                asn, org = f"AS{hit[0]}", hit[1] or None
        if asn is None and self._asn_reader is not None:
            rec = self._safe_get(self._asn_reader, ip)
            if rec and rec.get("autonomous_system_number"):
                asn = f"AS{rec['autonomous_system_number']}"
                org = rec.get("autonomous_system_organization")
        if self._country_reader is not None:
            rec = self._safe_get(self._country_reader, ip)
            if rec:
                country = _mmdb_country(rec)
                loc = rec.get("location")
                if isinstance(loc, dict) and "latitude" in loc and "longitude" in loc:
                    lat, lon = float(loc["latitude"]), float(loc["longitude"])
        return GeoInfo(asn=asn, country=country, lat=lat, lon=lon, org=org)

    @staticmethod
    def _safe_get(reader: Any, ip: str) -> dict[str, Any] | None:
        try:
            rec = reader.get(ip)
        except ValueError:  # not an IP address
            return None
        return rec if isinstance(rec, dict) else None

    def close(self) -> None:
        for r in (self._asn_reader, self._country_reader):
            if r is not None:
                r.close()
