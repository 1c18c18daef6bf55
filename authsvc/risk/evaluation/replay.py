"""Replay a login file in the RBA schema through the engine, as the live service would see it.

Each row is scored only from what was learned from earlier rows; then the engine learns from it if
``Login Successful`` is true. Labels (``Is Attack IP``, ``Is Account Takeover``, ``Attack Type``) are never read.
"""

from __future__ import annotations

import csv
import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from ..context import LoginContext
from ..geo import GeoResolver
from ..model import RiskEngine
from .schema import REPLAY_COLUMNS, SCORE_COLUMNS, parse_timestamp
from ..signals import extract_features
from .reference import ReferenceModel
from .velocity import VelocityTracker

__all__ = ["ReplayStats", "ReplayInputError", "replay", "replay_many"]

_MISSING = ("", "-", "nan", "NaN", "None")
_TRUE = frozenset({"True", "true", "TRUE", "1", "t", "yes"})


@dataclass(frozen=True)
class ReplayStats:
    rows: int
    seconds: float
    resorted: bool

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


class _Unsorted(Exception):
    pass


class ReplayInputError(ValueError):
    """The login file is not in the RBA schema; the message says where (the CLI prints it without a traceback)."""


def replay(
    logins: str | Path,
    scores: str | Path,
    *,
    engine: RiskEngine | ReferenceModel | None = None,
    geo: GeoResolver | None = None,
    velocity: bool = True,
) -> ReplayStats:
    engine = engine or RiskEngine(geo=geo)
    start = time.perf_counter()
    try:
        with open(logins, newline="", encoding="utf-8") as fin, open(scores, "w", newline="", encoding="utf-8") as fout:
            rows = _process(_stream(fin, check_sorted=True), fout, engine, velocity)
        resorted = False
    except _Unsorted:
        # Rare (the dataset and the simulator write in time order): restart from scratch on a sorted copy.
        fresh = getattr(engine, "fresh", None)
        engine = fresh() if fresh is not None else RiskEngine(config=engine.config, geo=engine.geo)
        with open(logins, newline="", encoding="utf-8") as fin:
            reader = csv.reader(fin)
            header = next(reader)
            i_ts = header.index("Login Timestamp")
            try:
                body = sorted(reader, key=lambda r: parse_timestamp(r[i_ts]))
            except (ValueError, IndexError, csv.Error) as exc:
                raise ReplayInputError(f"a row without a valid 'Login Timestamp' ({exc})") from None
        with open(scores, "w", newline="", encoding="utf-8") as fout:
            rows = _process(iter([header, *body]), fout, engine, velocity)
        resorted = True
    return ReplayStats(rows, time.perf_counter() - start, resorted)


def replay_many(
    logins: str | Path,
    outputs: list[str | Path],
    engines: list[RiskEngine | ReferenceModel],
    *,
    velocity: bool = True,
) -> ReplayStats:
    """Several models over one pass of the file (ablations): features, velocity counters and - for engines that
    share one store - learning are done once; each model writes its own score file. Input must be in time order."""
    start = time.perf_counter()
    with open(logins, newline="", encoding="utf-8") as fin:
        fouts = [open(o, "w", newline="", encoding="utf-8") for o in outputs]
        try:
            rows = _process(_stream(fin, check_sorted=True), fouts, engines, velocity)
        except _Unsorted:
            raise ValueError("replay_many needs a file in time order (use replay, which sorts)") from None
        finally:
            for f in fouts:
                f.close()
    return ReplayStats(rows, time.perf_counter() - start, False)


def _stream(fin: TextIO, check_sorted: bool) -> Iterator[list[str]]:
    reader = csv.reader(fin)
    try:
        header = next(reader)
    except StopIteration:
        raise ReplayInputError("empty file (expected a header row in the RBA schema, docs/RISK.md §7)") from None
    missing = [c for c in REPLAY_COLUMNS if c not in header]
    if missing:
        raise ReplayInputError(f"missing column(s) {', '.join(repr(m) for m in missing)} (the RBA schema, "
                               f"docs/RISK.md §7)")
    yield header
    if not check_sorted:
        yield from reader
        return
    i_ts = header.index("Login Timestamp")
    last = ""
    for row in reader:
        # Dataset timestamps are fixed-width ISO strings, so string order is time order: no parse needed here.
        t = row[i_ts]
        if t < last:
            raise _Unsorted
        last = t
        yield row


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The pass allocates millions of small acyclic objects (histories, counters, features) that stay alive: the
    cyclic collector's generation-2 sweeps over them cost a quarter of the replay (b23, 100,000 rows: 20,800 →
    27,600 rows per CPU-second without them) and free nothing. Reference counting still frees everything; one
    collection at the end catches any cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect()


