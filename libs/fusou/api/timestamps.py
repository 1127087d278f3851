"""Epoch milliseconds, FUSOU's unit of time, as protobuf Timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from fusou.errors import FieldViolation, InvalidArgument

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


def millis(ts: timestamp_pb2.Timestamp | duration_pb2.Duration) -> int:
    """Milliseconds, rounded up (a duration, then, is never shorter than asked)."""
    # For whole-millisecond times t, start <= t < end holds in nanoseconds exactly when
    # ceil(start) <= t < ceil(end) holds in milliseconds.
    return ts.seconds * 1000 + -(-ts.nanos // 1_000_000)


@dataclass(frozen=True)
class TimeRange:
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    # False when the end is not after the start at the client's precision (the millisecond
    # bounds alone may be equal for a sub-millisecond range, which is just empty).
    ordered: bool


def required_range(request: Any) -> TimeRange:
    """A request's ``start_time`` and ``end_time`` (both required) as a half-open range of
    epoch milliseconds; INVALID_ARGUMENT naming each missing or unplaceable time."""
    violations: list[FieldViolation] = []
    for name in ("start_time", "end_time"):
        if not request.HasField(name):
            violations.append(FieldViolation(name, "is required"))
        else:
            violations.extend(timestamp_violations(name, getattr(request, name)))
    if violations:
        raise InvalidArgument.many(violations)
    start, end = request.start_time, request.end_time
    start_ns = start.seconds * 10**9 + start.nanos
    end_ns = end.seconds * 10**9 + end.nanos
    return TimeRange(millis(start), millis(end), end_ns > start_ns)
