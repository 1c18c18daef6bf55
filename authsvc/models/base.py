from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Integer ids are INTEGER columns: 32-bit on PostgreSQL, where a larger number in a query is an "integer out of range"
# error (SQLite fails past 2**63). Whatever comes from outside goes through parse_id first.
ID_MAX = 2**31 - 1


def parse_id(raw) -> int | None:
    """A row id from a URL, query or form value: ASCII digits only, 1 … ID_MAX; anything else → None (→ 404/400)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if 0 < raw <= ID_MAX else None
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= ID_MAX else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in Python, naive UTC in the column: SQLite has no time zones, PostgreSQL gets the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