def _process(rows: Iterator[list[str]], fout: TextIO | list[TextIO], engine: RiskEngine | ReferenceModel | list,
             use_velocity: bool) -> int:
    with _without_cyclic_gc():
        try:
            return _process_gc_off(rows, fout, engine, use_velocity)
        except ReplayInputError:
            raise
        except (csv.Error, UnicodeError) as exc:  # in the header row (data rows say which one, below)
            raise ReplayInputError(f"not a UTF-8 CSV file ({exc})") from None


def _process_gc_off(rows: Iterator[list[str]], fout: TextIO | list[TextIO], engine: RiskEngine | ReferenceModel | list,
                    use_velocity: bool) -> int:
    """One model is the many-model pass with one engine and one output (one loop to keep; +0.9 % instructions)."""
    header = next(rows)
    if isinstance(engine, list):  # replay_many
        return _process_many(rows, header, fout, engine, use_velocity)  # type: ignore[arg-type]
    return _process_many(rows, header, [fout], [engine], use_velocity)  # type: ignore[list-item]


def _process_many(rows: Iterator[list[str]], header: list[str], fouts: list[TextIO],
                  engines: list[RiskEngine | ReferenceModel], use_velocity: bool) -> int:
    col = {name: i for i, name in enumerate(header)}
    i_idx, i_ts, i_user = col["index"], col["Login Timestamp"], col["User ID"]
    i_ip, i_ua, i_ok = col["IP Address"], col["User Agent String"], col["Login Successful"]
    i_country, i_asn = col.get("Country"), col.get("ASN")
    writers = [csv.writer(f, lineterminator="\n") for f in fouts]
    for w in writers:
        w.writerow(SCORE_COLUMNS)
    # Learn once per distinct store (engines sharing a store share the history); models without one learn alone.
    learners, stores = [], set()
    for e in engines:
        st = getattr(e, "store", None)
        if st is None or id(st) not in stores:
            learners.append(e)
            if st is not None:
                stores.add(id(st))
    tracker = VelocityTracker() if use_velocity else None
    known_users: set[str] = set()
    geo = engines[0].geo
    n = 0
    outs: list[list[tuple[str, str, str, str]]] = [[] for _ in engines]
    try:
        for row in rows:
            ts = parse_timestamp(row[i_ts])
            user = row[i_user]
            ip = row[i_ip]
            country = row[i_country] if i_country is not None else ""
            asn = row[i_asn] if i_asn is not None else ""
            country = None if country in _MISSING else country
            asn = None if asn in _MISSING else (asn if asn.startswith("AS") else "AS" + asn.split(".")[0])
            counters: dict[str, float] = {}
            ctx = LoginContext(user, ip, row[i_ua], ts, velocity=counters, country=country, asn=asn)
            feats = extract_features(ctx, geo)
            known = user in known_users
            if tracker is not None:
                counters.update(tracker.counters(ts, user, ip, feats.ip_values[1], feats.ip_values[2]))
            for e, out in zip(engines, outs):
                d = e.score_features(ctx, feats)
                out.append((row[i_idx], f"{d.score:.4f}", d.action, ";".join([r.code for r in d.reasons])))
            success = row[i_ok] in _TRUE
            if tracker is not None:
                tracker.observe(ts, user, ip, feats.ip_values[1], feats.ip_values[2], success, known)
            if success:
                for e in learners:
                    e.learn(ctx, feats)
                known_users.add(user)
            n += 1
            if len(outs[0]) >= 10_000:
                for w, out in zip(writers, outs):
                    w.writerows(out)
                    out.clear()
    except (ValueError, IndexError, csv.Error) as exc:  # zero-cost until raised; rows are 1-based after the header
        raise ReplayInputError(f"data row {n + 1}: {exc}") from None
    for w, out in zip(writers, outs):
        w.writerows(out)
    return n
