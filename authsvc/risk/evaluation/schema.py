"""The RBA dataset's CSV schema (Wiefling et al.), shared by simulate, replay and report."""

from __future__ import annotations

import datetime as dt

__all__ = ["COLUMNS", "REPLAY_COLUMNS", "ATTACK_TYPE_COLUMN", "CAMPAIGN_COLUMN", "SCORE_COLUMNS", "parse_timestamp", "format_timestamp", "parse_bool"]

COLUMNS: tuple[str, ...] = (
    "index",
    "Login Timestamp",
    "User ID",
    "Round-Trip Time [ms]",
    "IP Address",
    "Country",
    "Region",
    "City",
    "ASN",
    "User Agent String",
    "Browser Name and Version",
    "OS Name and Version",
    "Device Type",
    "Login Successful",
    "Is Attack IP",
    "Is Account Takeover",
)
# The columns a replay reads (the others may be absent; `risk fit` also needs its label, "Is Account Takeover").
REPLAY_COLUMNS: tuple[str, ...] = ("index", "Login Timestamp", "User ID", "IP Address", "User Agent String",
                                   "Login Successful")
# Written by the simulator after the 16 schema columns; a label, read only by the report.
ATTACK_TYPE_COLUMN = "Attack Type"
# Written by the simulator after ``Attack Type``: the campaign a stuffing or spraying row belongs to ("" elsewhere).
# Rows of one campaign share its IP pool, UA choice and hours, so they are not independent draws: the report resamples
# campaigns, not rows, when this column is present.
CAMPAIGN_COLUMN = "Campaign"
SCORE_COLUMNS: tuple[str, ...] = ("index", "score", "decision", "reasons")

_EPOCH = dt.datetime(1970, 1, 1)


def parse_timestamp(text: str) -> float:
    """'2020-02-03 12:43:30.772' (UTC, as in the dataset) → UNIX seconds. Accepts ISO variants with 'T'/offset."""
    d = dt.datetime.fromisoformat(text)
    if d.tzinfo is not None:
        return d.timestamp()
    return (d - _EPOCH).total_seconds()


def format_timestamp(ts: float) -> str:
    return (_EPOCH + dt.timedelta(seconds=ts)).isoformat(sep=" ", timespec="milliseconds")


def parse_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "t")
