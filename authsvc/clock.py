from __future__ import annotations

import datetime as dt


class Clock:
    """Wall clock in UTC with an adjustable offset.

    Tests move time forward with ``advance`` instead of sleeping or patching; production never touches the offset.
    Redis TTLs still run on real time, so timeout logic is also enforced in code against this clock.
    """

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)
