"""The instants FUSOU can store.

Every place a record's time ends up has to hold it: the cold layout's date folders (Python's
``datetime``, years 1 to 9999), Avro ``timestamp-millis`` and Parquet ``TIMESTAMP(MILLIS)``
readers that convert to calendar dates, and protobuf ``Timestamp`` (the same years). Ingest
refuses anything outside; the archiver quarantines stored rows outside (written before the
check existed) instead of failing on them.
"""

from __future__ import annotations

# 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in epoch milliseconds.
MIN_TIME_MS = -62_135_596_800_000
MAX_TIME_MS = 253_402_300_799_999
# The span between them in whole seconds: the longest age that means anything for stored
# times (an archive's minimum row age, say); ``now - age`` in milliseconds then stays far
# inside 64 bits.
MAX_SPAN_S = (MAX_TIME_MS - MIN_TIME_MS) // 1000


def placeable(ms: int) -> bool:
    """True when ``ms`` (epoch milliseconds) is an instant every format of FUSOU holds."""
    return MIN_TIME_MS <= ms <= MAX_TIME_MS


def bounds_text() -> str:
    """The bounds as people read them, for error messages."""
    return (
        f"between {MIN_TIME_MS} (0001-01-01T00:00:00Z) and "
        f"{MAX_TIME_MS} (9999-12-31T23:59:59.999Z) epoch milliseconds"
    )
