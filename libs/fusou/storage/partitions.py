"""Day partitions of the time field: the unit cold files are split by and named after.

A cold file holds rows of one UTC day only, so the ``date=`` folder it lies in says the truth to
an engine that filters on it (hive-style partition pruning would otherwise drop rows).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

DAY_MS: Final = 86_400_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def day_start(time_ms: int) -> int:
    """The first millisecond of the UTC day holding ``time_ms`` (floor: right before 1970 too)."""
    return time_ms - time_ms % DAY_MS


def day_name(time_ms: int) -> str:
    """The ISO date of the UTC day holding ``time_ms``."""
    return (_EPOCH + dt.timedelta(milliseconds=day_start(time_ms))).date().isoformat()
