"""Epoch milliseconds, FUSOU's unit of time, as protobuf Timestamps."""

from __future__ import annotations

from google.protobuf import timestamp_pb2


def timestamp_of_ms(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts
