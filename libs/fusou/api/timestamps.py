"""Epoch milliseconds, FUSOU's unit of time, as protobuf Timestamps."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from fusou.errors import FieldViolation

# What a google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z in
# seconds, with nanos in [0, 1e9) (timestamp.proto); the same years FUSOU stores.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999


def timestamp_of_ms(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def timestamp_violations(field: str, ts: timestamp_pb2.Timestamp) -> list[FieldViolation]:
    """Why ``ts`` is not a valid Timestamp, naming ``field``; empty when it is."""
    violations = []
    if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS:
        violations.append(
            FieldViolation(
                f"{field}.seconds",
                f"is {ts.seconds}: a Timestamp lies between 0001-01-01T00:00:00Z "
                f"({MIN_SECONDS}) and 9999-12-31T23:59:59Z ({MAX_SECONDS})",
            )
        )
    if not 0 <= ts.nanos <= MAX_NANOS:
        violations.append(
            FieldViolation(f"{field}.nanos", f"is {ts.nanos}: nanos lie between 0 and {MAX_NANOS}")
        )
    return violations
