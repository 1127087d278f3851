"""Rows as clients send them to Ingest in ``rows``: protobuf Structs (Arrow IPC streams:
``fusou.records.wire_formats``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2


def structs(rows: Iterable[Mapping[str, Any]]) -> list[struct_pb2.Struct]:
    """JSON-like dicts as protobuf Structs (what IngestRequest.rows carries)."""
    out = []
    for row in rows:
        s = struct_pb2.Struct()
        s.update(row)
        out.append(s)
    return out
