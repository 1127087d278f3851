"""The wall clock the domain decides with: when a row was ingested, which rows are old enough to
archive, which leftovers are past the grace period.

Injected (``Runtime.clock``, the jobs' and the ingestor's ``clock``) so tests can make time
pass instead of rewriting what was stored; production uses ``SYSTEM_CLOCK``. Decisions that
PostgreSQL makes with its own ``now()`` (claim expiry, the retired objects' grace) stay in SQL.
Durations (``time.monotonic``, the event loop's time) are not wall-clock readings and stay too.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...

    def now(self) -> dt.datetime:
        """The same instant as an aware UTC datetime."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """The system clock moved forward by what a test asks: ``advance(s)`` makes everything that
    happened so far look ``s`` seconds older to whoever reads this clock.

    It keeps running with the system clock rather than standing still, because what the domain
    compares it with is not all its own: the object store dates objects by the real time.
    """

    def __init__(self, base: Clock = SYSTEM_CLOCK) -> None:
        self._base = base
        self._offset_ms = 0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._offset_ms += round(seconds * 1000)

    def now_ms(self) -> int:
        return self._base.now_ms() + self._offset_ms

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_ms() / 1000, dt.UTC)
